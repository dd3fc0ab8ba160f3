"""Logs and refreshes as source capabilities, reached through the hub only (issue 9).

``Hub.read_log`` and ``Hub.refresh`` look for the ``LogReader`` and ``Refresher``
capabilities of a source; the web API and Multivisor's API go through them. Stand-in
sources here have the model filled through their handle (no I/O); the supervisor
source's own refresh runs against the fake supervisord of test_supervisor_source.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from fleetwatch.config import Config, HubConfig
from fleetwatch.errors import BadParams, NoLogs, UnknownTarget, Unreachable
from fleetwatch.hub import Hub, SourceHandle
from fleetwatch.model import ActionSpec, Delta, Node, Process
from fleetwatch.sources.base import (
    ActionResult,
    LogChunk,
    LogReader,
    Refresher,
    Target,
)
from fleetwatch.sources.base import Source as SourceRunner
from fleetwatch.web.app import create_app
from tests.unit.test_supervisor_source import DEADLINE, FakeSupervisord, Rig, watching

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1"


@dataclass(frozen=True)
class StandInConfig:
    name: str
    kind: str = "supervisor"  # so that Multivisor's API shows it as a supervisor


class Plain(SourceRunner):
    """A source with neither capability: no logs, nothing to re-read on demand."""

    kind = "supervisor"

    def __init__(self, name: str, sink: SourceHandle) -> None:
        super().__init__(name, sink)
        self.handle = sink

    def actions(self) -> tuple[ActionSpec, ...]:
        return ()

    async def session(self) -> None:
        await asyncio.Event().wait()

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        return ActionResult(True)


class Capable(Plain, LogReader, Refresher):
    """A source with both: its log is ``log`` (or ``fail`` is raised); refresh puts a change."""

    def __init__(self, name: str, sink: SourceHandle) -> None:
        super().__init__(name, sink)
        self.log = b"line 1\nline 2\n"
        self.fail: Exception | None = None
        self.reads: list[tuple[str, str, int | None, int]] = []
        self.refreshes = 0

    async def read_log(
        self, process_id: str, channel: str, offset: int | None, length: int
    ) -> LogChunk:
        self.reads.append((process_id, channel, offset, length))
        if self.fail is not None:
            raise self.fail
        start = max(0, len(self.log) - length) if offset is None else offset
        data = self.log[start : start + length]
        return LogChunk(data.decode(), start, start + len(data), len(self.log))

    async def refresh(self) -> bool:
        self.refreshes += 1
        await asyncio.sleep(0)  # a real read awaits its answer
        self.handle.put(proc(self.name, "web", state="STOPPED"))
        return True


def proc(source: str, name: str, state: str = "RUNNING") -> Process:
    return Process(
        id=f"{source}:g:{name}", source=source, group="g", name=name, state=state, pid=10
    )


def make_hub() -> Hub:
    """``plain`` (no capabilities) and ``able`` (both), each online with one process."""
    config = Config(
        path="t",
        hub=HubConfig(name="ACME"),
        sources={n: StandInConfig(n) for n in ("plain", "able")},  # type: ignore[misc]
    )
    kinds = {"plain": Plain, "able": Capable}
    h = Hub(config, factories={"supervisor": lambda cfg, handle: kinds[cfg.name](cfg.name, handle)})
    for name in kinds:
        handle = runner(h, name).handle
        handle.status("online", version="4.3.0", info={"identification": name, "pid": 7})
        handle.put(Node(id=f"{name}/box", source=name, name="box"))
        handle.put(proc(name, "web"))
    h.flush()
    return h


def runner(hub: Hub, name: str) -> Any:
    r = hub.runner(name)
    assert isinstance(r, Plain)
    return r


@pytest.fixture
def hub() -> Hub:
    return make_hub()


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub, manage_hub=False), base_url=BASE) as c:
        yield c


# -- logs through the hub ---------------------------------------------------------------


def test_a_source_without_logs_is_409_json(client: TestClient) -> None:
    r = client.get("/api/processes/plain:g:web/log")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "process 'plain:g:web' has no readable log"}
    # Multivisor's log tail says the same, before any stream starts
    r = client.get("/multivisor/api/process/log/out/tail/plain:g:web")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/json"
    assert "no readable log" in r.json()["error"]


def test_an_unknown_process_is_404_json(client: TestClient, hub: Hub) -> None:
    for path in ("/api/processes/able:g:nope/log", "/multivisor/api/process/log/out/tail/x:y:z"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"], path
    assert runner(hub, "able").reads == []  # refused before the source is asked


def test_a_log_read_goes_to_the_source(client: TestClient, hub: Hub) -> None:
    r = client.get("/api/processes/able:g:web/log", params={"channel": "stderr", "length": 7})
    assert r.status_code == 200
    assert r.json() == {"text": "line 2\n", "offset": 7, "end": 14, "size": 14, "reset": False}
    assert runner(hub, "able").reads == [("able:g:web", "stderr", None, 7)]


def test_an_offline_source_is_502_json(client: TestClient, hub: Hub) -> None:
    runner(hub, "able").fail = Unreachable("connection refused")
    r = client.get("/api/processes/able:g:web/log")
    assert (r.status_code, r.json()) == (502, {"error": "connection refused"})
    r = client.get("/multivisor/api/process/log/err/tail/able:g:web")
    assert (r.status_code, r.json()) == (502, {"error": "connection refused"})


def test_the_multivisor_tail_reads_through_the_hub(hub: Hub) -> None:
    async def first_frame() -> tuple[int, bytes]:
        # The ASGI app driven by hand: httpx's ASGITransport and the TestClient both wait
        # for a whole body, and an SSE tail never ends.
        app = create_app(hub, manage_hub=False)
        sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        path = "/multivisor/api/process/log/out/tail/able:g:web"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()  # the client never sends anything more
            raise AssertionError

        task = asyncio.create_task(app(scope, receive, sent.put))
        try:
            start = await sent.get()
            while True:
                body = (await sent.get()).get("body", b"")
                if body.startswith(b"data:"):
                    return start["status"], body
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    status, frame = asyncio.run(asyncio.wait_for(first_frame(), DEADLINE))
    assert status == 200
    assert frame == b'data: {"message":"line 1\\nline 2\\n","size":14}\n\n'
    assert runner(hub, "able").reads[0] == ("able:g:web", "stdout", None, 4096)


def test_hub_read_log_checks_before_asking(hub: Hub) -> None:
    async def main() -> None:
        with pytest.raises(UnknownTarget):
            await hub.read_log("able:g:nope")
        with pytest.raises(NoLogs):
            await hub.read_log("plain:g:web")
        for kw in ({"channel": "stdin"}, {"offset": -1}, {"length": 0}):
            with pytest.raises(BadParams):
                await hub.read_log("able:g:web", **kw)
        assert runner(hub, "able").reads == []
        chunk = await hub.read_log("able:g:web", "stdout", 0, 4)
        assert chunk == LogChunk("line", 0, 4, 14)

    asyncio.run(main())


# -- refresh -----------------------------------------------------------------------------


def test_refresh_of_a_source_without_it_is_a_no_op(hub: Hub) -> None:
    async def main() -> None:
        seq = hub.fleet.seq
        assert await asyncio.wait_for(hub.refresh("plain"), DEADLINE) == []
        assert hub.fleet.seq == seq  # nothing re-read, nothing changed
        with pytest.raises(UnknownTarget):
            await hub.refresh("nope")

    asyncio.run(main())


def test_refresh_waits_for_the_source_and_commits(hub: Hub) -> None:
    async def main() -> None:
        sub = hub.subscribe()
        assert await hub.refresh() == ["able"]  # every source: the one that can
        assert runner(hub, "able").refreshes == 1
        # committed when refresh returns: the delta is already queued for subscribers
        items = await asyncio.wait_for(sub.next(), DEADLINE)
        changes = [c for d in items if isinstance(d, Delta) for c in d.changes]
        assert [(c.id, c.value.state) for c in changes] == [("able:g:web", "STOPPED")]  # type: ignore[union-attr]
        assert await hub.refresh("able") == ["able"]

    asyncio.run(main())


def test_multivisor_refresh_with_sources_without_it(client: TestClient, hub: Hub) -> None:
    r = client.get("/multivisor/api/refresh")
    assert r.status_code == 200
    assert set(r.json()["supervisors"]) == {"plain", "able"}
    assert runner(hub, "able").refreshes == 1
    assert r.json()["supervisors"]["able"]["processes"]["able:g:web"]["statename"] == "STOPPED"


# -- the supervisor source's refresh (a fake supervisord) --------------------------------


class Readable(FakeSupervisord):
    """The fake, with the ``getProcessInfo`` an action's read-back calls."""

    def dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
        if method == "supervisor.getProcessInfo":
            return dict(self.processes[params[0]])
        return super().dispatch(method, params)


