"""The energy workflow: train an EnergyTransformer on particle lists, compare it with baselines, export it.

One run: load events (built-in atmospheric sample, an event table, or a NuHepMC file), apply the
detection thresholds and the topology / energy-range selection, split 75/5/20-style into train,
validation and test, weight (flat spectrum by default), train with the shared trainer, and evaluate on
the test events side by side with the calorimetric estimator, a GBDT and the lepton / visible-momentum
directions; optionally the ablation "energy-only loss" with the same data and budget. The trained model
is exported as TorchScript with its normalisation. The ``predict`` action applies an exported model to
many files.

Live plots: the shared trainer reports ``{prefix}loss`` records per split and loss term (the main model
with :data:`MODEL_PREFIX`, the ablation with :data:`ABLATION_PREFIX`); :data:`LIVE_PLOTS` draws the total
loss in one plot and the individual terms in another, from the same names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.io import read_table
from numl_core.data.nuhepmc import read_nuhepmc
from numl_core.data.schema import DataError
from numl_core.energy import baselines, metrics
from numl_core.energy.config import EnergyConfig
from numl_core.energy.data import to_arrays
from numl_core.energy.export import export_torchscript, load_torchscript
from numl_core.energy.losses import PHYSICS_TARGETS, CombinedLoss, term_label
from numl_core.energy.model import EnergyTransformer
from numl_core.energy.result import EnergyResult, PredictResult
from numl_core.energy.train import Prepared, build_model, predict, prepare, split_indices, train_model
from numl_core.energy.weights import event_weights
from numl_core.jobs import Progress
from numl_core.live import LivePlots, PlotSpec, series
from numl_core.overlays import ResultOverlay
from numl_core.training import FitResult
from numl_core.workflows import Workflow

HEPMC_SUFFIXES = (".hepmc", ".hepmc3", ".gz", ".bz2", ".xz", ".zst")
FLAVOURS = {12: "nu_e", -12: "nu_e_bar", 14: "nu_mu", -14: "nu_mu_bar"}
#: Estimator name of the ablation model (trained on the energy term only).
ABLATION = "transformer (energy-only loss)"
#: Metric-name prefixes of the main model and of the ablation model.
MODEL_PREFIX = ""
ABLATION_PREFIX = "ablation_"
#: The live plots: total loss per split, and every loss term per split.
LOSS_PLOT, TERMS_PLOT = "loss", "loss terms"
SPLITS = ("train", "val")


def loss_metric(prefix: str) -> str:
    """The name of the loss records that :func:`numl_core.training.fit` reports with ``metric_prefix``."""
    return f"{prefix}loss"


def metric_group(record: dict[str, Any]) -> str | None:
    """The live plot of a metric record: the total loss, or the individual loss terms (of either model).

    >>> metric_group({"name": "loss", "split": "val", "term": "total"}), metric_group({"name": "lr"})
    ('loss', None)
    """
    if record["name"] not in (loss_metric(MODEL_PREFIX), loss_metric(ABLATION_PREFIX)):
        return None
    return LOSS_PLOT if record.get("term", "total") == "total" else TERMS_PLOT


def expected_series(config: EnergyConfig) -> dict[str, list[str]]:
    """The main model's series drawn when a job starts: the total loss per split, and each configured
    term per split."""
    name = loss_metric(MODEL_PREFIX)
    terms = [term_label(t) for t in config.loss_terms]
    return {
        LOSS_PLOT: [series(name, split=split, term="total") for split in SPLITS],
        TERMS_PLOT: [series(name, split=split, term=term) for term in terms for split in SPLITS],
    }


LIVE_PLOTS = LivePlots(
    group=metric_group,
    expected=expected_series,
    plots=(
        PlotSpec(LOSS_PLOT, "training loss (sum of coefficient x term)", "epoch", "loss"),
        # physics terms are base losses of dimensionless residuals; target terms carry their column's unit
        PlotSpec(
            TERMS_PLOT, "loss terms (before their coefficients)", "epoch", "term (physics: dimensionless)"
        ),
    ),
)


def read_events(path: str | Path, config: EnergyConfig) -> pd.DataFrame:
    """An event file: NuHepMC by suffix, else a table (CSV, parquet, ROOT); thresholds applied to the
    standard particle lists when the table has them."""
    path = Path(path)
    if path.suffix.lower() in HEPMC_SUFFIXES:
        return read_nuhepmc(path, thresholds_mev=config.thresholds_mev)
    mapping = dict(config.column_map)
    lists = {*config.vector, *atm.VECTOR_COLUMNS}
    lists |= {k for k, v in mapping.items() if v in lists}
    events = read_table(path, list_columns=sorted(lists)).rename(columns=mapping)
    if all(c in events.columns for c in atm.VECTOR_COLUMNS):
        events = atm.apply_thresholds(events, config.thresholds_mev)
    return events


def load_events(config: EnergyConfig) -> tuple[pd.DataFrame, str]:
    """The selected events and their source name."""
    if config.sample == "builtin":
        events = atm.generate(config.n_events, config.seed, thresholds_mev=config.thresholds_mev)
        source = f"atmospheric_events(n={config.n_events}, seed={config.seed})"
    else:
        events, source = read_events(config.data_file, config), config.data_file
    if "topology" in events.columns:
        events = events[events["topology"].isin(config.topologies)]
    if "enu_truth" in events.columns:
        lo, hi = atm.ENERGY_RANGES[config.energy_range]
        events = events[(events["enu_truth"] >= lo) & (events["enu_truth"] <= hi)]
    if len(events) < 50:
        raise DataError(f"{source}: only {len(events)} events after the topology and energy-range selection")
    return events.reset_index(drop=True), source


def _labels(events: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
    groups = {}
    if "is_cc" in events.columns:
        groups["channel"] = np.where(events["is_cc"].to_numpy(bool)[rows], "CC", "NC")
    if "nu_pdg" in events.columns:
        groups["flavour"] = np.array(
            [FLAVOURS.get(int(c), str(c)) for c in events["nu_pdg"].to_numpy()[rows]]
        )
    if "topology" in events.columns:
        groups["topology"] = events["topology"].to_numpy()[rows].astype(str)
    return groups


def _baseline_estimates(
    prepared: Prepared, split: dict[str, np.ndarray], weight: np.ndarray, seed: int, progress: Progress
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    a, roles, te, tr = prepared.arrays, prepared.roles, split["test"], split["train"]
    calorimetric = baselines.calorimetric_energy(a.vector, a.mask, roles)
    energies = {"calorimetric": calorimetric[te]}
    progress.update(None, "fitting the GBDT baseline")
    features = baselines.summed_features(a.vector, a.mask, roles, a.scalar)
    fit_rows = tr[: min(len(tr), 300_000)]
    gbdt = baselines.fit_gbdt(
        features[fit_rows], a.target[fit_rows, 0], calorimetric[fit_rows], weight[fit_rows], seed
    )
    energies["gbdt"] = baselines.predict_gbdt(gbdt, features[te], calorimetric[te])
    directions = {
        "visible momentum": baselines.visible_momentum(a.vector[te], a.mask[te], roles),
        "lepton or visible": baselines.lepton_or_visible_direction(a.vector[te], a.mask[te], roles),
    }
    return energies, directions


def _range_table(
    e_true: np.ndarray,
    energies: dict[str, np.ndarray],
    directions: dict[str, np.ndarray],
    u_true: np.ndarray | None,
    topology: np.ndarray | None,
) -> pd.DataFrame:
    frames = []
    for name, (lo, hi) in atm.ENERGY_RANGES.items():
        sel = (e_true >= lo) & (e_true <= hi)
        if sel.sum() < 2:
            continue
        groups = {"topology": topology[sel]} if topology is not None else {}
        t = metrics.resolution_table(
            e_true[sel],
            {k: v[sel] for k, v in energies.items()},
            groups,
            {k: v[sel] for k, v in directions.items()},
            u_true[sel] if u_true is not None else None,
        )
        t.insert(0, "energy_range", name)
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _cc_value(table: pd.DataFrame, estimator: str, column: str) -> float:
    rows = table[
        (table["estimator"] == estimator) & (table["grouping"] == "channel") & (table["group"] == "CC")
    ]
    if rows.empty or column not in rows:
        rows = table[(table["estimator"] == estimator) & (table["grouping"] == "all")]
    return float(rows[column].iloc[0]) if not rows.empty and column in rows else float("nan")


@dataclass
class RunData:
    """The events of a run as the model sees them: the selected ``events`` and their ``source``, the
    ``prepared`` arrays, the train / validation / test ``split`` and the per-event training ``weight``."""

    events: pd.DataFrame
    source: str
    prepared: Prepared
    split: dict[str, np.ndarray]
    weight: np.ndarray


@dataclass
class Estimates:
    """Test-set estimates by estimator name: ``energies`` [GeV] and unit ``directions``, with the truth
    (``e_true``, ``u_true`` None without the physics targets), the transformer's raw ``pred`` (N, T) and
    its ``inference_events_per_s``."""

    e_true: np.ndarray
    u_true: np.ndarray | None
    pred: np.ndarray
    energies: dict[str, np.ndarray]
    directions: dict[str, np.ndarray]
    inference_events_per_s: float

    @property
    def physics(self) -> bool:
        """Whether the targets start with the neutrino energy and momentum (see ``PHYSICS_TARGETS``)."""
        return self.u_true is not None


def load_data(config: EnergyConfig, progress: Progress) -> RunData:
    """Events, arrays, split and weights; logs truncations and the split sizes."""
    progress.update(0.0, "loading events")
    for note in config.import_notes:
        progress.log(f"config: {note}")
    events, source = load_events(config)
    prepared = prepare(events, config, source)
    if prepared.arrays.n_truncated:
        progress.log(
            f"{prepared.arrays.n_truncated} events had more than {config.max_num_prongs} particles; "
            "kept the most energetic"
        )
    split = split_indices(len(events), config.test_size, config.valid_size, config.seed)
    weight = event_weights(
        events, config.weight, config.target[0], config.weight_kwargs, config.weight_column, split["train"]
    )
    progress.log(
        f"{source}: {len(split['train'])} train, {len(split['val'])} validation, {len(split['test'])} test"
    )
    return RunData(events, source, prepared, split, weight)


def train_transformer(
    config: EnergyConfig, data: RunData, progress: Progress, *, name: str, prefix: str
) -> tuple[EnergyTransformer, FitResult]:
    """Build and fit a model with ``config``'s loss terms; metrics are reported as ``{prefix}loss``."""
    model = build_model(config, data.prepared, data.split["train"], config.seed)
    loss = CombinedLoss(config.terms(), config.target)
    fit = train_model(
        model, loss, data.prepared, data.split, data.weight, config, progress, name=name, metric_prefix=prefix
    )
    return model, fit


