"""Transfer learning: carry a cross-section network fitted on one nucleus over to another.

Following the DNN study (Kowal, Graczyk et al., Phys. Rev. C 110, 025501 (2024), arXiv:2408.09936),
a network pretrained on carbon is fine-tuned on a small fraction of another nucleus's data, either
all layers or only the last ``k`` blocks and the head. It starts from the carbon prediction scaled by
A / A_base (``log_shift``), the naive guess that the inclusive cross section per nucleus grows with the
number of nucleons, and is compared with that guess and with a network trained from scratch on the
same fraction. All three are scored by chi2 per point on the nucleus's remaining points with the
normalisation factor of each experiment taken from that method's predictions at the training points
(:func:`numl_core.xsec.fit.chi2_held_out`), never fitted on the scored points, so each method gets the
same treatment of the experiments' normalisations.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from numl_core.jobs import Progress
from numl_core.training import TrainSettings
from numl_core.xsec.fit import NormalisedModel, chi2_held_out, chi2_per_point, lambdas_from_training
from numl_core.xsec.metrics import band, predict_log
from numl_core.xsec.model import XsecNet
from numl_core.xsec.points import PointSet
from numl_core.xsec.train import EnsembleSettings, train_model, train_settings

FINETUNE, SCRATCH = "finetune", "scratch"
"""Names of the fine-tuned and the from-scratch fits: their checkpoints are ``{name}-{tag}``, their live
metrics carry the prefix ``{name}_{tag}_`` (:func:`metric_prefix`)."""


def metric_prefix(method: str, tag: str) -> str:
    """The live-metric prefix of transfer fit ``method`` (:data:`FINETUNE`, :data:`SCRATCH`) to ``tag``.

    >>> metric_prefix(FINETUNE, "Al"), is_transfer_metric("finetune_Al_loss")
    ('finetune_Al_', True)
    """
    return f"{method}_{tag}_"


def is_transfer_metric(name: str) -> bool:
    """Whether metric ``name`` comes from a transfer fit."""
    return name.startswith((f"{FINETUNE}_", f"{SCRATCH}_"))


@dataclass
class TransferSettings:
    """``fraction`` of the target's points used for training (the rest scores); ``blocks``: fine-tune only
    the last ``blocks`` blocks and the head (``None``: all layers); ``anchor`` the strength of the pull
    back to the pretrained weights (L2-SP, :class:`~numl_core.xsec.fit.Chi2Loss`; 0: none); ``train``:
    the fine-tuning loop (``epochs`` passes; ``lr`` lower than pretraining's, so that a few points do not
    wash out what the base model learned); ``residual`` of the fine-tuning chi2 (linear: the model starts
    close to the data, see :class:`~numl_core.xsec.fit.Chi2Loss`); ``scratch_epochs`` passes for the
    network trained from scratch (at the pretraining settings); ``val_share`` of the training points
    set aside to choose each fit's best report (early stopping, the same rule for the fine-tuned and
    the from-scratch fit; 0: train on all and keep the last report); ``lr_factors``: each fit is trained
    once per learning rate (its own times each factor) and the one with the lowest chi2 per point on
    those validation points is kept (the same search for both fits; without validation points only
    factor 1 runs); ``seed`` of the split."""

    fraction: float = 0.1
    val_share: float = 0.25
    lr_factors: tuple[float, ...] = (0.1, 1.0, 3.0)
    blocks: int | None = None
    anchor: float = 0.0
    residual: str = "linear"
    scratch_epochs: int = 1000
    seed: int = 0
    train: TrainSettings = field(default_factory=lambda: train_settings(epochs=300, lr=1e-3))

    def validate(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction={self.fraction} must be in (0, 1)")
        if not 0.0 <= self.val_share < 1.0:
            raise ValueError(f"val_share={self.val_share} must be in [0, 1)")
        if not self.lr_factors or min(self.lr_factors) <= 0.0:
            raise ValueError(f"lr_factors={self.lr_factors} must be positive (at least one)")
        if self.scratch_epochs < 1:
            raise ValueError(f"scratch_epochs={self.scratch_epochs} must be >= 1")
        self.train.validate()


def split_fraction(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, held-out) indices with ``max(2, round(fraction * n))`` training points.

    >>> train, rest = split_fraction(100, 0.1, 0)
    >>> len(train), len(rest), len(set(train) | set(rest))
    (10, 90, 100)
    """
    rng = np.random.default_rng([seed, 23])
    perm = rng.permutation(n)
    k = min(max(2, round(fraction * n)), n - 1)
    return np.sort(perm[:k]), np.sort(perm[k:])


