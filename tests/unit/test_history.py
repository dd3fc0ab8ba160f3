"""The history's store: writing, the queries, retention — on SQLite and on a real PostgreSQL.

Every scenario is written through the real writer thread (``_Writer``) from real
deltas of a :class:`~fleetwatch.model.Fleet`, with chosen times, so the answers can be
checked exactly; the same scenario is run on both backends and must answer the same.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.config import Config, HistoryConfig, HubConfig
from fleetwatch.hub import Hub
from fleetwatch.model import Fleet, Job, Node, Process, Source, dumps
from fleetwatch.publishers.history import History, HistoryStore, _Writer, history_url
from fleetwatch.publishers.history_sql import Backend, SqliteBackend, open_backend
from tests.pg import postgres_server
from tests.unit.test_web import FakeConfig, FakeSource

T0 = 1_800_000_000.0
_databases = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def _fresh_pg(server: str) -> str:
    import psycopg

    name = f"history_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
    opened: list[Backend] = []

    def make() -> Backend:
        if request.param == "sqlite":
            backend = open_backend(str(tmp_path / f"h{len(opened)}.history.db"))
        else:
            backend = open_backend(_fresh_pg(request.getfixturevalue("pg_server")))
        opened.append(backend)
        return backend

    yield make
    for b in opened:
        b.close()


def proc(name: str, state: str, **kw: Any) -> Process:
    return Process(id=f"sv:g:{name}", source="sv", group="g", name=name, state=state, **kw)


class Scenario:
    """Feeds a writer with a fleet's deltas at chosen times."""

    def __init__(self, backend: Backend, **history: Any) -> None:
        self.fleet = Fleet("ACME")
        self.writer = _Writer(backend, HistoryConfig(**history))
        self.writer.start()
        self.store = HistoryStore(backend)

    def snap(self, ts: float) -> None:
        self.fleet.commit()
        snapshot = self.fleet.snapshot()
        text = dumps(snapshot.as_dict()).decode()
        self.writer.queue.put(("snap", ts, snapshot.epoch, snapshot.seq, text))

    def commit(self, ts: float, *entities: Any, delete: tuple[str, str] | None = None) -> None:
        for e in entities:
            self.fleet.put(e)
        if delete is not None:
            self.fleet.delete(delete[0], delete[1])  # type: ignore[arg-type]
        delta = self.fleet.commit()
        assert delta is not None
        self.writer.queue.put(("delta", ts, delta.frame()))

    def note(self, at: float, **frame: Any) -> None:
        self.writer.queue.put(("note", at, self.fleet.epoch, self.fleet.seq, frame))

    def sync(self) -> None:
        done = threading.Event()
        self.writer.queue.put(("flush", done))
        assert done.wait(30), "the writer did not flush"

    def close(self) -> None:
        done = threading.Event()
        self.writer.queue.put(("stop", done))
        self.writer.join(30)
        assert not self.writer.is_alive()


def day(backend: Backend) -> Scenario:
    """A small day: a source, a host, two processes and jobs, with a restart of web."""
    s = Scenario(backend, snapshot_interval=1e9)
    s.fleet.put(Source(id="sv", kind="supervisor", name="sv", status="online"))
    s.fleet.put(Source(id="other", kind="supervisor", name="other", status="online"))
    s.fleet.put(Node(id="sv/h1", source="sv", name="h1"))
    s.fleet.put(proc("web", "RUNNING", pid=10))
    s.fleet.put(proc("db", "RUNNING", pid=20))
    s.fleet.put(Process(id="other:g:x", source="other", group="g", name="x", state="RUNNING"))
    s.snap(T0)
    s.commit(T0 + 10, proc("web", "STOPPING", pid=10))
    s.commit(T0 + 11, proc("web", "STOPPED", exitstatus=0, description="stopped"))
    s.note(T0 + 11, id="n1", ts=T0 + 11, severity="warning", source="sv",
           subject={"kind": "process", "id": "sv:g:web"}, title="web stopped", text="")  # fmt: skip
    s.commit(T0 + 12, proc("web", "STOPPED", exitstatus=0, description="stopped again"))
    s.commit(T0 + 20, proc("web", "RUNNING", pid=11))
    s.commit(T0 + 30, Node(id="sv/h1", source="sv", name="h1", state="offline"))
    s.commit(
        T0 + 31,
        Job(id="sv#1", source="sv", client="h2", server="h1", state="done", ended=T0 + 31),
        Job(id="sv#2", source="sv", client="h1", server="h1", state="done", ended=T0 + 31),
        Job(id="sv#3", source="sv", client="h2", server="h1", state="failed", ended=T0 + 31),
        Job(id="sv#4", source="sv", client="h2", server="h9", state="done", ended=T0 + 31),
    )
    s.commit(T0 + 40, delete=("process", "sv:g:db"))
    s.sync()
    return s


