"""The progress line people read: percent done, elapsed time, an ETA once the pace says something, the place
in the queue."""

from __future__ import annotations

import pytest

from numl_core.progress_text import (
    ETA_MIN_ELAPSED_S,
    ETA_MIN_FRACTION,
    eta_seconds,
    format_duration,
    percent,
    progress_line,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0 s"),
        (-3.0, "0 s"),
        (59.4, "59 s"),
        (60.0, "1 min 00 s"),
        (3599, "59 min 59 s"),
        (3660, "1 h 01 min"),
    ],
)
def test_durations_read_in_seconds_minutes_and_hours(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_eta_is_the_remaining_fraction_at_the_pace_so_far() -> None:
    assert eta_seconds(0.25, 30.0) == pytest.approx(90.0)
    assert eta_seconds(1.0, 30.0) == 0.0


def test_eta_waits_until_fraction_and_elapsed_time_are_informative() -> None:
    assert eta_seconds(ETA_MIN_FRACTION, 600.0) is None  # at most 2 % done
    assert eta_seconds(0.5, ETA_MIN_ELAPSED_S - 0.1) is None  # only just started
    assert eta_seconds(0.0, 600.0) is None and eta_seconds(1.5, 600.0) is None
    assert eta_seconds(ETA_MIN_FRACTION + 0.01, ETA_MIN_ELAPSED_S) is not None


def test_percent_shows_100_only_when_finished() -> None:
    assert [percent(f) for f in (0.0, 0.5, 0.29, 0.999, 1.0, 2.0)] == [
        "0 %",
        "50 %",
        "29 %",
        "99 %",
        "100 %",
        "100 %",
    ]


def test_progress_line_of_each_state() -> None:
    assert progress_line("queued", 0.0, None) == "queued"
    assert progress_line("queued", 0.0, None, queue_position=3) == "queued (position 3)"
    assert progress_line("running", 0.0, None) == "0 % · elapsed 0 s · ETA —"
    assert progress_line("running", 0.01, 120.0) == "1 % · elapsed 2 min 00 s · ETA —"
    assert progress_line("running", 0.4, 120.0) == "40 % · elapsed 2 min 00 s · ETA 3 min 00 s"
    assert progress_line("done", 1.0, 75.0) == "100 % · ran 1 min 15 s"
    assert progress_line("cancelled", 0.3, 12.0) == "30 % · ran 12 s"
    assert progress_line("cancelled", 0.0, None) == "cancelled before it started"
