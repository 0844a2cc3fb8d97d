"""The unfolding benchmark's calibration part: the chi2 table of every fake-data set with the throws'
covariance, closure, the covariance check, the bias per iteration, and OmniFold's bias against events
and training epochs.

Every run is the unfolding workflow itself (``run_unfolding``) with throws that vary the flux, cross
section and detector together with Poisson statistics of MC and data; both methods get the same events,
throws, binnings and device. :func:`run` returns the JSON keys; ``benchmarks/unfolding.py`` calls it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.jobs import Progress
from numl_core.stats import Chi2
from numl_core.unfold.config import DISTRIBUTIONS
from numl_core.unfold.result import UnfoldResult
from numl_core.unfold.validation import equally_good_iterations
from numl_core.unfold.workflow import UnfoldingConfig, run_unfolding

logger = logging.getLogger(__name__)
STVS = ("dpt", "dalphat", "dphit")
CLOSURE_TARGET = 1.5
COVARIANCE_CHECK_RANGE = (0.8, 1.25)
BIAS_FAKE_DATA = "dphit_shape"

#: The reference OmniFold-vs-IBU study's chi2 on its dphiT shape + normalisation fake data (ndof 58 / 14 /
#: 18 / 14), with the covariance from unfolding the fake data with 100 MC throws of systematic and
#: statistical variations; quoted for side-by-side printing, not computed here.
REFERENCE_TABLE = {
    "fake_data": "dphit_shape_norm",
    "ndof": {"muon_p_cos": 58, "dpt": 14, "dalphat": 18, "dphit": 14},
    "rows": [
        {"method": "ibu", "muon_p_cos": 64.8, "dpt": 18.3, "dalphat": 14.1, "dphit": 20.9},
        {"method": "omnifold", "muon_p_cos": 23.9, "dpt": 1.7, "dalphat": 2.5, "dphit": 2.9},
    ],
}


def unfold(sizes: Any, **changes: Any) -> tuple[float, UnfoldResult]:
    """One workflow run at the table's sizes with ``changes``; seconds and result."""
    config = UnfoldingConfig(
        n_events=sizes.chi2_events,
        seed=0,
        iterations=sizes.chi2_iterations,
        trials=sizes.chi2_trials,
        n_throws=sizes.chi2_throws,
        epochs=sizes.chi2_epochs,
        distributions=list(DISTRIBUTIONS),
        device="cpu",
    ).copy(**changes)
    t0 = time.perf_counter()
    result = run_unfolding(config, Progress())
    return time.perf_counter() - t0, result


def by_method(table: pd.DataFrame, column: str) -> dict[str, dict[str, Any]]:
    """{method: {distribution: value of ``column``}} of a calibration table.

    >>> t = pd.DataFrame({"method": ["ibu"], "distribution": ["dpt"], "chi2": [3.0]})
    >>> by_method(t, "chi2")
    {'ibu': {'dpt': 3.0}}
    """
    return {
        str(m): {str(d): _number(v) for d, v in zip(rows["distribution"], rows[column], strict=True)}
        for m, rows in table.groupby("method", sort=False)
    }


def _number(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else value


def chi2_entries(
    calibration: pd.DataFrame, column: str = "chi2", p_column: str = "p_value"
) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {distribution: {chi2, ndof, per_ndof, p_value}}} of a calibration table's ``column``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in calibration.to_dict("records"):
        chi2 = float(row[column])
        entry = {
            "chi2": chi2,
            "ndof": int(row["ndof"]),
            "per_ndof": chi2 / row["ndof"],
            "p_value": row[p_column],
        }
        out.setdefault(str(row["method"]), {})[str(row["distribution"])] = entry
    return out


def target_miss_probability(calibration: pd.DataFrame, target: float = CLOSURE_TARGET) -> dict[str, Any]:
    """How often a perfectly calibrated result misses chi2 / ndof <= ``target``: per entry, the
    probability that a Hartlap-corrected chi2 of a Gaussian difference exceeds it (Hotelling's T^2 with the
    entry's throws and bins, see :attr:`numl_core.stats.Chi2.p_value`), and the probability that at least
    one entry does, as if the entries were independent."""
    per_entry: dict[str, dict[str, float]] = {}
    for row in calibration.to_dict("records"):
        fit = Chi2(
            target * row["ndof"],
            int(row["ndof"]),
            (),
            row["inverse_correction"],
            row["covariance"],
            int(row["n_throws"]),
        )
        per_entry.setdefault(str(row["method"]), {})[str(row["distribution"])] = fit.p_value
    all_met = float(np.prod([1.0 - p for m in per_entry.values() for p in m.values()]))
    return {"per_entry": per_entry, "any_entry": 1.0 - all_met}