def answers(store: HistoryStore) -> dict[str, Any]:
    """Everything the queries say about :func:`day` (for comparing backends)."""
    out: dict[str, Any] = {}
    for at in (T0 - 1, T0, T0 + 10.5, T0 + 11, T0 + 25, T0 + 50):
        fleet = store.fleet_at(at)
        out[f"fleet@{at - T0}"] = None if fleet is None else {**fleet, "epoch": "-"}
    out["restricted"] = {**(store.fleet_at(T0 + 50, ["oth*"]) or {}), "epoch": "-"}
    out["web"] = store.process_history("sv:g:web", T0 - 100, T0 + 100)
    out["web-late"] = store.process_history("sv:g:web", T0 + 10.5, T0 + 15)
    out["db"] = store.process_history("sv:g:db", T0 + 5, T0 + 100)
    out["h1"] = store.node_history("sv/h1", T0, T0 + 100)
    out["events"] = store.events(T0, T0 + 100, limit=3)
    out["notes"] = store.events(T0, T0 + 100, kind="note")
    out["glob"] = store.events(T0, T0 + 100, id="sv:g:w*")
    out["hidden"] = store.events(T0, T0 + 100, sources=["other"])
    bounds = store.bounds()
    out["bounds"] = {k: bounds[k] for k in ("first", "last", "events", "snapshots")}
    return out


def test_day(make_backend: Callable[[], Backend]) -> None:
    s = day(make_backend())
    try:
        a = answers(s.store)
    finally:
        s.close()
    assert a["fleet@-1.0"] is None
    at0 = a["fleet@0.0"]
    assert list(at0) == ["seq", "name", "epoch", "at", "sources", "nodes", "processes", "jobs"]
    assert [p["state"] for p in at0["processes"]] == ["RUNNING", "RUNNING", "RUNNING"]
    assert a["fleet@10.5"]["processes"][2]["state"] == "STOPPING"
    assert a["fleet@11.0"]["processes"][2]["state"] == "STOPPED"
    assert a["fleet@25.0"]["processes"][2] == {**a["fleet@25.0"]["processes"][2], "pid": 11}
    late = a["fleet@50.0"]
    assert [p["id"] for p in late["processes"]] == ["other:g:x", "sv:g:web"]
    assert late["nodes"][0]["state"] == "offline"
    assert len(late["jobs"]) == 4
    assert late["seq"] == s.fleet.seq
    assert [p["id"] for p in a["restricted"]["processes"]] == ["other:g:x"]
    assert [x["id"] for x in a["restricted"]["sources"]] == ["other"]
    web = a["web"]
    assert web["initial"] is None  # before the first snapshot: unknown
    assert [(c["ts"] - T0, c["state"]) for c in web["changes"]] == [
        (10.0, "STOPPING"),
        (11.0, "STOPPED"),
        (20.0, "RUNNING"),
    ]
    assert web["changes"][-1]["pid"] == 11
    assert a["web-late"]["initial"]["state"] == "STOPPING"
    assert [c["state"] for c in a["web-late"]["changes"]] == ["STOPPED"]  # a 2nd STOPPED: same
    assert a["db"]["initial"]["state"] == "RUNNING"
    assert [(c["ts"] - T0, c["state"]) for c in a["db"]["changes"]] == [(40.0, None)]
    h1 = a["h1"]
    assert h1["initial"]["state"] == "online"
    assert [(c["ts"] - T0, c["state"]) for c in h1["changes"]] == [(30.0, "offline")]
    assert sorted(j["id"] for j in h1["jobs"]) == ["sv#1", "sv#2", "sv#3"]
    assert h1["totals"] == {"done": 2, "failed": 1, "local": 1}
    assert [e["ts"] - T0 for e in a["events"]["events"]] == [10.0, 11.0, 11.0]
    assert a["events"]["more"] is True
    (note,) = a["notes"]["events"]
    assert (note["kind"], note["id"], note["value"]["title"]) == ("note", "sv:g:web", "web stopped")
    assert {e["id"] for e in a["glob"]["events"]} == {"sv:g:web"}
    assert a["hidden"]["events"] == []
    assert a["bounds"]["first"] == T0
    assert a["bounds"]["last"] == T0 + 40
    assert a["bounds"]["snapshots"] == 1  # at start (the one at stop comes after)
    assert a["bounds"]["events"] == 11  # 10 changes and a note


