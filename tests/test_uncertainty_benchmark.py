"""The uncertainty benchmark's mixture case, callable alone (e.g. on a GPU): its JSON keys on a tiny toy."""

import numpy as np

from benchmarks import uncertainty as bench

TINY = dict(
    dim=5,
    n_toys=1_500,
    n_test=300,
    epochs=2,
    transforms=1,
    hidden_features=16,
    n_pvalue_samples=2_000,
    c2st_folds=2,
)


def test_mixture_case_returns_every_model_metric_and_the_targets():
    out = bench.mixture_case(quick=True, device="cpu", **TINY)
    models = out["mixture50d"]
    assert set(models) == {"gaussian", "improved_baseline", "marginal_gaussian", "flow", "truth"}
    for name in ("gaussian", "improved_baseline", "flow", "truth"):
        assert set(bench.KEYS) <= set(models[name])
        assert all(np.isfinite(v) for v in models[name].values())
    assert out["mixture50d_flow_nll_minus_truth"] == models["flow"]["nll"] - models["truth"]["nll"]
    assert set(out["mixture50d_targets_met"]) == {
        "flow_c2st",
        "nll_gap",
        "pvalue_r",
        "pvalue_r2",
        "pvalue_mse",
    }
    details = out["mixture50d_details"]
    # 1500 toys less the 20 % validation split of the quick sizes
    assert details["n_train"] == 1_200 and details["train_seconds"] > 0
    assert -1.0 <= details["flow_vs_gaussian_pvalues"]["pvalue_r"] <= 1.0


def test_near_far_case_compares_both_models_with_the_exact_conditional():
    out = bench.near_far_case(quick=True, device="cpu")
    models = out["models"]
    assert set(models) == {"truth", "transformer", "flow"}
    assert models["truth"]["nll_minus_truth"] == 0.0
    for row in models.values():
        assert {"nll", "coverage_68", "coverage_95"} <= set(row)
        assert 0.0 <= row["coverage_68"] <= row["coverage_95"] <= 1.0
    # the exact conditional's 95 % intervals hold 95 % of 100 x 3 values: sd 0.013, 5 sd
    assert abs(models["truth"]["coverage_95"] - 0.95) < 0.063
    calibration = bench.ndfd_calibration(models)
    assert set(calibration) == {"transformer", "flow", "truth"}
    assert all(set(v) == {"coverage_68", "coverage_95", "pit_ks_pvalue"} for v in calibration.values())
    # the exact conditional's PIT is uniform: its KS p-value is itself uniform, below 1e-4 once in 10^4
    assert calibration["truth"]["pit_ks_pvalue"] > 1e-4


def test_hard_case_reports_every_model_and_its_targets():
    out = bench.hard_case(quick=True, device="cpu", **{**TINY, "dim": 8})
    models = out["hard50d"]
    assert set(models) == {"gaussian", "improved_baseline", "marginal_gaussian", "flow", "truth"}
    assert set(out["hard50d_targets_met"]) == {"flow_c2st", "nll_gap", "pvalue_r", "pvalue_r2", "pvalue_mse"}
    assert out["hard50d_flow_train_seconds_cpu"] > 0 and out["hard50d_toys"] > 0
    # even in 8 dimensions the bent toys are told apart from their Gaussian fit
    assert models["gaussian"]["c2st"] > 0.7
