"""The cross-section workflow: a DNN fit of inclusive electron-nucleus cross sections with uncertainties.

``run``: fit a bootstrap ensemble (and a Monte-Carlo-dropout network) to one nucleus's QES-archive data
with the normalisation-aware chi2, hold out 10% of the points or of the (E, theta) settings, and report
chi2 per point, coverage of both uncertainty estimates, the fitted normalisation factors and prediction
bands per setting (:class:`~numl_core.xsec.result.XsecResult`). ``transfer``: fit carbon (or reuse a
run's model) and carry it over to other nuclei with a fraction of their data
(:mod:`numl_core.xsec.transfer`, :class:`~numl_core.xsec.result.TransferResult`).

Live plots: the train and validation chi2 per point of each fit (``chi2``) and of transfer learning
(``transfer chi2``), their series named from the same prefixes that :func:`fit_nucleus` gives the
training loop (:func:`expected_series`).

Units: GeV, degrees for ``theta_deg``, cross sections d2sigma/dOmega domega per nucleus in nb/sr/GeV.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numl_core.config import ConfigError
from numl_core.data import electron_scattering as es
from numl_core.figures import plain_text
from numl_core.jobs import Progress
from numl_core.live import LivePlots, PlotSpec
from numl_core.overlays import ResultOverlay
from numl_core.workflows import Workflow
from numl_core.xsec.config import XsecConfig
from numl_core.xsec.fit import normalisation_table
from numl_core.xsec.metrics import band, method_summary, normalised_band, predict_log
from numl_core.xsec.model import INPUTS, XsecNet, features
from numl_core.xsec.points import PointSet, load_table, normalisation_groups, omega_grid, split_points
from numl_core.xsec.result import TransferResult, XsecResult
from numl_core.xsec.train import CHI2_TERM, TrainedModel, loss_series, train_model
from numl_core.xsec.transfer import is_transfer_metric, transfer_nucleus

MODEL_CHECKPOINT = "xsec-model"
BOOT, MC = "boot", "mc"
"""The uncertainty methods: bootstrap ensemble and MC-dropout network (names of fits, checkpoints and
result columns)."""
CHI2_PLOT, TRANSFER_PLOT = "chi2", "transfer chi2"
CHI2_LABEL = r"$\chi^2$ per point (data errors, fitted $\lambda_k$)"
"""Axis label of chi2 per data point (dimensionless), the live plots' and the transfer figure's."""
REPORT_LABEL = "report (passes over the training points between reports)"
"""x label of the live chi2 plots: the training loop's report count."""


def method_prefix(method: str) -> str:
    """The live-metric prefix of the fit of ``method`` (:data:`BOOT`, :data:`MC`)."""
    return f"{method}_"


def methods(config: XsecConfig | None) -> list[str]:
    """The methods a run of ``config`` fits (both for ``None``)."""
    return [BOOT] if config is not None and config.mc_dropout <= 0 else [BOOT, MC]


# -- live plots ------------------------------------------------------------------------------------------
def metric_group(record: dict[str, Any]) -> str | None:
    """The live plot of a metric record: chi2 per point of the fit or of transfer learning (else None)."""
    if record.get("term") != CHI2_TERM:
        return None
    return TRANSFER_PLOT if is_transfer_metric(str(record["name"])) else CHI2_PLOT


def expected_series(config: XsecConfig | None) -> dict[str, list[str]]:
    """The fit's chi2 series, drawn from the start (transfer series appear when they arrive).

    Training runs in two stages (log residuals, then linear ones), each with its own series
    (:func:`numl_core.xsec.train.loss_series`).
    """
    residual = (config if config is not None else XsecConfig()).ensemble_settings().residual
    return {
        CHI2_PLOT: [
            label for method in methods(config) for label in loss_series(method_prefix(method), residual)
        ]
    }


LIVE_PLOTS = LivePlots(
    group=metric_group,
    expected=expected_series,
    plots=(
        PlotSpec(
            CHI2_PLOT,
            "fit: χ² per point on the training and validation points, per model and stage",
            xlabel=REPORT_LABEL,
            ylabel=plain_text(CHI2_LABEL),
            logy=True,
            markers=True,
        ),
        PlotSpec(
            TRANSFER_PLOT,
            "transfer learning: χ² per point of the fine-tuned and from-scratch models per target",
            xlabel=REPORT_LABEL,
            ylabel=plain_text(CHI2_LABEL),
            logy=True,
            markers=True,
        ),
    ),
)