def early_stopping_split(train: np.ndarray, val_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training points ``train`` split into those fitted and ``val`` ones (``round(val_share * n)``,
    at least 2 and at most half of them; none when ``val_share`` is 0) that choose the best report.

    >>> fit, val = early_stopping_split(np.arange(10, 22), 0.25, 0)
    >>> len(fit), len(val), sorted(np.concatenate([fit, val])) == list(range(10, 22))
    (9, 3, True)
    """
    if val_share == 0.0 or len(train) < 4:
        return np.asarray(train), np.asarray([], dtype=int)
    rng = np.random.default_rng([seed, 29])
    perm = rng.permutation(len(train))
    k = min(max(2, round(val_share * len(train))), len(train) // 2)
    return np.sort(np.asarray(train)[perm[k:]]), np.sort(np.asarray(train)[perm[:k]])


def covered_settings(
    target: pd.DataFrame, base: pd.DataFrame, dtheta_deg: float = 10.0, rel_energy: float = 0.2
) -> np.ndarray:
    """Mask (N,) of ``target`` rows whose (E, theta) has a ``base`` setting within ``dtheta_deg``
    degrees and ``rel_energy`` of its energy: kinematics the base model was fitted near.

    >>> base = pd.DataFrame({"energy": [0.5, 2.0], "theta_deg": [60.0, 15.0]})
    >>> target = pd.DataFrame({"energy": [0.55, 0.5, 2.1], "theta_deg": [65.0, 140.0, 15.0]})
    >>> covered_settings(target, base).tolist()
    [True, False, True]
    """
    e, th = target["energy"].to_numpy()[:, None], target["theta_deg"].to_numpy()[:, None]
    settings = base[["energy", "theta_deg"]].drop_duplicates().to_numpy()
    near = (np.abs(th - settings[:, 1]) <= dtheta_deg) & (np.abs(e - settings[:, 0]) <= rel_energy * e)
    return near.any(axis=1)


def carried_over(base: XsecNet, a_base: int, a_target: int, blocks: int | None) -> XsecNet:
    """A copy of ``base`` predicting ``A_target / A_base`` times its cross section, ready to fine-tune."""
    net = copy.deepcopy(base)
    net.log_shift.add_(math.log(a_target / a_base))
    if blocks is not None:
        net.freeze_all_but_last(blocks)
    return net


def transfer_nucleus(
    base: XsecNet,
    a_base: int,
    table: pd.DataFrame,
    group: np.ndarray,
    prior: np.ndarray,
    ensemble: EnsembleSettings,
    settings: TransferSettings,
    progress: Progress | None = None,
    tag: str = "target",
) -> tuple[dict[str, float], pd.DataFrame]:
    """Fine-tune, train from scratch and scale ``base`` for one target ``table`` (a prepared nucleus).

    ``group`` (N,) data-set index into ``prior`` (K,). Returns a summary row (chi2 per point of
    ``finetuned``, ``scratch`` and ``scaled_base`` on the held-out points, seconds, point counts) and
    the held-out points with their data-set index ``group``, whether it had fine-tuning points
    (``norm_fitted``), each method's predicted cross section ``pred_{method}`` [nb/sr/GeV] and the
    normalisation ``lambda_{method}`` applied to it (see :func:`score_methods`).
    """
    settings.validate()
    progress = progress if progress is not None else Progress()
    a_target = int(table["A"].iloc[0])
    points = PointSet.from_table(table, group, prior, base.features)
    train, held = split_fraction(len(table), settings.fraction, settings.seed)
    fit, val = early_stopping_split(train, settings.val_share, settings.seed)

    finetuning = replace(ensemble, train=settings.train, residual=settings.residual, anchor=settings.anchor)
    tuned = train_best_lr(
        points,
        (fit, val),
        finetuning,
        settings.lr_factors,
        progress.subrange(0.0, 0.5),
        start=lambda: NormalisedModel(carried_over(base, a_base, a_target, settings.blocks), len(prior)),
        name=f"{FINETUNE}-{tag}",
        prefix=metric_prefix(FINETUNE, tag),
    )
    progress.check_cancelled()
    scratch = train_best_lr(
        points,
        (fit, val),
        ensemble.training(epochs=settings.scratch_epochs),
        settings.lr_factors,
        progress.subrange(0.5, 1.0),
        name=f"{SCRATCH}-{tag}",
        prefix=metric_prefix(SCRATCH, tag),
    )
    nets = {
        "finetuned": tuned.net,
        "scratch": scratch.net,
        "scaled_base": carried_over(base, a_base, a_target, None),
    }
    row, predictions, lambdas = score_methods(nets, points, train, held)
    row.update(
        finetune_seconds=tuned.seconds,
        scratch_seconds=scratch.seconds,
        finetune_lr=tuned.lr,
        scratch_lr=scratch.lr,
        train_points=float(len(train)),
        val_points=float(len(val)),
        heldout_points=float(len(held)),
    )
    columns = ["setting", "setting_label", "energy", "theta_deg", "omega", "xsec", "error"]
    fitted = np.bincount(group[train], minlength=len(prior)) > 0
    held_table = table.iloc[held][columns].assign(
        group=group[held],
        norm_fitted=fitted[group[held]],
        **{f"pred_{k}": v for k, v in predictions.items()},
        **{f"lambda_{k}": v for k, v in lambdas.items()},
    )
    return row, held_table.reset_index(drop=True)


@dataclass
class TunedFit:
    """The kept fit of :func:`train_best_lr`: its network, learning rate and the seconds of every try."""

    net: XsecNet
    lr: float
    seconds: float


def train_best_lr(
    points: PointSet,
    split: tuple[np.ndarray, np.ndarray],
    settings: EnsembleSettings,
    factors: tuple[float, ...],
    progress: Progress,
    *,
    start: Callable[[], NormalisedModel] | None = None,
    name: str,
    prefix: str,
) -> TunedFit:
    """Train on the ``split`` (fitted, validation) points once per learning rate ``settings.train.lr x
    factor`` (each from a fresh ``start()``, or a new network) and keep the fit with the lowest chi2 per
    point on the validation points (lambda_k from the fitted ones, :func:`held_out_score`). Without
    validation points only factor 1 runs. Live metrics of factor f != 1 carry ``{prefix}lr{f}_``."""
    fit, val = split
    factors = factors if len(val) else (1.0,)
    best: tuple[float, XsecNet, float] | None = None
    t0 = time.perf_counter()
    for i, factor in enumerate(factors):
        lr = settings.train.lr * factor
        trained = train_model(
            points,
            fit,
            val,
            settings.training(lr=lr),
            progress.subrange(i / len(factors), (i + 1) / len(factors)),
            init=start() if start is not None else None,
            name=f"{name}-lr{factor:g}",
            metric_prefix=prefix if factor == 1.0 else f"{prefix}lr{factor:g}_",
        )
        progress.check_cancelled()
        chi2 = held_out_score(trained.model.net, points, fit, val).chi2 if len(val) else 0.0
        if best is None or chi2 < best[0]:
            best = (chi2, trained.model.net, lr)
    assert best is not None
    return TunedFit(best[1], best[2], time.perf_counter() - t0)


@dataclass
class HeldOutScore:
    """:func:`held_out_score`: chi2 per point on the scored points, the predictions [nb/sr/GeV] there
    (``pred``) and at the fitted points (``on_fit``), the lambda_k (K,) from the fitted points and which
    data sets had fitted points (``fitted``)."""

    chi2: float
    pred: np.ndarray
    on_fit: np.ndarray
    lambdas: np.ndarray
    fitted: np.ndarray


def held_out_score(net: XsecNet, points: PointSet, fit: np.ndarray, scored: np.ndarray) -> HeldOutScore:
    """Score ``net`` on the ``scored`` points with lambda_k from its predictions at the ``fit`` points
    (:func:`~numl_core.xsec.fit.chi2_held_out`: nothing fitted on the scored points)."""
    at_fit, at_scored = points.take(fit), points.take(scored)
    on_fit = band(predict_log(net, at_fit.x))[0]
    lam, fitted = lambdas_from_training(on_fit, *measured(at_fit, points.prior))
    pred = band(predict_log(net, at_scored.x))[0]
    chi2 = chi2_held_out(pred, *measured(at_scored, points.prior), lam, fitted)
    return HeldOutScore(chi2, pred, on_fit, lam, fitted)


def measured(points: PointSet, prior: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arguments after the model of the chi2 functions: cross sections, errors, data sets, priors."""
    return points.xsec, points.error, points.group, prior


def score_methods(
    nets: dict[str, XsecNet], points: PointSet, train: np.ndarray, held: np.ndarray
) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score each method's network on the ``held`` points with normalisations lambda_k from its own
    predictions at the ``train`` points (:func:`~numl_core.xsec.fit.chi2_held_out`: nothing fitted on
    the scored points; data sets without training points keep lambda = 1 and their prior width as a
    correlated uncertainty). Returns the chi2 per point of each method (and ``{method}_profiled`` with
    lambda_k profiled on the scored points, the older definition, kept for comparison, and
    ``{method}_train`` on the training points themselves), the held-out
    predictions [nb/sr/GeV] and the lambda_k of each held-out point."""
    fit, score = points.take(train), points.take(held)
    row: dict[str, float] = {}
    predictions, lambdas = {}, {}
    for method, net in nets.items():
        scored = held_out_score(net, points, train, held)
        row[method] = scored.chi2
        row[f"{method}_profiled"] = chi2_per_point(scored.pred, *measured(score, points.prior))[0]
        # on its own training points: a fit well below its held-out chi2 is not under-trained
        on_train = chi2_per_point(scored.on_fit, *measured(fit, points.prior), scored.lambdas)
        row[f"{method}_train"] = on_train[0]
        predictions[method] = scored.pred
        lambdas[method] = np.where(scored.fitted, scored.lambdas, 1.0)[score.group]
    return row, predictions, lambdas
