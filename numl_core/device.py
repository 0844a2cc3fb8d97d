"""Device choice, its description for people, and seeding.

>>> resolve_device("cpu").type
'cpu'
>>> describe_device("cpu", torch_threads=3)
'CPU, 3 torch threads'
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit name must be available."""
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ValueError(f"device {name!r} is not one of {DEVICE_CHOICES} (or 'cuda:N')")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available on this machine")
    return torch.device(name)


def config_device(config: Any) -> str:
    """The device a job of ``config`` runs on, as torch names it (``'cpu'``, ``'cuda'``, ``'cuda:1'``,
    ``'mps'``): the config's ``device`` field resolved (``auto`` picks one), ``'cpu'`` for a config without
    one. A device this machine lacks is returned as named: the workflow itself refuses it."""
    name = getattr(config, "device", None)
    if not isinstance(name, str):
        return "cpu"
    try:
        return str(resolve_device(name))
    except ValueError:
        return name


def describe_device(device: str, torch_threads: int | None = None) -> str:
    """``device`` for people: ``'GPU NVIDIA H200, 1.25 GiB in use'``, ``'Apple GPU (MPS)'`` or
    ``'CPU, 3 torch threads'``.

    The GPU memory is what torch has allocated on that device in this process
    (``torch.cuda.memory_allocated``), in GiB (2**30 bytes); ``torch_threads`` defaults to torch's
    current intra-op thread count. A CUDA device on a machine without CUDA is named as such (a job asked for
    it; the workflow refuses it).
    """
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"{device} (not available on this machine)"
        used = torch.cuda.memory_allocated(device) / 2**30
        return f"GPU {torch.cuda.get_device_name(device)}, {used:.2f} GiB in use"
    if device == "mps":
        return "Apple GPU (MPS)"
    if device != "cpu":
        return f"{device} (not a device torch knows here)"
    threads = torch_threads if torch_threads is not None else torch.get_num_threads()
    return f"CPU, {threads} torch thread{'s' if threads != 1 else ''}"


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU runs become bit-reproducible); return a NumPy generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - code that still uses the legacy global generator
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