def _predict_test(model: torch.nn.Module, data: RunData) -> np.ndarray:
    a, te = data.prepared.arrays, data.split["test"]
    device = next(model.parameters()).device
    return predict(model, a.vector[te], a.scalar[te], a.mask[te], device=device)


def evaluate(config: EnergyConfig, data: RunData, model: EnergyTransformer, progress: Progress) -> Estimates:
    """The transformer's test-set energies and directions, then the baselines' where they apply."""
    progress.update(0.76, "predicting the test events")
    a, te = data.prepared.arrays, data.split["test"]
    t_inf = time.perf_counter()
    pred = _predict_test(model, data)
    inference_rate = len(te) / max(time.perf_counter() - t_inf, 1e-9)
    physics = list(config.target[:4]) == list(PHYSICS_TARGETS)
    est = Estimates(
        e_true=a.target[te, 0].astype(float),
        u_true=a.target[te, 1:4].astype(float) if physics else None,
        pred=pred,
        energies={"transformer": pred[:, 0].astype(float)},
        directions={"transformer": pred[:, 1:4].astype(float)} if physics else {},
        inference_events_per_s=inference_rate,
    )
    if config.baselines and data.prepared.roles is not None and physics:
        more_e, more_d = _baseline_estimates(data.prepared, data.split, data.weight, config.seed, progress)
        est.energies.update(more_e)
        est.directions.update(more_d)
    return est


