"""fleetwatch-agent with its streams passed in: the listener codec, the model, the wire.

supervisord itself runs in tests/integration/test_fleetwatch_agent.py; here the
listener protocol is fed through StringIO (as supervisor's childutils tests do),
and :class:`StandInSupervisor` answers the agent's XML-RPC calls.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import socket
import ssl
import subprocess
import threading
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.agent.agent import SYNC_TYPE, Agent, AgentServer, Waker, is_loopback, run_listener
from fleetwatch.agent.main import EVENTS, print_config
from fleetwatch.agent.protocol import (
    Event,
    ListenerCodec,
    ProtocolError,
    agent_proof,
    apply_event,
    client_proof,
    decode_frame,
    merge_info,
    proof_matches,
)
from fleetwatch.errors import SourceError
from fleetwatch.sources.supervisor.agent import AgentClient, AgentRefused, agent_tls
from fleetwatch.sources.supervisor.protocol import Fault
from fleetwatch.types import Secret
from tests.conftest import free_port, require, wait_for

TOKEN = "unit-token"


def envelope(name: str, payload: str, serial: int = 1, poolserial: int = 1) -> str:
    """An event exactly as supervisord writes it: ``len`` is ``len(payload)`` of the str."""
    return (
        f"ver:3.0 server:sv serial:{serial} pool:fleetwatch poolserial:{poolserial} "
        f"eventname:{name} len:{len(payload)}\n{payload}"
    )


def state_event(state: str, name: str = "web", serial: int = 1, **extra: str) -> str:
    fields = {"processname": name, "groupname": name, "from_state": "STARTING", **extra}
    return envelope(
        f"PROCESS_STATE_{state}",
        " ".join(f"{k}:{v}" for k, v in fields.items()),
        serial=serial,
        poolserial=serial,
    )


def info(name: str, state: str, pid: int = 0, **extra: Any) -> dict[str, Any]:
    codes = {"STOPPED": 0, "STARTING": 10, "RUNNING": 20, "EXITED": 100}
    return {
        "name": name,
        "group": name,
        "start": 1000,
        "stop": 0,
        "now": 1010,
        "state": codes[state],
        "statename": state,
        "spawnerr": "",
        "exitstatus": 0,
        "logfile": "",
        "stdout_logfile": "",
        "stderr_logfile": "",
        "pid": pid,
        "description": f"{state} {pid}",
        **extra,
    }


class StandInSupervisor:
    """Answers the agent's XML-RPC calls from a table (a stand-in for supervisord).

    The real daemon is exercised by the integration tests; these tests need calls
    that answer instantly and deterministically.
    """

    def __init__(self, processes: list[dict[str, Any]]) -> None:
        self.processes = {f"{p['group']}:{p['name']}": p for p in processes}
        self.calls: list[str] = []
        self.pokes = 0

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        self.calls.append(method)
        if method == "supervisor.getProcessInfo":
            return self.processes[params[0]]
        if method == "supervisor.getState":
            return {"statecode": 1, "statename": "RUNNING"}
        raise xmlrpc.client.Fault(1, f"UNKNOWN_METHOD: {method}")

    def multicall(self, calls: list[tuple[str, list[Any]]], timeout: float | None = None) -> Any:
        out: list[Any] = []
        for method, params in calls:
            self.calls.append(method)
            out.append(
                {
                    "supervisor.sendRemoteCommEvent": True,
                    "supervisor.getIdentification": "sv",
                    "supervisor.getSupervisorVersion": "4.3.0",
                    "supervisor.getPID": 42,
                    "supervisor.getAPIVersion": "3.0",
                    "supervisor.getState": {"statecode": 1, "statename": "RUNNING"},
                    "supervisor.getAllProcessInfo": list(self.processes.values()),
                    "supervisor.getAllConfigInfo": [],
                }.get(method)
                if method != "supervisor.getProcessInfo"
                else self.processes[params[0]]
            )
        return out

    def poke(self) -> None:
        self.pokes += 1


class Recorder:
    """A subscriber that keeps the frames it is sent."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send_stream(self, data: bytes, snapshot: bool = False) -> None:
        self.frames.append(decode_frame(data))


def synced_agent(processes: list[dict[str, Any]]) -> tuple[Agent, StandInSupervisor, Recorder]:
    """An agent with its first snapshot installed (marker seen), and a subscriber."""
    sv = StandInSupervisor(processes)
    agent = Agent(sv)  # type: ignore[arg-type]
    sync = agent.begin_sync()
    marker = envelope("REMOTE_COMMUNICATION", f"type:{SYNC_TYPE}\n{sync.marker}", 1, 1)
    agent.handle_event(_parse(marker))
    agent.resync(sync)
    recorder = Recorder()
    agent.subscribe(recorder)
    return agent, sv, recorder


