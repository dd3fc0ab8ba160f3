"""The history: every change the hub commits, kept in an event store, and queries on it.

:class:`History` subscribes to the hub (a :class:`~fleetwatch.hub.Subscription`, like a
stream client) and hands what it gets — each delta's encoded frame, each notification,
each action the hub ran (``Hub.action_hooks``) — to a writer thread through a queue: the
event loop only appends to a queue (the delta's frame is the one the stream sends and the
ring keeps anyway). The writer thread decodes, writes in batches (one transaction per
batch), keeps a copy of the fleet from what it wrote and stores it as a snapshot at
start, every ``snapshot_interval`` seconds and at stop, and prunes by age and size.
When the subscription falls behind (``max_backlog``) it is resynced from a snapshot,
which is written as one: nothing is lost from the fleet at any moment, only the
individual changes of that stretch.

:class:`HistoryStore` answers queries (threads; ``async`` wrappers run them in the
default executor): the fleet at a moment (the newest snapshot at or before it, plus
the changes after it up to then), a process's or a node's state changes, a host's
jobs, raw events. Backends: :mod:`fleetwatch.publishers.history_sql`.

A hub restart opens a new ``epoch`` (the fleet's): its first snapshot is written at
start, so the queries never mix two runs' sequence numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from fleetwatch.accounts import sibling_path, source_of
from fleetwatch.model import KINDS, Delta, Snapshot, dumps
from fleetwatch.publishers.history_sql import (
    Backend,
    EventRow,
    HistoryUnavailable,
    SnapshotRow,
    open_backend,
)
from fleetwatch.publishers.notifications import Notification

if TYPE_CHECKING:
    from fleetwatch.config import Config, HistoryConfig
    from fleetwatch.hub import Hub, Subscription

__all__ = ["History", "HistoryStore", "HistoryUnavailable", "history_url"]

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 60.0
"""Seconds between two prunes by the writer."""
BATCH_MAX = 20_000
"""Queue items (deltas, notes, actions) written in one transaction at most."""
MAX_QUEUED = 1_000
"""Deltas handed to the writer and not written yet, at most: past that the consumer
stops taking from its subscription, which resyncs (a snapshot) if the hub goes on
faster than the store can write for long. Memory stays bounded. The writer is handed
each delta's encoded frame, not its change objects: bytes are nothing for the cyclic
garbage collector to walk, a queue of entities would slow the whole hub down."""
MAX_BACKLOG = 1_000
"""The subscription's ``max_backlog`` (deltas)."""
_PLURALS = {"source": "sources", "node": "nodes", "process": "processes", "job": "jobs"}


def history_url(config: Config) -> str:
    """The store's URL: ``[history] url``, else ``STEM.history.db`` beside the config."""
    url = config.history.url
    if url and url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        return url
    return str(sibling_path(config, url, "history.db"))


# ------------------------------------------------------------------------------- writer


class _Writer(threading.Thread):
    """Writes what the queue brings, one transaction per batch; prunes.

    Items: ``("delta", ts, frame)`` (the delta's encoded frame: the database takes its
    changes apart itself, so this thread does next to nothing per change and holds the
    GIL for little), ``("snap", ts, epoch, seq, json)``, ``("note", ts, epoch, seq,
    frame)``, ``("action", ts, epoch, seq, result)``, ``("flush", event)`` and
    ``("stop", event)``."""

    def __init__(self, backend: Backend, config: HistoryConfig) -> None:
        super().__init__(name="fleetwatch-history", daemon=True)
        self.backend = backend
        self.retention = config.retention * 86400.0
        self.max_bytes = int(config.max_size * 1e6) if config.max_size else None
        self.queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.epoch = ""
        self._last_prune = 0.0
        self.failed: str | None = None

    def run(self) -> None:
        q = self.queue
        stop = False
        while not stop:
            items = [q.get()]
            with contextlib.suppress(queue.Empty):
                while len(items) < BATCH_MAX:
                    items.append(q.get_nowait())
            frames: list[tuple[float, str, str]] = []
            events: list[EventRow] = []
            snapshots: list[SnapshotRow] = []
            waiters: list[threading.Event] = []
            for item in items:
                tag = item[0]
                if tag == "delta":
                    if self.epoch:
                        frames.append((item[1], self.epoch, item[2].decode()))
                elif tag == "snap":
                    _, ts, self.epoch, seq, text = item
                    snapshots.append((ts, seq, self.epoch, text))
                elif tag in ("note", "action"):
                    events.append(_other(tag, *item[1:]))
                elif tag == "flush":
                    waiters.append(item[1])
                elif tag == "stop":
                    waiters.append(item[1])
                    stop = True
            now = time.time()
            try:
                self.backend.write(events, snapshots, frames)
                if now - self._last_prune >= PRUNE_INTERVAL and not stop:
                    self._last_prune = now
                    self.prune(now)
            except Exception as exc:  # a full disk, a lost server: say so, keep the hub
                if self.failed is None:
                    log.error("history: cannot write the store: %s", type(exc).__name__)
                self.failed = type(exc).__name__
            for waiter in waiters:
                waiter.set()

    def prune(self, now: float) -> int:
        dropped = self.backend.prune(now - self.retention, self.max_bytes)
        if dropped:
            log.info("history: pruned %d events", dropped)
        return dropped


