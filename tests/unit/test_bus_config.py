"""The bus's settings: ``[hub] bus``, ``--bus`` and ``--name`` checked, passwords hidden."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetwatch.bus import check_bus_url, redacted
from fleetwatch.config import ConfigError, HubConfig, load_config


def test_bus_key_is_checked_with_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\nname = "x"\nbus = "http://127.0.0.1:6379"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value).startswith(f"{path}:3: hub.bus: expected redis://")


def test_a_hub_on_a_bus_needs_no_sources(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\nbus = "redis://:pw@127.0.0.1:6379/1"\n', encoding="utf-8")
    cfg = load_config(str(path))
    assert cfg.hub.bus == "redis://:pw@127.0.0.1:6379/1"
    assert cfg.sources == {}
    assert "pw" not in repr(cfg.hub)
    path.write_text('[hub]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="no sources"):
        load_config(str(path))
    assert load_config(str(path), sources_optional=True).sources == {}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:1", "expected redis://"),
        ("redis://", "no host"),
        ("redis://h:0", "1..65535"),
        ("redis://h:99999", "not a Redis URL"),
        ("redis://h:1/x", "database must be a number"),
        ("unix://", "socket path"),
    ],
)
def test_bad_bus_urls(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_bus_url(url)


def test_good_bus_urls_and_redaction() -> None:
    for url in ("redis://127.0.0.1:6379", "redis://h/2", "rediss://u:p@h:1/0", "unix:///r.sock"):
        assert check_bus_url(url) == url
    assert redacted("redis://u:secret@h:1/0") == "redis://u:***@h:1/0"
    assert "secret" not in redacted("redis://:secret@h:1")
    with pytest.raises(ValueError, match="expected redis://") as caught:
        check_bus_url("ftp://u:secret@h:1")
    assert "secret" not in str(caught.value)
    assert HubConfig().bus is None


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_refuses_bad_bus_and_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9"\n', "utf-8")
    r = run("collect", "-c", str(cfg), "--bus", "http://:secret@h:1")
    assert r.returncode == 2
    assert "--bus: expected redis://" in r.stderr
    assert "secret" not in r.stderr
    assert "Traceback" not in r.stderr
    r = run("collect", "-c", str(cfg), "--bus", "redis://127.0.0.1:9", "--name", "a b")
    assert r.returncode == 2
    assert "--name 'a b'" in r.stderr
    r = run("serve", "-c", str(cfg), "--bus", "redis://h:1/x")
    assert r.returncode == 2
    assert "--bus: the database must be a number" in r.stderr