# -- run: fit one nucleus --------------------------------------------------------------------------------
def prepare(config: XsecConfig, progress: Progress) -> tuple[pd.DataFrame, PointSet, np.ndarray, list[str]]:
    """The table of ``config``'s nucleus, its points, a split label per point and the data sets' names."""
    table = load_table(config)
    group, prior, names = normalisation_groups(table, config.normalise_by)
    labels = split_points(table, config.split, config.test_fraction, config.val_fraction, config.seed)
    progress.log(
        f"{config.nucleus}: {len(table)} points, {table['setting'].nunique()} settings, "
        f"{len(prior)} normalisation group(s); split by {config.split}: "
        + ", ".join(f"{s} {int((labels == s).sum())}" for s in ("train", "val", "test"))
    )
    points = PointSet.from_table(table, group, prior, INPUTS[config.inputs])
    return table, points.validate(), labels, names


def train_methods(
    config: XsecConfig, points: PointSet, labels: np.ndarray, progress: Progress
) -> dict[str, TrainedModel]:
    """The bootstrap ensemble and (with ``mc_dropout`` > 0) the MC-dropout network, fitted to the
    training points and validated on the validation points."""
    train, val = np.flatnonzero(labels == "train"), np.flatnonzero(labels == "val")
    val = val if len(val) else None
    progress.update(0.0, "training the bootstrap ensemble")
    fits = {
        BOOT: train_model(
            points,
            train,
            val,
            config.ensemble_settings(),
            progress.subrange(0.0, 0.7),
            name=BOOT,
            metric_prefix=method_prefix(BOOT),
        )
    }
    if MC in methods(config):
        progress.update(0.7, "training the MC-dropout network")
        fits[MC] = train_model(
            points,
            train,
            val,
            config.ensemble_settings(members=1, bootstrap=False, dropout=config.mc_dropout),
            progress.subrange(0.7, 0.95),
            name=MC,
            metric_prefix=method_prefix(MC),
        )
    return fits


def predict_method(
    config: XsecConfig,
    method: str,
    fitted: TrainedModel,
    points: PointSet,
    frame: pd.DataFrame,
    grid: pd.DataFrame,
) -> np.ndarray:
    """Add ``method``'s predictions to ``frame`` (one row per point: ``{method}_mean``/``_std`` of sigma,
    ``{method}_pred``/``_pred_std`` of lambda_k sigma) and ``grid`` (``{method}_mean``/``_std``); returns
    its members' normalisation factors ``(M, K)``."""
    samples = config.mc_samples if method == MC else 0
    lambdas = fitted.model.lambdas.detach().numpy()
    log_samples = predict_log(fitted.model.net, points.x, samples, config.seed)
    frame[f"{method}_mean"], frame[f"{method}_std"] = band(log_samples)
    frame[f"{method}_pred"], frame[f"{method}_pred_std"] = normalised_band(log_samples, lambdas, points.group)
    net = fitted.model.net
    gmean, gspread = band(predict_log(net, features(grid, net.features), samples, config.seed))
    grid[f"{method}_mean"], grid[f"{method}_std"] = gmean, gspread
    return lambdas


def _log_summary(progress: Progress, method: str, s: dict[str, float]) -> None:
    progress.log(
        f"{method}: chi2/point train {s['chi2_train']:.2f}, "
        f"test {s['chi2_test']:.2f}; test coverage 1 sigma "
        f"{s['coverage_1sigma']:.2f}, 2 sigma {s['coverage_2sigma']:.2f} "
        f"(Student-t predictive, relative misfit {s['misfit_student_t']:.3f}, "
        f"nu {s['nu_student_t']:.1f}, spread x "
        f"{s['spread_scale_student_t']:.2f} from the validation points; Gaussian "
        f"{s['coverage_1sigma_gaussian']:.2f} / "
        f"{s['coverage_2sigma_gaussian']:.2f})"
    )


