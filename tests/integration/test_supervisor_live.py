"""The hub against real supervisord instances, through its public API and stream."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetwatch.demo.supervisord import Program, Supervisord, demo_program
from tests.conftest import HubServer, source_config, wait_for

Supervisors = Callable[..., Supervisord]
HubServers = Callable[..., HubServer]


def truth(sv: Supervisord) -> dict[str, tuple[str, int]]:
    """What supervisord itself reports: id -> (statename, pid)."""
    infos = sv.call("supervisor.getAllProcessInfo")
    return {f"{sv.name}:{p['group']}:{p['name']}": (p["statename"], p["pid"]) for p in infos}


def seen(hub: HubServer, source: str) -> dict[str, tuple[str, int]]:
    return {
        pid: (p["state"], p["pid"] or 0) for pid, p in hub.processes(f"source:{source}").items()
    }


def converged(hub: HubServer, sv: Supervisord) -> bool:
    return seen(hub, sv.name) == truth(sv)


def test_every_process_of_every_transport_appears(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    plain = supervisors("plain")
    unix = supervisors("unix", unix=True)
    auth = supervisors("auth", username="alice", password="s3cret-pw")
    hub = hub_server(*(source_config(sv) for sv in (plain, unix, auth)))

    for sv in (plain, unix, auth):
        wait_for(lambda sv=sv: hub.source(sv.name)["status"] == "online", what=f"{sv.name} online")
    source = hub.source("auth")
    assert source["version"] == "4.3.0"
    assert source["info"]["identification"] == "auth"
    assert "s3cret-pw" not in str(hub.get("/api/fleet"))
    assert hub.source("unix")["url"] == f"unix://{unix.socket}"
    ids = set(hub.processes())
    assert {"plain:workers:worker_00", "plain:workers:worker_01", "unix:idle:idle"} <= ids
    for sv in (plain, unix, auth):
        wait_for(lambda sv=sv: converged(hub, sv), what=f"{sv.name} converged")
    node = hub.get("/api/nodes/plain/127.0.0.1")
    assert node["state"] == "online"
    assert node["metrics"]["processes"] == 6


def test_wrong_password_is_an_error_with_a_clear_text(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("locked", username="alice", password="right")
    sv.password = "wrong"
    hub = hub_server(source_config(sv))
    src = wait_for(lambda: (s := hub.source("locked"))["status"] == "error" and s, what="error")
    assert "401" in src["error"]
    assert "wrong" not in str(src)


def test_start_stop_restart_signal_through_the_api(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv")
    hub = hub_server(source_config(sv, poll_interval=0.5))
    wait_for(lambda: converged(hub, sv), what="initial state")
    stream = hub.ws()
    stream.hello()
    stream.until(lambda s: s.snapshots == 1)

    r = hub.action("process", "sv:web:web", "stop")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "error": None, "detail": None}
    assert truth(sv)["sv:web:web"][0] == "STOPPED"
    stream.until(lambda s: (s.get("process", "sv:web:web") or {}).get("state") == "STOPPED")

    assert hub.action("process", "sv:idle:idle", "start").json()["ok"] is True
    assert truth(sv)["sv:idle:idle"][0] == "RUNNING"
    stream.until(lambda s: (s.get("process", "sv:idle:idle") or {}).get("state") == "RUNNING")

    old_pid = truth(sv)["sv:idle:idle"][1]
    assert hub.action("process", "sv:idle:idle", "restart").json()["ok"] is True
    state, new_pid = truth(sv)["sv:idle:idle"]
    assert state == "RUNNING"
    assert new_pid != old_pid
    stream.until(lambda s: (s.get("process", "sv:idle:idle") or {}).get("pid") == new_pid)

    # SIGSTOP really reaches the process: the kernel shows it stopped (T), then CONT resumes it.
    assert hub.action("process", "sv:idle:idle", "signal", signal="STOP").json()["ok"] is True
    wait_for(lambda: _proc_state(new_pid) == "T", what="process stopped by SIGSTOP")
    assert hub.action("process", "sv:idle:idle", "signal", signal="CONT").json()["ok"] is True
    wait_for(lambda: _proc_state(new_pid) != "T", what="process resumed by SIGCONT")

    # A whole group, then the whole supervisord.
    r = hub.action("group", "sv:workers", "stop").json()
    assert r["ok"] is True
    # supervisord reports each process as it stops: the order is not fixed.
    assert sorted(d["name"] for d in r["detail"]) == ["worker_00", "worker_01"]
    assert {truth(sv)[f"sv:workers:worker_0{i}"][0] for i in (0, 1)} == {"STOPPED"}
    assert hub.action("group", "sv:workers", "start").json()["ok"] is True
    assert hub.action("source", "sv", "stop").json()["ok"] is True
    assert {s for s, _ in truth(sv).values()} == {"STOPPED"}
    stream.until(
        lambda s: all(p["state"] == "STOPPED" for (k, _), p in s.entities.items() if k == "process")
    )
    stream.close()


def _proc_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def test_a_failing_action_says_so(supervisors: Supervisors, hub_server: HubServers) -> None:
    sv = supervisors(
        "sv",
        [
            Program("web", demo_program("service", "web")),
            Program("missing", "/nonexistent/command", autostart=False),
            Program("crasher", "/bin/false", autostart=False, autorestart=False),
        ],
    )
    hub = hub_server(source_config(sv))
    wait_for(lambda: "sv:crasher:crasher" in hub.processes(), what="programs listed")
    result = hub.action("process", "sv:missing:missing", "start").json()
    assert result["ok"] is False
    assert result["detail"]["fault"] == "NO_FILE"
    assert "/nonexistent/command" in result["error"]
    result = hub.action("process", "sv:crasher:crasher", "start").json()
    assert result["ok"] is False
    assert result["detail"]["fault"] in ("SPAWN_ERROR", "ABNORMAL_TERMINATION")
    result = hub.action("process", "sv:web:web", "signal", signal="NOSUCHSIG").json()
    assert result == {
        "ok": False,
        "error": "BAD_SIGNAL: NOSUCHSIG",
        "detail": {"fault": "BAD_SIGNAL", "code": 11},
    }


def test_refused_actions_are_4xx_json(supervisors: Supervisors, hub_server: HubServers) -> None:
    sv = supervisors("sv")
    hub = hub_server(source_config(sv))
    wait_for(lambda: "sv:web:web" in hub.processes(), what="web listed")
    cases = [
        (hub.action("process", "sv:nope:nope", "start"), 404),
        (hub.action("group", "sv:nogroup", "start"), 404),
        (hub.action("process", "sv:web:web", "shutdown"), 409),
        (hub.action("process", "sv:web:web", "signal"), 400),
        (hub.action("process", "sv:web:web", "signal", signal=9), 400),
        (hub.action("process", "sv:web:web", "start", force=True), 400),
        (hub.http.post("/api/actions", content=b"{not json"), 400),
        (hub.http.post("/api/actions", json={"target": {"kind": "process"}}), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["ok"] is False
        assert body["error"]


def test_kill_9_goes_offline_and_comes_back_converged(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv")
    hub = hub_server(source_config(sv, poll_interval=0.5))
    wait_for(lambda: converged(hub, sv), what="initial state")
    before = hub.source("sv")

    sv.kill()
    src = wait_for(
        lambda: (s := hub.source("sv"))["status"] == "offline" and s, what="offline after kill -9"
    )
    assert src["error"]
    assert src["last_seen"] is not None
    assert src["last_seen"] >= before["last_seen"]
    assert hub.get("/api/nodes/sv/127.0.0.1")["state"] == "offline"

    sv.start()
    wait_for(lambda: hub.source("sv")["status"] == "online", what="online again")
    # The model converges to what the new supervisord reports: new pids, same ids.
    wait_for(lambda: converged(hub, sv), what="state equal to supervisord's after restart")
    assert hub.get("/api/nodes/sv/127.0.0.1")["state"] == "online"
    notes = hub.get("/api/notifications")
    assert any(n["title"] == "sv offline" for n in notes)
    assert any(n["title"] == "sv online" for n in notes)


def test_groups_added_and_removed_at_runtime(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv", [Program("web", demo_program("service", "web"))])
    hub = hub_server(source_config(sv))
    wait_for(lambda: set(hub.processes()) == {"sv:web:web"}, what="initial")

    sv.programs.append(Program("newbie", demo_program("service", "newbie")))
    sv.write_config()
    r = hub.action("source", "sv", "update").json()
    assert r == {
        "ok": True,
        "error": None,
        "detail": {"added": ["newbie"], "changed": [], "removed": []},
    }
    wait_for(
        lambda: hub.processes().get("sv:newbie:newbie", {}).get("state") == "RUNNING",
        what="newbie RUNNING",
    )

    sv.programs = [p for p in sv.programs if p.name != "newbie"]
    sv.write_config()
    r = hub.action("source", "sv", "update").json()
    assert r["detail"] == {"added": [], "changed": [], "removed": ["newbie"]}
    wait_for(lambda: set(hub.processes()) == {"sv:web:web"}, what="newbie gone, no ghost")
    assert "newbie" not in str(truth(sv))


def test_log_tail_is_utf8_safe_at_every_window(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv", [Program("talker", demo_program("talker", "talker"))])
    hub = hub_server(source_config(sv))
    logfile = sv.dir / "log" / "talker.out.log"
    wait_for(lambda: logfile.exists() and logfile.stat().st_size > 600, what="talker output")
    wait_for(lambda: "sv:talker:talker" in hub.processes(), what="talker listed")

    url = "/api/processes/sv:talker:talker/log"
    data = logfile.read_bytes()
    for offset in range(0, 80):
        chunk = hub.get(url, params={"offset": offset, "length": 97})
        assert chunk["offset"] >= offset
        raw = data[chunk["offset"] : chunk["end"]]
        assert raw.decode("utf-8") == chunk["text"]
        assert chunk["end"] - chunk["offset"] >= 97 - 6
    for length in range(1, 60):
        chunk = hub.get(url, params={"length": length})
        now = logfile.read_bytes()
        assert now[chunk["offset"] : chunk["end"]].decode("utf-8") == chunk["text"]
        assert chunk["end"] <= chunk["size"]
    # Following: reading on from the last end never loses or repeats a byte.
    chunk = hub.get(url, params={"offset": 0, "length": 500})
    text, end = chunk["text"], chunk["end"]
    while end < 3000:
        nxt = wait_for(
            lambda end=end: (
                (c := hub.get(url, params={"offset": end, "length": 500}))["text"] and c
            ),
            what="more log",
        )
        assert nxt["offset"] == end
        text += nxt["text"]
        end = nxt["end"]
    assert logfile.read_bytes()[:end].decode("utf-8") == text
    assert "température=21°C" in text
    # An offset past the end (the log was cleared) restarts at 0 and says so.
    assert hub.action("process", "sv:talker:talker", "clear_log").json()["ok"] is True
    chunk = hub.get(url, params={"offset": end, "length": 100})
    assert chunk["reset"] is True
    assert chunk["offset"] == 0
    stderr = hub.get(url, params={"channel": "stderr"})
    assert isinstance(stderr["text"], str)


def test_a_log_ending_inside_a_character_reads_up_to_it(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    """Regression: a log whose last bytes are half a character answered 502 (T15 at the end)."""
    writer = shlex.join(
        [
            sys.executable,
            "-c",
            "import os, time; os.write(1, b'caf\\xc3'); time.sleep(3600)",
        ]
    )
    sv = supervisors("sv", [Program("half", writer)])
    hub = hub_server(source_config(sv))
    logfile = sv.dir / "log" / "half.out.log"
    wait_for(lambda: logfile.exists() and logfile.stat().st_size == 4, what="the half character")
    wait_for(lambda: "sv:half:half" in hub.processes(), what="half listed")
    url = "/api/processes/sv:half:half/log"
    for params in ({}, {"offset": 0, "length": 100}, {"offset": 1, "length": 3}):
        chunk = hub.get(url, params=params)
        assert chunk["size"] == 4
        assert chunk["end"] == 3, params
        assert chunk["text"] == "caf"[chunk["offset"] :]


def test_stream_resumes_without_loss_or_doubling(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv")
    hub = hub_server(source_config(sv, poll_interval=0.5))
    wait_for(lambda: converged(hub, sv), what="initial state")
    first = hub.ws()
    first.hello()
    first.until(lambda s: s.snapshots == 1)
    seq = first.seq
    first.close()

    # Changes happen while nobody is connected.
    assert hub.action("process", "sv:web:web", "stop").json()["ok"] is True
    assert hub.action("process", "sv:idle:idle", "start").json()["ok"] is True
    wait_for(lambda: hub.get("/api/fleet")["seq"] > seq, what="changes committed")

    again = hub.ws(f"?since={seq}")
    again.seq = seq
    again.entities = dict(first.entities)
    frame = again.receive()
    assert frame["t"] == "delta", "a resuming client gets the missed deltas, not a snapshot"
    assert frame["seq"] - len(frame["changes"]) == seq
    again.until(
        lambda s: (
            (s.get("process", "sv:web:web") or {}).get("state") == "STOPPED"
            and (s.get("process", "sv:idle:idle") or {}).get("state") == "RUNNING"
        )
    )
    assert again.snapshots == 0

    # The replica built from deltas equals a fresh snapshot taken at the same seq (the
    # flapper keeps changing things, so try until a snapshot and the stream line up).
    def lined_up() -> dict[str, Any] | None:
        snapshot = hub.get("/api/fleet")
        again.until(lambda s: s.seq >= snapshot["seq"])
        return snapshot if again.seq == snapshot["seq"] else None

    snapshot = wait_for(lined_up, what="a snapshot at the stream's seq")
    fresh = {
        (k, e["id"]): e
        for k, plural in (("source", "sources"), ("node", "nodes"), ("process", "processes"))
        for e in snapshot[plural]
    }
    assert again.entities == fresh
    again.close()

    # A client whose seq is beyond what the ring holds gets a snapshot.
    stale = hub.ws("?since=999999999")
    assert stale.receive()["t"] == "snapshot"
    stale.close()


def test_hub_restart_is_survived_by_a_resyncing_client(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv")
    hub = hub_server(source_config(sv))
    wait_for(lambda: converged(hub, sv), what="initial state")
    hub.restart()
    wait_for(lambda: converged(hub, sv), what="state after hub restart")
    stream = hub.ws()
    stream.hello()
    assert stream.receive()["t"] == "snapshot"
    stream.close()


def test_a_supervisord_that_hangs_goes_offline(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    """SIGSTOP: the daemon keeps its socket open but never answers (a hung host)."""
    sv = supervisors("sv")
    hub = hub_server(source_config(sv, poll_interval=0.5))
    wait_for(lambda: hub.source("sv")["status"] == "online", what="online")
    assert sv.proc is not None
    os.kill(sv.proc.pid, signal.SIGSTOP)
    try:
        src = wait_for(lambda: (s := hub.source("sv"))["status"] == "offline" and s, what="offline")
        assert "no answer" in src["error"]
    finally:
        os.kill(sv.proc.pid, signal.SIGCONT)
    wait_for(lambda: hub.source("sv")["status"] == "online", what="online after SIGCONT")
    wait_for(lambda: converged(hub, sv), what="converged after the hang")
