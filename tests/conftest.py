"""Shared fixtures: real supervisord instances, a real hub server, and waiting helpers.

Nothing here sleeps to synchronise: :func:`wait_for` polls a condition until a
deadline and fails with a message saying what never became true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from websockets.sync.client import ClientConnection, connect

from fleetwatch.config import Config, HistoryConfig, HubConfig, SourceConfig, SupervisorSourceConfig
from fleetwatch.demo.icecream import IcecreamCluster, icecc_available
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port, stop_all
from fleetwatch.server import build_server
from fleetwatch.types import Secret

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(tool: str) -> str:
    """The path of ``tool``; skip when missing — except under CI=true, where it fails."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed"
        if IN_CI:
            pytest.fail(f"{message}: CI must install it (see .ci/run)")
        pytest.skip(message)
    return path


@contextlib.contextmanager
def icecc_cluster(**kw: Any) -> Iterator[IcecreamCluster]:
    """A real icecream cluster on loopback (Debian's icecc; ``kw`` go to IcecreamCluster).

    Skips when icecc cannot run here, except under CI=true, where it fails. Its root is
    not pytest's tmp_path: the daemons run as user icecc, who must be able to enter it.
    """
    why = icecc_available()
    if why:
        if IN_CI:
            pytest.fail(f"{why}: CI must provide it (see .ci/run)")
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="fw-icecc-"))
    os.chmod(root, 0o755)
    try:
        with IcecreamCluster(root, **kw) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


def wait_for(
    condition: Callable[[], T], timeout: float = 15.0, what: str = "condition", every: float = 0.02
) -> T:
    """Poll ``condition`` until it is truthy and return its value; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (httpx.HTTPError, OSError, KeyError, ValueError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(every)


async def until(condition: Callable[[], T], timeout: float = 30.0, what: str = "it") -> T:
    """:func:`wait_for` for code on an event loop (Textual pilots): polls ``condition``
    between awaits, so the loop keeps running, and fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def standard_programs(prefix: str) -> list[Program]:
    """The demo's mix: a service, a flapper, a talker, a stopped program, a numprocs group."""
    return [
        Program("web", demo_program("service", f"{prefix}-web")),
        Program("flapper", demo_program("flapper", f"{prefix}-flapper")),
        Program("talker", demo_program("talker", f"{prefix}-talker")),
        Program("idle", demo_program("service", f"{prefix}-idle"), autostart=False),
        Program("worker", demo_program("worker", f"{prefix}-worker"), numprocs=2, group="workers"),
    ]


@pytest.fixture
def supervisors(tmp_path: Path) -> Iterator[Callable[..., Supervisord]]:
    """A factory of started, real supervisord instances; all are stopped at teardown."""
    started: list[Supervisord] = []

    def make(name: str, programs: list[Program] | None = None, **kw: Any) -> Supervisord:
        sv = Supervisord(tmp_path, name, programs or standard_programs(name), **kw)
        started.append(sv)
        sv.start()
        return sv

    yield make
    stop_all(started)


def source_config(sv: Supervisord, **kw: Any) -> SupervisorSourceConfig:
    return SupervisorSourceConfig(
        name=sv.name,
        url=sv.url,
        username=sv.username,
        password=Secret(sv.password) if sv.password else None,
        **kw,
    )


class HubServer:
    """A real hub (uvicorn + the API) on a loopback port, in a background thread."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.port = int(config.hub.listen.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        # Longer than an icecream scheduler may take to accept a text-port connection
        # (~36 s, icecream.md trap 3), which an action on a host waits for.
        self.http = httpx.Client(base_url=self.url, timeout=90)
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        self.server, self.hub = build_server(self.config)
        self._thread = threading.Thread(target=self.server.run, name="hub", daemon=True)
        self._thread.start()
        wait_for(lambda: self.server.started, 20, "the hub to listen")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "hub thread did not stop"

    def restart(self) -> None:
        self.stop()
        self.start()

    def get(self, path: str, **kw: Any) -> Any:
        r = self.http.get(path, **kw)
        r.raise_for_status()
        return r.json()

    def action(self, kind: str, id: str, name: str, **params: Any) -> httpx.Response:
        body = {"target": {"kind": kind, "id": id}, "name": name, "params": params}
        return self.http.post("/api/actions", json=body)

    def source(self, name: str) -> dict[str, Any]:
        return self.get(f"/api/sources/{name}")  # type: ignore[no-any-return]

    def log_text(self, process: str, length: int = 300) -> dict[str, Any]:
        """The first non-empty tail of ``process``'s stdout log, read through the hub."""
        path = f"/api/processes/{process}/log"
        return wait_for(
            lambda: (chunk := self.get(path, params={"length": length}))["text"] and chunk,
            what=f"{process}'s log through the hub",
        )

    def processes(self, q: str = "") -> dict[str, dict[str, Any]]:
        return {p["id"]: p for p in self.get("/api/processes", params={"q": q})}

    def ws(self, query: str = "") -> Stream:
        return Stream(
            connect(f"ws://127.0.0.1:{self.port}/api/stream{query}", open_timeout=10, legacy=True)
        )

    def close(self) -> None:
        self.stop()
        self.http.close()


class Stream:
    """A stream client that keeps a replica of the fleet and checks the gap-free rule."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.seq = -1
        self.snapshots = 0
        self.notes: list[dict[str, Any]] = []
        self.entities: dict[tuple[str, str], dict[str, Any]] = {}
        self.frames: list[dict[str, Any]] = []

    def hello(self, since: int | None = None) -> None:
        self.conn.send(orjson.dumps({} if since is None else {"since": since}).decode())

    def receive(self, timeout: float = 10) -> dict[str, Any]:
        frame: dict[str, Any] = orjson.loads(self.conn.recv(timeout))
        self.frames.append(frame)
        if frame["t"] == "snapshot":
            self.snapshots += 1
            self.seq = frame["seq"]
            self.entities = {
                (kind, e["id"]): e for kind, plural in _PLURALS.items() for e in frame[plural]
            }
        elif frame["t"] == "delta":
            assert frame["seq"] - len(frame["changes"]) == self.seq, (
                f"gap or doubled delta: at {self.seq}, got seq {frame['seq']} "
                f"with {len(frame['changes'])} changes"
            )
            for c in frame["changes"]:
                if c["op"] == "put":
                    self.entities[(c["kind"], c["id"])] = c["value"]
                else:
                    self.entities.pop((c["kind"], c["id"]), None)
            self.seq = frame["seq"]
        elif frame["t"] == "note":
            self.notes.append(frame)
        return frame

    def until(self, condition: Callable[[Stream], bool], timeout: float = 15.0) -> None:
        """Read frames until ``condition(self)`` holds."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("stream condition not met before the deadline")
            try:
                self.receive(timeout=left)
            except TimeoutError:
                continue

    def get(self, kind: str, id: str) -> dict[str, Any] | None:
        return self.entities.get((kind, id))

    def close(self) -> None:
        self.conn.close()


_PLURALS = {"source": "sources", "node": "nodes", "process": "processes", "job": "jobs"}


@pytest.fixture
def hub_server() -> Iterator[Callable[..., HubServer]]:
    """A factory of real hub servers over the given source configs."""
    servers: list[HubServer] = []

    def make(*sources: SourceConfig, history: HistoryConfig | None = None, **hub: Any) -> HubServer:
        cfg = Config(
            path="test",
            hub=HubConfig(listen=f"127.0.0.1:{free_port()}", **hub),
            sources={s.name: s for s in sources},
            **({} if history is None else {"history": history}),
        )
        server = HubServer(cfg)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
