"""EnergyTransformer contract (shapes, masks, permutations, gradients, export), losses and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numl_core.energy.export import export_torchscript, load_torchscript
from numl_core.energy.losses import BASE_LOSSES, PHYSICS_TERMS, CombinedLoss, LossTerm, baseline_torch
from numl_core.energy.model import EnergyTransformer
from numl_core.energy.weights import FlatSpectralWeights, event_weights

KINDS = ["log", "times_energy", "times_energy", "times_energy"]


def _model(n_vector: int = 3, **kw) -> EnergyTransformer:
    torch.manual_seed(0)
    return EnergyTransformer(
        n_vector,
        4,
        KINDS,
        pdg_feature=0,
        d_model=16,
        nhead=2,
        num_layers=1,
        dim_feedforward=32,
        energy_reference=0,
        direction_reference=(1, 2, 3),
        **kw,
    ).eval()


def _inputs(n: int = 5, p: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    vector = torch.rand(n, p, 3, generator=g)
    vector[..., 0] = torch.tensor([13.0, 2212.0, 211.0, 111.0])[:p]
    scalar = torch.rand(n, 4, generator=g) + 0.1
    mask = torch.zeros(n, p, dtype=torch.bool)
    mask[:, 3:] = True
    return vector, scalar, mask


def test_shapes_masking_and_permutation_invariance():
    model = _model()
    vector, scalar, mask = _inputs()
    out = model(vector, scalar, mask)
    assert out.shape == (5, 4) and torch.isfinite(out).all() and (out[:, 0] > 0).all()
    garbage = vector.clone()
    garbage[:, 3:] = 1e6  # padded slots must not matter
    assert torch.allclose(model(garbage, scalar, mask), out, atol=1e-5)
    perm = torch.tensor([2, 0, 1, 3])
    assert torch.allclose(model(vector[:, perm], scalar, mask[:, perm]), out, atol=1e-5)
    empty = torch.ones_like(mask)  # an event with nothing visible still gets a finite prediction
    assert torch.isfinite(model(vector, scalar, empty)).all()


def test_references_set_the_starting_point():
    model = _model()
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.zero_()
    vector, scalar, mask = _inputs()
    with torch.no_grad():
        out = model(vector, scalar, mask)
    # zero raw output: E = E_ref * exp(mean) with mean 0, p = E * unit(reference momentum)
    assert torch.allclose(out[:, 0], scalar[:, 0].clamp(min=0.05))
    unit = scalar[:, 1:4] / scalar[:, 1:4].norm(dim=1, keepdim=True)
    assert torch.allclose(out[:, 1:], unit * out[:, :1], atol=1e-6)


def test_normalisation_and_gradients_flow_everywhere():
    model = _model()
    vector, scalar, mask = _inputs(64)
    target = torch.cat([scalar[:, :1] * 2, torch.randn(64, 3)], dim=1)
    model.set_normalisation(vector.numpy(), mask.numpy(), scalar.numpy(), target.numpy())
    assert model.target_mean[0] == pytest.approx(float(np.log(2.0)), abs=1e-4)
    model.train()
    loss = CombinedLoss(
        [LossTerm("energy", "huber"), LossTerm("direction")],
        ["enu_truth", "nu_px_truth", "nu_py_truth", "nu_pz_truth"],
    )
    batch = (vector, scalar, mask, target, torch.ones(64), torch.zeros(64, 8))
    terms = loss(model, batch)
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None and "pdg_embedding" not in n]
    assert not missing


def test_torchscript_export_reproduces_the_model(tmp_path):
    model = _model()
    vector, scalar, mask = _inputs()
    path = export_torchscript(model, tmp_path / "m.pt", {"vector": ["a", "b", "c"]})
    module, meta = load_torchscript(path)
    assert meta == {"vector": ["a", "b", "c"]}
    assert torch.allclose(module(vector, scalar, mask), model(vector, scalar, mask), atol=1e-6)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="divisible"):
        EnergyTransformer(2, 0, ["log"], d_model=10, nhead=3)
    with pytest.raises(ValueError, match="needs a 'log'"):
        EnergyTransformer(2, 0, ["zscore", "times_energy"])
    with pytest.raises(ValueError, match="target_kinds"):
        EnergyTransformer(2, 0, ["linear"])


@pytest.mark.parametrize("name", list(BASE_LOSSES))
def test_base_losses_vanish_at_the_truth_and_grow_away(name):
    t = torch.tensor([1.0, 2.0, 5.0])
    assert BASE_LOSSES[name](t, t).abs().max() < 1e-7
    assert (BASE_LOSSES[name](t * 1.5, t) > 0).all()


@pytest.mark.parametrize("term", PHYSICS_TERMS)
def test_physics_terms_vanish_at_the_truth(term):
    g = torch.Generator().manual_seed(2)
    e = torch.rand(16, generator=g) * 5 + 0.2
    u = torch.randn(16, 3, generator=g)
    u = u / u.norm(dim=1, keepdim=True)
    target = torch.cat([e[:, None], e[:, None] * u], dim=1)
    aux = torch.cat(
        [
            torch.randn(16, 3, generator=g),
            e[:, None] * 0.6,
            e[:, None] * 0.5 * u,
            torch.full((16, 1), 0.1057),
        ],
        dim=1,
    )
    names = ["enu_truth", "nu_px_truth", "nu_py_truth", "nu_pz_truth"]
    loss = CombinedLoss([LossTerm(term)], names)
    w = torch.ones(16)
    assert loss.terms_of(target, target, w, aux)[term] < 1e-10
    wrong = target.clone()
    wrong[:, 0] *= 1.3
    wrong[:, 1:] = wrong[:, 1:].roll(1, dims=1)
    assert loss.terms_of(wrong, target, w, aux)[term] > 1e-4


def test_loss_registry_errors():
    with pytest.raises(ValueError, match="unknown loss term 'angle'"):
        LossTerm.from_dict({"term": "angle"})
    with pytest.raises(ValueError, match="unknown base loss 'mean cubed error'"):
        LossTerm.from_dict({"term": "energy", "loss": "mean cubed error"})
    with pytest.raises(ValueError, match="need the first targets"):
        CombinedLoss([LossTerm("direction")], ["trueE"])
    with pytest.raises(ValueError, match="is not a target"):
        CombinedLoss([LossTerm("target", column="trueLepE")], ["trueE"])


def test_baseline_torch_limits():
    # down-going: production height + depth; up-going: the Earth's diameter + height - depth
    assert baseline_torch(torch.tensor([1.0, -1.0])).tolist() == pytest.approx([16.48, 12755.52], abs=0.01)


def test_flat_spectral_weights_flatten_a_falling_spectrum():
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, 20_000)
    w = FlatSpectralWeights(x, bins=10, range=(0, 3)).getweight(x)
    counts, _ = np.histogram(x, bins=10, range=(0, 3), weights=w)
    # flattened: the weighted bin contents agree to ~1/sqrt(smallest bin count) (~10%), so 30% is generous
    assert counts.std() / counts.mean() < 0.3
    capped = FlatSpectralWeights(x, bins=10, range=(0, 3), maxweight=2.0)
    assert capped.weights.max() <= 2.0
    import pandas as pd

    df = pd.DataFrame({"enu": x[:100], "w": np.arange(100.0)})
    assert event_weights(df, "none", "enu").tolist() == [1.0] * 100
    assert event_weights(df, "column", "enu", column="w").mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unsupported key"):
        event_weights(df, "FlatSpectraWeights", "enu", {"alpha": 0.05})
    with pytest.raises(ValueError, match="unknown weighter"):
        event_weights(df, "Flat", "enu")


def test_frame_features_are_rotation_invariant():
    # vector columns: pdg, energy, px, py, pz; scalar: energy reference and the reference momentum
    model = _model(5, momentum_features=(2, 3, 4))
    g = torch.Generator().manual_seed(2)
    vector = torch.rand(6, 3, 5, generator=g)
    vector[..., 0] = 13.0
    scalar = torch.rand(6, 4, generator=g) + 0.1
    scalar[:, 1:] = vector[..., 2:].sum(dim=1)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    turned_v, turned_s = vector.clone(), scalar.clone()
    turned_v[..., 2:] = vector[..., 2:] @ q.T
    turned_s[:, 1:] = scalar[:, 1:] @ q.T
    frame = model.continuous(vector, scalar)[..., -3:]
    assert frame.shape == (6, 3, 3)
    torch.testing.assert_close(model.continuous(turned_v, turned_s)[..., -3:], frame, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.scalars(turned_s)[:, -1], model.scalars(scalar)[:, -1])
    # |p|^2 = along^2 + across^2, and the particles' along-components add up to |p_ref|
    torch.testing.assert_close(frame[..., 0] ** 2, frame[..., 1] ** 2 + frame[..., 2] ** 2)
    torch.testing.assert_close(frame[..., 1].sum(dim=1), model.scalars(scalar)[:, -1])
    with pytest.raises(ValueError, match="direction_reference"):
        EnergyTransformer(5, 4, KINDS, pdg_feature=0, momentum_features=(2, 3, 4))