def _history_frame(fits: dict[str, TrainedModel]) -> pd.DataFrame:
    frames = []
    for method, fitted in fits.items():
        frame = pd.DataFrame(fitted.fit.history)
        frame.insert(0, "method", method)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def save_model(progress: Progress, net: XsecNet, mass_number: int) -> None:
    """Keep ``net`` in the run's checkpoint :data:`MODEL_CHECKPOINT` (for ``base_run``), if there is a run."""
    if progress.run_dir is not None:
        progress.run_dir.save_checkpoint(
            MODEL_CHECKPOINT, {"state": net.state_dict(), "hparams": net.hparams, "A": mass_number}
        )


def fit_nucleus(config: XsecConfig, progress: Progress) -> tuple[XsecResult, XsecNet]:
    """Fit one nucleus: bootstrap ensemble and MC-dropout network; the result (see the module) and the
    bootstrap ensemble's network (saved in the run's checkpoint :data:`MODEL_CHECKPOINT`)."""
    t0 = time.perf_counter()
    table, points, labels, names = prepare(config, progress)
    fits = train_methods(config, points, labels, progress)
    progress.update(0.95, "predicting")
    frame = table.assign(split=labels, group=points.group)
    grid = omega_grid(table, config.grid_points)
    lambdas: dict[str, np.ndarray] = {}
    summary: dict[str, dict[str, float]] = {}
    for method, fitted in fits.items():
        lambdas[method] = predict_method(config, method, fitted, points, frame, grid)
        summary[method] = method_summary(frame, labels, points, method, lambdas[method].mean(axis=0))
        summary[method].update(seconds=fitted.seconds, epochs_run=fitted.passes)
        _log_summary(progress, method, summary[method])
    frame["lambda"] = lambdas[BOOT].mean(axis=0)[points.group]
    grid = grid.merge(
        table.groupby("setting")[["setting_label", "citation", "omega_qe"]].first().reset_index(),
        on="setting",
    )
    used = np.bincount(points.group[labels == "train"], minlength=points.n_sets)
    norms = normalisation_table(names, points.prior, lambdas[BOOT], used)
    net, mass_number = fits[BOOT].model.net, int(table["A"].iloc[0])
    save_model(progress, net, mass_number)
    progress.artefact("normalisations", norms)
    result = XsecResult(
        points=frame.drop(columns=["theta"]),
        curves=grid.drop(columns=["theta"]),
        normalisations=norms,
        history=_history_frame(fits),
        summary=summary,
        nucleus=config.nucleus,
        split=config.split,
        n_points=len(table),
        mass_number=mass_number,
        seconds=time.perf_counter() - t0,
    )
    return result, net


def run_xsec(config: XsecConfig, progress: Progress) -> XsecResult:
    """The ``run`` action: :func:`fit_nucleus`, then transfer learning if ``with_transfer`` is set.

    The trained ensemble is kept in the run's checkpoint ``xsec-model`` (for ``base_run``).
    """
    targets = transfer_targets(config) if config.with_transfer else None  # bad targets fail before the fit
    sub = progress.subrange(0.0, 0.6) if config.with_transfer else progress
    result, base = fit_nucleus(config, sub)
    if config.with_transfer:
        pretrain = result.summary[BOOT]["seconds"]
        result.with_transfer(
            transfer_all(base, result.mass_number, pretrain, config, progress.subrange(0.6, 1.0), targets)
        )
    return result


# -- transfer: carry a base model to other nuclei --------------------------------------------------------
def load_base_model(run_dir: str | Path) -> tuple[XsecNet, int]:
    """The bootstrap ensemble saved by a ``run`` in ``run_dir`` and the mass number it was fitted to."""
    from numl_core.runs import RunDir

    state = RunDir(run_dir).load_checkpoint(MODEL_CHECKPOINT)
    if state is None:
        raise ConfigError(f"XsecConfig.base_run: {run_dir} holds no '{MODEL_CHECKPOINT}' checkpoint")
    net = XsecNet(**state["hparams"])
    net.load_state_dict(state["state"])
    return net.eval(), int(state["A"])


