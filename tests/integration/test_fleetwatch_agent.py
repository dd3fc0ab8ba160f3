"""fleetwatch-agent under a real supervisord, watched by a real hub (issue 9, section 3).

The agent runs as supervisord runs any event listener (``python -m fleetwatch.agent``
from an ``[eventlistener:fleetwatch]`` section). The hub is the real server; long
poll intervals make sure that what the hub learns within the deadlines came pushed.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fleetwatch
from fleetwatch.agent.agent import Supervisor
from fleetwatch.agent.main import EVENTS
from fleetwatch.agent.protocol import client_proof
from fleetwatch.config import SupervisorSourceConfig
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port
from fleetwatch.sources.supervisor.agent import AgentClient, AgentRefused
from fleetwatch.types import Secret
from tests.conftest import HubServer, wait_for

TOKEN = "s3cret-agent-token-ü"


def agent_program(port: int, token: str | None = TOKEN, *args: str) -> Program:
    extra = {"environment": f'FLEETWATCH_AGENT_TOKEN="{token}"'} if token else {}
    command = " ".join(
        [sys.executable, "-m", "fleetwatch.agent", "--listen", f"127.0.0.1:{port}", *args]
    )
    return Program("fleetwatch", command, events=EVENTS, extra=extra)


def quiet_programs(prefix: str) -> list[Program]:
    """Programs that change only when told to (the model can be compared at any time)."""
    return [
        Program("web", demo_program("service", f"{prefix}-web")),
        Program("talker", demo_program("talker", f"{prefix}-talker")),
        Program("idle", demo_program("service", f"{prefix}-idle"), autostart=False),
        Program("worker", demo_program("worker", f"{prefix}-worker"), numprocs=2, group="workers"),
    ]


def truth(sv: Supervisord) -> dict[str, tuple[str, int | None]]:
    infos = sv.call("supervisor.getAllProcessInfo")
    return {
        f"{sv.name}:{p['group']}:{p['name']}": (p["statename"], p["pid"] or None) for p in infos
    }


def seen(hub: HubServer) -> dict[str, tuple[str, int | None]]:
    return {k: (p["state"], p["pid"]) for k, p in hub.processes().items()}


def agent_log(sv: Supervisord) -> str:
    path = sv.dir / "log" / "fleetwatch.err.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no agent log)"


def wait_model_equal(hub: HubServer, sv: Supervisord, what: str, timeout: float = 20) -> None:
    wait_for(
        lambda: seen(hub) == truth(sv), timeout, f"{what}: the hub's model == getAllProcessInfo"
    )


def agent_source(sv: Supervisord, port: int, **kw: Any) -> SupervisorSourceConfig:
    return SupervisorSourceConfig(
        name=sv.name, agent=f"127.0.0.1:{port}", agent_token=Secret(TOKEN), **kw
    )


def test_events_reach_the_hub_and_control_calls_work(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    port = free_port()
    flapper = Program("flapper", demo_program("flapper", "sv-flapper"))
    sv = supervisors("sv", [*quiet_programs("sv"), flapper, agent_program(port)])
    # No url: everything goes through the agent; a long interval: nothing is polled.
    hub = hub_server(agent_source(sv, port, poll_interval=60.0))
    src = wait_for(lambda: (s := hub.source("sv"))["status"] == "online" and s, what="online")
    assert src["info"]["channel"] == "agent", src
    assert src["url"] == f"tcp://127.0.0.1:{port}"
    assert src["version"] == "4.3.0"
    assert src["error"] is None
    assert "sv:fleetwatch:fleetwatch" in hub.processes()  # listeners are processes too (T19)

    # A change made behind the hub's back is pushed.
    sv.call("supervisor.stopProcess", "web:web")
    wait_for(lambda: hub.processes()["sv:web:web"]["state"] == "STOPPED", what="pushed stop")
    # Spontaneous transitions are pushed too: the flapper exits (EXITED) and is respawned.
    first = hub.processes()["sv:flapper:flapper"]["started"]
    wait_for(
        lambda: (
            (p := hub.processes()["sv:flapper:flapper"])["started"] != first
            and p["state"] == "RUNNING"
        ),
        timeout=20,
        what="flapper respawned and RUNNING, pushed",
    )
    # Control calls go through the agent, faults reported as supervisord said them.
    assert hub.action("process", "sv:web:web", "start").json()["ok"] is True
    assert truth(sv)["sv:web:web"][0] == "RUNNING"
    result = hub.action("process", "sv:web:web", "signal", signal="NOSUCHSIG").json()
    assert result["ok"] is False
    assert result["detail"] == {"fault": "BAD_SIGNAL", "code": 11}
    group = hub.action("group", "sv:workers", "restart").json()
    assert group["ok"] is True, group
    chunk = hub.log_text("sv:talker:talker")
    assert "température" in chunk["text"]
    # Without the flapper (it changes every few seconds) the model equals supervisord's.
    sv.call("supervisor.stopProcess", "flapper")
    wait_model_equal(hub, sv, "after the actions")


def test_a_group_added_at_runtime_is_pushed(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    port = free_port()
    sv = supervisors("sv", [*quiet_programs("sv"), agent_program(port)])
    hub = hub_server(agent_source(sv, port, poll_interval=60.0))
    wait_model_equal(hub, sv, "at start")
    # Multivisor's trap T6: the first event of a new group crashed its loop.
    sv.programs.append(Program("newbie", demo_program("service", "sv-newbie")))
    sv.write_config()
    result = hub.action("source", "sv", "update").json()
    assert result["ok"] is True, result
    assert result["detail"]["added"] == ["newbie"]
    wait_for(
        lambda: hub.processes().get("sv:newbie:newbie", {}).get("state") == "RUNNING",
        what="the new group's process, pushed",
    )
    sv.programs.pop()
    sv.write_config()
    assert hub.action("source", "sv", "update").json()["ok"] is True
    wait_for(lambda: "sv:newbie:newbie" not in hub.processes(), what="the removed group gone")
    wait_model_equal(hub, sv, "after update")


def _handshake(port: int, proof: Any) -> dict[str, Any]:
    """Authenticate by hand; return the agent's answer (or {} when it hung up)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        hello = json.loads(f.readline())
        assert hello["t"] == "hello"
        assert hello["auth"] == "token"
        nonce = "n0nce"
        value = proof(hello["nonce"], nonce) if callable(proof) else proof
        f.write(json.dumps({"t": "auth", "nonce": nonce, "proof": value}).encode() + b"\n")
        f.flush()
        answer = f.readline()
        if not answer:
            return {}
        frame: dict[str, Any] = json.loads(answer)
        if frame["t"] == "refused":
            assert f.readline() == b"", "the agent must hang up after refusing"
        return frame