def test_sqlite_and_postgresql_answer_the_same(tmp_path: Path, pg_server: str) -> None:
    results = []
    for url in (str(tmp_path / "same.history.db"), _fresh_pg(pg_server)):
        backend = open_backend(url)
        s = day(backend)
        try:
            results.append(answers(s.store))
        finally:
            s.close()
            backend.close()
    sqlite, postgres = results
    assert sqlite.keys() == postgres.keys()
    for key in sqlite:
        assert sqlite[key] == postgres[key], key


def test_retention_by_age(make_backend: Callable[[], Backend]) -> None:
    backend = make_backend()
    s = Scenario(backend, snapshot_interval=1e9)
    s.fleet.put(proc("web", "RUNNING", pid=1))
    s.snap(T0)
    for i in range(1, 50):
        s.commit(T0 + i * 100, proc("web", "RUNNING" if i % 2 else "STOPPED", pid=i + 1))
        if i % 10 == 0:
            s.snap(T0 + i * 100)
    s.sync()
    s.close()
    before = s.store.fleet_at(T0 + 2550)
    assert before is not None
    dropped = backend.prune(T0 + 2550, None)
    # The newest snapshot at or before the cut (T0+2000) is kept, and all after it.
    assert dropped == 19
    assert s.store.bounds()["first"] == T0 + 2000
    assert s.store.fleet_at(T0 + 1999) is None
    assert s.store.fleet_at(T0 + 2550) == before
    assert [e["ts"] for e in s.store.events(0, T0 + 10_000, limit=1)["events"]] == [T0 + 2000]


