"""Flap detection on a real supervisord (issue 12): one flapping note, updated in place.

The flapper exits 0.3 s after it starts, and supervisord (autorestart, startsecs=0)
starts it again at once: STARTING, RUNNING, EXITED, STARTING, ... forever.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetwatch.demo.supervisord import Program, Supervisord
from tests.conftest import HubServer, source_config, wait_for

Supervisors = Callable[..., Supervisord]
HubServers = Callable[..., HubServer]

FLAPPER = Program("flapper", "sh -c 'sleep 0.3; exit 3'", startsecs=0)


def test_a_flapper_gives_one_note_updated_in_place(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv", [FLAPPER, Program("steady", "sleep 3600")])
    hub = hub_server(source_config(sv, poll_interval=0.2), flap_changes=4, flap_window=30)
    pid = "sv:flapper:flapper"
    stream = hub.ws()
    stream.hello()

    def flapping(s: Any) -> list[dict[str, Any]]:
        return [n for n in s.notes if n.get("kind") == "flapping"]

    stream.until(lambda s: len(flapping(s)) >= 4, timeout=60)
    notes = flapping(stream)
    assert {n["id"] for n in notes} == {notes[0]["id"]}
    counts = [n["count"] for n in notes]
    assert counts == sorted(counts)
    assert counts[0] >= 4
    assert counts[-1] > counts[0]
    assert len(set(counts)) == len(counts)
    assert [n.get("updated", False) for n in notes] == [False] + [True] * (len(notes) - 1)
    ts = [n["ts"] for n in notes]
    assert ts == sorted(ts)
    assert ts[-1] > ts[0]
    for n in notes:
        assert n["subject"] == {"kind": "process", "id": pid}
        assert n["severity"] == "warning"
        assert n["source"] == "sv"
        assert n["title"] == "flapper flapping"
    # Not one note per change: after the flapping note, none of the flapper's own.
    first = stream.notes.index(notes[0])
    after = [n for n in stream.notes[first:] if n["subject"]["id"] == pid]
    assert all(n.get("kind") == "flapping" for n in after)
    before = [n for n in stream.notes[:first] if n["subject"]["id"] == pid]
    assert len(before) < 4
    # The history holds it once, at its newest count.
    listed = wait_for(
        lambda: (
            (got := [n for n in hub.get("/api/notifications") if n.get("kind") == "flapping"])
            and got[0]["count"] >= counts[-1]
            and got
        ),
        what="the flapping note in /api/notifications",
    )
    assert len(listed) == 1
    assert listed[0]["id"] == notes[0]["id"]
    stream.close()


def test_stable_again_once_it_stops_flapping(
    supervisors: Supervisors, hub_server: HubServers, tmp_path: Path
) -> None:
    # Exits at once its first 8 runs, then stays up.
    runs = tmp_path / "runs"
    script = (
        f"n=$(cat {runs} 2>/dev/null || echo 0); echo $((n+1)) > {runs}; "
        f"if [ $n -lt 8 ]; then sleep 0.3; exit 3; fi; exec sleep 3600"
    )
    settles = Program("flapper", shlex.join(["sh", "-c", script]), startsecs=0)
    sv = supervisors("sv", [settles])
    hub = hub_server(source_config(sv, poll_interval=0.2), flap_changes=4, flap_window=3)
    stream = hub.ws()
    stream.hello()
    stream.until(lambda s: any(n.get("kind") == "stable" for n in s.notes), timeout=90)
    (stable,) = [n for n in stream.notes if n.get("kind") == "stable"]
    assert stable["subject"]["id"] == "sv:flapper:flapper"
    assert stable["severity"] == "info"
    assert "RUNNING" in stable["text"]
    flapping = [n for n in stream.notes if n.get("kind") == "flapping"]
    assert len({n["id"] for n in flapping}) == 1
    assert stable["id"] != flapping[0]["id"]
    assert stable["count"] == flapping[-1]["count"]
    kinds = [n.get("kind") for n in hub.get("/api/notifications") if n.get("kind")]
    assert kinds == ["flapping", "stable"]
    stream.close()
