"""The cross-section workflow: a DNN fit of inclusive electron-nucleus cross sections with uncertainties.

``run``: fit a bootstrap ensemble (and a Monte-Carlo-dropout network) to one nucleus's QES-archive data
with the normalisation-aware chi2, hold out 10% of the points or of the (E, theta) settings, and report
chi2 per point, coverage of both uncertainty estimates, the fitted normalisation factors and prediction
bands per setting. ``transfer``: fit carbon (or reuse a run's model) and carry it over to other nuclei
with a fraction of their data (:mod:`numl_core.xsec.transfer`).

Units: GeV, degrees for ``theta_deg``, cross sections d2sigma/dOmega domega per nucleus in nb/sr/GeV.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import param

from numl_core.config import Config, ConfigError
from numl_core.data import electron_scattering as es
from numl_core.jobs import Progress
from numl_core.workflows import Workflow
from numl_core.xsec.ensemble import (
    EnsembleSettings,
    TrainedModel,
    band,
    coverage,
    fit_misfit,
    fit_student_t,
    normalised_band,
    predict_log,
    train_model,
)
from numl_core.xsec.fit import chi2_per_point, normalisation_table
from numl_core.xsec.model import XsecNet, features
from numl_core.xsec.transfer import TransferSettings, transfer_nucleus

NUCLEUS_CHOICES = [*es.NUCLEI, "file"]
TRANSFER_TARGETS = list(es.NUCLEI)
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"members": 10, "depth": 4, "width": 64, "batch_norm": False, "epochs": 3000, "batch_size": 128},
    "reference": {
        "members": 50,
        "depth": 10,
        "width": 300,
        "batch_norm": True,
        "epochs": 40_000,
        "batch_size": 256,
    },
}
"""Model sizes: ``cpu`` (the default, minutes on two cores) and ``reference`` (the published study's
10 x 300 network with batch norm and 40,000 epochs: GPU scale)."""
MODEL_CHECKPOINT = "xsec-model"


class XsecConfig(Config):
    """Inputs of a cross-section fit (``run``) and of transfer learning (``transfer``)."""

    nucleus = param.Selector(default="C", objects=NUCLEUS_CHOICES, doc="Target nucleus, or a user's file.")
    data_file = param.String(
        default="", doc="Table in the QES-archive layout (.dat) or CSV/parquet; used when nucleus is 'file'."
    )
    drop_invalid = param.Boolean(
        default=False, doc="Drop (and count) rows of a user's file with non-positive cross section or error."
    )
    experiments = param.List(default=[], item_type=str, doc="Citation keys to use; empty: all.")
    exclude_settings = param.List(
        default=[], item_type=str, doc="Setting labels ('citation, E=... GeV, theta=... deg') to leave out."
    )
    omega_min = param.Number(default=0.0, bounds=(0.0, 5.0), doc="Lowest energy transfer kept [GeV].")
    drop_lowest = param.Integer(default=1, bounds=(0, 10), doc="Lowest-omega points dropped per setting.")
    normalise_by = param.Selector(
        default="experiment",
        objects=["experiment", "setting", "none"],
        doc="One normalisation factor per experiment, per (E, theta) setting, or none.",
    )
    split = param.Selector(
        default="points", objects=["points", "settings"], doc="Hold out random points or whole settings."
    )
    test_fraction = param.Number(default=0.1, bounds=(0.01, 0.5), doc="Share held out for testing.")
    val_fraction = param.Number(
        default=0.1, bounds=(0.0, 0.5), doc="Share of the rest used for validation (best-epoch choice)."
    )
    members = param.Integer(default=10, bounds=(1, 200), doc="Bootstrap replicas in the ensemble.")
    bootstrap = param.Boolean(default=True, doc="Resample each member's points (else: initialisation only).")
    depth = param.Integer(default=4, bounds=(1, 20), doc="Blocks (linear, norm, SiLU, dropout).")
    width = param.Integer(default=64, bounds=(4, 1024), doc="Units per block.")
    batch_norm = param.Boolean(default=False, doc="Batch normalisation in every block.")
    epochs = param.Integer(default=3000, bounds=(1, 100_000), doc="Passes over the training points.")
    batch_size = param.Integer(default=128, bounds=(8, 65_536), doc="Points per step.")
    learning_rate = param.Number(default=3e-3, bounds=(1e-6, 1.0), doc="AdamW learning rate (cosine decay).")
    mc_dropout = param.Number(
        default=0.01, bounds=(0.0, 0.5), doc="Dropout of the MC-dropout network; 0 skips it."
    )
    mc_samples = param.Integer(default=100, bounds=(2, 10_000), doc="Dropout samples per prediction.")
    grid_points = param.Integer(default=80, bounds=(10, 1000), doc="Omega points per setting in the bands.")
    with_transfer = param.Boolean(
        default=False, doc="After the fit, also carry the model over to the target nuclei (as 'transfer')."
    )
    targets = param.ListSelector(
        default=["O", "Al", "Ca", "Fe"], objects=TRANSFER_TARGETS, doc="Nuclei to transfer to."
    )
    target_file = param.String(default="", doc="A user's table to transfer to as well (optional).")
    transfer_fraction = param.Number(default=0.1, bounds=(0.01, 0.9), doc="Share of a target's points used.")
    finetune_blocks = param.Integer(
        default=0, bounds=(0, 20), doc="Fine-tune only the last k blocks and the head; 0: all layers."
    )
    finetune_epochs = param.Integer(
        default=1500,
        bounds=(1, 100_000),
        doc="Passes of fine-tuning (1500: on carbon -> O, Al, Ca, Fe with 2 seeds the summed held-out chi2 "
        "per point fell by a third against 300 passes, Ca by 30-50%; about 2-9 s on one CPU thread).",
    )
    finetune_lr = param.Number(default=1e-3, bounds=(1e-7, 1.0), doc="Learning rate of fine-tuning.")
    base_run = param.String(default="", doc="Run directory of an earlier 'run' whose model is transferred.")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="Seed of splits, resampling and training.")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda", "mps"], doc="Torch device.")

    def validate(self) -> None:
        if self.nucleus == "file" and not self.data_file:
            raise ConfigError("XsecConfig.data_file: required when nucleus is 'file'")
        if self.finetune_blocks > self.depth:
            raise ConfigError(
                f"XsecConfig.finetune_blocks = {self.finetune_blocks} exceeds depth = {self.depth}"
            )

    @classmethod
    def preset(cls, name: str, **changes: Any) -> XsecConfig:
        """A config with the sizes of :data:`PRESETS` ``name``, then ``changes``."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **changes})

    def ensemble_settings(self, **changes: Any) -> EnsembleSettings:
        s = EnsembleSettings(
            members=self.members,
            depth=self.depth,
            width=self.width,
            batch_norm=self.batch_norm,
            bootstrap=self.bootstrap,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.learning_rate,
            device=self.device,
            seed=self.seed,
        )
        return EnsembleSettings(**{**asdict(s), **changes})


