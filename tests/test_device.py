import numpy as np
import pytest
import torch

from numl_core.device import config_device, describe_device, resolve_device, seed_everything


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


def test_the_cpu_is_described_with_its_torch_threads():
    assert describe_device("cpu", torch_threads=3) == "CPU, 3 torch threads"
    assert describe_device("cpu", torch_threads=1) == "CPU, 1 torch thread"
    assert describe_device("cpu") == f"CPU, {torch.get_num_threads()} torch thread" + (
        "s" if torch.get_num_threads() != 1 else ""
    )


def test_a_gpu_is_described_with_its_name_and_the_memory_in_use(monkeypatch):
    asked = []

    def name(device):
        asked.append(device)
        return "NVIDIA Test 80GB"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", name)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 3 * 2**29)  # 1.5 GiB
    assert describe_device("cuda:1") == "GPU NVIDIA Test 80GB, 1.50 GiB in use"
    assert asked == ["cuda:1"]  # the job's own device, not device 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert describe_device("cuda") == "cuda (not available on this machine)"


def test_config_device_resolves_the_config_field_and_defaults_to_cpu():
    class WithDevice:
        device = "cpu"

    assert config_device(WithDevice()) == "cpu"
    assert config_device({"steps": 3}) == "cpu"  # a config without a device field
    WithDevice.device = "auto"
    assert config_device(WithDevice()) == resolve_device("auto").type
    WithDevice.device = "tpu"
    assert config_device(WithDevice()) == "tpu"  # named as asked: the workflow refuses it itself
    assert describe_device("tpu") == "tpu (not a device torch knows here)"
