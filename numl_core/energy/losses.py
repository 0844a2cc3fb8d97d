"""Loss registry: transformer_EE's base losses on any target column, and physics terms on (E, p) predictions.

A loss is a linear combination of :class:`LossTerm` s. ``term="target"`` applies a base loss to one
target column (transformer_EE's ``base_loss_names`` x ``coefficients``); the physics terms need the
targets ``enu_truth`` and ``nu_p{x,y,z}_truth`` and apply a base loss to a dimensionless residual r
(compared with 0):

* ``energy``: (E - E_true) / E_true;
* ``momentum``: |p - p_true| / E_true;
* ``direction``: |u - u_true| (chord between unit vectors; its square is 2 (1 - cos angle));
* ``cos_zenith``: cos z - cos z_true with cos z = -u_y (y is up);
* ``baseline``: (L - L_true) / L_max, L(cos z) as in ``atmospheric_flux.baseline_km``;
* ``missing_pt``: (|p_vis x u| - |p_vis x u_true|) / E_true, the visible momentum transverse to the
  predicted direction against the truth's (invisible particles and Fermi motion make the latter > 0);
* ``invariant_mass``: (|p| - E) / E_true, energy-momentum consistency of a massless neutrino;
* ``q2``: (Q2 - Q2_true) / (Q2_true + 0.1 GeV^2) from the leading visible charged lepton,
  Q2 = 2 E (E_l - p_l . u) - m_l^2 (0 for events without one).

Base losses are averaged over events with the event weights: sum(w l) / sum(w).

>>> import torch
>>> BASE_LOSSES["mean absolute percentage error"](torch.tensor([1.1]), torch.tensor([1.0])).round(decimals=3)
tensor([0.1000])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from numl_core.data.kinematics import (
    EARTH_RADIUS_KM,
    HOMESTAKE_DEPTH_KM,
    PRODUCTION_HEIGHT_KM,
)

BaseLoss = Callable[[Tensor, Tensor], Tensor]


def _mape(pred: Tensor, target: Tensor) -> Tensor:
    return torch.abs(pred - target) / target.abs().clamp(min=1e-6)


BASE_LOSSES: dict[str, BaseLoss] = {
    "mean squared error": lambda p, t: (p - t) ** 2,
    "mean absolute error": lambda p, t: torch.abs(p - t),
    "mean absolute percentage error": _mape,
    "mean squared percentage error": lambda p, t: ((p - t) / t.abs().clamp(min=1e-6)) ** 2,
    "huber": lambda p, t: F.huber_loss(p, t, reduction="none", delta=0.1),
    "log cosh": lambda p, t: torch.log(torch.cosh(p - t)),
}
"""Per-event base losses by name (transformer_EE's three names plus numl's)."""

PHYSICS_TERMS = (
    "energy",
    "momentum",
    "direction",
    "cos_zenith",
    "baseline",
    "missing_pt",
    "invariant_mass",
    "q2",
)
PHYSICS_TARGETS = ("enu_truth", "nu_px_truth", "nu_py_truth", "nu_pz_truth")
TERMS = ("target", *PHYSICS_TERMS)
L_MAX_KM = 2 * EARTH_RADIUS_KM + PRODUCTION_HEIGHT_KM - HOMESTAKE_DEPTH_KM


def term_label(spec: dict) -> str:
    """The name a loss term reports under (and the live plots show): the term, or ``target:<column>``.

    >>> term_label({"term": "target", "column": "enu_truth"}), term_label({"term": "energy"})
    ('target:enu_truth', 'energy')
    """
    return f"target:{spec.get('column', '')}" if spec.get("term") == "target" else str(spec.get("term"))


@dataclass(frozen=True)
class LossTerm:
    """One term: ``term`` (see :data:`TERMS`), ``loss`` (a :data:`BASE_LOSSES` name), ``coefficient``,
    and for ``term="target"`` the target ``column``."""

    term: str
    loss: str = "mean squared error"
    coefficient: float = 1.0
    column: str = ""

    @property
    def label(self) -> str:
        return term_label({"term": self.term, "column": self.column})

    @classmethod
    def from_dict(cls, spec: dict, where: str = "loss") -> LossTerm:
        """From ``{"term", "loss", "coefficient", "column"}`` values; ValueError names the bad key."""
        unknown = set(spec) - {"term", "loss", "coefficient", "column"}
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected term, loss, coefficient, column"
            )
        term = cls(
            str(spec.get("term", "")),
            str(spec.get("loss", "mean squared error")),
            float(spec.get("coefficient", 1.0)),
            str(spec.get("column", "")),
        )
        term.check(where)
        return term

    def check(self, where: str = "loss") -> None:
        if self.term not in TERMS:
            raise ValueError(f"{where}: unknown loss term {self.term!r}; expected one of {list(TERMS)}")
        if self.loss not in BASE_LOSSES:
            raise ValueError(f"{where}: unknown base loss {self.loss!r}; expected one of {list(BASE_LOSSES)}")
        if self.term == "target" and not self.column:
            raise ValueError(f"{where}: a 'target' term needs the target 'column' it applies to")
        if self.term != "target" and "percentage" in self.loss:
            raise ValueError(
                f"{where}: term {self.term!r} is already relative; use a non-percentage base loss"
            )
        if not math.isfinite(self.coefficient):
            raise ValueError(f"{where}: coefficient {self.coefficient!r} is not finite")


def baseline_torch(cos_zenith: Tensor) -> Tensor:
    """Differentiable flight distance [km] (as atmospheric_flux.baseline_km)."""
    r_det = EARTH_RADIUS_KM - HOMESTAKE_DEPTH_KM
    r_top = EARTH_RADIUS_KM + PRODUCTION_HEIGHT_KM
    return -r_det * cos_zenith + torch.sqrt(r_det**2 * cos_zenith**2 + r_top**2 - r_det**2)


def _unit(p: Tensor) -> Tensor:
    return p / p.norm(dim=1, keepdim=True).clamp(min=1e-9)


def physics_residuals(pred: Tensor, target: Tensor, aux: Tensor, needed: set[str]) -> dict[str, Tensor]:
    """Residuals (B,) of the physics terms in ``needed``; ``pred``/``target`` columns are (E, px, py, pz).

    ``aux`` (B, 8): visible momentum sum (3) [GeV/c], leading lepton (E, px, py, pz) [GeV], lepton mass.
    """
    e, p = pred[:, 0], pred[:, 1:4]
    e_t, p_t = target[:, 0], target[:, 1:4]
    u, u_t = _unit(p), _unit(p_t)
    out: dict[str, Tensor] = {}
    if "energy" in needed:
        out["energy"] = (e - e_t) / e_t
    if "momentum" in needed:
        out["momentum"] = (p - p_t).norm(dim=1) / e_t
    if "direction" in needed:
        out["direction"] = (u - u_t).norm(dim=1)
    if "cos_zenith" in needed:
        out["cos_zenith"] = -(u[:, 1] - u_t[:, 1])
    if "baseline" in needed:
        out["baseline"] = (baseline_torch(-u[:, 1]) - baseline_torch(-u_t[:, 1])) / L_MAX_KM
    if "missing_pt" in needed:
        vis = aux[:, 0:3]
        out["missing_pt"] = (
            torch.cross(vis, u, dim=1).norm(dim=1) - torch.cross(vis, u_t, dim=1).norm(dim=1)
        ) / e_t
    if "invariant_mass" in needed:
        out["invariant_mass"] = (p.norm(dim=1) - e) / e_t
    if "q2" in needed:
        lep, m = aux[:, 3:7], aux[:, 7]
        has = lep[:, 0] > 0

        def q2(energy: Tensor, direction: Tensor) -> Tensor:
            return 2 * energy * (lep[:, 0] - (lep[:, 1:] * direction).sum(dim=1)) - m**2

        ref = q2(e_t, u_t)
        out["q2"] = torch.where(has, (q2(e, u) - ref) / (ref.abs() + 0.1), torch.zeros_like(e))
    return out


class CombinedLoss:
    """``loss_fn(model, batch)`` for :func:`numl_core.training.fit` from a list of terms.

    ``target_names`` are the model's output columns; batch = (vector, scalar, mask, target, weight, aux).
    """

    def __init__(self, terms: list[LossTerm], target_names: list[str]) -> None:
        if not terms:
            raise ValueError("loss: at least one term is needed")
        for i, t in enumerate(terms):
            t.check(f"loss term {i}")
            if t.term == "target" and t.column not in target_names:
                raise ValueError(
                    f"loss term {i}: column {t.column!r} is not a target; targets are {target_names}"
                )
        self.physics = {t.term for t in terms if t.term != "target"}
        if self.physics and list(target_names[:4]) != list(PHYSICS_TARGETS):
            raise ValueError(
                f"loss terms {sorted(self.physics)} need the first targets to be {list(PHYSICS_TARGETS)}, "
                f"got {target_names}"
            )
        self.terms = terms
        self.columns = {t.column: target_names.index(t.column) for t in terms if t.term == "target"}

    def terms_of(self, pred: Tensor, target: Tensor, weight: Tensor, aux: Tensor) -> dict[str, Tensor]:
        """Weighted mean of each term, plus the combination under ``loss``."""
        residuals = physics_residuals(pred, target, aux, self.physics) if self.physics else {}
        w = weight.float()
        norm = w.sum().clamp(min=1e-12)
        out: dict[str, Tensor] = {}
        total = torch.zeros((), device=pred.device)
        for t in self.terms:
            base = BASE_LOSSES[t.loss]
            if t.term == "target":
                j = self.columns[t.column]
                per_event = base(pred[:, j], target[:, j])
            else:
                r = residuals[t.term]
                per_event = base(r, torch.zeros_like(r))
            value = (w * per_event).sum() / norm
            out[t.label] = value
            total = total + t.coefficient * value
        out["loss"] = total
        return out

    def __call__(self, model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        vector, scalar, mask, target, weight, aux = batch
        pred = model(vector, scalar, mask)
        return self.terms_of(pred.float(), target.float(), weight, aux)
