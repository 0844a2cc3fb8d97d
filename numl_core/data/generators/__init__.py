"""Built-in, seeded event samples: ``SAMPLES[name](n_events, seed) -> pandas.DataFrame``.

A sample's module is imported only when its generator is called, so importing this package loads no
sample code.

>>> sorted(SAMPLES)
['atmospheric_events', 'nd280_cc0pi']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pandas as pd


def _lazy(module: str) -> Callable[[int, int], pd.DataFrame]:
    def generate(n_events: int, seed: int = 0) -> pd.DataFrame:
        return importlib.import_module(f"numl_core.data.generators.{module}").generate(n_events, seed)

    generate.__name__ = f"{module}.generate"
    return generate


SAMPLES: dict[str, Callable[[int, int], pd.DataFrame]] = {
    "nd280_cc0pi": _lazy("nd280_cc0pi"),
    "atmospheric_events": _lazy("atmospheric_events"),
}
"""Sample name -> generate(n_events, seed)."""
