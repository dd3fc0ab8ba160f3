"""Multivisor users keep their agents: the hub reads their INI and speaks to multivisor-rpc.

The agent is the real one (``multivisor[rpc]`` from PyPI), running as an event
listener inside a real supervisord, exactly as Multivisor's README sets it up.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetwatch.config import SupervisorSourceConfig, load_config
from fleetwatch.demo.supervisord import Program, Supervisord, free_port
from tests.conftest import HubServer, require, standard_programs, wait_for


def agent_program(port: int) -> Program:
    rpc = Path(sys.executable).parent / "multivisor-rpc"
    require(str(rpc))
    return Program(
        "multivisor-rpc",
        f"{rpc} --bind 127.0.0.1:{port}",
        events="PROCESS_STATE,SUPERVISOR_STATE_CHANGE",
    )


def test_multivisor_ini_and_agent_work_unchanged(
    tmp_path: Path,
    supervisors: Callable[..., Supervisord],
    hub_server: Callable[..., HubServer],
) -> None:
    port = free_port()
    sv = supervisors("sv", [*standard_programs("sv"), agent_program(port)])
    ini = tmp_path / "multivisor.conf"
    ini.write_text(f"[global]\nname=ACME\n\n[supervisor:sv]\nurl=127.0.0.1:{port}\n")
    (source,) = load_config(str(ini)).sources.values()
    assert isinstance(source, SupervisorSourceConfig)
    assert source.multivisor_rpc == f"127.0.0.1:{port}"
    # A long poll interval: within the deadlines below only pushed events can bring changes.
    hub = hub_server(dataclasses.replace(source, poll_interval=60.0))

    src = wait_for(lambda: (s := hub.source("sv"))["status"] == "online" and s, what="online")
    assert src["url"] == f"tcp://127.0.0.1:{port}"
    assert src["version"] == "4.3.0"

    def truth() -> dict[str, str]:
        infos = sv.call("supervisor.getAllProcessInfo")
        return {f"sv:{p['group']}:{p['name']}": p["statename"] for p in infos}

    seen = hub.processes()
    assert "sv:multivisor-rpc:multivisor-rpc" in seen  # listeners are processes too (T19)

    # A change made behind the hub's back arrives through the agent's event stream.
    sv.call("supervisor.stopProcess", "web:web")
    wait_for(lambda: hub.processes()["sv:web:web"]["state"] == "STOPPED", what="pushed stop of web")
    # Actions go through the agent too, with supervisord's faults reported as such.
    assert hub.action("process", "sv:web:web", "start").json()["ok"] is True
    assert truth()["sv:web:web"] == "RUNNING"
    # ... and the answer comes after the hub has the new state (issue #8: not after a poll).
    assert hub.processes()["sv:web:web"]["state"] == "RUNNING"
    result = hub.action("process", "sv:web:web", "signal", signal="NOSUCHSIG").json()
    assert result["ok"] is False
    assert result["detail"] == {"fault": "BAD_SIGNAL", "code": 11}
    wait_for(
        lambda: {k: p["state"] for k, p in hub.processes().items()}.keys() == truth().keys(),
        what="same processes as supervisord",
    )
    chunk = hub.log_text("sv:talker:talker")
    assert "température" in chunk["text"]


def test_supervisord_killed_under_a_live_agent_reads_offline_issue8_killed_daemon(
    supervisors: Callable[..., Supervisord],
    hub_server: Callable[..., HubServer],
) -> None:
    """SIGKILL leaves the agent alive, answering every call with its own connection error.

    That read ``error`` ("CannotSendRequest: Request-sent") for as long as the orphaned
    agent lived; the daemon is down, so the source must read ``offline`` (within two poll
    intervals; bench/latency.py prints the time), and never ``error`` on the way.
    """
    port = free_port()
    sv = supervisors("sv", [Program("sleeper", "/bin/sleep 100000"), agent_program(port)])
    hub = hub_server(SupervisorSourceConfig(name="sv", multivisor_rpc=f"127.0.0.1:{port}"))
    wait_for(lambda: hub.source("sv")["status"] == "online", what="online")
    agent = sv.call("supervisor.getProcessInfo", "multivisor-rpc")["pid"]

    sv.kill()  # supervisord alone: the agent is in a process group of its own
    shown: list[str] = []

    def offline() -> dict[str, Any] | None:
        src = hub.source("sv")
        if not shown or shown[-1] != src["status"]:
            shown.append(src["status"])
        return src if src["status"] == "offline" else None

    src = wait_for(offline, timeout=10, what="offline after kill -9", every=0.01)
    assert Path(f"/proc/{agent}").exists(), "the agent must outlive its supervisord here"
    assert "error" not in shown, shown
    assert "cannot reach its supervisord" in src["error"]
    node = hub.get("/api/nodes")[0]
    assert node["state"] == "offline"
