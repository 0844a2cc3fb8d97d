"""Near-to-far models: normalised conditional densities, causality, sampling, training, calibration."""

import numpy as np
import pytest
import torch

from numl_core.data.generators.toys import near_far_toy
from numl_core.uncertainty import ndfd
from numl_core.uncertainty.model import FlowSettings
from numl_core.uncertainty.train import fit_near_far

SETTINGS = ndfd.NearFarSettings(
    d_model=16,
    n_heads=2,
    n_layers=1,
    n_components=3,
    flow=FlowSettings(model="nsf", transforms=2, hidden_features=16, coupling=False),
    train=ndfd.near_far_training(epochs=5, batch_size=256, lr=3e-3, device="cpu", seed=0),
)


@pytest.fixture(scope="module")
def pairs():
    toy = near_far_toy(dim=2, seed=1)
    near, far = toy.sample(2000, seed=2)
    return toy, near, far


def _reference(near, far):
    return torch.as_tensor(near, dtype=torch.float32), torch.as_tensor(far, dtype=torch.float32)


@pytest.mark.parametrize("kind", ndfd.NDFD_MODELS)
def test_untrained_models_are_normalised_conditional_densities(kind, pairs):
    _, near, far = pairs
    model = ndfd.build_model(kind, _reference(near, far), SETTINGS).eval()
    axis = np.linspace(-9, 9, 181)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    cond = np.repeat(near[:1], len(grid), 0)
    with torch.no_grad():
        lp = model.log_prob(*_reference(grid, cond)).double().numpy()
    assert np.exp(lp).sum() * (axis[1] - axis[0]) ** 2 == pytest.approx(1.0, abs=0.02)
    draws = model.sample(torch.as_tensor(near[:4], dtype=torch.float32), 5)
    assert draws.shape == (5, 4, 2) and torch.isfinite(draws).all()


@pytest.mark.parametrize("kind", ndfd.NDFD_MODELS)
def test_log_prob_has_gradients_and_is_deterministic_in_the_seed(kind, pairs):
    _, near, far = pairs
    ref = _reference(near, far)
    a, b = (ndfd.build_model(kind, ref, SETTINGS) for _ in range(2))
    lp = a.log_prob(ref[1][:16], ref[0][:16])
    lp.sum().backward()
    assert all(p.grad is not None for p in a.parameters() if p.requires_grad)
    torch.testing.assert_close(lp.detach(), b.log_prob(ref[1][:16], ref[0][:16]).detach())


def test_transformer_is_causal_in_the_far_quantities(pairs):
    _, near, far = pairs
    model = ndfd.build_model("transformer", _reference(near, far), SETTINGS).eval()
    near_s, far_s = model.norm.near(torch.as_tensor(near[:5], dtype=torch.float32)), torch.zeros(5, 2)
    changed = far_s.clone()
    changed[:, 1] = 3.0  # the last far value is never an input
    changed_first = far_s.clone()
    changed_first[:, 0] = 3.0
    with torch.no_grad():
        base, last, first = (model.mixture(near_s, f)[1] for f in (far_s, changed, changed_first))
    torch.testing.assert_close(base, last)
    torch.testing.assert_close(base[:, 0], first[:, 0])  # far_1's head sees only the near values
    assert not torch.allclose(base[:, 1], first[:, 1])


def test_training_approaches_the_exact_conditional(pairs):
    toy, near, far = pairs
    test_near, test_far = toy.sample(300, seed=9)
    models = {}
    for kind in ndfd.NDFD_MODELS:
        model, result = fit_near_far(kind, (near[:1600], far[:1600]), (near[1600:], far[1600:]), SETTINGS)
        assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
        models[kind] = model
    table = ndfd.evaluate_near_far(models, toy, test_near, test_far, n_samples=200).set_index("model")
    assert list(table.index) == ["truth", "transformer", "flow"]
    # the exact conditional is calibrated: 600 (point, dimension) pairs, binomial sd 0.019 at 68 %; 4 sd
    assert abs(table.loc["truth", "coverage_68"] - 0.68) < 0.08
    for kind in ndfd.NDFD_MODELS:
        # a short training gets within 1 nat per event of the truth, not below it by more than the
        # statistical spread of a 300-event mean (about 0.1 nat)
        assert -0.2 < table.loc[kind, "nll_minus_truth"] < 1.0
        assert 0.4 < table.loc[kind, "coverage_68"] < 0.9


def test_coverage_counts_inside_intervals():
    samples = np.tile(np.arange(101.0)[:, None, None], (1, 3, 1))
    far = np.array([[50.0], [99.9], [1.0]])
    out = ndfd.coverage(samples, far, levels=(0.5,))
    assert out == {"coverage_50": pytest.approx(1 / 3)}


def test_unknown_model_kind():
    with pytest.raises(ValueError, match="kind"):
        ndfd.build_model("rnn", (torch.zeros(4, 1), torch.zeros(4, 1)), SETTINGS)


def test_pit_calibration_flags_overconfident_and_underconfident_predictions():
    rng = np.random.default_rng(2)
    far = rng.normal(size=(2_000, 2))
    calibrated = ndfd.pit_calibration(rng.normal(size=(300, 2_000, 2)), far)
    narrow = ndfd.pit_calibration(0.5 * rng.normal(size=(300, 2_000, 2)), far)
    wide = ndfd.pit_calibration(2.0 * rng.normal(size=(300, 2_000, 2)), far)
    # 4000 PIT values: a bin's fraction has sd sqrt(0.1 * 0.9 / 4000) = 0.005
    assert calibrated["pit_ks_pvalue"] > 1e-3
    assert all(abs(calibrated[f"pit_{k}"] - 0.1) < 0.025 for k in range(10))
    assert narrow["pit_ks_pvalue"] < 1e-10 and narrow["pit_0"] > 0.15 and narrow["pit_9"] > 0.15  # U-shape
    assert wide["pit_ks_pvalue"] < 1e-10 and wide["pit_0"] < 0.05 and wide["pit_9"] < 0.05  # hump
