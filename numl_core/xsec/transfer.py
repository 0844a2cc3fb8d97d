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
    network trained from scratch (at the pretraining settings); ``seed`` of the split."""

    fraction: float = 0.1
    blocks: int | None = None
    anchor: float = 0.0
    residual: str = "linear"
    scratch_epochs: int = 1000
    seed: int = 0
    train: TrainSettings = field(default_factory=lambda: train_settings(epochs=300, lr=1e-3))

    def validate(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction={self.fraction} must be in (0, 1)")
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

    start = carried_over(base, a_base, a_target, settings.blocks)
    t0 = time.perf_counter()
    tuned = train_model(
        points,
        train,
        None,
        replace(ensemble, train=settings.train, residual=settings.residual, anchor=settings.anchor),
        progress,
        init=NormalisedModel(start, len(prior)),
        name=f"{FINETUNE}-{tag}",
        metric_prefix=metric_prefix(FINETUNE, tag),
    )
    finetune_seconds = time.perf_counter() - t0
    progress.check_cancelled()
    scratch = train_model(
        points,
        train,
        None,
        ensemble.training(epochs=settings.scratch_epochs),
        progress,
        name=f"{SCRATCH}-{tag}",
        metric_prefix=metric_prefix(SCRATCH, tag),
    )
    nets = {
        "finetuned": tuned.model.net,
        "scratch": scratch.model.net,
        "scaled_base": carried_over(base, a_base, a_target, None),
    }
    row, predictions, lambdas = score_methods(nets, points, train, held)
    row.update(
        finetune_seconds=finetune_seconds,
        scratch_seconds=scratch.seconds,
        train_points=float(len(train)),
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
        on_train = band(predict_log(net, fit.x))[0]
        lam, fitted = lambdas_from_training(on_train, fit.xsec, fit.error, fit.group, points.prior)
        pred = band(predict_log(net, score.x))[0]
        scored = (pred, score.xsec, score.error, score.group, points.prior)
        row[method] = chi2_held_out(*scored, lam, fitted)
        row[f"{method}_profiled"] = chi2_per_point(*scored)[0]
        # on its own training points: a fit well below its held-out chi2 is not under-trained
        row[f"{method}_train"] = chi2_per_point(on_train, fit.xsec, fit.error, fit.group, points.prior, lam)[
            0
        ]
        predictions[method] = pred
        lambdas[method] = np.where(fitted, lam, 1.0)[score.group]
    return row, predictions, lambdas
