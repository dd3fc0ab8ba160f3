"""The Redis bus: :class:`Collector` (publishes a hub's sources) and :class:`HubLink`
(builds a hub's model from collectors, routes actions to them). See
:mod:`fleetwatch.bus` for the keys and ``docs/architecture.md`` for the design.

Changes are read with *stored offsets*: every hub needs every change, so each hub keeps,
per collector, the ID of the last entry it applied and reads on with ``XREAD`` from it (a
restarted hub has an empty model: it starts again from the newest snapshot entry).
Actions are read through a *consumer group* on the collector's action stream, so each is
handled once, and one a collector took but never answered (it died) is answered as
failed when it returns, never run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from fleetwatch.bus import redacted
from fleetwatch.errors import ActionError, SourceError, Unreachable
from fleetwatch.hub import SourceHandle
from fleetwatch.model import (
    ActionSpec,
    Delta,
    Entity,
    Kind,
    Snapshot,
    Source,
    dumps,
    entity_from_dict,
)
from fleetwatch.sources.base import ActionResult, LogChunk, LogReader, Target
from fleetwatch.sources.base import Source as SourceRunner

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from fleetwatch.hub import Hub

__all__ = ["BusTimeout", "BusUnavailable", "Collector", "HubLink", "RemoteRefused", "connect"]

log = logging.getLogger(__name__)

PREFIX = "fleetwatch"
REGISTRY = f"{PREFIX}:collectors"


def changes_key(name: str) -> str:
    return f"{PREFIX}:{name}:changes"


def snapshot_key(name: str) -> str:
    return f"{PREFIX}:{name}:snapshot"


def actions_key(name: str) -> str:
    return f"{PREFIX}:{name}:actions"


def beat_key(name: str) -> str:
    return f"{PREFIX}:collector:{name}"


ACTION_GROUP = "collector"

# XADD with MAXLEN ~ and, atomically, the pointer to the newest snapshot entry.
_ADD_SNAPSHOT = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[2], id)
return id
"""


class BusTimeout(ActionError):
    """The collector did not answer in time."""

    status = 504


class BusUnavailable(ActionError):
    """The collector cannot be asked (gone silent, or Redis failed)."""

    status = 502


class RemoteRefused(ActionError):
    """The collector refused the request (its ActionError, with its HTTP status)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def connect(url: str) -> Any:
    """A redis-py asyncio client for ``url`` (redis-py is imported here, not before).

    Typed Any: redis-py's annotations make every reply a union of str, bytes and int."""
    from redis.asyncio import Redis

    client: Redis = Redis.from_url(url, socket_connect_timeout=5, health_check_interval=10)
    return client


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ------------------------------------------------------------------------------ collector