def _parse(text: str) -> Event:
    codec = ListenerCodec()
    codec.feed(text)
    event = codec.next_event()
    assert event is not None
    return event


# -- the listener codec -------------------------------------------------------------


def test_len_counts_characters_not_bytes() -> None:
    # Trap T18: supervisord's len is len() of the str; UTF-8 makes it more bytes.
    payload = (
        "processname:talker groupname:talker pid:7 channel:stdout\ntempérature 21°C ✓ 日本語\n"
    )
    text = envelope("PROCESS_LOG_STDOUT", payload) + state_event("RUNNING", serial=2, pid="7")
    assert len(payload.encode()) > len(payload)
    codec = ListenerCodec()
    codec.feed(text)
    first = codec.next_event()
    assert first is not None
    assert first.payload == payload
    assert first.data == "température 21°C ✓ 日本語\n"
    assert first.fields["channel"] == "stdout"
    second = codec.next_event()
    assert second is not None
    assert second.name == "PROCESS_STATE_RUNNING"
    assert second.fields == {
        "processname": "web",
        "groupname": "web",
        "from_state": "STARTING",
        "pid": "7",
    }
    assert codec.next_event() is None


def test_the_codec_takes_text_as_it_comes() -> None:
    payload = "type:x\nline one\r\nline two é\n"  # \r\n must count as 2 characters
    text = envelope("REMOTE_COMMUNICATION", payload)
    codec = ListenerCodec()
    events = []
    for ch in text:  # one character at a time
        codec.feed(ch)
        event = codec.next_event()
        if event is not None:
            events.append(event)
    assert [e.payload for e in events] == [payload]
    assert codec.wanted() == 0


def test_bad_headers_are_protocol_errors() -> None:
    for line, message in [
        ("ver:3.0 serial:1\n", "lacks"),
        ("ver:3.0 server:s serial:x pool:p poolserial:1 eventname:E len:0\n", "non-numeric"),
        ("garbage\n", "key:value"),
        ("\n", "empty"),
    ]:
        codec = ListenerCodec()
        codec.feed(line)
        with pytest.raises(ProtocolError, match=message):
            codec.next_event()
    with pytest.raises(EOFError):
        ListenerCodec().feed("")


def test_run_listener_speaks_only_the_protocol_on_stdout() -> None:
    agent, sv, recorder = synced_agent([info("web", "STARTING", 7)])
    sv.processes["web:web"] = info("web", "RUNNING", 7)
    stdin = io.StringIO(
        state_event("RUNNING", serial=2, pid="7")
        + envelope(
            "PROCESS_LOG_STDOUT", "processname:web groupname:web pid:7 channel:stdout\n✓é", 3, 3
        )
    )
    stdout = io.StringIO()
    with pytest.raises(EOFError):
        run_listener(agent, stdin, stdout)
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\n"
    assert agent.processes["web:web"]["statename"] == "RUNNING"
    assert [f["t"] for f in recorder.frames] == ["snapshot", "process"]


# -- the model and its numbering -------------------------------------------------------


def test_events_before_the_snapshot_marker_are_in_it_and_later_ones_apply() -> None:
    sv = StandInSupervisor([info("web", "RUNNING", 7)])
    agent = Agent(sv)  # type: ignore[arg-type]
    recorder = Recorder()
    agent.subscribers.add(recorder)
    sync = agent.begin_sync()
    agent.handle_event(_parse(state_event("RUNNING", serial=1, pid="7")))  # before: dropped
    marker = f"type:{SYNC_TYPE}\n{sync.marker}"
    agent.handle_event(_parse(envelope("REMOTE_COMMUNICATION", marker, 2, 2)))
    agent.handle_event(_parse(state_event("STOPPING", serial=3, pid="7")))  # after: kept
    assert recorder.frames == []  # nothing before the snapshot is installed
    agent.resync(sync)
    kinds = [(f["t"], f["seq"]) for f in recorder.frames]
    assert kinds == [("snapshot", 1), ("process", 2)]
    assert recorder.frames[1]["process"]["statename"] == "STOPPING"
    assert agent.ready.is_set()


