"""Export a trained EnergyTransformer for use outside Python: TorchScript with normalisation inside.

The exported module takes the raw inputs a file holds, ``forward(vector (B, P, F), scalar (B, S),
mask (B, P) True = padding) -> (B, T)`` in physical units, and carries its column names in the extra
file ``numl.json`` (read it from C++ with ``torch::jit::load(path, device, extra_files)``).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from numl_core.energy.model import EnergyTransformer

META_FILE = "numl.json"


def export_torchscript(model: EnergyTransformer, path: str | Path, meta: dict[str, Any]) -> Path:
    """Script ``model`` (on the CPU, eval mode) and save it atomically with ``meta`` (JSON) inside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, but it is still what libtorch (C++)
            # loads directly, which is the point of this export
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.script(model.cpu().eval())
            torch.jit.save(scripted, tmp, _extra_files={META_FILE: json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        model.to(device)
    return path


def load_torchscript(path: str | Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """The exported module and its metadata (vector, scalar, target columns, max_num_prongs, ...)."""
    extra = {META_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[META_FILE] or "{}")