def test_retention_by_size(make_backend: Callable[[], Backend]) -> None:
    backend = make_backend()
    s = Scenario(backend, snapshot_interval=1e9)
    big = secrets.token_hex(1000)  # not compressible: PostgreSQL compresses repeats
    s.fleet.put(proc("web", "RUNNING", pid=1))
    s.snap(T0)
    for i in range(1, 3001):
        s.commit(T0 + i, proc("web", "RUNNING", pid=i + 1, description=big + str(i)))
        if i % 500 == 0:
            s.snap(T0 + i)
    s.sync()
    s.close()
    full = backend.size()
    assert full > 6_000_000
    backend.prune(None, full // 3)
    # Two thirds of the events went (whole stretches between snapshots: a little more).
    assert 500 <= s.store.bounds()["events"] <= 1001
    if isinstance(backend, SqliteBackend):  # PostgreSQL reuses its freed pages instead
        assert backend.size() <= full // 3 + 500_000
    first = s.store.bounds()["first"]
    assert first is not None
    assert first > T0
    # What is left still rebuilds the fleet at its newest moment.
    latest = s.store.fleet_at(T0 + 3000)
    assert latest is not None
    assert latest["processes"][0]["pid"] == 3000 + 1


def test_snapshots_at_start_every_interval_and_at_stop(
    make_backend: Callable[[], Backend],
) -> None:
    backend = make_backend()
    url = str(backend.path) if isinstance(backend, SqliteBackend) else _url_of(backend)

    async def run() -> list[int]:
        hub = _hub(url, snapshot_interval=1e-6)
        history = History.for_hub(hub)
        assert history is not None
        history.start()  # a snapshot at start
        seqs = [hub.fleet.seq]
        _put(hub, "RUNNING")
        await history.flush()  # the consumer took the delta, and the interval is past
        seqs.append(hub.fleet.seq)
        await history.flush()  # nothing changed since: no new snapshot
        _put(hub, "STOPPED")  # committed by the stop: a last snapshot of it
        await hub.stop()
        await history.stop()
        seqs.append(hub.fleet.seq)
        return seqs

    seqs = asyncio.run(run())
    rows = backend.query("SELECT seq FROM snapshots ORDER BY ts")
    assert [seq for (seq,) in rows] == seqs


# ----------------------------------------------------------------------------- with a hub


def _hub(url: str, **history: Any) -> Hub:
    config = Config(
        path="t",
        hub=HubConfig(name="ACME"),
        sources={"f1": FakeConfig("f1")},  # type: ignore[dict-item]
        history=HistoryConfig(url=url, **history),
    )
    return Hub(config, factories={"fake": lambda cfg, handle: FakeSource(cfg.name, handle)})


def _put(hub: Hub, state: str) -> None:
    runner = hub.runner("f1")
    assert isinstance(runner, FakeSource)
    runner.handle.put(
        Process(id="f1:g:web", source="f1", group="g", name="web", state=state, pid=1)
    )


def test_hub_restart_loses_nothing(make_backend: Callable[[], Backend]) -> None:
    backend = make_backend()
    url = str(backend.path) if isinstance(backend, SqliteBackend) else _url_of(backend)

    async def run(state: str, then: str | None) -> tuple[str, float]:
        hub = _hub(url)
        history = History.for_hub(hub)
        assert history is not None
        history.start()
        _put(hub, state)
        hub.flush()
        await asyncio.sleep(0)
        if then is not None:
            _put(hub, then)  # committed only by the stop: must still be written
        await hub.stop()
        await history.stop()
        return hub.fleet.epoch, hub.fleet.seq

    epoch1, _ = asyncio.run(run("RUNNING", "STOPPED"))
    epoch2, _ = asyncio.run(run("STARTING", "RUNNING"))
    assert epoch1 != epoch2
    store = HistoryStore(open_backend(url))
    try:
        changes = store.process_history("f1:g:web", 0, 1e10)["changes"]
        assert [c["state"] for c in changes] == ["RUNNING", "STOPPED", "STARTING", "RUNNING"]
        epochs = store.backend.query("SELECT DISTINCT epoch FROM events")
        assert {e for (e,) in epochs} == {epoch1, epoch2}
        now = store.fleet_at(1e10)
        assert now is not None
        assert now["epoch"] == epoch2
        assert now["processes"][0]["state"] == "RUNNING"
    finally:
        store.backend.close()


def _url_of(backend: Backend) -> str:
    info = backend._writer.info  # type: ignore[attr-defined]
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


def test_history_url_beside_the_config(tmp_path: Path) -> None:
    config = Config(path=str(tmp_path / "fleet.toml"), history=HistoryConfig())
    assert history_url(config) == str(tmp_path / "fleet.history.db")
    config = Config(path=str(tmp_path / "fleet.toml"), history=HistoryConfig(url="h/x.db"))
    assert history_url(config) == str(tmp_path / "h" / "x.db")
    pg = HistoryConfig(url="postgresql://u@h/db")
    assert history_url(Config(path="x", history=pg)) == "postgresql://u@h/db"


def test_sqlite_file_is_private(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "p.history.db"))
    backend.close()
    assert (tmp_path / "p.history.db").stat().st_mode & 0o777 == 0o600
    (mode,) = open_backend(str(tmp_path / "p.history.db")).query("PRAGMA journal_mode")[0]
    assert mode == "wal"