def test_a_gap_in_poolserial_takes_a_new_snapshot_issue9_overflow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Trap T17: a full pool buffer drops the oldest events; poolserial jumps.
    agent, sv, recorder = synced_agent([info("web", "RUNNING", 7)])
    agent.handle_event(_parse(state_event("STOPPING", serial=2, pid="7")))
    with caplog.at_level(logging.WARNING, "fleetwatch.agent"):
        agent.handle_event(_parse(state_event("STOPPED", serial=6, pid="7")))
    assert "3 event(s) lost" in caplog.text
    sv.processes["web:web"] = info("web", "STOPPED")
    # The worker takes the snapshot; its marker arrives through the listener.
    worker = threading.Thread(target=agent.work_once)
    worker.start()
    marker = wait_for(
        lambda: agent._sync.marker if agent._sync and agent._sync.result else None,
        timeout=5.0,
        what="the snapshot's marker",
        every=0.001,
    )
    agent.handle_event(
        _parse(envelope("REMOTE_COMMUNICATION", f"type:{SYNC_TYPE}\n{marker}", 7, 7))
    )
    worker.join(5)
    seqs = [f["seq"] for f in recorder.frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # consecutive, no gaps
    assert recorder.frames[-1]["t"] == "snapshot"
    assert recorder.frames[-1]["processes"][0]["statename"] == "STOPPED"


def test_groups_added_at_runtime_and_unknown_processes_issue9_t6() -> None:
    agent, sv, recorder = synced_agent([info("web", "RUNNING", 7)])
    # A state event for a process the model has never seen creates it (no KeyError).
    agent.handle_event(_parse(state_event("STARTING", name="newbie", serial=2)))
    assert agent.processes["newbie:newbie"]["statename"] == "STARTING"
    sv.processes["newbie:newbie"] = info("newbie", "STARTING", 9)
    agent.work_once(timeout=0)
    assert agent.processes["newbie:newbie"]["pid"] == 9
    group_removed = envelope("PROCESS_GROUP_REMOVED", "groupname:newbie\n", 3, 3)
    agent.handle_event(_parse(group_removed))
    assert "newbie:newbie" not in agent.processes
    assert recorder.frames[-1] == {"t": "gone", "group": "newbie", "name": "newbie", "seq": 4}
    # A re-read taken before the removal, applied after it, brings no ghost back.
    agent.handle_event(_parse(state_event("STOPPED", name="web", serial=4, pid="7")))
    agent._dirty.add("newbie:newbie")
    agent.work_once(timeout=0)
    assert "newbie:newbie" not in agent.processes
    assert (
        recorder.frames[-1]["t"] != "process" or recorder.frames[-1]["process"]["name"] != "newbie"
    )


def test_the_event_state_wins_over_a_later_reread_issue9_t5() -> None:
    exited = apply_event(info("f", "RUNNING", 5), "f", "f", "EXITED", {"expected": "0", "pid": "5"})
    assert exited["statename"] == "EXITED"
    assert exited["pid"] == 0
    # The re-read already shows the respawn: kept out until its own event comes.
    assert merge_info(exited, info("f", "STARTING", 6)) is None
    running = apply_event(exited, "f", "f", "RUNNING", {"pid": "6"})
    assert merge_info(running, info("f", "RUNNING", 7)) is None  # another run's pid
    assert merge_info(running, info("f", "RUNNING", 6, exitstatus=3)) == info(
        "f", "RUNNING", 6, exitstatus=3
    )


# -- the wire's authentication -----------------------------------------------------


def test_proofs_differ_by_role_and_compare_in_constant_time() -> None:
    hub, agent = client_proof(TOKEN, "a", "c"), agent_proof(TOKEN, "a", "c")
    assert hub != agent  # an agent cannot replay the hub's proof as its own
    assert proof_matches(hub, client_proof(TOKEN, "a", "c"))
    assert not proof_matches(hub, client_proof("other", "a", "c"))
    assert not proof_matches(hub, client_proof(TOKEN, "b", "c"))  # another challenge
    assert not proof_matches(hub, None)
    assert not proof_matches(hub, 123)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("")


def test_the_waker_pokes_until_the_event_arrives() -> None:
    now = [100.0]
    pokes: list[float] = []
    waker = Waker(lambda: pokes.append(now[0]), clock=lambda: now[0])
    waker.expect("web:web", 1.0)
    assert waker.due() == (False, pytest.approx(1.0))
    now[0] = 101.0
    assert waker.due()[0] is True
    now[0] = 101.003
    assert waker.due()[0] is True  # +2 ms
    waker.arrived("web:web")
    now[0] = 105.0
    assert waker.due() == (False, None)  # the rest of the schedule is dropped


def test_print_config() -> None:
    out = io.StringIO()
    args = argparse.Namespace(
        listen="0.0.0.0:9002", tls_cert=None, tls_key=None, username="admin", buffer_size=512
    )
    print_config(args, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[eventlistener:fleetwatch]"
    assert "command=fleetwatch-agent --listen 0.0.0.0:9002" in lines
    assert f"events={EVENTS}" in lines
    assert "buffer_size=512" in lines
    env = next(x for x in lines if x.startswith("environment="))
    assert 'SUPERVISOR_USERNAME="admin"' in env
    assert '; agent = "THIS-HOST:9002"' in lines


# -- the hub's client against the agent's server (real sockets, TLS) ------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = require("openssl")
    cert, key = tmp_path / "agent.pem", tmp_path / "agent.key"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def serve(agent: Agent, token: str | None, tls: ssl.SSLContext | None = None) -> AgentServer:
    server = AgentServer(("127.0.0.1", free_port()), agent, token=token, tls=tls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def _snapshot_and_call(client: AgentClient) -> tuple[dict[str, Any], Any]:
    await client.connect()
    try:
        frames = client.frames()
        first = await anext(frames)
        state = await client.call("supervisor.getState")
        await frames.aclose()
        return first, state
    finally:
        await client.aclose()


def test_tls_and_token_end_to_end(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    agent, _, _ = synced_agent([info("web", "RUNNING", 7)])
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = serve(agent, TOKEN, server_tls)
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        client_tls = agent_tls(str(cert))  # what a source's agent_ca = "..." makes
        assert client_tls is not None
        client = AgentClient(address, token=Secret(TOKEN), tls=client_tls)
        snapshot, state = asyncio.run(_snapshot_and_call(client))
        assert snapshot["t"] == "snapshot"
        assert snapshot["processes"][0]["pid"] == 7
        assert state == {"statecode": 1, "statename": "RUNNING"}
        # Plain TCP to a TLS agent gets nowhere; a wrong token neither, over TLS.
        plain = AgentClient(address, token=Secret(TOKEN), connect_timeout=3)
        with pytest.raises(Exception, match=r"closed|timed|no answer|reset"):
            asyncio.run(_snapshot_and_call(plain))
        wrong = AgentClient(address, token=Secret("nope"), tls=client_tls)
        with pytest.raises(AgentRefused, match="bad or missing token"):
            asyncio.run(_snapshot_and_call(wrong))
    finally:
        server.shutdown()
        server.server_close()


def test_faults_and_unknown_methods_come_back_as_faults() -> None:
    agent, sv, _ = synced_agent([info("web", "RUNNING", 7)])
    server = serve(agent, None)

    async def calls() -> tuple[Any, Any]:
        client = AgentClient(f"127.0.0.1:{server.server_address[1]}")
        await client.connect()
        try:
            with pytest.raises(Fault) as unknown:
                await client.call("os.system", "true")
            with pytest.raises(Fault) as bad:
                await client.call("supervisor.nosuch")
            return unknown.value, bad.value
        finally:
            await client.aclose()

    try:
        unknown, bad = asyncio.run(calls())
        assert unknown.name == "UNKNOWN_METHOD"
        assert "os.system" not in sv.calls  # never passed on
        assert isinstance(bad, Fault)
    finally:
        server.shutdown()
        server.server_close()


def test_an_agent_without_a_token_is_refused_by_a_hub_with_one() -> None:
    agent, _, _ = synced_agent([info("web", "RUNNING", 7)])
    server = serve(agent, None)
    try:
        client = AgentClient(f"127.0.0.1:{server.server_address[1]}", token=Secret(TOKEN))
        with pytest.raises(AgentRefused, match="runs without a token"):
            asyncio.run(_snapshot_and_call(client))
    finally:
        server.shutdown()
        server.server_close()


def test_a_silent_peer_is_not_an_agent() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = AgentClient(f"127.0.0.1:{port}", connect_timeout=0.5)
        with pytest.raises(Exception, match=r"no answer within 0\.5s"):
            asyncio.run(_snapshot_and_call(client))


def test_a_missing_agent_ca_is_a_clear_error(tmp_path: Path) -> None:
    assert agent_tls(None) is None
    with pytest.raises(SourceError, match=r"agent_ca .*nope\.pem"):
        agent_tls(str(tmp_path / "nope.pem"))
