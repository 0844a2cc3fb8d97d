"""Built-in, seeded event samples: ``SAMPLES[name](n_events, seed) -> pandas.DataFrame``.

>>> sorted(SAMPLES)
['atmospheric_events', 'nd280_cc0pi']
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from numl_core.data.generators import atmospheric_events, nd280_cc0pi

SAMPLES: dict[str, Callable[[int, int], pd.DataFrame]] = {
    "nd280_cc0pi": nd280_cc0pi.generate,
    "atmospheric_events": atmospheric_events.generate,
}
"""Sample name -> generate(n_events, seed)."""