def run_transfer(config: XsecConfig, progress: Progress) -> TransferResult:
    """The ``transfer`` action: a base model (from ``base_run`` or fitted now), carried to each target.

    Every target is loaded and checked first (:func:`transfer_targets`), so a bad table fails at once,
    naming its file and line, not after the pretraining."""
    t0 = time.perf_counter()
    targets = transfer_targets(config)
    if config.base_run:
        base, a_base = load_base_model(config.base_run)
        progress.log(f"base model from {config.base_run} (A = {a_base})")
        out = transfer_all(base, a_base, float("nan"), config, progress, targets)
        out.base_nucleus = f"A={a_base}"
    else:
        progress.update(0.0, f"pretraining on {config.nucleus}")
        base_fit, base = fit_nucleus(config.copy(mc_dropout=0.0), progress.subrange(0.0, 0.5))
        pretrain_seconds = base_fit.summary[BOOT]["seconds"]
        out = transfer_all(
            base, base_fit.mass_number, pretrain_seconds, config, progress.subrange(0.5, 1.0), targets
        )
    out.seconds = time.perf_counter() - t0
    return out


def transfer_targets(config: XsecConfig) -> list[tuple[str, pd.DataFrame]]:
    """The target nuclei of ``config`` (and its ``target_file`` as ``file``), each with its table, loaded
    and checked (:class:`~numl_core.data.schema.DataError` naming file and line): the user's file first,
    with ``drop_invalid`` and the nuclear parameters given in ``config`` (any nucleus, see
    :func:`~numl_core.data.electron_scattering.nucleus_of`)."""
    if not config.targets and not config.target_file:
        raise ConfigError("XsecConfig.targets: choose at least one nucleus or a target_file")
    user = []
    if config.target_file:
        path = Path(config.target_file)
        table = es.load_file(
            path, config.omega_min, config.drop_lowest, config.drop_invalid, **config.file_nucleus()
        )
        user.append(("file", table))
    return [(t, load_table(config, t)) for t in config.targets] + user


def transfer_all(
    base: XsecNet,
    a_base: int,
    pretrain_seconds: float,
    config: XsecConfig,
    progress: Progress,
    targets: list[tuple[str, pd.DataFrame]] | None = None,
) -> TransferResult:
    """Carry ``base`` (fitted to mass number ``a_base``) to every target of ``config``; tables per nucleus.

    ``targets``: the tables of :func:`transfer_targets` if loaded already (else they are loaded now)."""
    targets = transfer_targets(config) if targets is None else targets
    settings = config.transfer_settings()
    rows, points = [], []
    for i, (name, table) in enumerate(targets):
        progress.check_cancelled()
        progress.update(i / len(targets), f"transfer to {name}")
        group, prior, _ = normalisation_groups(table, config.normalise_by)
        row, held = transfer_nucleus(
            base,
            a_base,
            table,
            group,
            prior,
            config.ensemble_settings(),
            settings,
            progress.subrange(i / len(targets), (i + 1) / len(targets)),
            tag=name,
        )
        row["pretrain_seconds"] = pretrain_seconds
        progress.log(
            f"{name}: chi2/point finetuned {row['finetuned']:.2f}, scratch {row['scratch']:.2f}, "
            f"scaled {row['scaled_base']:.2f}"
        )
        rows.append({"nucleus": name, **row})
        points.append(held.assign(nucleus=name))
    comparison = pd.DataFrame(rows)
    progress.artefact("transfer", comparison)
    return TransferResult(
        transfer=comparison,
        transfer_points=pd.concat(points, ignore_index=True),
        base_nucleus=config.nucleus,
        finetune="all layers" if settings.blocks is None else f"last {settings.blocks} blocks",
    )


WORKFLOW = Workflow(
    name="xsec",
    title="Cross sections",
    description="DNN fit of inclusive electron-nucleus cross sections with bootstrap and MC-dropout "
    "uncertainties, normalisation-aware chi2 and transfer learning to other nuclei.",
    config_cls=XsecConfig,
    run=run_xsec,
    actions={"transfer": run_transfer},
    live_plots=LIVE_PLOTS,
    results=(XsecResult, TransferResult),
    result_overlay=ResultOverlay(("curves",), "numl_core.xsec.figures:result_curves"),
)