def add_ablation(config: EnergyConfig, data: RunData, est: Estimates, progress: Progress) -> None:
    """Train the same model on the energy (or target) terms only and add its estimates as
    ``transformer (energy-only loss)``."""
    progress.update(0.8, "ablation: energy-only loss")
    only = [t for t in config.loss_terms if t["term"] in ("energy", "target")]
    ablation_cfg = config.copy(loss_terms=only or [{"term": "energy", "loss": "huber", "coefficient": 1.0}])
    model, _ = train_transformer(
        ablation_cfg, data, progress.subrange(0.8, 0.95), name="energy-only", prefix=ABLATION_PREFIX
    )
    pred = _predict_test(model, data)
    est.energies[ABLATION] = pred[:, 0].astype(float)
    est.directions[ABLATION] = pred[:, 1:4].astype(float)


def predictions_table(
    config: EnergyConfig, data: RunData, est: Estimates, groups: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Per test event: id, targets and predictions, the other energy estimators and the event labels."""
    a, te = data.prepared.arrays, data.split["test"]
    predictions = pd.DataFrame({"event_id": a.event_id[te]})
    for j, name in enumerate(config.target):
        predictions[name] = a.target[te, j]
        predictions[f"pred_{name}"] = est.pred[:, j]
    for name, values in est.energies.items():
        if name != "transformer":
            predictions[f"energy_{name.replace(' ', '_')}"] = values
    for name, labels in groups.items():
        predictions[name] = labels
    return predictions


def headline(table: pd.DataFrame, est: Estimates) -> dict[str, float]:
    """The CC res68 of each energy estimator and the 68% angles of the transformer and the baselines
    (nothing without the physics targets)."""
    if not est.physics:
        return {}
    out = {
        "energy_res68_transformer_cc": _cc_value(table, "transformer", "res68"),
        "angle_res68_deg_transformer": _cc_value(table, "transformer", "angle68"),
    }
    for name in ("calorimetric", "gbdt"):
        if name in est.energies:
            out[f"energy_res68_{name}_cc"] = _cc_value(table, name, "res68")
    if "visible momentum" in est.directions:
        out["angle_res68_deg_baseline"] = min(
            _cc_value(table, "visible momentum", "angle68"),
            _cc_value(table, "lepton or visible", "angle68"),
        )
    if ABLATION in est.energies:
        out["energy_res68_energy_only_loss_cc"] = _cc_value(table, ABLATION, "res68")
    return out


def export_model(config: EnergyConfig, model: EnergyTransformer, progress: Progress) -> str:
    """Save the TorchScript model with its columns into the run directory; its path ("" when not)."""
    if not config.export or progress.run_dir is None:
        return ""
    meta = {
        "vector": list(config.vector),
        "scalar": list(config.scalar),
        "target": list(config.target),
        "max_num_prongs": config.max_num_prongs,
    }
    model_file = str(export_torchscript(model, progress.run_dir.path / "model.pt", meta))
    progress.log(f"exported TorchScript model to {model_file}")
    return model_file


def run_energy(config: EnergyConfig, progress: Progress) -> EnergyResult:
    """Train and evaluate; see the module docstring."""
    t0 = time.perf_counter()
    data = load_data(config, progress)
    model, fit = train_transformer(
        config, data, progress.subrange(0.02, 0.75), name="energy", prefix=MODEL_PREFIX
    )
    progress.log(
        f"trained {fit.epochs_run} epochs, best {fit.best_epoch}, {fit.train_events_per_s:.0f} events/s"
    )
    est = evaluate(config, data, model, progress)
    if config.ablation and est.physics:
        add_ablation(config, data, est, progress)
    progress.update(0.96, "resolutions")
    groups = _labels(data.events, data.split["test"])
    table = metrics.resolution_table(est.e_true, est.energies, groups, est.directions, est.u_true)
    ranges = (
        _range_table(est.e_true, est.energies, est.directions, est.u_true, groups.get("topology"))
        if est.physics
        else pd.DataFrame()
    )
    heat = metrics.histogram2d(est.e_true, est.energies["transformer"])
    model_file = export_model(config, model, progress)
    progress.update(1.0, "done")
    return EnergyResult(
        predictions=predictions_table(config, data, est, groups),
        resolution=table,
        resolution_by_range=ranges,
        resolution_by_energy=metrics.binned_energy_resolution(est.e_true, est.energies),
        history=pd.DataFrame(fit.history),
        heatmap_counts=heat["counts"],
        heatmap_edges=heat["edges"],
        source=data.source,
        n_train=len(data.split["train"]),
        n_val=len(data.split["val"]),
        n_test=len(data.split["test"]),
        n_truncated=data.prepared.arrays.n_truncated,
        epochs_run=fit.epochs_run,
        best_epoch=fit.best_epoch,
        best_val_loss=fit.best_val_loss,
        stopped_early=fit.stopped_early,
        train_events_per_s=fit.train_events_per_s,
        inference_events_per_s=est.inference_events_per_s,
        import_notes=list(config.import_notes),
        thresholds_mev=config.thresholds_mev,
        model_file=model_file,
        seconds=time.perf_counter() - t0,
        **headline(table, est),
    )


def predict_files(config: EnergyConfig, progress: Progress) -> PredictResult:
    """Apply the exported ``model_file`` to each of ``predict_files``; one predictions table for all."""
    if not config.model_file:
        raise DataError("predict: set model_file to an exported model (model.pt of an energy run)")
    if not config.predict_files:
        raise DataError("predict: list the event files to read in predict_files")
    module, meta = load_torchscript(config.model_file)
    frames = []
    for i, path in enumerate(config.predict_files):
        progress.check_cancelled()
        progress.update(i / len(config.predict_files), f"predicting {path}")
        events = read_events(path, config)
        a = to_arrays(events, meta["vector"], meta["scalar"], [], meta["max_num_prongs"], source=str(path))
        pred = predict(module, a.vector, a.scalar, a.mask)
        frame = pd.DataFrame({"file": str(path), "event_id": a.event_id})
        for j, name in enumerate(meta["target"]):
            frame[f"pred_{name}"] = pred[:, j]
            if name in events.columns:
                frame[name] = events[name].to_numpy()
        if "weight_physical" in events.columns:
            frame["weight_physical"] = events["weight_physical"].to_numpy()
        frames.append(frame)
    progress.update(1.0, "done")
    return PredictResult(predictions=pd.concat(frames, ignore_index=True), n_files=len(frames))


WORKFLOW = Workflow(
    name="energy",
    title="Energy & direction",
    description="Transformer regression of neutrino energy and direction from particle lists, vs baselines.",
    config_cls=EnergyConfig,
    run=run_energy,
    actions={"predict": predict_files},
    live_plots=LIVE_PLOTS,
    results=(EnergyResult, PredictResult),
    result_overlay=ResultOverlay(("resolution_by_energy",), "numl_core.energy.figures:result_curves"),
)
