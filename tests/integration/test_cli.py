"""The ``fleetwatch`` command, run as a user runs it: a real process, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fleetwatch.demo.icecream import icecc_available
from fleetwatch.demo.supervisord import Supervisord, free_port
from tests.conftest import wait_for

FLEETWATCH = [sys.executable, "-m", "fleetwatch.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLEETWATCH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [*FLEETWATCH, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            # SIGINT first: the demo's children live in sessions of their own and are
            # stopped by the demo itself, not by killing its process group.
            p.send_signal(signal.SIGINT)
            try:
                p.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p.stdout:
            p.stdout.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[hub]\nname = "x"\n\n[sources.sv1]\nkind = "supervisor"\nurl = "http://h:1"\n'
            "pol_interval = 2\n",
            ":7: sources.sv1.pol_interval: ",
        ),
        ('[hub]\nlisten = "nowhere"\n', ":2: hub.listen: "),
        ("[hub\nname = 1\n", ":1: "),
    ],
)
def test_a_bad_config_names_file_line_and_key_and_exits_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    result = run("serve", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"fleetwatch: error: {path}{expected}")
    assert "Traceback" not in result.stderr + result.stdout


def test_a_missing_config_exits_2(tmp_path: Path) -> None:
    result = run("serve", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert str(tmp_path / "nope.toml") in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_a_toml_fleet_and_stop_on_sigterm(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    with Supervisord(tmp_path, "sv1", []) as sv:
        port = free_port()
        cfg = tmp_path / "fleet.toml"
        cfg.write_text(
            f'[hub]\nname = "ACME"\nlisten = "127.0.0.1:{port}"\n\n'
            f'[sources.sv1]\nkind = "supervisor"\nurl = "{sv.url}"\npoll_interval = 0.5\n'
        )
        proc = spawn("serve", "-c", str(cfg))
        url = f"http://127.0.0.1:{port}"
        health = wait_for(
            lambda: (h := httpx.get(f"{url}/api/health").json())["sources"].get("online") and h,
            what="hub up with sv1 online",
        )
        assert health["name"] == "ACME"
        assert httpx.get(f"{url}/api/openapi.json").json()["info"]["title"] == "fleetwatch"
        assert "fleetwatch" in httpx.get(f"{url}/").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_serve_reads_multivisor_ini_as_is(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    ini = tmp_path / "multivisor.conf"
    ini.write_text(
        "[global]\nname=ACME\n\n[supervisor:roadrunner]\n\n"
        "[supervisor:coyote]\nurl=:9011\n\n[supervisor:daffy]\nurl=daffy.acme.org:9007\n"
    )
    port = free_port()
    spawn("serve", "-c", str(ini), "--listen", f"127.0.0.1:{port}")
    sources = wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/sources").json(), what="hub up"
    )
    assert [s["id"] for s in sources] == ["coyote", "daffy", "roadrunner"]
    assert httpx.get(f"http://127.0.0.1:{port}/api/health").json()["name"] == "ACME"


def test_demo_runs_a_live_fleet_and_ctrl_c_leaves_nothing_running(
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    port = free_port()
    proc = spawn("demo", "--listen", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    with_icecream = icecc_available() is None  # as root with Debian's icecc: a real cluster too
    wait_for(
        lambda: (
            httpx.get(f"{url}/api/health").json()["sources"]
            == {"online": 4 if with_icecream else 3}
        ),
        timeout=120,
        what="every demo source online",
    )
    if with_icecream:
        jobs = wait_for(
            lambda: [j for j in httpx.get(f"{url}/api/jobs").json() if j["state"] == "done"],
            timeout=120,
            what="real compile jobs done in the demo cluster",
        )
        assert all(j["source"] == "build" for j in jobs)
        assert len(httpx.get(f"{url}/api/nodes", params={"q": "source:build"}).json()) == 3
    processes = wait_for(lambda: len(p := httpx.get(f"{url}/api/processes").json()) == 21 and p)
    assert {p["state"] for p in processes if p["name"] == "idle"} == {"STOPPED"}
    pids = [s["info"]["pid"] for s in httpx.get(f"{url}/api/sources").json() if "pid" in s["info"]]
    pids += [p["pid"] for p in processes if p["pid"]]

    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    out = proc.stdout.read() if proc.stdout else ""
    assert "demo stopped" in out
    assert "Traceback" not in out
    alive = [pid for pid in pids if _alive(pid)]
    assert alive == [], f"processes left running: {alive}"
    assert subprocess.run(["pgrep", "-f", "fleetwatch-demo-.*"], check=False).returncode == 1


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