def test_connections_without_or_with_a_wrong_token_are_refused(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    port = free_port()
    sv = supervisors("sv", [*quiet_programs("sv"), agent_program(port)])
    wait_for(lambda: _connects(port), what="the agent to listen")
    assert _handshake(port, None)["t"] == "refused"
    assert _handshake(port, "0" * 64)["t"] == "refused"
    assert _handshake(port, lambda a, c: client_proof("wrong", a, c))["t"] == "refused"
    assert _handshake(port, lambda a, c: client_proof(TOKEN, a, c))["t"] == "welcome"
    # A refused connection is given nothing: no calls, no stream.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        f.readline()
        f.write(b'{"op":"call","id":1,"method":"supervisor.shutdown","params":[]}\n')
        f.flush()
        assert json.loads(f.readline())["t"] == "refused"
    assert sv.call("supervisor.getState")["statename"] == "RUNNING"  # not shut down

    async def client(token: str | None) -> None:
        c = AgentClient(f"127.0.0.1:{port}", token=Secret(token) if token else None)
        try:
            await c.connect()
        finally:
            await c.aclose()

    with pytest.raises(AgentRefused, match="bad or missing token"):
        asyncio.run(client("wrong"))
    with pytest.raises(AgentRefused, match="bad or missing token"):
        asyncio.run(client(None))
    asyncio.run(client(TOKEN))
    # A hub configured with a wrong token says so.
    wrong = SupervisorSourceConfig(name="sv", agent=f"127.0.0.1:{port}", agent_token=Secret("x"))
    hub = hub_server(wrong)
    src = wait_for(lambda: (s := hub.source("sv"))["status"] == "error" and s, what="error")
    assert "bad or missing token" in src["error"]
    assert hub.processes() == {}


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_agent_restart_and_supervisord_restart_are_survived(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    port = free_port()
    sv = supervisors("sv", [*quiet_programs("sv"), agent_program(port)])
    # With url too: polled while the agent is away.
    hub = hub_server(agent_source(sv, port, url=sv.url, poll_interval=0.5))
    wait_for(lambda: hub.source("sv")["info"].get("channel") == "agent", what="agent channel")
    wait_model_equal(hub, sv, "at start")

    # 1. The agent is stopped: the hub polls and says so; a change meanwhile is seen.
    sv.call("supervisor.stopProcess", "fleetwatch")
    src = wait_for(
        lambda: (s := hub.source("sv"))["info"].get("channel") == "polling" and s,
        what="fallback to polling",
    )
    assert src["status"] == "online"
    assert "fleetwatch-agent at 127.0.0.1" in src["error"], src
    assert src["info"]["agent_error"]
    sv.call("supervisor.stopProcess", "web")
    wait_model_equal(hub, sv, "while polling")
    # 2. The agent is back: the hub returns to it.
    sv.call("supervisor.startProcess", "fleetwatch")
    wait_for(
        lambda: hub.source("sv")["info"].get("channel") == "agent",
        timeout=30,
        what="back on the agent, log: " + agent_log(sv),
    )
    assert hub.source("sv")["error"] is None
    sv.call("supervisor.startProcess", "web")
    wait_model_equal(hub, sv, "after the agent restarted")
    # 2b. The agent is killed (supervisord restarts it at once): the hub follows the new one.
    agent_pid = sv.call("supervisor.getProcessInfo", "fleetwatch")["pid"]
    epoch = hub.source("sv")["info"]["epoch"]
    os.kill(agent_pid, signal.SIGKILL)
    wait_for(
        lambda: (
            (i := hub.source("sv")["info"]).get("epoch") not in (None, epoch)
            and i.get("channel") == "agent"
        ),
        timeout=30,
        what="on the restarted agent, log: " + agent_log(sv),
    )
    assert truth(sv)["sv:fleetwatch:fleetwatch"][1] != agent_pid
    sv.call("supervisor.stopProcess", "web")
    wait_model_equal(hub, sv, "after the agent was killed")
    sv.call("supervisor.startProcess", "web")

    # 3. supervisord restarts (same pid, every program and the agent anew).
    old = truth(sv)
    sv.call("supervisor.restart")
    wait_for(lambda: _restarted(sv, old), timeout=30, what="supervisord restarted")
    wait_for(
        lambda: hub.source("sv")["info"].get("channel") == "agent",
        timeout=30,
        what="on the agent after the restart",
    )
    wait_for(lambda: truth(sv)["sv:web:web"][0] == "RUNNING", what="autostart of web")
    wait_model_equal(hub, sv, "after supervisord restarted", timeout=30)
    assert seen(hub)["sv:web:web"][0] == "RUNNING"


def _restarted(sv: Supervisord, old: dict[str, tuple[str, int | None]]) -> bool:
    try:
        now = truth(sv)
    except Exception:  # refused, or SHUTDOWN_STATE while it restarts
        return False
    return now["sv:workers:worker_00"][1] not in (None, old["sv:workers:worker_00"][1])


def test_without_a_token_only_loopback_is_allowed(tmp_path: Path) -> None:
    env = {**os.environ, "SUPERVISOR_SERVER_URL": f"unix://{tmp_path}/none.sock"}
    env.pop("FLEETWATCH_AGENT_TOKEN", None)
    run = subprocess.run(
        [sys.executable, "-m", "fleetwatch.agent", "--listen", f"0.0.0.0:{free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 2
    assert "refusing to listen on 0.0.0.0" in run.stderr
    assert "without a token" in run.stderr
    assert run.stdout == ""  # stdout is the event protocol's: nothing else goes there


def test_print_config_is_a_section_supervisord_accepts(
    tmp_path: Path, hub_server: Callable[..., HubServer]
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FLEETWATCH_AGENT_TOKEN"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetwatch.agent",
            "--print-config",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "[eventlistener:fleetwatch]"
    assert f"events={EVENTS}" in lines
    assert "buffer_size=1024" in lines
    token = next(x for x in lines if x.startswith("environment=")).split('"')[1]
    assert len(token) >= 40
    assert f'; agent_token = "{token}"' in lines
    # Pasted into a real supervisord.conf (with this venv's Python for the command), it runs.
    sv = Supervisord(tmp_path, "sv", quiet_programs("sv"))
    sv.write_config()
    section = out.replace(
        "command=fleetwatch-agent", f"command={sys.executable} -m fleetwatch.agent"
    )
    sv.conf.write_text(sv.conf.read_text() + "\n" + section.replace("AUTO", str(sv.dir / "a.log")))
    sv.start()
    try:
        hub = hub_server(
            SupervisorSourceConfig(
                name="sv", agent=f"127.0.0.1:{port}", agent_token=Secret(token), poll_interval=60
            )
        )
        wait_model_equal(hub, sv, "with the printed section")
    finally:
        sv.stop()


def oldest_python() -> str:
    """A Python 3.8 if this machine has one (the oldest the agent supports), else ours."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python")))
    candidates += [p for p in [shutil.which("python3.8")] if p]
    for python in candidates:
        if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
            return python
    return sys.executable


def test_the_agent_runs_on_the_oldest_python_here(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    python = oldest_python()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert python == sys.executable or version == "(3, 8)", (python, version)
    port = free_port()
    # Only the agent's package on the path: it must need nothing outside the stdlib.
    src = Path(fleetwatch.__file__).parent.parent
    program = Program(
        "fleetwatch",
        f"{python} -m fleetwatch.agent --listen 127.0.0.1:{port}",
        events=EVENTS,
        extra={"environment": f'FLEETWATCH_AGENT_TOKEN="{TOKEN}",PYTHONPATH="{src}"'},
    )
    sv = supervisors("sv", [*quiet_programs("sv"), program])
    hub = hub_server(agent_source(sv, port, poll_interval=60.0))
    wait_model_equal(hub, sv, f"agent on Python {version}, log: {agent_log(sv)}")
    sv.call("supervisor.stopProcess", "web")
    wait_for(
        lambda: hub.processes()["sv:web:web"]["state"] == "STOPPED",
        what=f"a pushed stop from the agent on Python {version}",
    )


def test_supervisord_with_basic_auth_over_unix_and_http(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    port = free_port()
    env = (
        f'FLEETWATCH_AGENT_TOKEN="{TOKEN}",SUPERVISOR_USERNAME="lab",SUPERVISOR_PASSWORD="p@ss:wö"'
    )
    program = agent_program(port)
    program.extra["environment"] = env
    sv = supervisors("sv", [*quiet_programs("sv"), program], username="lab", password="p@ss:wö")
    # The agent reaches supervisord over the unix socket with the credentials it was given.
    hub = hub_server(agent_source(sv, port, poll_interval=60.0))
    wait_model_equal(hub, sv, "with basic auth, log: " + agent_log(sv))
    assert hub.action("process", "sv:idle:idle", "start").json()["ok"] is True
    # Over HTTP too (SUPERVISOR_SERVER_URL is http:// when there is no unix socket).
    http = Supervisor(sv.http_url, "lab", "p@ss:wö", timeout=10)
    assert http.call("supervisor.getState")["statename"] == "RUNNING"
    http.poke()  # connects and hangs up: no request, no error
    with pytest.raises(xmlrpc.client.ProtocolError) as refused:
        Supervisor(sv.http_url, "lab", "wrong", timeout=10).call("supervisor.getState")
    assert refused.value.errcode == 401
