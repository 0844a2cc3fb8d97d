"""Progress that people can read: the percentage done, the time elapsed and an estimate of the time left.

Pure functions of a job's state, completed fraction and elapsed seconds; the dashboard's job panel shows
their text and computes nothing itself.

>>> progress_line("running", 0.5, 60.0)
'50 % · elapsed 1 min 00 s · ETA 1 min 00 s'
>>> progress_line("running", 0.01, 60.0)
'1 % · elapsed 1 min 00 s · ETA —'
>>> progress_line("queued", 0.0, None, queue_position=2)
'queued (position 2)'
"""

from __future__ import annotations

import math

ETA_MIN_FRACTION = 0.02
"""Below this completed fraction the pace says too little to estimate the time left."""
ETA_MIN_ELAPSED_S = 3.0
"""Seconds a job must have run before its pace is taken as an estimate."""
NO_ETA = "ETA —"


def format_duration(seconds: float) -> str:
    """A duration in seconds as ``'42 s'``, ``'3 min 05 s'`` or ``'2 h 07 min'`` (negative counts as 0).

    >>> [format_duration(s) for s in (4.4, 185, 7620)]
    ['4 s', '3 min 05 s', '2 h 07 min']
    """
    total = max(int(round(seconds)), 0)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def eta_seconds(fraction: float, elapsed_s: float) -> float | None:
    """Seconds left if the rest runs at the pace so far, ``elapsed × (1 − fraction) / fraction``.

    None until the estimate is informative: fewer than :data:`ETA_MIN_ELAPSED_S` seconds run, at most
    :data:`ETA_MIN_FRACTION` done, or a fraction outside (0, 1].

    >>> eta_seconds(0.25, 30.0), eta_seconds(0.01, 30.0), eta_seconds(0.5, 1.0)
    (90.0, None, None)
    """
    if not (ETA_MIN_FRACTION < fraction <= 1.0) or elapsed_s < ETA_MIN_ELAPSED_S:
        return None
    return elapsed_s * (1.0 - fraction) / fraction


def percent(fraction: float) -> str:
    """The completed fraction (0-1) as whole percent, rounded down so that only a finished job shows 100 %.

    >>> percent(0.999), percent(1.0)
    ('99 %', '100 %')
    """
    return f"{math.floor(min(max(fraction, 0.0), 1.0) * 100 + 1e-9)} %"


def progress_line(
    state: str, fraction: float, elapsed_s: float | None, queue_position: int | None = None
) -> str:
    """One line for a job in ``state`` with ``fraction`` (0-1) done after ``elapsed_s`` seconds of running.

    ``queued``: its place among the waiting jobs (1: next to start); ``running``: percent, elapsed, ETA;
    a finished job: percent and the time it ran (or that it never started).
    """
    if state == "queued":
        return "queued" if queue_position is None else f"queued (position {queue_position})"
    if elapsed_s is None and state != "running":
        return f"{state} before it started"
    elapsed_s = elapsed_s or 0.0
    done = f"{percent(fraction)} · "
    if state != "running":
        return f"{done}ran {format_duration(elapsed_s)}"
    eta = eta_seconds(fraction, elapsed_s)
    left = NO_ETA if eta is None else f"ETA {format_duration(eta)}"
    return f"{done}elapsed {format_duration(elapsed_s)} · {left}"
