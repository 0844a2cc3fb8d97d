"""Training an EnergyTransformer: arrays, split, weights, model, the shared fit loop, fast prediction.

Reads top to bottom: :func:`prepare` turns an event table into padded arrays plus the auxiliary
per-event quantities the physics losses need; :func:`split_indices` draws the train / validation /
test split; :func:`build_model` sizes the model and fits its normalisation on the training events;
:func:`train_model` runs :func:`numl_core.training.fit`; :func:`predict` evaluates in batches of
events of similar length (padding is trimmed per batch, which is what makes CPU inference fast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from numl_core.energy import baselines
from numl_core.energy.config import EnergyConfig
from numl_core.energy.data import EventArrays, to_arrays
from numl_core.energy.losses import CombinedLoss
from numl_core.energy.model import EnergyTransformer
from numl_core.jobs import Progress
from numl_core.training import FitResult, fit

ENERGY_COLUMN_HINTS = ("enu", "energy", "nue", "truee", "_e")
NEEDS_ROLES = {"missing_pt", "q2"}
#: The config fields that size the transformer (keyword arguments of :class:`EnergyTransformer`).
ARCHITECTURE = ("d_model", "nhead", "num_layers", "dim_feedforward", "dropout")


@dataclass
class Prepared:
    """Padded arrays, the auxiliary (N, 8) block (visible momentum, leading lepton, its mass), roles."""

    arrays: EventArrays
    aux: np.ndarray
    roles: dict[str, int] | None


def prepare(events: pd.DataFrame, config: EnergyConfig, source: str = "<table>") -> Prepared:
    """Arrays for ``config``'s vector/scalar/target columns and the aux block (zeros without PDG/E/p)."""
    arrays = to_arrays(
        events, config.vector, config.scalar, config.target, config.max_num_prongs, source=source
    )
    roles = baselines.particle_roles(config.vector)
    aux = np.zeros((len(arrays), 8), np.float32)
    if roles is not None:
        aux[:, :3] = baselines.visible_momentum(arrays.vector, arrays.mask, roles)
        lep, mass = baselines.leading_lepton(arrays.vector, arrays.mask, roles)
        aux[:, 3:7], aux[:, 7] = lep, mass
    else:
        needed = NEEDS_ROLES & {t.term for t in config.terms()}
        if needed:
            raise ValueError(
                f"loss terms {sorted(needed)} need per-particle pdg, energy, px, py, pz columns; "
                f"vector is {config.vector}"
            )
    return Prepared(arrays, aux, roles)


def split_indices(n: int, test_size: float, valid_size: float, seed: int) -> dict[str, np.ndarray]:
    """Disjoint sorted index arrays ``train``, ``val``, ``test`` (fractions of ``n``; each non-empty).

    >>> s = split_indices(100, 0.2, 0.05, seed=0)
    >>> [len(s[k]) for k in ("train", "val", "test")]
    [75, 5, 20]
    """
    perm = np.random.default_rng([seed, 11]).permutation(n)
    n_test = max(int(round(test_size * n)), 1)
    n_val = max(int(round(valid_size * n)), 1)
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} events are too few for test_size={test_size} and valid_size={valid_size}")
    return {
        "test": np.sort(perm[:n_test]),
        "val": np.sort(perm[n_test : n_test + n_val]),
        "train": np.sort(perm[n_test + n_val :]),
    }


def target_kinds(target: list[str]) -> list[str]:
    """Decoding of each target: the first is an energy ('log') when its name looks like one; momentum
    components of the neutrino ('nu_p{x,y,z}_truth') are 'times_energy'; the rest 'zscore'."""
    first = target[0].lower()
    kinds = ["log" if any(h in first for h in ENERGY_COLUMN_HINTS) else "zscore"]
    for name in target[1:]:
        momentum = name in ("nu_px_truth", "nu_py_truth", "nu_pz_truth") and kinds[0] == "log"
        kinds.append("times_energy" if momentum else "zscore")
    return kinds


