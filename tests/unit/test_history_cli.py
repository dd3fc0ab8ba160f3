"""``fleetwatch history`` / ``status --at`` times (local time), and the ``[history]`` table."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from fleetwatch.cli.history import parse_when
from fleetwatch.config import ConfigError, HistoryConfig, load_config

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


# -------------------------------------------------------------------------- [history]

SOURCE = '[sources.sv]\nkind = "supervisor"\nurl = "http://127.0.0.1:9001"\n'


def test_history_table(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        SOURCE + '[history]\nurl = "postgresql://fw@db/fleet"\nretention = 7\n'
        "max_size = 500\nsnapshot_interval = 600\n"
    )
    config = load_config(str(path))
    assert config.history == HistoryConfig(
        url="postgresql://fw@db/fleet", retention=7.0, max_size=500.0, snapshot_interval=600.0
    )
    path.write_text(SOURCE)
    assert load_config(str(path)).history == HistoryConfig()  # on by default
    path.write_text(SOURCE + "[history]\nenabled = false\n")
    assert load_config(str(path)).history.enabled is False


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("keep = 3", "fleet.toml:5: history.keep: unknown key (expected enabled, url,"),
        ('enabled = "yes"', "fleet.toml:5: history.enabled: expected true or false, got a string"),
        ("retention = 0", "fleet.toml:5: history.retention: must be a positive number of days"),
        ('max_size = "1G"', "fleet.toml:5: history.max_size: expected a number of megabytes"),
        ('url = "mysql://x"', "fleet.toml:5: history.url: expected postgresql://..., sqlite:///"),
        ('url = ""', "fleet.toml:5: history.url: must not be empty"),
    ],
)
def test_history_table_errors(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(SOURCE + f"[history]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value).startswith(f"{tmp_path}/{message}"), str(caught.value)
