import numpy as np
import pytest
import torch

from numl_core.device import resolve_device, seed_everything


def test_auto_picks_an_available_device():
    dev = resolve_device("auto")
    expected = (
        "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert dev.type == expected


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        resolve_device("tpu")


def test_explicit_cuda_is_used_or_clearly_refused():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_seeding_makes_cpu_training_bit_reproducible():
    def train():
        seed_everything(123)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        x = torch.randn(64, 4)
        for _ in range(5):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()

    np.testing.assert_array_equal(train(), train())
    assert seed_everything(1).normal() == seed_everything(1).normal()