class HeldPolls:
    """The fake supervisord, whose next poll can be held: answered from the state at the
    time it arrived, but only sent when released (a poll on its way during an action)."""

    def __init__(self) -> None:
        self.fake = Readable()
        self.fake.add("apps", "web")
        self.fake.add("apps", "api")
        self._hold: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.fake.transport = httpx.MockTransport(self.handle)

    def hold_next(self) -> asyncio.Event:
        self._hold = asyncio.Event()
        self.arrived.clear()
        return self._hold

    async def handle(self, request: httpx.Request) -> httpx.Response:
        answer = self.fake.handle(request)  # what supervisord answers now
        if self._hold is not None and b"getAllProcessInfo" in request.content:
            hold, self._hold = self._hold, None
            self.arrived.set()
            await hold.wait()
        return answer


@pytest.mark.anyio
async def test_supervisor_refresh_without_a_session_is_false_at_once() -> None:
    rig = Rig()
    rig.fake.add("apps", "web")
    async with asyncio.timeout(1.0):
        assert await rig.source.refresh() is False


@pytest.mark.anyio
async def test_supervisor_refresh_waits_for_a_poll_begun_after_it() -> None:
    held = HeldPolls()
    rig = Rig(held.fake)
    async with watching(rig), asyncio.timeout(DEADLINE):
        release = held.hold_next()
        rig.source.poke()
        await held.arrived.wait()  # a poll is on its way
        polls = held.fake.multicalls
        refresh = asyncio.create_task(rig.source.refresh())
        await asyncio.sleep(0)
        release.set()
        assert await refresh is True
        assert held.fake.multicalls > polls  # not answered by the poll already on its way
        assert await rig.source.refresh() is True  # and with none on its way


