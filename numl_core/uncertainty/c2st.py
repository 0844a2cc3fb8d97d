"""Classifier two-sample tests (C2ST): can a classifier tell two samples apart?

Held-out accuracy 0.5 means the samples are indistinguishable, 1.0 fully separable (Lopez-Paz & Oquab,
"Revisiting classifier two-sample tests", arXiv:1610.06545). Defaults follow ``sbi.utils.metrics.c2st``
(sbi 0.27): both samples z-scored by the mean and standard deviation of the first, a random forest
(scikit-learn defaults, ``random_state=seed``) or an MLP with two hidden layers of 10 * D ReLU units
(Adam, early stopping after 50 epochs without gain),
5 shuffled folds (``KFold(shuffle=True, random_state=seed)``), the mean held-out accuracy.

On top of sbi's number this module returns the per-fold accuracies and a p-value of the null "same
distribution": exact binomial (the held-out predictions are N independent coin flips under the null)
or a permutation null (labels shuffled and the whole cross-validation repeated).
:func:`c2st_torch` runs the MLP variant in torch (on a GPU where present) through the shared trainer,
and :func:`latent_c2st` tests a normalizing flow in its Gaussian base space, where the null sample is
exactly N(0, I) (the idea of sbi's ``LC2ST_NF``, Linhart et al., arXiv:2306.03580).

>>> rng = np.random.default_rng(0)
>>> same = c2st(rng.normal(size=(300, 2)), rng.normal(size=(300, 2)))
>>> bool(abs(same.accuracy - 0.5) < 0.1), len(same.fold_accuracies)
(True, 5)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPClassifier
from torch import Tensor, nn

from numl_core.jobs import Progress

log = logging.getLogger(__name__)

CLASSIFIERS = ("rf", "mlp")
PVALUE_METHODS = ("binomial", "permutation")


@dataclass(frozen=True)
class C2STResult:
    """Mean held-out accuracy, per-fold accuracies (n_folds,), the p-value of "same distribution" and how
    it was computed; ``n`` held-out predictions in total; ``classifier`` names the classifier."""

    accuracy: float
    fold_accuracies: np.ndarray
    pvalue: float
    pvalue_method: str
    n: int
    classifier: str

    @property
    def error(self) -> float:
        """Standard error of the mean accuracy from the spread of the folds."""
        k = len(self.fold_accuracies)
        return float(np.std(self.fold_accuracies, ddof=1) / np.sqrt(k)) if k > 1 else float("nan")


def _prepare(x: np.ndarray, y: np.ndarray, z_score: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"samples must be (N, D) and (M, D) with the same D, got {x.shape} and {y.shape}")
    for name, s in (("first", x), ("second", y)):
        if not np.isfinite(s).all():
            raise ValueError(f"the {name} sample holds NaN or infinite values")
    if z_score:
        mean, std = x.mean(0), x.std(0, ddof=1)
        std = np.where(std > 0, std, 1.0)
        x, y = (x - mean) / std, (y - mean) / std
    data = np.concatenate([x, y])
    target = np.concatenate([np.zeros(len(x)), np.ones(len(y))])
    return data, target


def make_classifier(
    name: str, dim: int, seed: int, n_jobs: int | None = None
) -> RandomForestClassifier | MLPClassifier:
    """sbi's C2ST classifiers: ``"rf"`` random forest, ``"mlp"`` MLP (10 D, 10 D) with Adam.

    ``n_jobs`` threads grow the forest's trees (-1: all cores); each tree's seed is drawn from ``seed``
    before the trees are grown, so the forest does not depend on it."""
    if name == "rf":
        return RandomForestClassifier(random_state=seed, n_jobs=n_jobs)
    if name == "mlp":
        return MLPClassifier(
            activation="relu",
            hidden_layer_sizes=(10 * dim, 10 * dim),
            max_iter=1000,
            solver="adam",
            early_stopping=True,
            n_iter_no_change=50,
            random_state=seed,
        )
    raise ValueError(f"classifier={name!r} is not one of {CLASSIFIERS}")


def _fold_accuracies(
    data: np.ndarray, target: np.ndarray, classifier: str, n_folds: int, seed: int, n_jobs: int | None
) -> np.ndarray:
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out = []
    for train, test in folds.split(data):
        clf = make_classifier(classifier, data.shape[1], seed, n_jobs).fit(data[train], target[train])
        out.append(float(np.mean(clf.predict(data[test]) == target[test])))
    return np.array(out)


def binomial_pvalue(accuracy: float, n: int) -> float:
    """One-sided p-value of ``accuracy`` over ``n`` held-out predictions under the null (each right with
    probability 1/2): P(Binomial(n, 1/2) >= round(accuracy n)).

    >>> round(binomial_pvalue(0.5, 1000), 2), binomial_pvalue(0.6, 1000) < 1e-9
    (0.51, True)
    """
    return float(stats.binom.sf(round(accuracy * n) - 1, n, 0.5))


def c2st(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 1,
    n_folds: int = 5,
    classifier: str = "rf",
    z_score: bool = True,
    pvalue_method: str = "binomial",
    n_permutations: int = 20,
    n_jobs: int | None = None,
) -> C2STResult:
    """C2ST between samples ``x`` (N, D) and ``y`` (M, D) with sbi-comparable defaults.

    ``pvalue_method="permutation"`` repeats the cross-validation ``n_permutations`` times with shuffled
    labels; its p-value is (1 + #{null >= observed}) / (1 + n_permutations). ``n_jobs``: threads of the
    random forest (the accuracies do not depend on it).
    """
    if pvalue_method not in PVALUE_METHODS:
        raise ValueError(f"pvalue_method={pvalue_method!r} is not one of {PVALUE_METHODS}")
    data, target = _prepare(x, y, z_score)
    folds = _fold_accuracies(data, target, classifier, n_folds, seed, n_jobs)
    accuracy = float(folds.mean())
    if pvalue_method == "binomial":
        pvalue = binomial_pvalue(accuracy, len(target))
    else:
        rng = np.random.default_rng(seed)
        null = np.array(
            [
                _fold_accuracies(data, rng.permutation(target), classifier, n_folds, seed, n_jobs).mean()
                for _ in range(n_permutations)
            ]
        )
        pvalue = float((1 + np.sum(null >= accuracy)) / (1 + n_permutations))
    return C2STResult(accuracy, folds, pvalue, pvalue_method, len(target), classifier)


def _torch_mlp(dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


def _bce(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
    x, t = batch
    return {"loss": nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), t)}


def _tensors(data: np.ndarray, target: np.ndarray, idx: np.ndarray) -> tuple[Tensor, Tensor]:
    return torch.as_tensor(data[idx], dtype=torch.float32), torch.as_tensor(target[idx], dtype=torch.float32)


def c2st_torch(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 1,
    n_folds: int = 5,
    z_score: bool = True,
    hidden: int | None = None,
    epochs: int = 100,
    batch_size: int = 512,
    lr: float = 1e-3,
    device: str = "auto",
    progress: Progress | None = None,
) -> C2STResult:
    """The MLP C2ST in torch (GPU where present): per fold an MLP (``hidden`` = 10 D units by default)
    trained by :func:`numl_core.training.fit` with early stopping on 10 % of the fold's training part;
    accuracy on the held-out fold; binomial p-value."""
    from numl_core.training import TrainSettings, fit, predict

    data, target = _prepare(x, y, z_score)
    dim = data.shape[1]
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    rng = np.random.default_rng(seed)
    accuracies = []
    for k, (train, test) in enumerate(folds.split(data)):
        train = rng.permutation(train)
        n_val = max(1, len(train) // 10)
        val, fit_idx = train[:n_val], train[n_val:]
        torch.manual_seed(seed + k)
        model = _torch_mlp(dim, hidden or 10 * dim)
        settings = TrainSettings(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patience=10,
            device=device,
            seed=seed + k,
            mixed_precision=False,
        )
        fit(
            model,
            _bce,
            _tensors(data, target, fit_idx),
            _tensors(data, target, val),
            settings,
            progress,
            name=f"c2st-fold{k}",
            metric_prefix="c2st_",
        )
        logits = predict(
            lambda b, m=model: m(b[0]).squeeze(-1), (_tensors(data, target, test)[0],), device=device
        )
        accuracies.append(float(np.mean((logits.numpy() > 0) == (target[test] > 0.5))))
    folds_acc = np.array(accuracies)
    accuracy = float(folds_acc.mean())
    return C2STResult(
        accuracy, folds_acc, binomial_pvalue(accuracy, len(target)), "binomial", len(target), "torch-mlp"
    )


def latent_c2st(
    to_latent: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, seed: int = 1, **kwargs: object
) -> C2STResult:
    """C2ST in a flow's base space: ``to_latent`` maps data (N, D) to the flow's Gaussian latent (N, D);
    a perfect flow maps its training distribution's samples to N(0, I), which is compared against an
    exact N(0, I) sample of the same size. No z-scoring: the null's scale is known."""
    z = np.asarray(to_latent(np.asarray(x, float)), float)
    reference = np.random.default_rng([seed, 11]).standard_normal(z.shape)
    return c2st(reference, z, seed=seed, z_score=False, **kwargs)  # type: ignore[arg-type]