def build_model(
    config: EnergyConfig, prepared: Prepared, train_idx: np.ndarray, seed: int
) -> EnergyTransformer:
    """An EnergyTransformer for ``config`` with normalisation fitted on the training events."""
    torch.manual_seed(seed)
    pdg = next((i for i, c in enumerate(config.vector) if "pdg" in c.lower()), None)
    kinds = target_kinds(config.target)
    a = prepared.arrays
    if kinds[0] == "log" and (a.target[train_idx, 0] <= 0).any():
        kinds = ["zscore"] * len(kinds)
    if kinds.count("times_energy") != 3 and config.direction_reference:
        raise ValueError(
            "direction_reference needs the targets nu_px_truth, nu_py_truth, nu_pz_truth after an energy"
        )
    roles = baselines.particle_roles(config.vector)
    frame = None
    if config.frame_features and config.direction_reference and roles is not None:
        frame = (roles["px"], roles["py"], roles["pz"])
    model = EnergyTransformer(
        len(config.vector),
        len(config.scalar),
        kinds,
        pdg_feature=pdg,
        energy_reference=config.scalar.index(config.energy_reference) if config.energy_reference else None,
        direction_reference=(
            tuple(config.scalar.index(c) for c in config.direction_reference)
            if config.direction_reference
            else None
        ),
        momentum_features=frame,
        **{name: getattr(config, name) for name in ARCHITECTURE},
    )
    model.set_normalisation(a.vector[train_idx], a.mask[train_idx], a.scalar[train_idx], a.target[train_idx])
    return model


def tensors(prepared: Prepared, idx: np.ndarray, weight: np.ndarray) -> tuple[torch.Tensor, ...]:
    """(vector, scalar, mask, target, weight, aux) tensors of the events ``idx``."""
    a = prepared.arrays
    return (
        torch.from_numpy(a.vector[idx]),
        torch.from_numpy(a.scalar[idx]),
        torch.from_numpy(a.mask[idx]),
        torch.from_numpy(a.target[idx]),
        torch.from_numpy(weight[idx].astype(np.float32)),
        torch.from_numpy(prepared.aux[idx]),
    )


def train_model(
    model: EnergyTransformer,
    loss: CombinedLoss,
    prepared: Prepared,
    split: dict[str, np.ndarray],
    weight: np.ndarray,
    config: EnergyConfig,
    progress: Progress,
    *,
    name: str = "energy",
    metric_prefix: str = "",
) -> FitResult:
    """Fit ``model`` on the training split, early-stopping on the validation split."""
    fingerprint = {
        "n_train": len(split["train"]),
        "terms": [t.label for t in loss.terms],
        "vector": list(config.vector),
        "target": list(config.target),
        "d_model": config.d_model,
        "num_layers": config.num_layers,
        "frame_features": config.frame_features,
    }
    return fit(
        model,
        loss,
        tensors(prepared, split["train"], weight),
        tensors(prepared, split["val"], weight),
        config.train_settings(grad_clip=1.0),
        progress,
        name=name,
        metric_prefix=metric_prefix,
        fingerprint=fingerprint,
    )


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    vector: np.ndarray,
    scalar: np.ndarray,
    mask: np.ndarray,
    batch_size: int = 4096,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Predictions (N, T) in physical units; events are batched by their number of particles."""
    model.eval()
    dev = torch.device(device) if isinstance(device, str) else device
    lengths = (~mask).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(int(lengths[idx].max()), 1)
        pred = (
            model(
                torch.from_numpy(np.ascontiguousarray(vector[idx, :width])).to(dev),
                torch.from_numpy(scalar[idx]).to(dev),
                torch.from_numpy(np.ascontiguousarray(mask[idx, :width])).to(dev),
            )
            .float()
            .cpu()
            .numpy()
        )
        if out is None:
            out = np.empty((len(order), pred.shape[1]), np.float32)
        out[idx] = pred
    return out