@pytest.mark.anyio
async def test_supervisor_refresh_is_false_when_the_session_ends() -> None:
    held = HeldPolls()
    rig = Rig(held.fake)
    async with watching(rig), asyncio.timeout(DEADLINE):
        held.hold_next()
        rig.source.poke()
        await held.arrived.wait()
        refresh = asyncio.create_task(rig.source.refresh())
        await asyncio.sleep(0)
        assert rig.task is not None
        rig.task.cancel()
        assert await refresh is False


@pytest.mark.anyio
async def test_a_poll_on_its_way_during_an_action_is_dropped() -> None:
    """The poll read RUNNING before the stop; it answers after the stop's read-back:
    committing it would show the process RUNNING again until the next poll."""
    held = HeldPolls()
    rig = Rig(held.fake)
    async with watching(rig), asyncio.timeout(DEADLINE):
        sub = rig.hub.subscribe()
        release = held.hold_next()
        rig.source.poke()
        await held.arrived.wait()
        result = await rig.hub.run_action(Target("process", "sv:apps:web"), "stop")
        assert result.ok
        assert rig.processes()["sv:apps:web"].state == "STOPPED"
        release.set()
        assert await rig.hub.refresh("sv") == ["sv"]
        assert rig.processes()["sv:apps:web"].state == "STOPPED"
        states = [
            c.value.state  # type: ignore[union-attr]
            for d in await sub.next()
            if isinstance(d, Delta)
            for c in d.changes
            if c.id == "sv:apps:web"
        ]
        assert states == ["STOPPED"], states