def table_records(fake: str, calibration: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per method: chi2 per distribution, with ndof, the covariance estimate, its inverse
    correction and the number of throws per distribution."""
    records = []
    for method, rows in calibration.groupby("method", sort=False):
        rows = rows.set_index("distribution")
        record = {
            "fake_data": fake,
            "method": str(method),
            **{d: float(rows.at[d, "chi2"]) for d in rows.index},
        }
        for column in ("ndof", "covariance", "inverse_correction", "n_throws"):
            record[column] = {d: _number(rows.at[d, column]) for d in rows.index}
        records.append(record)
    return records


def per_iteration(iterations: pd.DataFrame, column: str) -> dict[str, dict[str, list[float]]]:
    """{method: {distribution: [``column`` per iteration]}}."""
    return {
        str(m): {
            str(d): rows.sort_values("iteration")[column].astype(float).tolist()
            for d, rows in g.groupby("distribution")
        }
        for m, g in iterations.groupby("method", sort=False)
    }


def agrees_with(total: pd.Series, suggested: int | None, spread: float) -> bool:
    """The criterion fixed before the first run: a suggested iteration agrees with the summed chi2 against
    the truth per iteration ``total`` when its chi2 is within ``spread`` of the minimum; "iterate more"
    (None) agrees when the last iteration still lowered the chi2 by more than ``spread``."""
    if suggested is not None:
        return bool(float(total.loc[suggested]) <= float(total.min()) + spread)
    return len(total) > 1 and float(total.iloc[-2] - total.iloc[-1]) > spread


def stopping_check(result: UnfoldResult) -> dict[str, dict[str, Any]]:
    """Per method: the suggested iteration, the summed chi2 against the truth there and its minimum over
    the iterations, and whether the rule agrees with the bias, within the summed chi2's statistical
    spread sqrt(2 ndof).

    ``agrees`` is :func:`agrees_with` on the chi2 with each iteration's covariance.

    ``agrees_beyond_noise`` judges only a bias the chi2 can detect. The chi2 also falls because each
    iteration's covariance is wider, and below ndof + spread it cannot tell a bias from noise. So the last
    iteration "still helps" only if it lowered the chi2 by more than the spread from above ndof + spread;
    a suggested iteration agrees when its chi2 is within the spread of the larger of the minimum and ndof,
    and, if it is the last iteration, that one did not still help; "iterate more" agrees when it did.

    ``agrees_fixed_metric`` is :func:`agrees_with` on the chi2 with the last iteration's covariance for
    every iteration (``chi2_truth_fixed``), which falls only where the result moves towards the truth.

    ``equally_good_iterations`` are those the estimate cannot rank against the suggestion
    (:func:`~numl_core.unfold.validation.equally_good_iterations`); ``equally_good_agree_fixed_metric``
    says whether one of them agrees with the fixed-metric chi2 as ``agrees_fixed_metric`` judges.
    """
    out = {}
    alike = equally_good_iterations(result.iterations)
    for method, rows in result.iterations.groupby("method", sort=False):
        sums = rows.groupby("iteration")[["chi2_truth", "chi2_truth_fixed"]].sum()
        total, fixed = sums["chi2_truth"], sums["chi2_truth_fixed"]
        ndof = int(rows.groupby("distribution")["ndof"].first().sum())
        suggested = result.suggested_iterations.get(str(method))
        listed = alike.get(str(method))
        at = float(total.loc[suggested]) if suggested is not None else None
        spread = float(np.sqrt(2 * ndof))
        lowered = float(total.iloc[-2] - total.iloc[-1]) if len(total) > 1 else None
        helped_beyond_noise = (
            lowered is not None and lowered > spread and float(total.iloc[-2]) > ndof + spread
        )
        if at is not None:
            beyond_noise = at <= max(float(total.min()), ndof) + spread and not (
                suggested == int(total.index[-1]) and helped_beyond_noise
            )
        else:
            beyond_noise = helped_beyond_noise
        out[str(method)] = {
            "suggested_iteration": suggested,
            "chi2_truth_at_suggested": at,
            "chi2_truth_min": float(total.min()),
            "iteration_of_min": int(total.idxmin()),
            "last_iteration_lowered_by": lowered,
            "ndof": ndof,
            "agrees": agrees_with(total, suggested, spread),
            "agrees_beyond_noise": bool(beyond_noise),
            "chi2_fixed_metric_at_suggested": float(fixed.loc[suggested]) if suggested is not None else None,
            "chi2_fixed_metric_min": float(fixed.min()),
            "iteration_of_min_fixed_metric": int(fixed.idxmin()),
            "agrees_fixed_metric": agrees_with(fixed, suggested, spread),
            "equally_good_iterations": listed,
            "equally_good_agree_fixed_metric": any(agrees_with(fixed, i, spread) for i in listed or []),
        }
    return out


def stv_winner(records: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per fake-data set and STV distribution, the method with the lower chi2 against the truth."""
    out: dict[str, dict[str, str]] = {}
    for fake in dict.fromkeys(r["fake_data"] for r in records):
        rows = {r["method"]: r for r in records if r["fake_data"] == fake}
        if {"omnifold", "ibu"} <= set(rows):
            out[fake] = {d: min(("omnifold", "ibu"), key=lambda m, d=d: rows[m][d]) for d in STVS}
    return out


def bench_table(sizes: Any) -> tuple[dict[str, Any], dict[str, UnfoldResult]]:
    """The chi2 table over every fake-data set, and the results by fake-data set."""
    records, seconds, results = [], {}, {}
    for fake in nd280.FAKE_DATA_SETS:
        logger.info("chi2 table: fake data %s, %d throws", fake, sizes.chi2_throws)
        seconds[fake], results[fake] = unfold(sizes, fake_data=fake)
        records += table_records(fake, results[fake].calibration)
        logger.info("%s: %s", fake, results[fake].chi2_table.round(1).to_dict("records"))
    sizes_out = {
        "n_events": sizes.chi2_events,
        "n_mc": results["nominal"].n_mc,
        "iterations": sizes.chi2_iterations,
        "ibu_iterations": UnfoldingConfig().ibu_iterations,
        "trials": sizes.chi2_trials,
        "n_throws": sizes.chi2_throws,
        "max_epochs": sizes.chi2_epochs,
        "seconds": seconds,
    }
    return {"chi2_table_100": records, "chi2_sizes": sizes_out, "reference_table": REFERENCE_TABLE}, results


def calibration_keys(results: dict[str, UnfoldResult]) -> dict[str, Any]:
    """closure_nominal, covariance_check, bias and change per iteration, stopping rule, STV winners."""
    nominal = results["nominal"].calibration
    closure = chi2_entries(nominal)
    with_truth = chi2_entries(nominal, "chi2_closure", "p_closure")
    check = by_method(nominal, "loo_chi2_per_ndof")
    lo, hi = COVARIANCE_CHECK_RANGE
    return {
        "closure_nominal": closure,
        "closure_nominal_target_met": all(
            e["per_ndof"] <= CLOSURE_TARGET for m in closure.values() for e in m.values()
        ),
        "closure_nominal_target_miss_probability": target_miss_probability(nominal),
        "closure_nominal_truth_fluctuation": with_truth,
        "closure_nominal_truth_fluctuation_target_met": all(
            e["per_ndof"] <= CLOSURE_TARGET for m in with_truth.values() for e in m.values()
        ),
        "closure_truth_fluctuation_by_fake_data": {
            f: chi2_entries(r.calibration, "chi2_closure", "p_closure") for f, r in results.items()
        },
        "covariance_check": check,
        "covariance_check_target_met": all(
            v is not None and lo <= v <= hi for m in check.values() for v in m.values()
        ),
        "covariance_check_by_fake_data": {
            f: by_method(r.calibration, "loo_chi2_per_ndof") for f, r in results.items()
        },
        "bias_vs_iteration": per_iteration(results[BIAS_FAKE_DATA].iterations, "chi2_truth"),
        "bias_vs_iteration_fake_data": BIAS_FAKE_DATA,
        "bias_vs_iteration_by_fake_data": {
            f: per_iteration(r.iterations, "chi2_truth") for f, r in results.items()
        },
        "bias_fixed_metric_vs_iteration_by_fake_data": {
            f: per_iteration(r.iterations, "chi2_truth_fixed") for f, r in results.items()
        },
        "change_vs_iteration_by_fake_data": {
            f: per_iteration(r.iterations, "change_chi2") for f, r in results.items()
        },
        "estimated_chi2_vs_iteration_by_fake_data": {
            f: per_iteration(r.iterations, "estimated_chi2") for f, r in results.items()
        },
        "stopping_rule": {f: stopping_check(r) for f, r in results.items()},
        "omnifold_trial_rule_converged_at": {f: r.converged_at for f, r in results.items()},
    }


def final_chi2_per_ndof(result: UnfoldResult, method: str = "omnifold") -> dict[str, float]:
    """chi2 / ndof against the truth per distribution of one method's final result."""
    rows = result.calibration[result.calibration["method"] == method]
    return {
        str(d): float(c / n) for d, c, n in zip(rows["distribution"], rows["chi2"], rows["ndof"], strict=True)
    }


def bench_bias_scans(sizes: Any) -> dict[str, Any]:
    """OmniFold's bias on ``BIAS_FAKE_DATA`` against the number of events and of training epochs (fewer
    throws: ``bias_throws``), and the closure of the MC unfolded onto its own reco."""
    events, epochs, seconds = {}, {}, {}
    for fraction in (0.25, 0.5, 1.0):
        n = int(sizes.chi2_events * fraction)
        logger.info("bias vs events: %d events", n)
        seconds[f"events_{n}"], result = unfold(
            sizes, fake_data=BIAS_FAKE_DATA, n_events=n, n_throws=sizes.bias_throws, run_ibu=False
        )
        events[str(n)] = final_chi2_per_ndof(result)
        if fraction == 1.0:
            epochs[str(sizes.chi2_epochs)] = events[str(n)]
    for n_epochs in (sizes.chi2_epochs // 2, sizes.chi2_epochs * 2):
        logger.info("bias vs epochs: %d epochs", n_epochs)
        seconds[f"epochs_{n_epochs}"], result = unfold(
            sizes, fake_data=BIAS_FAKE_DATA, epochs=n_epochs, n_throws=sizes.bias_throws, run_ibu=False
        )
        epochs[str(n_epochs)] = final_chi2_per_ndof(result)
    logger.info("closure: the MC unfolded onto its own reco")
    seconds["closure_mc"], closure = unfold(
        sizes, fake_data="nominal", closure=True, n_throws=sizes.bias_throws
    )
    return {
        "bias_vs_events": events,
        "bias_vs_epochs": dict(sorted(epochs.items(), key=lambda kv: int(kv[0]))),
        "bias_scan_settings": {
            "fake_data": BIAS_FAKE_DATA,
            "n_throws": sizes.bias_throws,
            "seconds": seconds,
        },
        "closure_mc": chi2_entries(closure.calibration),
    }


def bench_long_run(sizes: Any) -> dict[str, Any]:
    """Both methods on ``BIAS_FAKE_DATA`` for ``long_iterations`` iterations (``bias_throws`` throws): where
    the bias stops falling, and what the stopping rule says over the longer run."""
    logger.info("long run: %d iterations on %s", sizes.long_iterations, BIAS_FAKE_DATA)
    seconds, result = unfold(
        sizes, fake_data=BIAS_FAKE_DATA, iterations=sizes.long_iterations, n_throws=sizes.bias_throws
    )
    return {
        "long_run": {
            "fake_data": BIAS_FAKE_DATA,
            "iterations": sizes.long_iterations,
            "n_throws": sizes.bias_throws,
            "seconds": seconds,
            "bias_vs_iteration": per_iteration(result.iterations, "chi2_truth"),
            "bias_fixed_metric_vs_iteration": per_iteration(result.iterations, "chi2_truth_fixed"),
            "change_vs_iteration": per_iteration(result.iterations, "change_chi2"),
            "estimated_chi2_vs_iteration": per_iteration(result.iterations, "estimated_chi2"),
            "ndof": by_method(result.calibration, "ndof")["omnifold"],
            "stopping_rule": stopping_check(result),
        }
    }


def run(sizes: Any) -> dict[str, Any]:
    """Every calibration key of the unfolding benchmark at ``sizes``."""
    out, results = bench_table(sizes)
    out.update(calibration_keys(results))
    out["omnifold_beats_ibu_on_stvs"] = stv_winner(out["chi2_table_100"])
    out.update(bench_bias_scans(sizes))
    out.update(bench_long_run(sizes))
    return out
