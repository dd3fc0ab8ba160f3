"""Scale-out on Redis: real redis-server, real supervisords, collectors as processes, a hub.

Each test starts its own ``redis-server`` (Debian's) on a free loopback port in a tmp
dir, two supervisords, a ``fleetwatch collect`` process per supervisord and a hub with
``bus`` set and no sources of its own. Under CI=true a missing redis-server fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port
from tests.conftest import HubServer, Stream, require, wait_for

Supervisors = Callable[..., Supervisord]
HubServers = Callable[..., HubServer]


def programs(prefix: str) -> list[Program]:
    return [
        Program("web", demo_program("service", f"{prefix}-web"), startsecs=0),
        Program("idle", demo_program("service", f"{prefix}-idle"), autostart=False, startsecs=0),
        Program("worker", demo_program("worker", f"{prefix}-w"), numprocs=2, group="workers"),
    ]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    exe = require("redis-server")
    import redis

    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def pong() -> bool:
        assert proc.poll() is None, f"redis-server exited ({proc.returncode})"
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(pong, 20, "redis-server to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Collector:
    """``fleetwatch collect`` in a process of its own (so SIGKILL is real)."""

    def __init__(self, tmp_path: Path, sv: Supervisord, url: str) -> None:
        self.name = f"c-{sv.name}"
        self.config = tmp_path / f"{self.name}.toml"
        self.config.write_text(
            f'[hub]\nbatch_interval = 0.02\n\n[sources.{sv.name}]\nkind = "supervisor"\n'
            f'url = "{sv.url}"\npoll_interval = 0.5\n',
            encoding="utf-8",
        )
        self.url = url
        self.log = tmp_path / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fleetwatch.cli",
                    "collect",
                    "-c",
                    str(self.config),
                    "--bus",
                    self.url,
                    "--name",
                    self.name,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[Callable[[Supervisord, str], Collector]]:
    started: list[Collector] = []

    def make(sv: Supervisord, url: str) -> Collector:
        c = Collector(tmp_path, sv, url)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


def truth(*svs: Supervisord) -> dict[str, tuple[str, int]]:
    """What the supervisords themselves report: id -> (statename, pid)."""
    out: dict[str, tuple[str, int]] = {}
    for sv in svs:
        for p in sv.call("supervisor.getAllProcessInfo"):
            out[f"{sv.name}:{p['group']}:{p['name']}"] = (p["statename"], p["pid"])
    return out


def replica(stream: Stream) -> dict[str, tuple[str, int]]:
    return {
        id: (e["state"], e["pid"] or 0)
        for (kind, id), e in stream.entities.items()
        if kind == "process"
    }


def converge(stream: Stream, *svs: Supervisord, timeout: float = 30) -> None:
    """Read the stream (which checks every seq is +1) until its replica is the truth."""
    stream.until(
        lambda s: (
            replica(s) == truth(*svs)
            and all(
                (src := s.get("source", sv.name)) is not None and src["status"] == "online"
                for sv in svs
            )
        ),
        timeout,
    )


def hub_processes(hub: HubServer) -> dict[str, tuple[str, int]]:
    items = hub.get("/api/processes")
    assert len(items) == len({p["id"] for p in items}), "a process listed twice"
    return {p["id"]: (p["state"], p["pid"] or 0) for p in items}


@pytest.fixture
def fleet(
    supervisors: Supervisors,
    redis_url: str,
    collectors: Callable[[Supervisord, str], Collector],
    hub_server: HubServers,
) -> tuple[Supervisord, Supervisord, Collector, Collector, HubServer]:
    a = supervisors("a", programs("a"))
    b = supervisors("b", programs("b"))
    ca, cb = collectors(a, redis_url), collectors(b, redis_url)
    hub = hub_server(bus=redis_url, batch_interval=0.02)
    return a, b, ca, cb, hub


Fleet = tuple[Supervisord, Supervisord, Collector, Collector, HubServer]


def open_stream(hub: HubServer) -> Stream:
    stream = hub.ws()
    stream.hello()
    assert stream.receive()["t"] == "snapshot"
    return stream


def test_two_collectors_one_hub_sequence_continuous(fleet: Fleet) -> None:
    a, b, _, _, hub = fleet
    stream = open_stream(hub)
    try:
        converge(stream, a, b)
        assert hub_processes(hub) == truth(a, b)
        # Changes on both sides travel collector -> Redis -> hub -> stream, gap-free.
        a.call("supervisor.stopProcess", "web")
        b.call("supervisor.startProcess", "idle")
        a.call("supervisor.startProcess", "idle")
        converge(stream, a, b)
        assert stream.get("process", "a:web:web")["state"] == "STOPPED"  # type: ignore[index]
        assert stream.get("process", "b:idle:idle")["state"] == "RUNNING"  # type: ignore[index]
        assert stream.snapshots == 1, "the stream fell back to a snapshot"
        assert hub_processes(hub) == truth(a, b)
        sources = {s["id"]: s for s in hub.get("/api/sources")}
        assert {"a", "b"} <= set(sources)
        assert any(act["name"] == "stop" for act in sources["a"]["actions"])
    finally:
        stream.close()


def test_collector_killed_and_restarted_loses_and_doubles_nothing(fleet: Fleet) -> None:
    a, b, ca, _, hub = fleet
    stream = open_stream(hub)
    try:
        converge(stream, a, b)
        before = stream.seq
        ca.kill()  # SIGKILL: nothing flushed, nothing said
        # While it is down, a's supervisord changes: the restarted collector must tell.
        a.call("supervisor.stopProcess", "web")
        a.call("supervisor.startProcess", "idle")
        b.call("supervisor.stopProcess", "web")  # the other collector keeps publishing
        ca.start()
        converge(stream, a, b)
        assert stream.seq > before
        assert stream.get("process", "a:web:web")["state"] == "STOPPED"  # type: ignore[index]
        assert stream.get("process", "a:idle:idle")["state"] == "RUNNING"  # type: ignore[index]
        assert hub_processes(hub) == truth(a, b)  # nothing lost, nothing twice
        assert stream.snapshots == 1
    finally:
        stream.close()


def test_hub_restarted_resumes_from_snapshot(fleet: Fleet) -> None:
    a, b, _, _, hub = fleet
    stream = open_stream(hub)
    try:
        converge(stream, a, b)
        old_epoch = hub.get("/api/fleet")["epoch"]
    finally:
        stream.close()
    hub.stop()
    a.call("supervisor.stopProcess", "web")  # while no hub reads the streams
    hub.start()
    stream = open_stream(hub)
    try:
        converge(stream, a, b)
        assert hub.get("/api/fleet")["epoch"] != old_epoch
        assert stream.get("process", "a:web:web")["state"] == "STOPPED"  # type: ignore[index]
        b.call("supervisor.stopProcess", "web")  # and it follows on after the snapshot
        converge(stream, a, b)
        assert hub_processes(hub) == truth(a, b)
    finally:
        stream.close()


def test_action_routed_to_the_owning_collector(fleet: Fleet) -> None:
    a, b, _, _, hub = fleet
    stream = open_stream(hub)
    try:
        converge(stream, a, b)
        r = hub.action("process", "b:web:web", "stop")
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
        assert b.call("supervisor.getProcessInfo", "web")["statename"] == "STOPPED"
        assert a.call("supervisor.getProcessInfo", "web")["statename"] == "RUNNING"
        converge(stream, a, b)
        r = hub.action("group", "a:workers", "restart")
        assert r.status_code in (200, 409), r.text
        r = hub.action("process", "a:idle:idle", "start")
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
        assert a.call("supervisor.getProcessInfo", "idle")["statename"] == "RUNNING"
        # The hub's checks hold for remote sources: unknown action, bad target.
        r = hub.action("process", "a:web:web", "no-such-action")
        assert r.status_code == 409, r.text
        assert r.json()["ok"] is False
        assert hub.action("process", "a:nope:nope", "stop").status_code == 404
        # A log read travels the same way.
        chunk = hub.log_text("a:web:web")
        assert "a-web: service up" in chunk["text"]
    finally:
        stream.close()


def test_silent_collector_marks_its_sources_offline(fleet: Fleet) -> None:
    a, b, _, cb, hub = fleet
    stream = open_stream(hub)
    try:
        converge(stream, a, b)
        cb.signal(signal.SIGSTOP)  # alive but silent: no heartbeat, no answers
        stream.until(lambda s: (s.get("source", "b") or {}).get("status") == "offline", 30)
        src: dict[str, Any] = hub.source("b")
        assert src["status"] == "offline"
        assert "silent" in src["error"]
        assert hub.source("a")["status"] == "online"
        r = hub.action("process", "b:web:web", "stop")
        assert r.status_code == 502, r.text
        assert r.json()["ok"] is False
        assert "not answering" in r.json()["error"]
        assert b.call("supervisor.getProcessInfo", "web")["statename"] == "RUNNING"
        cb.signal(signal.SIGCONT)
        converge(stream, a, b)
        assert hub.source("b")["status"] == "online"
    finally:
        stream.close()


def test_unanswered_action_is_a_504(redis_url: str) -> None:
    """A registered collector that never reads its actions: the hub answers 504 in time."""
    import redis

    from fleetwatch.bus.redis import BusTimeout, HubLink, actions_key, changes_key, snapshot_key
    from fleetwatch.config import Config, HubConfig
    from fleetwatch.hub import Hub
    from fleetwatch.model import ActionSpec, Process, Snapshot, Source, dumps
    from fleetwatch.sources.base import Target
    from tests.conftest import until

    sync = redis.Redis.from_url(redis_url)
    stop = ActionSpec(name="stop", title="Stop", targets=("process",))
    snap = Snapshot(
        seq=2,
        name="ghost",
        epoch="e1",
        sources=(
            Source(id="ghost", kind="supervisor", name="ghost", status="online", actions=(stop,)),
        ),
        nodes=(),
        processes=(Process(id="ghost:g:p", source="ghost", group="g", name="p", state="RUNNING"),),
        jobs=(),
    )
    entry = sync.xadd(
        changes_key("ghost"),
        {"t": "snap", "epoch": "e1", "seq": 2, "data": dumps(snap.as_dict())},
    )
    sync.set(snapshot_key("ghost"), entry)
    sync.sadd("fleetwatch:collectors", "ghost")
    sync.hset("fleetwatch:collector:ghost", mapping={"beat": 1, "epoch": "e1"})

    async def main() -> None:
        hub = Hub(Config(path="test", hub=HubConfig(bus=redis_url)))
        link = HubLink(hub, redis_url, request_timeout=1.0, silent_after=60)
        hub.links.append(link)
        await hub.start()
        try:
            await until(lambda: hub.fleet.get("process", "ghost:g:p"), 15, "the ghost's process")
            source = hub.fleet.get("source", "ghost")
            assert isinstance(source, Source)
            assert source.actions == (stop,)
            with pytest.raises(BusTimeout) as caught:
                await hub.run_action(Target("process", "ghost:g:p"), "stop")
            assert caught.value.status == 504
            assert "did not answer within 1 s" in str(caught.value)
        finally:
            await hub.stop()

    try:
        asyncio.run(main())
        assert sync.xlen(actions_key("ghost")) == 1  # the request went to the ghost's stream
    finally:
        sync.close()
