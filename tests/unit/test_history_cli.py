"""``fleetwatch history`` / ``status --at`` times: what the command line takes (local time)."""

from __future__ import annotations

import datetime

import pytest

from fleetwatch.cli.history import parse_when

NOW = datetime.datetime(2026, 12, 2, 10, 30).timestamp()  # local time


def local(*args: int) -> float:
    return datetime.datetime(*args).timestamp()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-2h", NOW - 7200),
        ("2h ago", NOW - 7200),
        ("-30m", NOW - 1800),
        ("- 1d", NOW - 86400),
        ("1.5w ago", NOW - 1.5 * 7 * 86400),
        ("now", NOW),
        ("3:12", local(2026, 12, 2, 3, 12)),
        ("11:00", local(2026, 12, 1, 11, 0)),  # later today: yesterday's
        ("03:12:30", local(2026, 12, 2, 3, 12, 30)),
        ("yesterday 03:00", local(2026, 12, 1, 3, 0)),
        ("Yesterday", local(2026, 12, 1, 0, 0)),
        ("today 8:05", local(2026, 12, 2, 8, 5)),
        ("2026-12-02T03:12", local(2026, 12, 2, 3, 12)),
        ("2026-12-02 03:12:00", local(2026, 12, 2, 3, 12)),
        ("2026-12-02T03:12:00+00:00", 1796181120.0),
        ("2026-12-02T03:12:00Z", 1796181120.0),
        ("1796181120", 1796181120.0),
    ],
)
def test_times(text: str, expected: float) -> None:
    assert parse_when(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "3 a.m.", "25:00", "yesterday noon", "-2y", "12", "soon"])
def test_not_times(text: str) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_when(text, NOW)
