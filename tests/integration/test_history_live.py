"""The history with a real hub on a real supervisord (issue 13): written as the hub runs,
kept across a hub restart on the same config (nothing lost, a new epoch appended), and
read back through the API and the ``fleetwatch history`` / ``status --at`` commands (the
venv's script, run as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.config import HistoryConfig
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program
from tests.conftest import HubServer, source_config, wait_for

pytestmark = pytest.mark.real

FLEETWATCH = str(Path(sys.executable).with_name("fleetwatch"))
WEB = "h1:web:web"


def fleetwatch(hub: HubServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLEETWATCH, *args, "--url", hub.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "TZ": "UTC"},
    )


def state_of(hub: HubServer, id: str) -> str | None:
    process: dict[str, Any] | None = hub.processes().get(id)
    return None if process is None else str(process["state"])


def recorded(hub: HubServer, since: float) -> str | None:
    """The last state of web the history holds (since ``since``)."""
    answer = hub.get(f"/api/history/processes/{WEB}", params={"since": since})
    changes = answer["changes"]
    if changes:
        return str(changes[-1]["state"])
    return None if answer["initial"] is None else str(answer["initial"]["state"])


def act(hub: HubServer, name: str, want: str) -> None:
    r = hub.action("process", WEB, name)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True, r.text
    wait_for(lambda: state_of(hub, WEB) == want, 30, f"{WEB} {want}")


def test_history_across_a_hub_restart(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    sv = supervisors(
        "h1",
        [
            Program("web", demo_program("service", "h1-web")),
            Program("worker", demo_program("worker", "h1-worker")),
        ],
    )
    history = HistoryConfig(url=str(tmp_path / "fleet.history.db"), snapshot_interval=1)
    hub = hub_server(source_config(sv), history=history)
    wait_for(lambda: state_of(hub, WEB) == "RUNNING", 30, "web running")
    wait_for(lambda: recorded(hub, 0) == "RUNNING", 30, "web's RUNNING written")
    start = time.time()
    act(hub, "stop", "STOPPED")
    stopped = time.time()
    first_epoch = hub.get("/api/fleet")["epoch"]

    hub.restart()  # a clean stop flushes the history; the new run appends to it
    wait_for(lambda: state_of(hub, WEB) == "STOPPED", 30, "web seen again after the restart")
    assert hub.get("/api/fleet")["epoch"] != first_epoch
    act(hub, "start", "RUNNING")
    wait_for(
        lambda: (
            [
                c["state"]
                for c in hub.get(f"/api/history/processes/{WEB}", params={"since": start})[
                    "changes"
                ]
            ][-1:]
            == ["RUNNING"]
        ),
        30,
        "the start written",
    )

    changes = hub.get(f"/api/history/processes/{WEB}", params={"since": start})["changes"]
    states = [c["state"] for c in changes]
    # Before the restart: the stop's transitions; after it: the start's. Nothing lost.
    assert states[-1] == "RUNNING"
    assert "STOPPED" in states
    assert states.index("STOPPED") < len(states) - 1
    assert changes[states.index("STOPPED")]["ts"] <= stopped
    between = hub.get("/api/history/fleet", params={"at": stopped})
    assert between["epoch"] == first_epoch
    assert {p["id"]: p["state"] for p in between["processes"]}[WEB] == "STOPPED"
    assert {p["id"]: p["state"] for p in between["processes"]}["h1:worker:worker"] == "RUNNING"
    actions = hub.get("/api/history/events", params={"since": start, "kind": "action"})["events"]
    assert [(a["value"]["name"], a["value"]["ok"]) for a in actions] == [
        ("stop", True),
        ("start", True),
    ]
    info = hub.get("/api/history")
    assert info["backend"] == "sqlite"
    assert info["snapshots"] >= 2  # one at each start
    assert (tmp_path / "fleet.history.db").stat().st_mode & 0o777 == 0o600

    # The command line: the same history, as tables and as JSON.
    done = fleetwatch(hub, "history", WEB, "--since", str(start))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{WEB}  ")
    assert lines[1].split() == ["WHEN", "STATE", "DETAIL"]
    assert lines[2].split()[:3] == ["at", "start", "RUNNING"]
    assert [line.split()[2] for line in lines[3:]] == states
    done = fleetwatch(hub, "history", "web", "--since=-1h", "--json")  # a bare name, relative
    assert done.returncode == 0, done.stderr
    assert [c["state"] for c in json.loads(done.stdout)["changes"]][-1] == "RUNNING"
    (node,) = hub.get("/api/nodes")
    done = fleetwatch(hub, "history", node["id"], "--since", "-1h")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "jobs: 0 done, 0 failed, 0 local"

    done = fleetwatch(hub, "status", "--at", str(stopped))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("past view: the fleet at ")
    web_row = next(line for line in lines if line.startswith(WEB))
    assert web_row.split()[1] == "STOPPED"
    done = fleetwatch(hub, "status", "name:web", "--at", str(stopped), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [p["id"] for p in data["processes"]] == [WEB]
    assert data["at"] == pytest.approx(stopped)

    # Errors: one line, exit 2.
    for args in (
        ("history", WEB, "--since", "whenever"),
        ("history", "no-such-thing"),
        ("status", "--at", "1000"),
    ):
        done = fleetwatch(hub, *args)
        assert done.returncode == 2, (args, done.stdout)
        assert done.stderr.startswith("fleetwatch: error: "), done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
