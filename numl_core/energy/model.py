"""EnergyTransformer: a transformer encoder over particle lists that predicts neutrino energy and momentum.

Inputs are raw detector quantities: ``vector`` (B, P, F) per-particle features (one may be the PDG
code), ``scalar`` (B, S) event features and ``mask`` (B, P), True on padding. Normalisation lives in
buffers inside the model, so a saved or exported model takes the same raw inputs as a file holds:
continuous features go through asinh(x / scale) and a z-score; the PDG code is looked up in
:data:`numl_core.data.particles.PARTICLES` and embedded, so the model width (``d_model``) is free of
the number of input features. The scalar features feed a small MLP whose output is a leading summary
token that attends with the particles; the head reads that token and the masked mean of the particles.

Outputs are the targets in physical units, decoded per target kind: ``log`` (a positive energy,
exp of a z-scored log), ``zscore``, or ``times_energy`` (a momentum component predicted as a direction
cosine times the predicted energy, so directions stay meaningful across three decades of energy).
Optionally the model learns corrections to detector-level references given as scalar inputs: the
energy as E = max(E_ref, 50 MeV) exp(z) (E_ref e.g. the visible energy) and the momentum as
p = E (u_ref + raw) with u_ref the unit vector of a reference momentum (e.g. the visible momentum sum).

With a direction reference and the indices of the particles' momentum columns (``momentum_features``)
the particles also get rotation-invariant features in the frame of u_ref: |p|, the component along
u_ref and the one transverse to it [GeV/c], and the summary MLP gets |p_ref|. Energy does not depend
on the orientation of an event, so these spare the network from learning rotation invariance from
the data (a GBDT given the same per-particle frame quantities narrows the energy resolution too).

>>> m = EnergyTransformer(n_vector=2, n_scalar=1, target_kinds=["log", "times_energy"], pdg_feature=0)
>>> v = torch.tensor([[[2212.0, 0.5], [13.0, 1.0]]])
>>> m(v, torch.ones(1, 1), torch.tensor([[False, True]])).shape
torch.Size([1, 2])
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from numl_core.data.particles import N_EMBEDDINGS, embedding_codes

TARGET_KINDS = ("log", "zscore", "times_energy")


def _asinh_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column (scale, mean, std) of asinh(values / scale); scale = median |value| (1 where zero)."""
    if values.shape[0] == 0:
        ones = np.ones(values.shape[1])
        return ones, np.zeros(values.shape[1]), ones
    scale = np.median(np.abs(values), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    t = np.arcsinh(values / scale)
    std = t.std(axis=0)
    return scale, t.mean(axis=0), np.where(std > 1e-8, std, 1.0)


class EnergyTransformer(nn.Module):
    """Transformer regression over padded particle lists; see the module docstring.

    ``target_kinds`` lists one of :data:`TARGET_KINDS` per output; ``times_energy`` outputs need one
    ``log`` output (the energy, the first one is used). ``pdg_feature`` is the index of the PDG-code
    column in ``vector`` (None: no particle-type embedding).
    """

    def __init__(
        self,
        n_vector: int,
        n_scalar: int,
        target_kinds: list[str],
        *,
        pdg_feature: int | None = None,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 3,
        dim_feedforward: int = 128,
        dropout: float = 0.0,
        energy_reference: int | None = None,
        direction_reference: tuple[int, int, int] | None = None,
        momentum_features: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        unknown = [k for k in target_kinds if k not in TARGET_KINDS]
        if unknown or not target_kinds:
            raise ValueError(f"target_kinds {target_kinds} must be non-empty, each one of {TARGET_KINDS}")
        if "times_energy" in target_kinds and "log" not in target_kinds:
            raise ValueError("a 'times_energy' target needs a 'log' (energy) target to scale it")
        if d_model % nhead:
            raise ValueError(f"d_model={d_model} must be divisible by nhead={nhead}")
        self.n_vector, self.n_scalar = n_vector, n_scalar
        self.pdg_feature = -1 if pdg_feature is None else int(pdg_feature)
        cont = [i for i in range(n_vector) if i != self.pdg_feature]
        self.register_buffer("cont_index", torch.tensor(cont, dtype=torch.long))
        if momentum_features is not None and direction_reference is None:
            raise ValueError("momentum_features need a direction_reference (the frame they are taken in)")
        frame = [] if momentum_features is None else [int(i) for i in momentum_features]
        if len(frame) not in (0, 3):
            raise ValueError("momentum_features must name three vector columns (px, py, pz)")
        self.register_buffer("momentum_index", torch.tensor(frame, dtype=torch.long))
        n_frame = 3 if frame else 0
        n_cont = len(cont) + n_frame
        for name, size in (("vec", n_cont), ("sca", n_scalar + n_frame // 3)):
            self.register_buffer(f"{name}_scale", torch.ones(size))
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        codes = embedding_codes()
        order = np.argsort(codes)
        self.register_buffer("pdg_sorted", torch.tensor(codes[order], dtype=torch.float32))
        self.register_buffer("pdg_slot", torch.tensor(order + 1, dtype=torch.long))
        kinds = [TARGET_KINDS.index(k) for k in target_kinds]
        self.register_buffer("target_kind", torch.tensor(kinds, dtype=torch.long))
        self.register_buffer("target_mean", torch.zeros(len(kinds)))
        self.register_buffer("target_std", torch.ones(len(kinds)))
        self.energy_output = target_kinds.index("log") if "log" in target_kinds else -1
        self.energy_reference = -1 if energy_reference is None else int(energy_reference)
        momentum_outputs = [i for i, k in enumerate(target_kinds) if k == "times_energy"]
        if direction_reference is not None and len(momentum_outputs) != 3:
            raise ValueError("a direction reference needs exactly three 'times_energy' outputs (x, y, z)")
        self.register_buffer("momentum_outputs", torch.tensor(momentum_outputs, dtype=torch.long))
        refs = [] if direction_reference is None else [int(i) for i in direction_reference]
        self.register_buffer("direction_reference", torch.tensor(refs, dtype=torch.long))

        self.particle_in = nn.Linear(max(n_cont, 1), d_model)
        self.pdg_embedding = nn.Embedding(N_EMBEDDINGS, d_model)
        self.summary_in = nn.Sequential(
            nn.Linear(max(n_scalar + n_frame // 3, 1), d_model), nn.GELU(), nn.Linear(d_model, d_model)
        )
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(
            nn.Linear(2 * d_model, d_model),
            nn.GELU(),
            nn.Linear(d_model, d_model),
            nn.GELU(),
            nn.Linear(d_model, len(kinds)),
        )

    @torch.no_grad()
    def set_normalisation(
        self, vector: np.ndarray, mask: np.ndarray, scalar: np.ndarray, target: np.ndarray
    ) -> None:
        """Fit the input and target normalisation to training arrays (vector (N, P, F), mask True = pad)."""
        vec_t, sca_t = torch.as_tensor(vector), torch.as_tensor(scalar)
        cont = self.continuous(vec_t.to(self.cont_index.device), sca_t.to(self.cont_index.device)).cpu()
        particles = cont.numpy()[~mask]
        scalars = self.scalars(sca_t.to(self.cont_index.device)).cpu().numpy()
        for name, values in (("vec", particles), ("sca", scalars)):
            if values.shape[1]:
                scale, mean, std = _asinh_stats(np.asarray(values, float))
                getattr(self, f"{name}_scale").copy_(torch.as_tensor(scale))
                getattr(self, f"{name}_mean").copy_(torch.as_tensor(mean))
                getattr(self, f"{name}_std").copy_(torch.as_tensor(std))
        target = np.asarray(target, float)
        kinds = self.target_kind.cpu().numpy()
        for j, kind in enumerate(kinds):
            col = target[:, j]
            if kind == 0:
                if (col <= 0).any():
                    raise ValueError(f"target {j} is an energy ('log' kind) but holds values <= 0")
                col = np.log(col)
                if self.energy_reference >= 0:
                    col = col - np.log(np.clip(scalar[:, self.energy_reference], 0.05, None))
            elif kind == 2:
                continue
            self.target_mean[j] = float(col.mean())
            self.target_std[j] = float(max(col.std(), 1e-6))

    @staticmethod
    def _normalise(x: Tensor, scale: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        return (torch.asinh(x / scale) - mean) / std

    def _reference_unit(self, scalar: Tensor) -> Tensor:
        ref = scalar.index_select(1, self.direction_reference)
        return ref / torch.linalg.vector_norm(ref, dim=1, keepdim=True).clamp(min=1e-6)

    def continuous(self, vector: Tensor, scalar: Tensor) -> Tensor:
        """Raw continuous particle features (B, P, C): the non-PDG columns, then the frame features."""
        cont = vector.index_select(2, self.cont_index) if self.cont_index.numel() else vector[..., :0]
        if self.momentum_index.numel() == 3:
            p = vector.index_select(2, self.momentum_index)
            u = self._reference_unit(scalar).unsqueeze(1)
            magnitude = torch.linalg.vector_norm(p, dim=2, keepdim=True)
            along = (p * u).sum(dim=2, keepdim=True)
            across = torch.sqrt((magnitude**2 - along**2).clamp(min=0.0))
            cont = torch.cat([cont, magnitude, along, across], dim=2)
        return cont

    def scalars(self, scalar: Tensor) -> Tensor:
        """Raw event features (B, S'): the scalar inputs, then |p_ref| with frame features."""
        if self.momentum_index.numel() == 3:
            ref = scalar.index_select(1, self.direction_reference)
            return torch.cat([scalar, torch.linalg.vector_norm(ref, dim=1, keepdim=True)], dim=1)
        return scalar

    def encode(self, vector: Tensor, scalar: Tensor, mask: Tensor) -> Tensor:
        """Raw (un-decoded) outputs (B, T) from raw inputs."""
        n_real = (~mask).sum(dim=1)
        length = int(torch.clamp(n_real.max(), min=1))
        vector, mask = vector[:, :length], mask[:, :length]
        cont = self.continuous(vector, scalar)
        if cont.shape[-1]:
            tokens = self.particle_in(self._normalise(cont, self.vec_scale, self.vec_mean, self.vec_std))
        else:
            tokens = self.particle_in(torch.zeros_like(vector[..., :1]))
        if self.pdg_feature >= 0:
            codes = vector[..., self.pdg_feature]
            pos = torch.searchsorted(self.pdg_sorted, codes.contiguous()).clamp(
                max=self.pdg_sorted.numel() - 1
            )
            found = self.pdg_sorted[pos] == codes
            slot = torch.where(found & ~mask, self.pdg_slot[pos], torch.zeros_like(pos))
            tokens = tokens + self.pdg_embedding(slot)
        tokens = tokens.masked_fill(mask.unsqueeze(-1), 0.0)
        extended = self.scalars(scalar)
        sca = (
            self._normalise(extended, self.sca_scale, self.sca_mean, self.sca_std)
            if extended.shape[1]
            else torch.zeros_like(vector[:, 0, :1])
        )
        summary = self.summary_in(sca).unsqueeze(1)
        seq = torch.cat([summary, tokens], dim=1)
        full_mask = torch.cat([torch.zeros_like(mask[:, :1]), mask], dim=1)
        out = self.encoder(seq, src_key_padding_mask=full_mask)
        keep = (~mask).unsqueeze(-1).to(out.dtype)
        mean = (out[:, 1:] * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.head(torch.cat([out[:, 0], mean], dim=1))

    def decode(self, raw: Tensor, scalar: Tensor) -> Tensor:
        """Physical targets (B, T) from raw outputs and the raw scalar inputs: see :data:`TARGET_KINDS`."""
        raw = raw.float()
        z = self.target_mean + self.target_std * raw
        kind = self.target_kind
        scale = torch.exp(z.clamp(max=30.0))
        if self.energy_reference >= 0:
            scale = scale * scalar[:, self.energy_reference : self.energy_reference + 1].clamp(min=0.05)
        out = torch.where(kind == 0, scale, z)
        if self.energy_output >= 0:
            energy = out[:, self.energy_output : self.energy_output + 1]
            direction = raw
            if self.direction_reference.numel() == 3:
                direction = raw.index_add(1, self.momentum_outputs, self._reference_unit(scalar))
            out = torch.where(kind == 2, direction * energy, out)
        return out

    def forward(self, vector: Tensor, scalar: Tensor, mask: Tensor) -> Tensor:
        """Predicted targets (B, T) in physical units from raw inputs."""
        return self.decode(self.encode(vector, scalar, mask), scalar)
