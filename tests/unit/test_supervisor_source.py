"""SupervisorSource against a fake supervisord behind httpx.MockTransport (no network).

The fake answers like supervisor 4.3.0 does: multicall values bare and faults as
structs, Fault 60/70 for start/stop of a process already there, ``tail`` of a
missing log ``['', 0, False]`` but ``read`` of it Fault 20, and HTTP 500 for a log
window that starts or ends inside a UTF-8 character (T15).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import math
import time
import xmlrpc.client
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import anyio
import httpx
import pytest

from fleetwatch.config import Config, SupervisorSourceConfig
from fleetwatch.errors import RemoteProtocolError, SourceError, UnknownTarget, Unreachable
from fleetwatch.hub import Hub, SourceHandle
from fleetwatch.model import Entity, Kind, Node, Process, Source
from fleetwatch.sources.base import ActionResult, Target
from fleetwatch.sources.supervisor import ACTIONS, LogChunk, SupervisorSource
from fleetwatch.sources.supervisor.client import HTTPStatusError, XmlRpcClient, public_url
from fleetwatch.sources.supervisor.protocol import (
    Fault,
    decode_multicall,
    decode_response,
    decode_struct,
)
from fleetwatch.sources.supervisor.source import _decode_calls, _split_structs
from fleetwatch.types import Secret

pytestmark = pytest.mark.anyio

DEADLINE = 5.0
PASSWORD = "s3cret-pw-Zq9"
NOW = 1_700_000_000

# A log with characters of 1, 2, 3 and 4 bytes, ending in a 4-byte one.
LOG = "héllo wörld\n€uro ✓ ok → ∑\n😀 done ü 😀".encode()


class HTTP500(Exception):
    """The fake's way of failing a request like supervisord's medusa does."""


def _fault(code: int, name: str, text: str = "") -> xmlrpc.client.Fault:
    return xmlrpc.client.Fault(code, f"{name}: {text}" if text else name)


class FakeSupervisord:
    """A small supervisord: processes by namespec, logs, scripted faults, a call record."""

    def __init__(self, *, password: str = PASSWORD) -> None:
        self.processes: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], bytes] = {}
        self.faults: dict[tuple[str, str], xmlrpc.client.Fault] = {}
        """(method, first param) -> the fault to answer."""
        self.group_status: dict[str, list[tuple[str, int, str]]] = {}
        """group -> [(name, status, description)] answered by *ProcessGroup calls."""
        self.reload: list[list[str]] = [[], [], []]
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        """Direct calls (actions, logs); polls go through multicall and are counted."""
        self.multicalls = 0
        self.http_status: int | None = None
        self.vanish_logs = False
        self.state = {"statecode": 1, "statename": "RUNNING"}
        self.auth = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
        self.transport = httpx.MockTransport(self.handle)

    def add(self, group: str, name: str, state: str = "RUNNING", **kw: Any) -> None:
        pid = kw.pop("pid", 100 + len(self.processes) if state == "RUNNING" else 0)
        start = kw.pop("start", NOW - 60 if state == "RUNNING" else 0)
        info = {
            "name": name,
            "group": group,
            "start": start,
            "stop": 0 if state == "RUNNING" else NOW - 5,
            "now": NOW,
            "state": {"RUNNING": 20, "STOPPED": 0, "EXITED": 100, "FATAL": 200}[state],
            "statename": state,
            "spawnerr": "",
            "exitstatus": 0,
            "logfile": f"/var/log/{name}.log",
            "stdout_logfile": f"/var/log/{name}.log",
            "stderr_logfile": f"/var/log/{name}.err",
            "pid": pid,
            "description": f"pid {pid}, uptime 0:01:00" if state == "RUNNING" else "Not started",
        }
        info.update(kw)
        self.processes[f"{group}:{name}"] = info

    def remove_group(self, group: str) -> None:
        for ns in [ns for ns, p in self.processes.items() if p["group"] == group]:
            del self.processes[ns]

    # -- HTTP -------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/RPC2":
            return httpx.Response(404)
        if request.headers.get("authorization") != self.auth:
            return httpx.Response(401, text="Unauthorized")
        if self.http_status is not None:
            return httpx.Response(self.http_status)
        loaded, method_name = xmlrpc.client.loads(request.content)
        params: tuple[Any, ...] = tuple(loaded)
        method = str(method_name)
        if method == "system.multicall":
            self.multicalls += 1
            results: list[Any] = []
            for call in params[0]:
                try:
                    results.append(self.dispatch(call["methodName"], tuple(call["params"])))
                except xmlrpc.client.Fault as f:
                    results.append({"faultCode": f.faultCode, "faultString": f.faultString})
            return self.answer((results,))
        self.calls.append((method, params))
        try:
            return self.answer((self.dispatch(method, params),))
        except xmlrpc.client.Fault as f:
            return self.answer(f)
        except HTTP500:
            return httpx.Response(500, text="Internal Server Error")

    def answer(self, value: Any) -> httpx.Response:
        body = xmlrpc.client.dumps(value, methodresponse=True, allow_none=False)
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": "text/xml"})

    # -- methods ----------------------------------------------------------------------------------

    def dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
        key = (method, str(params[0]) if params else "")
        if key in self.faults:
            raise self.faults[key]
        name = method.removeprefix("supervisor.")
        simple = {
            "getSupervisorVersion": "4.3.0",
            "getIdentification": "lab-sv",
            "getPID": 321,
            "getAPIVersion": "3.0",
        }
        if name in simple:
            return simple[name]
        if name == "getState":
            return self.state
        if name == "getAllProcessInfo":
            return [dict(p) for p in self.processes.values()]
        if name in ("startProcess", "stopProcess", "signalProcess", "clearProcessLogs"):
            return self._process_call(name, params[0])
        if name.endswith("ProcessGroup") and name != "removeProcessGroup":
            if name == "addProcessGroup":
                return True
            return self._group_results(params[0])
        if name in ("removeProcessGroup", "restart", "shutdown"):
            return True
        if name.endswith("AllProcesses") or name == "clearAllProcessLogs":
            groups = sorted({p["group"] for p in self.processes.values()})
            return [r for g in groups for r in self._group_results(g)]
        if name == "reloadConfig":
            return [self.reload]
        if name.startswith("tailProcess"):
            return self._tail(name, *params)
        if name.startswith("readProcess"):
            return self._read(name, *params)
        raise _fault(1, "UNKNOWN_METHOD")

    def _process_call(self, name: str, ns: str) -> Any:
        p = self.processes.get(ns)
        if p is None:
            raise _fault(10, "BAD_NAME", ns)
        if name == "startProcess":
            if p["statename"] == "RUNNING":
                raise _fault(60, "ALREADY_STARTED", ns)
            p.update(statename="RUNNING", state=20, pid=999, start=NOW)
        elif name == "stopProcess":
            if p["statename"] != "RUNNING":
                raise _fault(70, "NOT_RUNNING", ns)
            p.update(statename="STOPPED", state=0, pid=0, stop=NOW)
        return True

    def _group_results(self, group: str) -> list[dict[str, Any]]:
        if group in self.group_status:
            return [
                {"name": n, "group": group, "status": s, "description": d}
                for n, s, d in self.group_status[group]
            ]
        names = [p["name"] for p in self.processes.values() if p["group"] == group]
        if not names:
            raise _fault(10, "BAD_NAME", group)
        return [{"name": n, "group": group, "status": 80, "description": "OK"} for n in names]

    def _log(self, name: str, ns: str) -> bytes | None:
        if ns not in self.processes:
            raise _fault(10, "BAD_NAME", ns)
        channel = "stderr" if "Stderr" in name else "stdout"
        return self.logs.get((ns, channel))

    @staticmethod
    def _text(data: bytes) -> str:
        try:
            return data.decode("utf-8")  # strict, as supervisord's as_string()
        except UnicodeDecodeError:
            raise HTTP500 from None

    def _tail(self, name: str, ns: str, offset: int, length: int) -> list[Any]:
        log = self._log(name, ns)
        if log is None:
            return ["", 0, False]
        size = len(log)
        overflow = size > offset + length
        if overflow:
            offset = size - 1
        if offset + length > size:
            if offset > size - 1:
                length = 0
            offset = max(0, size - length)
        data = log[offset : offset + length] if length else b""
        return [self._text(data), size, overflow]

    def _read(self, name: str, ns: str, offset: int, length: int) -> str:
        log = self._log(name, ns)
        if log is None or self.vanish_logs:
            raise _fault(20, "NO_FILE", f"/var/log/{ns}.log")
        if offset < 0 or length < 0:
            raise _fault(3, "BAD_ARGUMENTS")
        data = log[offset:] if length == 0 else log[offset : offset + length]
        return self._text(data)


class CountingSink:
    """The hub's handle for one source, counting the polls it publishes.

    A poll ends with a put of the source's node (its metrics); a small one also with a
    ``sync`` of the processes, a big one (issue #8) with puts of what changed.
    """

    def __init__(self, inner: SourceHandle, wake: asyncio.Event) -> None:
        self.inner = inner
        self.syncs = 0
        self.nodes = 0
        self.wake = wake

    def put(self, entity: Entity) -> bool:
        changed = self.inner.put(entity)
        if isinstance(entity, Node):
            self.nodes += 1
            self.wake.set()
        return changed

    def delete(self, kind: Kind, id: str) -> bool:
        return self.inner.delete(kind, id)

    def sync(self, kind: Kind, entities: Iterable[Entity]) -> int:
        changed = self.inner.sync(kind, entities)
        self.syncs += 1
        self.wake.set()
        return changed

    def status(self, status: str, *, error: str | None = None, **fields: Any) -> None:
        self.inner.status(status, error=error, **fields)

    def get(self, kind: Kind, id: str) -> Entity | None:
        return self.inner.get(kind, id)


def source_config(**kw: Any) -> SupervisorSourceConfig:
    values: dict[str, Any] = {
        "name": "sv",
        "url": "http://sv.example:9001",
        "username": "admin",
        "password": Secret(PASSWORD),
        "poll_interval": 3600.0,  # polls happen when the test pokes
    }
    values.update(kw)
    return SupervisorSourceConfig(**values)


class Rig:
    def __init__(self, fake: FakeSupervisord | None = None, **config: Any) -> None:
        self.fake = fake or FakeSupervisord()
        self.sink: CountingSink | None = None
        self.wake = asyncio.Event()
        """Set when a poll is published or the session ends."""

        def factory(cfg: Any, handle: SourceHandle) -> SupervisorSource:
            self.sink = CountingSink(handle, self.wake)
            return SupervisorSource(cfg, self.sink, transport=self.fake.transport)

        cfg = source_config(**config)
        self.hub = Hub(Config(path="t", sources={"sv": cfg}), factories={"supervisor": factory})
        runner = self.hub.runner("sv")
        assert isinstance(runner, SupervisorSource)
        self.source = runner
        self.task: asyncio.Task[None] | None = None

    @property
    def syncs(self) -> int:
        assert self.sink is not None
        return self.sink.syncs

    async def poll(self) -> None:
        """Poll now and wait until that poll is published."""
        assert self.sink is not None
        before = self.sink.nodes
        self.source.poke()
        await self.until(lambda: self.sink.nodes > before, "a poll")  # type: ignore[union-attr]

    async def until(self, condition: Callable[[], Any], what: str) -> None:
        """Wait until ``condition()`` holds, re-checking whenever the source reports."""
        try:
            with anyio.fail_after(DEADLINE):
                while not condition():
                    self.wake.clear()
                    await self.wake.wait()
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what}")

    def get(self, kind: Kind, id: str) -> Any:
        return self.hub.fleet.get(kind, id)

    def processes(self) -> dict[str, Process]:
        return {p.id: p for p in self.hub.fleet.all("process")}  # type: ignore[misc]

    def actions(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [
            c
            for c in self.fake.calls
            if not c[0].startswith(("supervisor.tail", "supervisor.read"))
        ]


@contextlib.asynccontextmanager
async def watching(rig: Rig) -> AsyncIterator[Rig]:
    """Run the source's session until the first poll is published."""
    task = rig.task = asyncio.create_task(rig.source.session())
    task.add_done_callback(lambda _: rig.wake.set())
    try:
        await rig.until(lambda: (rig.sink and rig.sink.nodes) or task.done(), "the first poll")
        if task.done():
            task.result()
        yield rig
    finally:
        if not task.done():  # else the test looked at how it ended
            task.cancel()
            await asyncio.wait({task}, timeout=DEADLINE)
            assert task.cancelled(), "the session did not end when cancelled"
        await rig.source.close()


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.fake.add("apps", "web")
    r.fake.add("apps", "api")
    r.fake.add("idle", "idle", state="STOPPED")
    return r


# -- watching --------------------------------------------------------------------------------------


async def test_first_session_publishes_source_node_and_processes(rig: Rig) -> None:
    sub = rig.hub.subscribe()
    async with watching(rig):
        source = rig.get("source", "sv")
        assert isinstance(source, Source)
        assert (source.status, source.error, source.version) == ("online", None, "4.3.0")
        assert source.url == "http://sv.example:9001"
        assert source.actions == ACTIONS
        assert source.last_seen is not None
        assert source.info["identification"] == "lab-sv"
        assert source.info["pid"] == 321
        assert source.info["api_version"] == "3.0"
        assert source.info["state"] == "RUNNING"
        assert isinstance(source.info["clock_offset"], int)

        node = rig.get("node", "sv/sv.example")
        assert isinstance(node, Node)
        assert (node.source, node.name, node.address, node.state) == (
            "sv",
            "sv.example",
            "sv.example",
            "online",
        )
        assert node.labels == {"identification": "lab-sv", "supervisor_version": "4.3.0"}
        assert node.metrics == {"processes": 3, "running": 2}

        procs = rig.processes()
        assert set(procs) == {"sv:apps:web", "sv:apps:api", "sv:idle:idle"}
        web = procs["sv:apps:web"]
        assert (web.source, web.group, web.name, web.state) == ("sv", "apps", "web", "RUNNING")
        assert web.pid == 100
        assert web.started == float(NOW - 60)
        assert web.stopped is None
        assert web.description == "pid 100, uptime 0:01:00"
        assert web.stdout_logfile == "/var/log/web.log"
        idle = procs["sv:idle:idle"]
        assert (idle.state, idle.pid, idle.started, idle.stopped) == (
            "STOPPED",
            None,
            None,
            float(NOW - 5),
        )
        # one multicall read everything
        assert rig.fake.multicalls == 1
        assert rig.fake.calls == []

        with anyio.fail_after(DEADLINE):
            items = await sub.next()
        assert any(getattr(i, "changes", None) for i in items)


async def test_uptime_alone_is_not_a_change(rig: Rig) -> None:
    async with watching(rig):
        rig.hub.flush()
        seq = rig.hub.fleet.seq
        web = rig.fake.processes["apps:web"]
        for p in rig.fake.processes.values():
            p["now"] = NOW + 10
        web["description"] = "pid 100, uptime 0:01:10"
        await rig.poll()
        assert not rig.hub.fleet.dirty
        assert rig.hub.flush() is None
        assert rig.hub.fleet.seq == seq
        assert rig.processes()["sv:apps:web"].description == "pid 100, uptime 0:01:00"

        # a real change carries the new description along
        web.update(statename="EXITED", state=100, pid=0, exitstatus=1, description="Jan 1 00:00")
        await rig.poll()
        web_now = rig.processes()["sv:apps:web"]
        assert (web_now.state, web_now.pid, web_now.exitstatus, web_now.description) == (
            "EXITED",
            None,
            1,
            "Jan 1 00:00",
        )
        assert [n.title for n in rig.hub.notes] == ["web exited"]
        node = rig.get("node", "sv/sv.example")
        assert node.metrics == {"processes": 3, "running": 1}


async def test_groups_removed_and_added_at_runtime(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.remove_group("apps")
        await rig.poll()
        assert set(rig.processes()) == {"sv:idle:idle"}
        rig.fake.add("workers", "worker_00")
        rig.fake.add("workers", "worker_01")
        await rig.poll()
        assert set(rig.processes()) == {
            "sv:idle:idle",
            "sv:workers:worker_00",
            "sv:workers:worker_01",
        }


async def test_a_restarting_daemon_ends_the_session(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.state = {"statecode": 0, "statename": "RESTARTING"}
        rig.source.poke()
        await rig.until(rig.task.done, "the session to end")  # type: ignore[union-attr]
        with pytest.raises(Unreachable, match="restarting"):
            rig.task.result()  # type: ignore[union-attr]


async def test_down_marks_the_node_offline(rig: Rig) -> None:
    async with watching(rig):
        rig.source.down("offline", "connection refused")
        node = rig.get("node", "sv/sv.example")
        assert node.state == "offline"
        assert node.metrics == {"processes": 3, "running": 2}  # the last ones known
        source = rig.get("source", "sv")
        assert (source.status, source.error) == ("offline", "connection refused")


# -- actions ---------------------------------------------------------------------------------------


async def act(rig: Rig, kind: str, id: str, name: str, **params: Any) -> ActionResult:
    return await rig.hub.run_action(Target(kind, id), name, params)


async def test_start_of_a_started_process_is_ok(rig: Rig) -> None:
    async with watching(rig):
        result = await act(rig, "process", "sv:apps:web", "start")
        assert result == ActionResult(True, None, {"note": "ALREADY_STARTED"})
        assert rig.actions() == [("supervisor.startProcess", ("apps:web", True))]


async def test_stop_of_a_stopped_process_is_ok(rig: Rig) -> None:
    async with watching(rig):
        result = await act(rig, "process", "sv:idle:idle", "stop")
        assert result == ActionResult(True, None, {"note": "NOT_RUNNING"})
        result = await act(rig, "process", "sv:idle:idle", "start")
        assert result == ActionResult(True)


async def test_restart_is_stop_then_start(rig: Rig) -> None:
    async with watching(rig):
        result = await act(rig, "process", "sv:apps:web", "restart")
        assert result.ok
        assert rig.actions() == [
            ("supervisor.stopProcess", ("apps:web", True)),
            ("supervisor.startProcess", ("apps:web", True)),
        ]


async def test_restart_stops_at_a_failed_stop(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.faults[("supervisor.stopProcess", "apps:web")] = _fault(30, "FAILED", "apps:web")
        result = await act(rig, "process", "sv:apps:web", "restart")
        assert not result.ok
        assert rig.actions() == [("supervisor.stopProcess", ("apps:web", True))]


async def test_a_spawn_error_is_a_failure_naming_the_fault(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.faults[("supervisor.startProcess", "idle:idle")] = _fault(
            50, "SPAWN_ERROR", "idle:idle"
        )
        result = await act(rig, "process", "sv:idle:idle", "start")
        assert result.ok is False
        assert result.error == "SPAWN_ERROR: idle:idle"
        assert result.detail == {"fault": "SPAWN_ERROR", "code": 50}


async def test_an_action_wakes_the_poller(rig: Rig) -> None:
    async with watching(rig):
        before = rig.syncs
        await act(rig, "process", "sv:idle:idle", "start")
        await rig.until(lambda: rig.syncs > before, "the poll an action triggers")
        assert rig.processes()["sv:idle:idle"].state == "RUNNING"


async def test_signal_and_clear_log_of_a_process(rig: Rig) -> None:
    async with watching(rig):
        assert (await act(rig, "process", "sv:apps:web", "signal", signal="HUP")).ok
        assert (await act(rig, "process", "sv:apps:web", "clear_log")).ok
        assert rig.actions() == [
            ("supervisor.signalProcess", ("apps:web", "HUP")),
            ("supervisor.clearProcessLogs", ("apps:web",)),
        ]


async def test_group_actions(rig: Rig) -> None:
    async with watching(rig):
        result = await act(rig, "group", "sv:apps", "stop")
        assert result.ok
        assert result.detail == [
            {"name": "web", "group": "apps", "status": 80, "description": "OK"},
            {"name": "api", "group": "apps", "status": 80, "description": "OK"},
        ]
        assert (await act(rig, "group", "sv:apps", "restart")).ok
        assert (await act(rig, "group", "sv:apps", "signal", signal="TERM")).ok
        assert rig.actions() == [
            ("supervisor.stopProcessGroup", ("apps", True)),
            ("supervisor.stopProcessGroup", ("apps", True)),
            ("supervisor.startProcessGroup", ("apps", True)),
            ("supervisor.signalProcessGroup", ("apps", "TERM")),
        ]


async def test_group_results_that_are_not_success_fail(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.group_status["apps"] = [
            ("web", 80, "OK"),
            ("api", 50, "SPAWN_ERROR"),
        ]
        result = await act(rig, "group", "sv:apps", "start")
        assert result.ok is False
        assert result.error == "apps:api: SPAWN_ERROR"
        assert [d["status"] for d in result.detail] == [80, 50]

        # a restart whose stop fails does not start
        rig.fake.calls.clear()
        rig.fake.group_status["apps"] = [("web", 30, "FAILED")]
        result = await act(rig, "group", "sv:apps", "restart")
        assert result.ok is False
        assert rig.actions() == [("supervisor.stopProcessGroup", ("apps", True))]


async def test_daemon_actions(rig: Rig) -> None:
    async with watching(rig):
        for name in ("start", "stop", "restart", "clear_log", "reload", "shutdown"):
            assert (await act(rig, "source", "sv", name)).ok, name
        assert (await act(rig, "source", "sv", "signal", signal="USR1")).ok
        assert [m for m, _ in rig.actions()] == [
            "supervisor.startAllProcesses",
            "supervisor.stopAllProcesses",
            "supervisor.stopAllProcesses",
            "supervisor.startAllProcesses",
            "supervisor.clearAllProcessLogs",
            "supervisor.restart",
            "supervisor.shutdown",
            "supervisor.signalAllProcesses",
        ]


async def test_reread(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.reload = [["new"], ["apps"], []]
        result = await act(rig, "source", "sv", "reread")
        assert result == ActionResult(
            True, None, {"added": ["new"], "changed": ["apps"], "removed": []}
        )
        assert rig.actions() == [("supervisor.reloadConfig", ())]


async def test_update_applies_the_reread_as_supervisorctl_does(rig: Rig) -> None:
    async with watching(rig):
        for group in ("old1", "old2", "ch1", "ch2"):
            rig.fake.add(group, group)
        rig.fake.reload = [["new1", "new2"], ["ch1", "ch2"], ["old1", "old2"]]
        result = await act(rig, "source", "sv", "update")
        assert result.ok, result.error
        assert result.detail == {
            "added": ["new1", "new2"],
            "changed": ["ch1", "ch2"],
            "removed": ["old1", "old2"],
        }
        # supervisorctl's do_update: removed groups (stop, remove), then each changed
        # group (stop, remove, add), then the added ones (add)
        assert rig.actions() == [
            ("supervisor.reloadConfig", ()),
            ("supervisor.stopProcessGroup", ("old1", True)),
            ("supervisor.removeProcessGroup", ("old1",)),
            ("supervisor.stopProcessGroup", ("old2", True)),
            ("supervisor.removeProcessGroup", ("old2",)),
            ("supervisor.stopProcessGroup", ("ch1", True)),
            ("supervisor.removeProcessGroup", ("ch1",)),
            ("supervisor.addProcessGroup", ("ch1",)),
            ("supervisor.stopProcessGroup", ("ch2", True)),
            ("supervisor.removeProcessGroup", ("ch2",)),
            ("supervisor.addProcessGroup", ("ch2",)),
            ("supervisor.addProcessGroup", ("new1",)),
            ("supervisor.addProcessGroup", ("new2",)),
        ]


async def test_update_reports_failed_steps(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.add("old", "old")
        rig.fake.reload = [["new"], [], ["old"]]
        rig.fake.faults[("supervisor.removeProcessGroup", "old")] = _fault(
            91, "STILL_RUNNING", "old"
        )
        rig.fake.faults[("supervisor.addProcessGroup", "new")] = _fault(90, "ALREADY_ADDED", "new")
        result = await act(rig, "source", "sv", "update")
        assert result.ok is False
        assert result.error == "remove old: STILL_RUNNING: old"  # ALREADY_ADDED is benign


async def test_update_with_a_bad_config(rig: Rig) -> None:
    async with watching(rig):
        rig.fake.faults[("supervisor.reloadConfig", "")] = _fault(92, "CANT_REREAD", "bad line")
        result = await act(rig, "source", "sv", "update")
        assert result == ActionResult(
            False, "CANT_REREAD: bad line", {"fault": "CANT_REREAD", "code": 92}
        )


async def test_an_unreachable_daemon_fails_the_action(rig: Rig) -> None:
    async with watching(rig):

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        rig.fake.transport.handler = refuse
        result = await act(rig, "process", "sv:apps:web", "stop")
        assert result.ok is False
        assert result.error


async def test_the_hub_stops_right_after_an_action(rig: Rig) -> None:
    # The action pokes the poller; a cancel arriving with the poke must still end the
    # session (asyncio.wait_for on Python 3.11 swallowed it: hub.stop() hung forever).
    await rig.hub.start()
    await rig.until(lambda: rig.syncs > 0, "the first poll")
    assert (await act(rig, "process", "sv:idle:idle", "start")).ok
    with anyio.fail_after(DEADLINE):
        await rig.hub.stop()
    assert rig.hub.subscribers == 0


async def test_perform_on_an_unknown_process(rig: Rig) -> None:
    async with watching(rig):
        with pytest.raises(UnknownTarget):
            await rig.source.perform(Target("process", "sv:apps:nope"), "start", {})


# -- logs ------------------------------------------------------------------------------------------

BOUNDARIES = [i for i in range(len(LOG) + 1) if i == len(LOG) or LOG[i] & 0xC0 != 0x80]


def check_chunk(chunk: LogChunk, log: bytes = LOG) -> None:
    data = chunk.text.encode("utf-8")
    assert len(data) == chunk.end - chunk.offset
    assert data == log[chunk.offset : chunk.end]
    assert chunk.size == len(log)


@pytest.fixture
def logged(rig: Rig) -> Rig:
    rig.fake.logs[("apps:web", "stdout")] = LOG
    rig.fake.logs[("apps:web", "stderr")] = b"plain ascii\n"
    return rig


async def test_tail_reads_at_every_length(logged: Rig) -> None:
    size = len(LOG)
    async with watching(logged):
        for length in range(1, size + 5):
            chunk = await logged.source.read_log("sv:apps:web", "stdout", None, length)
            check_chunk(chunk)
            assert chunk.end == size, length
            wanted = max(0, size - length)
            assert wanted <= chunk.offset <= wanted + 3, length
            assert not chunk.reset


async def test_reads_from_exact_offsets(logged: Rig) -> None:
    size = len(LOG)
    async with watching(logged):
        for offset in BOUNDARIES:
            for length in (1, 2, 3, 4, 5, 7, 16, 1000):
                chunk = await logged.source.read_log("sv:apps:web", "stdout", offset, length)
                check_chunk(chunk)
                assert chunk.offset == offset, (offset, length)
                assert chunk.end <= offset + length
                assert chunk.end >= min(size, offset + length) - 3, (offset, length)
                assert not chunk.reset


async def test_reading_the_whole_log_in_pages(logged: Rig) -> None:
    async with watching(logged):
        offset, text = 0, ""
        while offset < len(LOG):
            chunk = await logged.source.read_log("sv:apps:web", "stdout", offset, 5)
            assert chunk.end > offset
            text += chunk.text
            offset = chunk.end
        assert text.encode() == LOG


async def test_an_offset_past_the_end_starts_again_at_zero(logged: Rig) -> None:
    async with watching(logged):
        chunk = await logged.source.read_log("sv:apps:web", "stdout", len(LOG) + 10, 8)
        check_chunk(chunk)
        assert chunk.reset
        assert chunk.offset == 0
        assert chunk.text == "héllo w"  # 8 bytes
        at_end = await logged.source.read_log("sv:apps:web", "stdout", len(LOG), 8)
        assert (at_end.text, at_end.offset, at_end.end, at_end.reset) == (
            "",
            len(LOG),
            len(LOG),
            False,
        )


async def test_stderr_and_the_chunk_shape(logged: Rig) -> None:
    async with watching(logged):
        chunk = await logged.source.read_log("sv:apps:web", "stderr", None, 100)
        assert chunk.as_dict() == {
            "text": "plain ascii\n",
            "offset": 0,
            "end": 12,
            "size": 12,
            "reset": False,
        }
        with pytest.raises(ValueError, match="channel"):
            await logged.source.read_log("sv:apps:web", "stdin", None, 100)
        with pytest.raises(UnknownTarget):
            await logged.source.read_log("sv:apps:nope", "stdout", None, 100)


async def test_a_missing_log_is_an_empty_chunk(logged: Rig) -> None:
    async with watching(logged):
        # supervisord: tail of a missing file is ['', 0, False] ...
        chunk = await logged.source.read_log("sv:apps:api", "stdout", None, 100)
        assert chunk == LogChunk("", 0, 0, 0, False)
        chunk = await logged.source.read_log("sv:apps:api", "stdout", 10, 100)
        assert (chunk.text, chunk.offset, chunk.end, chunk.reset) == ("", 0, 0, True)
        # ... and read of one Fault 20 NO_FILE (the log went away between the two calls)
        logged.fake.vanish_logs = True
        chunk = await logged.source.read_log("sv:apps:web", "stdout", None, 100)
        assert chunk == LogChunk("", 0, 0, 0, False)
        assert ("supervisor.readProcessStdoutLog", ("apps:web", 0, len(LOG))) in logged.fake.calls


async def test_other_log_errors_are_raised(logged: Rig) -> None:
    async with watching(logged):
        logged.fake.faults[("supervisor.readProcessStdoutLog", "apps:web")] = _fault(30, "FAILED")
        with pytest.raises(SourceError, match="FAILED"):
            await logged.source.read_log("sv:apps:web", "stdout", 0, 10)
        logged.fake.http_status = 503
        with pytest.raises(HTTPStatusError) as info:
            await logged.source.read_log("sv:apps:web", "stdout", 0, 10)
        assert info.value.status == 503


# -- credentials -----------------------------------------------------------------------------------


@pytest.fixture
def refused() -> Rig:
    fake = FakeSupervisord(password="the-real-one")
    fake.add("apps", "web")
    return Rig(fake)


@pytest.fixture
def url_credentials() -> Rig:
    fake = FakeSupervisord()
    fake.add("apps", "web")
    return Rig(fake, url=f"http://admin:{PASSWORD}@sv.example:9001", username=None, password=None)


async def test_a_refused_login_names_the_credentials_and_never_the_password(refused: Rig) -> None:
    rig = refused
    with pytest.raises(HTTPStatusError) as info:
        await rig.source.session()
    exc = info.value
    assert exc.status == 401
    assert "username and password" in str(exc)
    texts = [
        str(exc),
        repr(exc),
        repr(rig.source),
        repr(rig.source.config),
        repr(rig.source.client),
    ]
    texts += [rig.source.url, str(rig.source.config), repr(rig.source.config.password)]
    for text in texts:
        assert PASSWORD not in text

    # and as the hub shows it, after the source's own run loop reported it
    rig.source.down("error", str(exc))
    source = rig.get("source", "sv")
    assert source.status == "error"
    assert "username and password" in (source.error or "")
    assert PASSWORD not in repr(rig.hub.snapshot())
    await rig.source.close()


async def test_credentials_in_the_url_are_used_and_never_shown(url_credentials: Rig) -> None:
    rig, fake = url_credentials, url_credentials.fake
    assert rig.source.url == "http://sv.example:9001"
    async with watching(rig):
        assert rig.get("source", "sv").status == "online"
        assert rig.get("source", "sv").url == "http://sv.example:9001"
        assert PASSWORD not in repr(rig.source.client)
        assert PASSWORD not in rig.source.client.endpoint
        fake.http_status = 500
        with pytest.raises(HTTPStatusError) as info:
            await rig.source.read_log("sv:apps:web", "stdout", 0, 10)
        assert PASSWORD not in str(info.value)
        assert PASSWORD not in repr(info.value)


def test_public_url_drops_credentials() -> None:
    assert public_url("http://u:p@h:9001/RPC2") == "http://h:9001/RPC2"
    assert public_url("http://u@[::1]:9001") == "http://[::1]:9001"
    assert public_url("http://h:9001") == "http://h:9001"
    assert public_url("unix:///run/supervisor.sock") == "unix:///run/supervisor.sock"


def test_client_endpoints() -> None:
    assert XmlRpcClient("http://h:9001").endpoint == "http://h:9001/RPC2"
    assert XmlRpcClient("http://h:9001/").endpoint == "http://h:9001/RPC2"
    assert XmlRpcClient("https://h/custom").endpoint == "https://h/custom"
    assert XmlRpcClient("unix:///run/s.sock").endpoint == "http://localhost/RPC2"
    with pytest.raises(ValueError, match="scheme"):
        XmlRpcClient("ftp://h")


def test_a_source_with_only_an_agent_is_accepted_issue9() -> None:
    # Before issue 9 an agent-only source was refused ("not supported by this version").
    config = Config(path="t", sources={"sv": source_config(url=None, agent="h:9002")})
    hub = Hub(config)
    source = hub.fleet.get("source", "sv")
    assert isinstance(source, Source)
    assert source.status == "connecting", source.error
    assert source.url == "tcp://h:9002"


async def test_a_timeout_is_unreachable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = XmlRpcClient("http://h:9001", transport=httpx.MockTransport(slow), timeout=2)
    with pytest.raises(Unreachable, match="no answer within 2s"):
        await client.call("supervisor.getState")
    await client.aclose()


def test_fake_answers_like_supervisord() -> None:
    # The fake's own contract, so the tests above mean what they say.
    fake = FakeSupervisord()
    fake.add("apps", "web")
    fake.logs[("apps:web", "stdout")] = "é".encode()
    with pytest.raises(HTTP500):
        fake.dispatch("supervisor.readProcessStdoutLog", ("apps:web", 1, 1))
    with pytest.raises(HTTP500):
        fake.dispatch("supervisor.readProcessStdoutLog", ("apps:web", 0, 1))
    assert fake.dispatch("supervisor.readProcessStdoutLog", ("apps:web", 0, 2)) == "é"
    assert fake.dispatch("supervisor.tailProcessStdoutLog", ("apps:web", 0, 0)) == ["", 2, True]
    assert fake.dispatch("supervisor.tailProcessStderrLog", ("apps:web", 0, 0)) == ["", 0, False]
    with pytest.raises(xmlrpc.client.Fault):
        fake.dispatch("supervisor.readProcessStderrLog", ("apps:web", 0, 1))
    snapshot = copy.deepcopy(fake.processes)
    with pytest.raises(xmlrpc.client.Fault):
        fake.dispatch("supervisor.startProcess", ("apps:web", True))
    assert fake.processes == snapshot


# -- a big daemon (issue #8 item 3) ----------------------------------------------------------------


@pytest.fixture
def big() -> Rig:
    """600 processes: a 700 KB answer, split into structs and published without one sync."""
    r = Rig()
    for i in range(600):
        r.fake.add(f"g{i % 7}", f"p{i:03d}", state="RUNNING" if i % 5 else "STOPPED")
    return r


def expected(rig: Rig) -> dict[str, tuple[str, int | None, float | None]]:
    return {
        f"sv:{ns}": (p["statename"], p["pid"] or None, float(p["start"]) if p["start"] else None)
        for ns, p in rig.fake.processes.items()
    }


def seen(rig: Rig) -> dict[str, tuple[str, int | None, float | None]]:
    return {id: (p.state, p.pid, p.started) for id, p in rig.processes().items()}


async def test_a_big_daemon_reads_as_a_small_one_issue8_big_daemon(big: Rig) -> None:
    assert len(xmlrpc.client.dumps((list(big.fake.processes.values()),))) > 1 << 15
    async with watching(big):
        assert big.syncs == 0  # the big path: puts, not one sync of 600 processes
        assert seen(big) == expected(big)
        assert big.get("source", "sv").info["clock_offset"] == math.floor(time.time() - NOW)
        before = big.processes()

        big.fake.processes["g1:p001"].update(statename="STOPPED", state=0, pid=0)
        big.fake.processes["g2:p002"].update(pid=9999, start=NOW - 1)
        big.fake.remove_group("g6")
        big.fake.add("new", "fresh")
        for p in big.fake.processes.values():  # what moves on every poll
            p["now"] = NOW + 10
            p["description"] = f"pid {p['pid']}, uptime 0:01:10"
        await big.poll()
        assert seen(big) == expected(big)
        after = big.processes()
        unchanged = set(after) - {"sv:g1:p001", "sv:g2:p002", "sv:new:fresh"}
        assert len(unchanged) == 600 - 2 - len([i for i in range(600) if i % 7 == 6])
        # not decoded again: the very objects of the last poll, descriptions kept
        assert all(after[id] is before[id] for id in unchanged)
        assert after["sv:g2:p002"].description == "pid 9999, uptime 0:01:10"
        node = big.get("node", "sv/sv.example")
        assert node.metrics == {"processes": len(after), "running": expected_running(big)}


def expected_running(rig: Rig) -> int:
    return sum(p["statename"] == "RUNNING" for p in rig.fake.processes.values())


async def test_a_big_answer_decodes_to_the_same_values_issue8_big_daemon(big: Rig) -> None:
    processes = list(big.fake.processes.values())
    fault = {"faultCode": 10, "faultString": "BAD_NAME: x"}
    samples = [  # (the multicall's results, split into structs or decoded whole)
        ([big.fake.state, processes], True),
        ([fault, processes], True),
        ([big.fake.state, [{"nested": {"a": 1}, "pad": "x" * 40000}]], False),
        ([big.fake.state, [{"a": 1}, {"b": "y" * 40000}], {"c": [{"d": 2}]}], False),
        ([big.fake.state, [{"a": None, "b": "z" * 40000}]], False),
    ]
    for value, split in samples:
        body = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()
        assert (await _split_structs(body) is not None) is split
        want = decode_multicall(decode_response(body), len(value))
        got = await _decode_calls(body, len(value))
        assert _decoded(got) == _decoded(want)


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return decode_struct(value)
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    if isinstance(value, Fault):
        return (value.code, value.text)
    return value


@pytest.mark.parametrize(
    "body",
    [
        b"<value><struct>\n" * 5000,
        b"<?xml version='1.0'?><methodResponse><params><param><value><array><data>"
        + b"<value><struct>\n<member><name>a</name><value><int>1</int></value></member>"
        + b"</struct></value>\n" * 3000
        + b"</data></array></value></param></params>",
        b"x" * 50000,
    ],
    ids=["unclosed", "truncated", "garbage"],
)
async def test_a_big_garbage_answer_is_a_protocol_error_issue8_big_daemon(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        await _decode_calls(body, 2)