def _other(kind: str, ts: float, epoch: str, seq: int, value: dict[str, Any]) -> EventRow:
    """The row of a notification or an action."""
    if kind == "note":
        id = str(value.get("subject", {}).get("id", value.get("id", "")))
        source = str(value.get("source", source_of(id)))
        state = str(value.get("severity", ""))
    else:
        id = str(value["target"]["id"])
        source = source_of(id)
        state = "ok" if value.get("ok") else "failed"
    return (ts, seq, epoch, "put", kind, id, source, state, dumps(value).decode())


# ------------------------------------------------------------------------------- publisher


class History:
    """The hub's history: a writer fed from a subscription, and its :attr:`store`."""

    def __init__(self, hub: Hub, config: HistoryConfig, url: str) -> None:
        self.hub = hub
        self.config = config
        self.backend = open_backend(url)
        self.store = HistoryStore(self.backend)
        self._writer = _Writer(self.backend, config)
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._snapped = (-1, -math.inf)  # the last snapshot's seq, and when (the loop's clock)
        self.resyncs = 0
        """How many times the store could not keep up and was resynced from a snapshot."""

    @classmethod
    def for_hub(cls, hub: Hub) -> History | None:
        """The history of ``hub``'s config, or None when it is off."""
        if not hub.config.history.enabled:
            return None
        return cls(hub, hub.config.history, history_url(hub.config))

    def start(self) -> None:
        """Subscribe and start writing (on the hub's loop). The first snapshot is now."""
        self._writer.start()
        self._sub = self.hub.subscribe(max_backlog=MAX_BACKLOG, client=False)
        self._snap(self.hub.snapshot())  # no await since subscribe(): no gap
        self.hub.action_hooks.append(self._action)
        self._task = asyncio.get_running_loop().create_task(self._consume(), name="history")

    def _snap(self, snapshot: Snapshot) -> None:
        """Queue a snapshot (encoded here, on the loop: at start, every snapshot_interval
        while things change, on a resync and at stop)."""
        self._snapped = (snapshot.seq, time.monotonic())
        text = dumps(snapshot.as_dict()).decode()
        self._writer.queue.put(("snap", time.time(), snapshot.epoch, snapshot.seq, text))

    def _snapshot_due(self) -> bool:
        seq, when = self._snapped
        interval = self.config.snapshot_interval
        return self.hub.fleet.seq != seq and time.monotonic() - when >= interval

    def _action(self, done: dict[str, Any]) -> None:
        fleet = self.hub.fleet
        self._writer.queue.put(("action", float(done["ts"]), fleet.epoch, fleet.seq, done))

    def _take(self, items: Iterable[Delta | Notification]) -> None:
        put = self._writer.queue.put
        now = time.time()
        fleet = self.hub.fleet
        for item in items:
            if isinstance(item, Delta):
                put(("delta", now, item.frame()))
            else:
                frame = item.frame()
                frame.pop("t", None)
                put(("note", item.ts, fleet.epoch, fleet.seq, frame))

    async def _consume(self) -> None:
        sub = self._sub
        assert sub is not None
        queue = self._writer.queue
        while True:
            while queue.qsize() > MAX_QUEUED:  # noqa: ASYNC110 (a thread's queue: no Event)
                await asyncio.sleep(0.01)  # the writer is behind: let the subscription hold
            items = await sub.next()
            if sub.resync:
                self.resyncs += 1
                log.warning("history: fell behind the hub; resynced from a snapshot")
                self._snap(sub.take_resync())
                continue
            self._take(items)
            if self._snapshot_due():
                self._snap(self.hub.snapshot())

    async def flush(self) -> None:
        """Wait until everything committed so far is written."""
        self.hub.flush()
        await asyncio.sleep(0)  # let the consumer take the delta
        done = threading.Event()
        self._writer.queue.put(("flush", done))
        await asyncio.to_thread(done.wait)

    async def stop(self) -> None:
        """Write everything committed so far (call after ``Hub.stop()``), and close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        sub = self._sub
        if sub is not None:
            self.hub.flush()
            if sub.resync:
                self._snap(sub.take_resync())
            self._take(sub.drain())
            sub.close()
            self._sub = None
            if self.hub.fleet.seq != self._snapped[0]:
                self._snap(self.hub.snapshot())  # the state at stop
        with contextlib.suppress(ValueError):
            self.hub.action_hooks.remove(self._action)
        if self._writer.is_alive():
            done = threading.Event()
            self._writer.queue.put(("stop", done))
            await asyncio.to_thread(self._writer.join)
        self.backend.close()

    @property
    def failed(self) -> str | None:
        return self._writer.failed


# ------------------------------------------------------------------------------- queries


class HistoryStore:
    """Queries on a backend (thread-safe). Times are Unix seconds."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def name(self) -> str:
        return self.backend.name

    def _visible(self, sources: Sequence[str] | None) -> tuple[str, list[Any]]:
        """A condition on ``source`` for an account restricted to ``sources`` globs."""
        if sources is None or "*" in sources:
            return "", []
        if not sources:
            return " AND 1 = 0", []
        clauses, args = [], []
        for pattern in sources:
            clause, arg = self.backend.glob("source", pattern)
            clauses.append(clause)
            args.append(arg)
        return " AND (" + " OR ".join(clauses) + ")", args

    def bounds(self) -> dict[str, Any]:
        q = self.backend.query
        first_e, last_e, low, high = q("SELECT MIN(ts), MAX(ts), MIN(n), MAX(n) FROM events")[0]
        first_s, last_s, snaps = q("SELECT MIN(ts), MAX(ts), COUNT(*) FROM snapshots")[0]
        firsts = [t for t in (first_e, first_s) if t is not None]
        lasts = [t for t in (last_e, last_s) if t is not None]
        return {
            "enabled": True,
            "backend": self.backend.name,
            "first": min(firsts) if firsts else None,
            "last": max(lasts) if lasts else None,
            "events": 0 if low is None else int(high) - int(low) + 1,
            "snapshots": int(snaps),
        }

    def _snapshot_at(self, at: float) -> tuple[float, int, str, str] | None:
        rows = self.backend.query(
            "SELECT ts, seq, epoch, value FROM snapshots WHERE ts <= ? ORDER BY ts DESC LIMIT 1",
            (at,),
        )
        if not rows:
            return None
        ts, seq, epoch, value = rows[0]
        return float(ts), int(seq), str(epoch), str(value)

    def fleet_at(self, at: float, sources: Sequence[str] | None = None) -> dict[str, Any] | None:
        """The fleet at ``at`` in ``GET /api/fleet``'s shape plus ``at``; None before the
        first snapshot."""
        snap = self._snapshot_at(at)
        if snap is None:
            return None
        ts, seq, epoch, value = snap
        snapshot = orjson.loads(value)
        state: dict[str, dict[str, Any]] = {
            kind: {e["id"]: e for e in snapshot[_PLURALS[kind]]} for kind in KINDS
        }
        where, args = self._visible(sources)
        rows = self.backend.query(
            "SELECT seq, op, kind, id, value FROM events WHERE ts >= ? AND ts <= ?"
            " AND epoch = ? AND seq > ? AND kind IN ('source', 'node', 'process', 'job')"
            + where
            + " ORDER BY n",
            (ts, at, epoch, seq, *args),
        )
        for row_seq, op, kind, id, text in rows:
            if op == "put":
                state[kind][id] = orjson.loads(text)
            else:
                state[kind].pop(id, None)
            seq = max(seq, int(row_seq))
        restricted = sources is not None and "*" not in sources
        out: dict[str, Any] = {"seq": seq, "name": snapshot["name"], "epoch": epoch, "at": at}
        for kind in KINDS:
            entities = state[kind]
            ids = sorted(entities)
            if restricted:
                ids = [i for i in ids if _sees(sources, i)]
            out[_PLURALS[kind]] = [entities[i] for i in ids]
        return out

    def entity_at(self, kind: str, id: str, at: float) -> dict[str, Any] | None:
        """One entity as it was at ``at`` (None if it did not exist then, or is unknown)."""
        snap = self._snapshot_at(at)
        rows = self.backend.query(
            "SELECT epoch, seq, op, value FROM events WHERE kind = ? AND id = ? AND ts <= ?"
            " ORDER BY ts DESC, n DESC LIMIT 1",
            (kind, id, at),
        )
        if rows:
            epoch, seq, op, value = rows[0]
            if snap is None or (epoch == snap[2] and int(seq) > snap[1]):
                return None if op == "del" else _object(value)
        if snap is None:
            return None
        plural = _PLURALS.get(kind, "")
        for entity in orjson.loads(snap[3]).get(plural, ()):
            if entity.get("id") == id:
                return entity if isinstance(entity, dict) else None
        return None

    def changes(
        self, kind: str, id: str, since: float, until: float
    ) -> list[tuple[float, str, Any]]:
        """``(ts, op, value)`` of every change of one entity in (since, until], oldest first."""
        rows = self.backend.query(
            "SELECT ts, op, value FROM events WHERE kind = ? AND id = ? AND ts > ? AND ts <= ?"
            " ORDER BY n",
            (kind, id, since, until),
        )
        return [(float(ts), str(op), None if v is None else orjson.loads(v)) for ts, op, v in rows]

    def process_history(self, id: str, since: float, until: float) -> dict[str, Any]:
        initial = self.entity_at("process", id, since)
        changes: list[dict[str, Any]] = []
        last = initial.get("state") if initial else None
        for ts, op, value in self.changes("process", id, since, until):
            state = value.get("state") if op == "put" and isinstance(value, dict) else None
            if state == last:
                continue  # another field changed (a description, a pid read again)
            last = state
            v = value if isinstance(value, dict) else {}
            changes.append(
                {
                    "ts": ts,
                    "state": state,
                    "pid": v.get("pid"),
                    "exitstatus": v.get("exitstatus"),
                    "description": v.get("description", ""),
                    "spawnerr": v.get("spawnerr", ""),
                }
            )
        return {"id": id, "since": since, "until": until, "initial": initial, "changes": changes}

    def node_history(self, id: str, since: float, until: float) -> dict[str, Any]:
        initial = self.entity_at("node", id, since)
        changes: list[dict[str, Any]] = []
        last = initial.get("state") if initial else None
        for ts, op, value in self.changes("node", id, since, until):
            state = value.get("state") if op == "put" and isinstance(value, dict) else None
            if state != last:
                changes.append({"ts": ts, "state": state})
                last = state
        source = source_of(id)
        host = id[len(source) + 1 :]
        names = {id, host}
        rows = self.backend.query(
            "SELECT value FROM events WHERE source = ? AND kind = 'job' AND ts > ? AND ts <= ?"
            " AND state IN ('done', 'failed') AND op = 'put' ORDER BY n",
            (source, since, until),
        )
        jobs: dict[str, dict[str, Any]] = {}
        for (value,) in rows:
            job = _object(value)
            if job is None:
                continue
            server, client = job.get("server"), job.get("client")
            if server in names or (client in names and client == server):
                jobs.pop(job["id"], None)
                jobs[job["id"]] = job
        done = sum(1 for j in jobs.values() if j.get("state") == "done")
        local = sum(1 for j in jobs.values() if j.get("client") == j.get("server"))
        return {
            "id": id,
            "since": since,
            "until": until,
            "initial": initial,
            "changes": changes,
            "jobs": list(jobs.values()),
            "totals": {"done": done, "failed": len(jobs) - done, "local": local},
        }

    def events(
        self,
        since: float,
        until: float,
        *,
        kind: str | None = None,
        id: str | None = None,
        limit: int = 1000,
        sources: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        where, args = self._visible(sources)
        sql = "SELECT ts, seq, op, kind, id, value FROM events WHERE ts > ? AND ts <= ?"
        params: list[Any] = [since, until]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        if id:
            clause, arg = self.backend.glob("id", id)
            sql += f" AND {clause}"
            params.append(arg)
        rows = self.backend.query(
            sql + where + " ORDER BY ts, n LIMIT ?", (*params, *args, limit + 1)
        )
        out = [
            {
                "ts": float(ts),
                "seq": int(seq),
                "op": op,
                "kind": k,
                "id": i,
                "value": None if v is None else orjson.loads(v),
            }
            for ts, seq, op, k, i, v in rows[:limit]
        ]
        return {"events": out, "more": len(rows) > limit}

    def first(self) -> float | None:
        rows = self.backend.query("SELECT MIN(ts) FROM snapshots")
        return None if rows[0][0] is None else float(rows[0][0])


def _object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = orjson.loads(text)
    return value if isinstance(value, dict) else None


def _sees(sources: Sequence[str] | None, id: str) -> bool:
    import fnmatch

    source = source_of(id)
    return sources is None or any(fnmatch.fnmatchcase(source, p) for p in sources)