class Collector:
    """Runs ``hub``'s sources and publishes what they commit to ``name``'s stream.

    The first entry of every run is a snapshot with the hub's fresh epoch (taken once
    the sources have read their systems, or after ``settle`` seconds), so readers
    replace this collector's part of their model; then one entry per commit, and a
    snapshot again every ``snapshot_every`` seconds or ``maxlen // 2`` entries (so the
    newest snapshot is never trimmed away), and after any Redis error (an entry may or
    may not have been written: the snapshot covers it either way).
    """

    def __init__(
        self,
        hub: Hub,
        url: str,
        name: str,
        *,
        maxlen: int = 20_000,
        snapshot_every: float = 60.0,
        heartbeat: float = 1.0,
        settle: float = 10.0,
    ) -> None:
        self.hub = hub
        self.url = url
        self.name = name
        self.maxlen = maxlen
        self.snapshot_every = snapshot_every
        self.heartbeat = heartbeat
        self.settle = settle
        self.redis: Any = None
        self.published = 0
        """Entries written (deltas and snapshots)."""
        self._seq = -1  # the collector hub's seq last published
        self._since_snapshot = 0
        self._snapshot_due = True
        self._actions: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Publish until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        self.redis = connect(self.url)
        sub = self.hub.subscribe(max_backlog=10_000, client=False)
        await self.hub.start()
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self._settle(stop)
            loop = asyncio.get_running_loop()
            tasks = [
                loop.create_task(self._publish(sub), name="bus:publish"),
                loop.create_task(self._beat(), name="bus:heartbeat"),
                loop.create_task(self._serve_actions(), name="bus:actions"),
            ]
            stopped = loop.create_task(stop.wait())
            done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            for t in done:
                if t is not stopped and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            self._stopping = True
            for t in [*tasks, *self._actions]:
                t.cancel()
            if tasks or self._actions:
                await asyncio.wait([*tasks, *self._actions], timeout=10)
            sub.close()
            await self.hub.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.redis.aclose(), 5)

    async def _settle(self, stop: asyncio.Event) -> None:
        """Wait (up to ``settle`` s) until no source is still connecting: the first
        snapshot then holds their full state, not empty sources."""
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline and not stop.is_set():
            if all(s.status != "connecting" for s in self.hub.fleet.all("source")):  # type: ignore[union-attr]
                return
            await asyncio.sleep(0.05)

    async def _retrying(self, what: str, call: Any) -> Any:
        delay = 0.1
        while not self._stopping:
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis-py's ConnectionError, TimeoutError, ...
                if self._stopping:
                    raise asyncio.CancelledError from None  # redis-py turned a cancel into this
                log.warning("collector %s: %s failed (%s); retrying", self.name, what, exc)
                self._snapshot_due = True
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        raise asyncio.CancelledError

    async def _publish(self, sub: Any) -> None:
        assert self.redis is not None
        redis = self.redis
        script = redis.register_script(_ADD_SNAPSHOT)
        epoch = self.hub.fleet.epoch
        last_snapshot = -1.0
        stream = changes_key(self.name)
        while not self._stopping:
            now = time.monotonic()
            if (
                self._snapshot_due
                or sub.resync
                or now - last_snapshot >= self.snapshot_every
                or self._since_snapshot >= self.maxlen // 2
            ):
                snap: Snapshot = sub.take_resync() if sub.resync else self.hub.snapshot()
                args = [self.maxlen, "t", "snap", "epoch", epoch, "seq", snap.seq]
                args += ["data", dumps(snap.as_dict()), "ts", time.time()]
                self._snapshot_due = False
                keys = [stream, snapshot_key(self.name)]
                await self._retrying(
                    "publishing a snapshot", functools.partial(script, keys=keys, args=args)
                )
                self._seq = snap.seq
                self._since_snapshot = 0
                self.published += 1
                last_snapshot = time.monotonic()
                continue
            try:
                items = await asyncio.wait_for(sub.next(), timeout=1.0)
            except TimeoutError:
                continue
            deltas = [d for d in items if isinstance(d, Delta) and d.seq > self._seq]
            if not deltas:
                continue
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for d in deltas:
                        pipe.xadd(
                            stream,
                            {
                                "t": "delta",
                                "epoch": epoch,
                                "seq": d.seq,
                                "first": d.first_seq,
                                "data": d.frame(),
                                "ts": time.time(),
                            },
                            maxlen=self.maxlen,
                            approximate=True,
                        )
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    raise asyncio.CancelledError from None  # redis-py turned a cancel into this
                log.warning("collector %s: publishing failed (%s)", self.name, exc)
                self._snapshot_due = True  # whether they were written or not: a snapshot
                await asyncio.sleep(0.2)
                continue
            self._seq = deltas[-1].seq
            self._since_snapshot += len(deltas)
            self.published += len(deltas)

    async def _beat(self) -> None:
        assert self.redis is not None
        redis = self.redis
        info = {"epoch": self.hub.fleet.epoch, "pid": os.getpid(), "host": socket.gethostname()}
        while not self._stopping:
            try:
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.sadd(REGISTRY, self.name)
                    pipe.hset(beat_key(self.name), mapping=info)
                    pipe.hincrby(beat_key(self.name), "beat", 1)
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    raise asyncio.CancelledError from None  # redis-py turned a cancel into this
                log.warning("collector %s: heartbeat failed (%s)", self.name, exc)
            await asyncio.sleep(self.heartbeat)

    async def _serve_actions(self) -> None:
        assert self.redis is not None
        redis = self.redis
        key = actions_key(self.name)

        async def make_group() -> None:
            try:
                await redis.xgroup_create(key, ACTION_GROUP, id="0", mkstream=True)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self._retrying("creating the action group", make_group)
        # Taken by a previous run and never acknowledged: it died while running them, and
        # their outcome is unknown. Answer them so, never run them twice.
        pending = await self._retrying(
            "reading pending actions",
            lambda: redis.xreadgroup(ACTION_GROUP, self.name, {key: "0"}, count=1000),
        )
        for _, entries in pending or ():
            for entry_id, fields in entries:
                if fields:
                    await self._answer(
                        fields,
                        {
                            "error": f"collector {self.name} restarted while running this "
                            "request: its outcome is unknown",
                            "status": 502,
                        },
                    )
                await redis.xack(key, ACTION_GROUP, entry_id)
        while not self._stopping:
            try:
                got = await redis.xreadgroup(
                    ACTION_GROUP, self.name, {key: ">"}, count=100, block=1000
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    raise asyncio.CancelledError from None  # redis-py turned a cancel into this
                log.warning("collector %s: reading actions failed (%s)", self.name, exc)
                await asyncio.sleep(0.5)
                continue
            for _, entries in got or ():
                for entry_id, fields in entries:
                    task = asyncio.get_running_loop().create_task(self._handle(entry_id, fields))
                    self._actions.add(task)
                    task.add_done_callback(self._actions.discard)

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        assert self.redis is not None
        try:
            deadline = float(fields.get(b"deadline", b"0"))
            if deadline and time.time() > deadline:
                answer: dict[str, Any] = {
                    "error": "the request expired before it ran",
                    "status": 504,
                }
            else:
                answer = await self._perform(orjson.loads(fields[b"body"]), _s(fields[b"op"]))
        except (KeyError, ValueError, orjson.JSONDecodeError) as exc:
            answer = {"error": f"malformed request: {exc}", "status": 400}
        await self._answer(fields, answer)
        with contextlib.suppress(Exception):
            await self.redis.xack(actions_key(self.name), ACTION_GROUP, entry_id)

    async def _perform(self, body: dict[str, Any], op: str) -> dict[str, Any]:
        try:
            if op == "action":
                target = Target(str(body["target"]["kind"]), str(body["target"]["id"]))
                result = await self.hub.run_action(
                    target, str(body["name"]), body.get("params") or {}, user=str(body["user"])
                )
                return {"result": result.as_dict()}
            if op == "log":
                chunk = await self.hub.read_log(
                    str(body["process"]), str(body["channel"]), body["offset"], int(body["length"])
                )
                return {"log": chunk.as_dict()}
            return {"error": f"unknown request {op!r}", "status": 400}
        except ActionError as exc:
            return {"error": str(exc), "status": exc.status}
        except SourceError as exc:
            return {"error": str(exc) or type(exc).__name__, "status": 502, "source_error": True}

    async def _answer(self, fields: dict[bytes, bytes], answer: dict[str, Any]) -> None:
        assert self.redis is not None
        reply = fields.get(b"reply")
        req = fields.get(b"req")
        if not reply or not req:
            return
        try:
            await self.redis.xadd(
                _s(reply), {"req": req, "body": dumps(answer)}, maxlen=10_000, approximate=True
            )
        except Exception as exc:
            log.warning("collector %s: answering failed (%s)", self.name, exc)


# ------------------------------------------------------------------------------ hub side


class RemoteSource(SourceRunner, LogReader):
    """A collector's source as the hub's action router sees it: actions and log reads
    travel to the collector (:meth:`HubLink.request`); its entities come from the stream."""

    kind = "remote"

    def __init__(self, link: HubLink, collector: str, source: Source) -> None:
        super().__init__(source.id, _NoSink())
        self.link = link
        self.collector = collector
        self.spec = source

    @property
    def url(self) -> str:
        return self.spec.url

    def actions(self) -> tuple[ActionSpec, ...]:
        return self.spec.actions

    async def session(self) -> None:  # pragma: no cover - never run: see run()
        raise NotImplementedError

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to run here: the collector runs the source

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        body = {
            "target": {"kind": target.kind, "id": target.id},
            "name": name,
            "params": params,
            "user": f"{self.link.hub.fleet.name} (hub)",
        }
        answer = await self.link.request(self.collector, "action", body)
        r = answer["result"]
        return ActionResult(bool(r["ok"]), r.get("error"), r.get("detail"))

    async def read_log(
        self, process_id: str, channel: str, offset: int | None, length: int
    ) -> LogChunk:
        body = {"process": process_id, "channel": channel, "offset": offset, "length": length}
        answer = await self.link.request(self.collector, "log", body)
        return LogChunk(**answer["log"])


class _NoSink:
    def put(self, entity: Entity) -> bool:
        return False

    def delete(self, kind: Kind, id: str) -> bool:
        return False

    def sync(self, kind: Kind, entities: Any) -> int:
        return 0

    def status(self, status: str, *, error: str | None = None, **fields: Any) -> None:
        pass

    def get(self, kind: Kind, id: str) -> Entity | None:
        return None


@dataclass
class _Remote:
    name: str
    last_id: str = "0"
    """The stored offset: the ID of the last entry applied."""
    epoch: str | None = None
    seq: int = -1
    synced: bool = False
    sources: dict[str, Source] = field(default_factory=dict)
    """Its sources as it last published them."""
    beat: bytes | None = None
    heard: float = field(default_factory=time.monotonic)
    silent: bool = False


class HubLink:
    """Builds ``hub``'s model from the collectors registered in Redis at ``url``.

    Started and stopped with the hub (``Hub.links``). Each collector's sources are
    put into the model as they publish them, with a :class:`RemoteSource` attached as
    their action router; a collector whose heartbeat stops for ``silent_after``
    seconds has its sources marked offline until it is heard again.
    """

    def __init__(
        self,
        hub: Hub,
        url: str,
        *,
        silent_after: float = 5.0,
        request_timeout: float = 90.0,
        poll: float = 0.5,
    ) -> None:
        self.hub = hub
        self.url = url
        self.silent_after = silent_after
        self.request_timeout = request_timeout
        self.poll = poll
        self.remotes: dict[str, _Remote] = {}
        self.replies = f"{PREFIX}:hub:{hub.fleet.epoch}:replies"
        self.applied = 0
        """Stream entries applied (deltas and snapshots)."""
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Any = None
        self._reader: Any = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        self._redis = connect(self.url)
        self._reader = connect(self.url)  # its own connection: XREAD blocks
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._discover(), name="bus:discover"),
            loop.create_task(self._read(), name="bus:read"),
            loop.create_task(self._read_replies(), name="bus:replies"),
        ]
        log.info("hub %s: reading collectors from %s", self.hub.fleet.name, redacted(self.url))

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            # Bounded: a task redis-py kept from its cancel ends at its next check.
            await asyncio.wait(self._tasks, timeout=10)
        self._tasks = []
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(BusUnavailable("the hub is stopping"))
        for r in (self._redis, self._reader):
            if r is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(r.aclose(), 5)

    # -- discovery, heartbeats ----------------------------------------------------------

    async def _discover(self) -> None:
        assert self._redis is not None
        redis = self._redis
        while not self._stopping:
            try:
                names = sorted(_s(n) for n in await redis.smembers(REGISTRY))
                async with redis.pipeline(transaction=False) as pipe:
                    for n in names:
                        pipe.hget(beat_key(n), "beat")
                    pipe.expire(self.replies, 3600)
                    beats = await pipe.execute()
                now = time.monotonic()
                for n, beat in zip(names, beats, strict=False):
                    remote = self.remotes.get(n)
                    if remote is None:
                        # Read by _read only once started from its newest snapshot.
                        remote = _Remote(n, beat=beat)
                        await self._resync(remote)
                        self.remotes[n] = remote
                        self._wake.set()
                    elif beat != remote.beat:
                        remote.beat = beat
                        self._heard(remote, now)
                for remote in self.remotes.values():
                    if not remote.silent and now - remote.heard > self.silent_after:
                        self._silence(remote, now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    raise asyncio.CancelledError from None  # redis-py turned a cancel into this
                log.warning("hub: reading the collector registry failed (%s)", exc)
            await asyncio.sleep(self.poll)

    def _heard(self, remote: _Remote, now: float) -> None:
        remote.heard = now
        if remote.silent:
            remote.silent = False
            log.info("collector %s is heard again", remote.name)
            for src in remote.sources.values():
                self.hub._put(src)

    def _silence(self, remote: _Remote, now: float) -> None:
        remote.silent = True
        quiet = now - remote.heard
        log.warning("collector %s silent for %.0f s: its sources are offline", remote.name, quiet)
        for src in remote.sources.values():
            self.hub._put(
                Source(
                    id=src.id,
                    kind=src.kind,
                    name=src.name,
                    url=src.url,
                    status="offline",
                    since=time.time(),
                    error=f"collector {remote.name} silent for {quiet:.0f} s",
                    version=src.version,
                    actions=src.actions,
                    info=src.info,
                    last_seen=src.last_seen,
                )
            )

    # -- the change streams --------------------------------------------------------------

    async def _resync(self, remote: _Remote) -> None:
        """Start ``remote`` again from its newest snapshot (or its stream's start)."""
        assert self._redis is not None
        pointer = await self._redis.get(snapshot_key(remote.name))
        remote.synced = False
        remote.epoch = None
        if pointer is not None:
            entries = await self._redis.xrange(
                changes_key(remote.name), min=pointer, max=pointer, count=1
            )
            if entries:
                entry_id, fields = entries[0]
                self._apply(remote, _s(entry_id), fields)
                return
        remote.last_id = "0"  # no snapshot yet: wait for the first from the start

    async def _read(self) -> None:
        assert self._reader is not None
        reader = self._reader
        while not self._stopping:
            if not self.remotes:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            streams = {changes_key(r.name): r.last_id for r in self.remotes.values()}
            try:
                got = await reader.xread(streams, count=1000, block=int(self.poll * 1000))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    raise asyncio.CancelledError from None  # redis-py turned a cancel into this
                log.warning("hub: reading the change streams failed (%s)", exc)
                await asyncio.sleep(0.5)
                continue
            for key, entries in got or ():
                name = _s(key).split(":")[1]
                remote = self.remotes.get(name)
                if remote is None:
                    continue
                for entry_id, fields in entries:
                    if not self._apply(remote, _s(entry_id), fields):
                        await self._resync(remote)
                        break

    def _apply(self, remote: _Remote, entry_id: str, fields: dict[bytes, bytes]) -> bool:
        """Apply one entry; False when a gap means ``remote`` must resync."""
        kind = fields.get(b"t")
        epoch = _s(fields.get(b"epoch", b""))
        seq = int(fields.get(b"seq", b"-1"))
        self._heard(remote, time.monotonic())
        if kind == b"snap":
            # A periodic snapshot of the run being followed, with nothing missed before
            # it, changes nothing: it is for readers that start from it.
            if not (remote.synced and epoch == remote.epoch and seq == remote.seq):
                self._replace(remote, orjson.loads(fields[b"data"]))
                remote.epoch, remote.seq, remote.synced = epoch, seq, True
        elif kind == b"delta":
            if not remote.synced or epoch != remote.epoch or seq <= remote.seq:
                # Before its first snapshot, or an earlier run's (its snapshot follows),
                # or already covered by the snapshot applied.
                remote.last_id = entry_id
                return True
            if int(fields[b"first"]) != remote.seq + 1:
                log.warning("collector %s: gap at seq %d; resyncing", remote.name, remote.seq)
                return False
            for c in orjson.loads(fields[b"data"])["changes"]:
                self._change(remote, c)
            remote.seq = seq
        remote.last_id = entry_id
        self.applied += 1
        return True

    def _owned(self, remote: _Remote, source: str) -> bool:
        if source in remote.sources:
            return True
        log.warning("collector %s: ignoring an entity of source %r", remote.name, source)
        return False

    def _change(self, remote: _Remote, c: dict[str, Any]) -> None:
        kind: Kind = c["kind"]
        if c["op"] == "put":
            entity = entity_from_dict(kind, c["value"])
            if isinstance(entity, Source):
                self._put_source(remote, entity)
            elif self._owned(remote, entity.source):
                self.hub._put(entity)
        else:
            if kind == "source":
                self._drop_source(remote, c["id"])
            else:
                current = self.hub.fleet.get(kind, c["id"])
                if current is not None and self._owned(remote, current.source):
                    self.hub._delete(kind, c["id"])

    def _put_source(self, remote: _Remote, source: Source) -> None:
        runner = self.hub.runner(source.id)
        if runner is not None and not (
            isinstance(runner, RemoteSource) and runner.collector == remote.name
        ):
            if source.id not in remote.sources:
                log.error(
                    "collector %s publishes source %r, which the hub has already: ignored",
                    remote.name,
                    source.id,
                )
            return
        remote.sources[source.id] = source
        if isinstance(runner, RemoteSource):
            runner.spec = source
        else:
            self.hub.attach(RemoteSource(self, remote.name, source))
        if not remote.silent:
            self.hub._put(source)

    def _drop_source(self, remote: _Remote, id: str) -> None:
        if remote.sources.pop(id, None) is not None:
            self.hub.detach(id)
            self.hub._delete("source", id)

    def _replace(self, remote: _Remote, snap: dict[str, Any]) -> None:
        """Make ``remote``'s part of the model exactly ``snap``."""
        sources = {s["id"]: entity_from_dict("source", s) for s in snap["sources"]}
        for gone in set(remote.sources) - set(sources):
            self._drop_source(remote, gone)
        for src in sources.values():
            assert isinstance(src, Source)
            self._put_source(remote, src)
        for kind, plural in (("node", "nodes"), ("process", "processes"), ("job", "jobs")):
            by_source: dict[str, list[Entity]] = {s: [] for s in remote.sources}
            for value in snap[plural]:
                entity = entity_from_dict(kind, value)  # type: ignore[arg-type]
                if entity.source in by_source:
                    by_source[entity.source].append(entity)
            for name, entities in by_source.items():
                SourceHandle(self.hub, name).sync(kind, entities)  # type: ignore[arg-type]

    # -- requests (actions, logs) ------------------------------------------------------

    async def request(self, collector: str, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """Ask ``collector`` to run ``op``; its answer, or an ActionError / SourceError."""
        assert self._redis is not None
        remote = self.remotes.get(collector)
        if remote is not None and remote.silent:
            raise BusUnavailable(
                f"collector {collector} is not answering (silent for "
                f"{time.monotonic() - remote.heard:.0f} s)"
            )
        req = secrets.token_hex(8)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[req] = fut
        try:
            try:
                await self._redis.xadd(
                    actions_key(collector),
                    {
                        "req": req,
                        "reply": self.replies,
                        "op": op,
                        "body": dumps(body),
                        "deadline": time.time() + self.request_timeout,
                    },
                    maxlen=10_000,
                    approximate=True,
                )
            except Exception as exc:
                raise BusUnavailable(
                    f"cannot reach Redis to ask collector {collector}: {type(exc).__name__}"
                ) from None
            try:
                answer = await asyncio.wait_for(fut, self.request_timeout)
            except TimeoutError:
                raise BusTimeout(
                    f"collector {collector} did not answer within {self.request_timeout:g} s"
                ) from None
        finally:
            self._waiting.pop(req, None)
        if "error" in answer:
            if answer.get("source_error"):
                raise Unreachable(str(answer["error"]))
            raise RemoteRefused(str(answer["error"]), int(answer.get("status", 502)))
        return answer

    async def _read_replies(self) -> None:
        assert self._reader is not None
        reader = connect(self.url)  # blocks on its own connection
        last = "0"
        try:
            while not self._stopping:
                try:
                    got = await reader.xread({self.replies: last}, count=100, block=1000)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._stopping:
                        raise asyncio.CancelledError from None  # redis-py turned a cancel into this
                    log.warning("hub: reading replies failed (%s)", exc)
                    await asyncio.sleep(0.5)
                    continue
                for _, entries in got or ():
                    for entry_id, fields in entries:
                        last = _s(entry_id)
                        fut = self._waiting.get(_s(fields.get(b"req", b"")))
                        if fut is not None and not fut.done():
                            try:
                                fut.set_result(orjson.loads(fields[b"body"]))
                            except (KeyError, orjson.JSONDecodeError):
                                fut.set_result({"error": "a malformed answer", "status": 502})
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.aclose(), 5)
