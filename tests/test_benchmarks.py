"""Benchmark modules: they import, their helpers compute what they claim, bad arguments are refused.

Nothing here trains a model or runs a benchmark.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks import gpu, peer_omnifold, run_all, unfolding, unfolding_calibration
from numl_core.stats import hartlap_factor


def test_flatten_joins_nested_keys_and_drops_lists():
    nested = {"a": 1, "b": {"c": 2.5, "d": {"e": None}}, "table": [{"x": 1}], "f": "text"}
    assert run_all.flatten(nested) == {"a": 1, "b.c": 2.5, "b.d.e": None, "f": "text"}


def test_flatten_with_prefix():
    assert run_all.flatten({"x": {"y": 1}}, prefix="p.") == {"p.x.y": 1}


def test_run_all_refuses_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exc:
        run_all.main(["no_such_benchmark"])
    assert exc.value.code == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_committed_unfolding_results_come_from_the_full_sizes():
    # the README quotes benchmarks/results/unfolding.json: it must have been run at today's FULL sizes
    record = json.loads((run_all.RESULTS / "unfolding.json").read_text())
    assert record["quick"] is False
    assert record["sizes"] == dataclasses.asdict(unfolding.FULL)


def test_quick_sizes_are_no_larger_than_full():
    full, quick = dataclasses.asdict(unfolding.FULL), dataclasses.asdict(unfolding.QUICK)
    assert all(quick[k] <= full[k] for k in full)
    assert quick["n_events"] < full["n_events"]


@pytest.mark.parametrize("sizes", [unfolding.FULL, unfolding.QUICK])
def test_peer_gets_enough_batches(sizes):
    # MultiFold validates on whole batches from the last 20% of its events: it needs >= 5 batches a step.
    assert sizes.peer_events // sizes.peer_batch_size >= 5


def test_table_records_carry_chi2_ndof_and_the_covariance_estimate_per_distribution():
    calibration = pd.DataFrame(
        {
            "distribution": ["dpt", "muon_p_cos", "dpt", "muon_p_cos"],
            "method": ["omnifold", "omnifold", "ibu", "ibu"],
            "chi2": [12.0, 60.0, 15.5, 70.0],
            "ndof": [14, 58, 14, 58],
            "covariance": ["hartlap", "shrinkage", "hartlap", "shrinkage"],
            "inverse_correction": [0.85, 1.0, 0.85, 1.0],
            "n_throws": [100] * 4,
        }
    )
    records = unfolding_calibration.table_records("nominal", calibration)
    assert [r["method"] for r in records] == ["omnifold", "ibu"]
    assert records[1]["dpt"] == 15.5 and records[0]["ndof"] == {"dpt": 14, "muon_p_cos": 58}
    assert records[0]["covariance"]["muon_p_cos"] == "shrinkage"
    winners = unfolding_calibration.stv_winner(
        [{**r, "dalphat": 1.0, "dphit": 2.0 if r["method"] == "ibu" else 3.0} for r in records]
    )
    assert winners == {"nominal": {"dpt": "omnifold", "dalphat": "omnifold", "dphit": "ibu"}}


def test_chi2_per_ndof_skips_empty_bins():
    a = (np.array([10.0, 0.0, 4.0]), np.array([4.0, 0.0, 1.0]))
    b = (np.array([8.0, 0.0, 4.0]), np.array([4.0, 0.0, 3.0]))
    chi2, ndof = unfolding.chi2_per_ndof(a, b)
    assert ndof == 2
    assert chi2 == pytest.approx((4.0 / 8.0 + 0.0) / 2)


def test_max_rel_diff_is_relative_where_the_reference_is_not_zero():
    assert unfolding.max_rel_diff([1.1, 0.0], [1.0, 0.0]) == pytest.approx(0.1)
    assert unfolding.max_rel_diff([2.0, 1e-3], [2.0, 0.0]) == pytest.approx(1e-3)


def test_standardised_uses_reference_moments_and_zeroes_unselected_rows():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 5.0]], np.float32)
    rows = np.array([True, True, False])
    out = unfolding.standardised(x, rows, x[rows])
    np.testing.assert_allclose(out, [[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # constant column keeps scale 1


def test_peer_script_parses_matching_settings(tmp_path):
    args = peer_omnifold.parse_args(
        [str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), "--iterations=5", "--hidden", "100", "100"]
    )
    assert args.iterations == 5 and args.hidden == [100, 100] and args.activation == "relu"


@pytest.mark.parametrize("option", ["--iterations=0", "--epochs=0", "--batch-size=0", "--patience=0"])
def test_peer_script_refuses_non_positive_settings(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        peer_omnifold.parse_args([str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), option])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_gpu_sections_cover_every_workflow_benchmark():
    workflows = [n for n in run_all.BENCHMARKS if n != "responsiveness"]
    assert sorted(gpu.SECTIONS) == sorted(workflows) == sorted(gpu.BUDGET_S)


def test_gpu_budgets_fit_one_device_call():
    # one device command may run 10 minutes; the sections must leave room for start-up and the report
    assert sum(gpu.BUDGET_S.values()) <= 560


def test_gpu_section_over_budget_is_recorded_not_raised():
    report = gpu.run_sections(["xsec"], "cpu", quick=True, scale=1e-3)
    assert report["xsec"]["error"].startswith("over its budget")


def test_gpu_refuses_unknown_section(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu.main(["no_such_section"])
    assert exc.value.code == 2
    assert "unknown section" in capsys.readouterr().err


def test_target_miss_probability_is_the_f_tail_at_the_target():
    from scipy import stats

    calibration = pd.DataFrame(
        {
            "distribution": ["dpt", "muon_p_cos"],
            "method": ["omnifold", "omnifold"],
            "ndof": [14, 58],
            "covariance": ["hartlap", "hartlap"],
            "inverse_correction": [hartlap_factor(100, 14), hartlap_factor(100, 58)],
            "n_throws": [100, 100],
        }
    )
    out = unfolding_calibration.target_miss_probability(calibration, target=1.5)
    # chi2 / h = T^2 and T^2 (N - p) / (p (N - 1)) ~ F(p, N - p): chi2 = 1.5 p
    expected = {
        p: stats.f.sf(1.5 * p / hartlap_factor(100, p) * (100 - p) / (p * 99), p, 100 - p) for p in (14, 58)
    }
    assert out["per_entry"]["omnifold"]["dpt"] == pytest.approx(expected[14])
    assert out["per_entry"]["omnifold"]["muon_p_cos"] == pytest.approx(expected[58])
    assert out["any_entry"] == pytest.approx(1 - (1 - expected[14]) * (1 - expected[58]))


def test_stopping_check_reads_iterate_more_against_the_last_iterations_gain():
    def result(chi2_last: float, suggested: int | None) -> SimpleNamespace:
        iterations = pd.DataFrame(
            {"method": "omnifold", "distribution": "dpt", "ndof": 8, "iteration": [1, 2, 3],
             "chi2_truth": [100.0, 60.0, chi2_last], "chi2_truth_fixed": [100.0, 60.0, chi2_last]}
        )  # fmt: skip
        return SimpleNamespace(iterations=iterations, suggested_iterations={"omnifold": suggested})

    spread = np.sqrt(2 * 8)
    # "iterate more" (no suggested iteration) agrees while the last iteration gained more than the spread
    assert unfolding_calibration.stopping_check(result(60.0 - 2 * spread, None))["omnifold"]["agrees"]
    assert not unfolding_calibration.stopping_check(result(60.0 - spread / 2, None))["omnifold"]["agrees"]
    # a suggested iteration agrees when its chi2 is within the spread of the smallest
    assert unfolding_calibration.stopping_check(result(60.0 - spread / 2, 2))["omnifold"]["agrees"]
    assert not unfolding_calibration.stopping_check(result(60.0 - 2 * spread, 2))["omnifold"]["agrees"]


def test_stopping_check_beyond_noise_judges_only_a_bias_the_chi2_can_detect():
    def check(chi2: list[float], suggested: int | None, key: str = "agrees_beyond_noise") -> bool:
        iterations = pd.DataFrame(
            {"method": "ibu", "distribution": "dpt", "ndof": 8, "iteration": range(1, len(chi2) + 1),
             "chi2_truth": chi2, "chi2_truth_fixed": chi2}
        )  # fmt: skip
        result = SimpleNamespace(iterations=iterations, suggested_iterations={"ibu": suggested})
        return unfolding_calibration.stopping_check(result)["ibu"][key]

    spread = np.sqrt(2 * 8)
    # the chi2 keeps falling below ndof (wider errors, no bias to find): stopping early agrees, though
    # the criterion fixed first, against the minimum alone, says it does not
    falling_below_ndof = [8.0 + spread / 2, 8.0, 8.0 - 1.5 * spread]
    assert check(falling_below_ndof, 1)
    assert not check(falling_below_ndof, 1, key="agrees")
    assert not check(falling_below_ndof, None)
    # a bias still falling fast from far above ndof: stopping at the last iteration does not agree
    still_biased = [100.0, 60.0, 60.0 - 2 * spread]
    assert not check(still_biased, 3)
    assert check(still_biased, 3, key="agrees")  # the first criterion lets the last iteration through
    assert check(still_biased, None)
    # stopping where the chi2 is far above the final one does not agree either
    assert not check(still_biased, 2)


def test_stopping_check_in_the_fixed_metric_follows_the_result_not_its_widening_errors():
    def check(suggested: int | None) -> dict:
        # the chi2 with each iteration's covariance falls as the errors widen; with the last iteration's
        # covariance it rises: the iterations move the result away from the truth
        iterations = pd.DataFrame(
            {"method": "ibu", "distribution": "dpt", "ndof": 8, "iteration": [1, 2, 3],
             "chi2_truth": [40.0, 25.0, 12.0], "chi2_truth_fixed": [6.0, 9.0, 12.0]}
        )  # fmt: skip
        result = SimpleNamespace(iterations=iterations, suggested_iterations={"ibu": suggested})
        return unfolding_calibration.stopping_check(result)["ibu"]

    first, more = check(1), check(None)
    assert (first["agrees_fixed_metric"], first["agrees"]) == (True, False)
    assert (more["agrees_fixed_metric"], more["agrees"]) == (False, True)
    assert first["iteration_of_min_fixed_metric"] == 1 and first["chi2_fixed_metric_at_suggested"] == 6.0
    assert more["chi2_fixed_metric_at_suggested"] is None and more["chi2_fixed_metric_min"] == 6.0


def test_stopping_check_judges_the_iterations_the_estimate_cannot_rank():
    # the estimate (taking the last iteration as unbiased) is smallest at 2 and within the spread 4 at 3,
    # while the chi2 against the truth still falls by 8 at the last iteration
    iterations = pd.DataFrame(
        {"method": "omnifold", "distribution": "dpt", "ndof": 8, "iteration": [1, 2, 3],
         "chi2_truth": [100.0, 60.0, 52.0], "chi2_truth_fixed": [100.0, 60.0, 52.0],
         "estimated_chi2": [30.0, 12.0, 14.0]}
    )  # fmt: skip
    result = SimpleNamespace(iterations=iterations, suggested_iterations={"omnifold": 2})
    check = unfolding_calibration.stopping_check(result)["omnifold"]
    assert check["equally_good_iterations"] == [2, 3]
    assert not check["agrees_fixed_metric"] and check["equally_good_agree_fixed_metric"]
    # an estimate that rises at once leaves the suggestion alone, which then does not agree either
    result.iterations = iterations.assign(estimated_chi2=[30.0, 12.0, 20.0])
    check = unfolding_calibration.stopping_check(result)["omnifold"]
    assert check["equally_good_iterations"] == [2] and not check["equally_good_agree_fixed_metric"]