def load_table(config: XsecConfig, nucleus: str | None = None) -> pd.DataFrame:
    """The selected nucleus (or file), low-omega cut applied, restricted to the chosen data sets."""
    nucleus = nucleus or config.nucleus
    if nucleus == "file":
        table = es.load_file(
            Path(config.data_file), config.omega_min, config.drop_lowest, config.drop_invalid
        )
    else:
        table = es.load_nucleus(nucleus, config.omega_min, config.drop_lowest)
    if nucleus == config.nucleus:
        if config.experiments:
            unknown = sorted(set(config.experiments) - set(table["citation"]))
            if unknown:
                raise ConfigError(f"XsecConfig.experiments: {unknown} not in the {nucleus} data")
            table = table[table["citation"].isin(config.experiments)]
        if config.exclude_settings:
            table = table[~table["setting_label"].isin(config.exclude_settings)]
        if table.empty:
            raise ConfigError("XsecConfig: the chosen experiments and settings leave no points")
    return table.reset_index(drop=True)


def normalisation_groups(table: pd.DataFrame, by: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Data-set index per point (N,), prior widths (K,) and names for ``by`` in experiment|setting|none."""
    if by == "none":
        return np.zeros(len(table), int), np.array([np.inf]), ["all"]
    column, names = ("experiment", "citation") if by == "experiment" else ("setting", "setting_label")
    codes, uniques = pd.factorize(table[column])
    first = table.groupby(codes)[[names, "norm_uncertainty"]].first()
    return codes, first["norm_uncertainty"].to_numpy(float), list(first[names])


def split_points(
    table: pd.DataFrame, mode: str, test_fraction: float, val_fraction: float, seed: int
) -> np.ndarray:
    """A label per point: ``train``, ``val`` or ``test``; ``settings`` holds out whole settings for test."""
    rng = np.random.default_rng([seed, 5])
    labels = np.full(len(table), "train", dtype=object)
    if mode == "settings":
        ids = np.unique(table["setting"])
        n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - 1)
        labels[table["setting"].isin(rng.choice(ids, n_test, replace=False)).to_numpy()] = "test"
    else:
        n_test = max(1, round(test_fraction * len(table)))
        labels[rng.choice(len(table), n_test, replace=False)] = "test"
    rest = np.flatnonzero(labels == "train")
    n_val = round(val_fraction * len(rest))
    labels[rng.choice(rest, n_val, replace=False)] = "val"
    return labels


def omega_grid(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` omega values [GeV] per setting spanning its data, with that setting's kinematics."""
    rows = []
    for sid, part in table.groupby("setting", sort=True):
        first = part.iloc[0]
        omega = np.linspace(part["omega"].min(), part["omega"].max(), n)
        theta = np.radians(first["theta_deg"])
        rows.append(
            pd.DataFrame(
                {
                    "setting": sid,
                    "energy": first["energy"],
                    "theta_deg": first["theta_deg"],
                    "theta": theta,
                    "cos_theta": np.cos(theta),
                    "omega": omega,
                    "q2": es.q_squared(first["energy"], omega, theta),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _history_frame(fitted: TrainedModel, method: str) -> pd.DataFrame:
    frame = pd.DataFrame(fitted.fit.history)
    frame.insert(0, "method", method)
    return frame


def _summary(
    table: pd.DataFrame,
    labels: np.ndarray,
    group: np.ndarray,
    prior: np.ndarray,
    method: str,
    lam: np.ndarray,
) -> dict[str, float]:
    """chi2 per point per split (fitted lambda, and profiled on the test points) and test coverage.

    Coverage uses the predictive distribution of a measured point, a Student-t located at the mean of
    lambda_k sigma over members (``{method}_pred``) with scale^2 = (kappa x spread of lambda_k sigma)^2
    (``{method}_pred_std``) + the point's error^2 + (tau prediction)^2 + (prior width of a data set
    without training points x prediction)^2; the relative misfit tau (``misfit_student_t``), the
    degrees of freedom nu (``nu_student_t``, in [2, 100]) and the spread scale kappa
    (``spread_scale_student_t``) are fitted jointly by maximum likelihood on
    the validation points. ``coverage_1sigma`` / ``coverage_2sigma`` are the fractions of test points
    inside its central intervals of probability 0.6827 / 0.9545 (:func:`coverage`).
    ``coverage_*_gaussian`` use a Gaussian with the same terms and tau fitted by Gaussian likelihood
    on the validation points (``misfit``; 0 without validation points); ``coverage_*_no_misfit`` a
    Gaussian without the misfit term.
    """
    out: dict[str, float] = {}
    mean = table[f"{method}_mean"].to_numpy()
    spread = table[f"{method}_std"].to_numpy()
    pred, pred_std = table[f"{method}_pred"].to_numpy(), table[f"{method}_pred_std"].to_numpy()
    xsec, err = table["xsec"].to_numpy(), table["error"].to_numpy()
    for split in ("train", "val", "test"):
        m = labels == split
        if m.any():
            out[f"chi2_{split}"] = chi2_per_point(mean[m], xsec[m], err[m], group[m], prior, lam)[0]
    test, val = labels == "test", labels == "val"
    out["chi2_test_profiled"] = chi2_per_point(mean[test], xsec[test], err[test], group[test], prior)[0]
    fitted = np.bincount(group[labels == "train"], minlength=len(prior)) > 0
    norm = np.where(fitted[group], 0.0, np.where(np.isfinite(prior), prior, 0.0)[group])
    misfit = fit_misfit(pred[val], pred_std[val], xsec[val], err[val]) if val.any() else 0.0
    if val.sum() >= 2:
        misfit_t, nu, kappa = fit_student_t(pred[val], pred_std[val], xsec[val], err[val], norm[val])
    else:  # nothing to fit the tails on: the Gaussian limit
        misfit_t, nu, kappa = misfit, float("inf"), 1.0
    ones = np.ones(int(test.sum()))
    args = (pred[test], pred_std[test], ones, xsec[test], err[test])
    cov = coverage(
        pred[test], kappa * pred_std[test], ones, xsec[test], err[test], misfit_t, norm[test], nu=nu
    )
    out.update({f"coverage_{k}": v for k, v in cov.items()})
    for tag, tau in (("_gaussian", misfit), ("_no_misfit", 0.0)):
        cov = coverage(*args, tau, norm[test])
        out.update({f"coverage_{k}{tag}": v for k, v in cov.items()})
    out["misfit"] = misfit
    out["misfit_student_t"] = misfit_t
    out["nu_student_t"] = nu
    out["spread_scale_student_t"] = kappa
    out["median_rel_band"] = float(np.median(spread / mean))
    return out


def fit_nucleus(config: XsecConfig, progress: Progress) -> dict[str, Any]:
    """Fit one nucleus: bootstrap ensemble and MC-dropout network; tables and summaries (see module)."""
    t0 = time.perf_counter()
    table = load_table(config)
    group, prior, names = normalisation_groups(table, config.normalise_by)
    labels = split_points(table, config.split, config.test_fraction, config.val_fraction, config.seed)
    progress.log(
        f"{config.nucleus}: {len(table)} points, {table['setting'].nunique()} settings, "
        f"{len(prior)} normalisation group(s); split by {config.split}: "
        + ", ".join(f"{s} {int((labels == s).sum())}" for s in ("train", "val", "test"))
    )
    x = features(table)
    xsec, err = table["xsec"].to_numpy(), table["error"].to_numpy()
    train, val = np.flatnonzero(labels == "train"), np.flatnonzero(labels == "val")
    val = val if len(val) else None
    fits = {}
    progress.update(0.0, "training the bootstrap ensemble")
    fits["boot"] = train_model(
        x,
        xsec,
        err,
        group,
        prior,
        train,
        val,
        config.ensemble_settings(),
        progress.subrange(0.0, 0.7),
        name="boot",
        metric_prefix="boot_",
    )
    if config.mc_dropout > 0:
        progress.update(0.7, "training the MC-dropout network")
        fits["mc"] = train_model(
            x,
            xsec,
            err,
            group,
            prior,
            train,
            val,
            config.ensemble_settings(members=1, bootstrap=False, dropout=config.mc_dropout),
            progress.subrange(0.7, 0.95),
            name="mc",
            metric_prefix="mc_",
        )
    progress.update(0.95, "predicting")
    grid = omega_grid(table, config.grid_points)
    points = table.assign(split=labels, group=group)
    lambdas = {}
    summary: dict[str, Any] = {}
    for method, fitted in fits.items():
        samples = config.mc_samples if method == "mc" else 0
        lam_members = fitted.model.lambdas.detach().numpy()
        lambdas[method] = lam_members
        log_samples = predict_log(fitted.model.net, x, samples, config.seed)
        points[f"{method}_mean"], points[f"{method}_std"] = band(log_samples)
        points[f"{method}_pred"], points[f"{method}_pred_std"] = normalised_band(
            log_samples, lam_members, group
        )
        gmean, gspread = band(predict_log(fitted.model.net, features(grid), samples, config.seed))
        grid[f"{method}_mean"], grid[f"{method}_std"] = gmean, gspread
        summary[method] = _summary(points, labels, group, prior, method, lam_members.mean(axis=0))
        summary[method]["seconds"] = fitted.seconds
        summary[method]["epochs_run"] = fitted.passes
        progress.log(
            f"{method}: chi2/point train {summary[method]['chi2_train']:.2f}, "
            f"test {summary[method]['chi2_test']:.2f}; test coverage 1 sigma "
            f"{summary[method]['coverage_1sigma']:.2f}, 2 sigma {summary[method]['coverage_2sigma']:.2f} "
            f"(Student-t predictive, relative misfit {summary[method]['misfit_student_t']:.3f}, "
            f"nu {summary[method]['nu_student_t']:.1f}, spread x "
            f"{summary[method]['spread_scale_student_t']:.2f} from the validation points; Gaussian "
            f"{summary[method]['coverage_1sigma_gaussian']:.2f} / "
            f"{summary[method]['coverage_2sigma_gaussian']:.2f})"
        )
    points["lambda"] = lambdas["boot"].mean(axis=0)[group]
    grid = grid.merge(
        table.groupby("setting")[["setting_label", "citation", "omega_qe"]].first().reset_index(),
        on="setting",
    )
    norms = normalisation_table(
        names, prior, lambdas["boot"], np.bincount(group[train], minlength=len(prior))
    )
    if progress.run_dir is not None:
        net = fits["boot"].model.net
        progress.run_dir.save_checkpoint(
            MODEL_CHECKPOINT,
            {"state": net.state_dict(), "hparams": net.hparams, "A": int(table["A"].iloc[0])},
        )
    progress.artefact("normalisations", norms)
    return {
        "points": points.drop(columns=["theta"]),
        "curves": grid.drop(columns=["theta"]),
        "normalisations": norms,
        "history": pd.concat([_history_frame(f, m) for m, f in fits.items()], ignore_index=True),
        "summary": summary,
        "nucleus": config.nucleus,
        "split": config.split,
        "n_points": len(table),
        "mass_number": int(table["A"].iloc[0]),
        "seconds": time.perf_counter() - t0,
        "_model": fits["boot"].model.net,
    }


def run_xsec(config: XsecConfig, progress: Progress) -> dict[str, Any]:
    """The ``run`` action: :func:`fit_nucleus`, then transfer learning if ``with_transfer`` is set.

    The trained ensemble is kept in the run's checkpoint ``xsec-model`` (for ``base_run``).
    """
    sub = progress.subrange(0.0, 0.6) if config.with_transfer else progress
    result = fit_nucleus(config, sub)
    base = result.pop("_model")
    if config.with_transfer:
        pretrain = result["summary"]["boot"]["seconds"]
        result.update(
            transfer_all(base, result["mass_number"], pretrain, config, progress.subrange(0.6, 1.0))
        )
    return result


def load_base_model(run_dir: str | Path) -> tuple[XsecNet, int]:
    """The bootstrap ensemble saved by a ``run`` in ``run_dir`` and the mass number it was fitted to."""
    from numl_core.runs import RunDir

    state = RunDir(run_dir).load_checkpoint(MODEL_CHECKPOINT)
    if state is None:
        raise ConfigError(f"XsecConfig.base_run: {run_dir} holds no '{MODEL_CHECKPOINT}' checkpoint")
    net = XsecNet(**state["hparams"])
    net.load_state_dict(state["state"])
    return net.eval(), int(state["A"])


def run_transfer(config: XsecConfig, progress: Progress) -> dict[str, Any]:
    """The ``transfer`` action: a base model (from ``base_run`` or fitted now), carried to each target."""
    t0 = time.perf_counter()
    if config.base_run:
        base, a_base = load_base_model(config.base_run)
        pretrain_seconds = float("nan")
        progress.log(f"base model from {config.base_run} (A = {a_base})")
        out = transfer_all(base, a_base, pretrain_seconds, config, progress)
        out["base_nucleus"] = f"A={a_base}"
    else:
        progress.update(0.0, f"pretraining on {config.nucleus}")
        base_fit = fit_nucleus(config.copy(mc_dropout=0.0), progress.subrange(0.0, 0.5))
        pretrain_seconds = base_fit["summary"]["boot"]["seconds"]
        out = transfer_all(
            base_fit["_model"], base_fit["mass_number"], pretrain_seconds, config, progress.subrange(0.5, 1.0)
        )
    out["seconds"] = time.perf_counter() - t0
    return out


def transfer_all(
    base: XsecNet, a_base: int, pretrain_seconds: float, config: XsecConfig, progress: Progress
) -> dict[str, Any]:
    """Carry ``base`` (fitted to mass number ``a_base``) to every target of ``config``; tables per nucleus."""
    targets: list[tuple[str, pd.DataFrame]] = [(t, load_table(config, t)) for t in config.targets]
    if config.target_file:
        targets.append(("file", es.load_file(Path(config.target_file), config.omega_min, config.drop_lowest)))
    if not targets:
        raise ConfigError("XsecConfig.targets: choose at least one nucleus or a target_file")
    settings = TransferSettings(
        fraction=config.transfer_fraction,
        blocks=config.finetune_blocks or None,
        epochs=config.finetune_epochs,
        lr=config.finetune_lr,
        scratch_epochs=config.epochs,
        seed=config.seed,
    )
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
    return {
        "transfer": comparison,
        "transfer_points": pd.concat(points, ignore_index=True),
        "base_nucleus": config.nucleus,
        "finetune": "all layers" if settings.blocks is None else f"last {settings.blocks} blocks",
    }


WORKFLOW = Workflow(
    name="xsec",
    title="Cross sections",
    description="DNN fit of inclusive electron-nucleus cross sections with bootstrap and MC-dropout "
    "uncertainties, normalisation-aware chi2 and transfer learning to other nuclei.",
    config_cls=XsecConfig,
    run=run_xsec,
    actions={"transfer": run_transfer},
)
