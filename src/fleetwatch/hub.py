"""The hub: runs the sources, applies what they report, fans deltas out, routes actions.

Everything here runs on one asyncio event loop, so the model needs no locks: a
source's report is applied to the :class:`~fleetwatch.model.Fleet` at once, and
a commit is scheduled. Commits are batched only while changes keep coming: the hub
holds :data:`COMMIT_BURST` commit credits, one refilled every ``batch_interval``
seconds, and all of them once no change came for a whole ``batch_interval``; a
change is committed on the next loop iteration while a credit is left, else when
the next one is due. So a few changes after a quiet moment (a stop's
STOPPING then STOPPED a few ms later) each reach the stream at once, and a steady
stream of changes is committed every ``batch_interval``, as before: at 10,000
changes/s that is still ten deltas a second. Each committed delta is pushed to every
:class:`Subscription`; a subscriber that falls more than ``max_backlog`` deltas
behind is not waited for — its backlog is dropped and it is told to resync from
a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from fleetwatch.config import Config, SourceConfig
from fleetwatch.errors import BadParams, NoLogs, SourceError, UnknownAction, UnknownTarget
from fleetwatch.model import ActionSpec, Delta, Entity, Fleet, Kind, Node, Snapshot, Source
from fleetwatch.publishers.notifications import Notification, NotificationRules
from fleetwatch.sources.base import (
    LOG_CHANNELS,
    ActionResult,
    LogChunk,
    LogReader,
    Refresher,
    Target,
)
from fleetwatch.sources.base import Source as SourceRunner

__all__ = ["Hub", "SourceFactory", "Subscription"]

log = logging.getLogger(__name__)
audit = logging.getLogger("fleetwatch.audit")

SourceFactory = Callable[[SourceConfig, "SourceHandle"], SourceRunner]

STALE_COMPACT = 1_000
"""Replaced notifications a subscription's queue may hold before it is compacted."""
COMMIT_BURST = 10
"""Commits that may follow one another at once after a quiet moment (module docstring):
one action's changes with fleetwatch-agent (each transition's event, then its re-read,
for RUNNING, STOPPING, STOPPED, STARTING) are about eight commits within ~30 ms."""


class Subscription:
    """A bounded queue of deltas and notifications for one client.

    ``await next()`` returns everything queued so far. When more than
    ``max_backlog`` deltas pile up, they are dropped and :attr:`resync` is set:
    the client must start again from :meth:`Hub.snapshot`.
    """

    def __init__(self, hub: Hub, max_backlog: int) -> None:
        self._hub = hub
        self._items: deque[Delta | Notification] = deque()
        self._deltas = 0
        self._queued: dict[str, Notification] = {}
        """The newest queued copy of each notification, by id."""
        self._stale = 0
        """Queued notifications a newer copy of theirs has replaced (left out when read)."""
        self._max = max_backlog
        self._wake = asyncio.Event()
        self.resync = False
        self.client = True
        """A client's subscription (False: one of the hub's own followers)."""
        self.dropped = 0
        """How many times this subscriber fell behind."""

    def push(self, item: Delta | Notification) -> None:
        if self.resync:
            return  # everything up to the resync snapshot is covered by it
        if isinstance(item, Delta):
            if self._deltas >= self._max:
                self._clear()
                self.resync = True
                self.dropped += 1
                self._wake.set()
                return
            self._deltas += 1
        else:
            # A flapping note re-sent (same id) while its last copy still waits: the
            # newest goes out once, where it came. The old copy is left out when the
            # queue is read, not searched for here: with thousands of flapping processes
            # and a subscriber behind, a search per note was quadratic.
            if item.id in self._queued:
                self._stale += 1
            self._queued[item.id] = item
        self._items.append(item)
        if self._stale > STALE_COMPACT and 2 * self._stale > len(self._items):
            self._items = deque(self._fresh())  # bounded memory for a subscriber that never reads
            self._stale = 0
        self._wake.set()

    def _fresh(self) -> list[Delta | Notification]:
        """The queue without the notifications a newer copy replaced."""
        if not self._stale:
            return list(self._items)
        newest = self._queued
        return [i for i in self._items if isinstance(i, Delta) or newest[i.id] is i]

    def _clear(self) -> list[Delta | Notification]:
        """Empty the queue; what it held."""
        items = self._fresh()
        self._items.clear()
        self._queued.clear()
        self._stale = 0
        self._deltas = 0
        return items

    async def next(self) -> list[Delta | Notification]:
        """Wait until something is queued (or a resync is due); return and clear the queue."""
        while not self._items and not self.resync:
            self._wake.clear()
            await self._wake.wait()
        return self._clear()

    @property
    def backlog(self) -> int:
        """Deltas queued and not read yet."""
        return self._deltas

    def drain(self) -> list[Delta | Notification]:
        """What is queued, without waiting (for a subscriber that stops)."""
        return self._clear()

    def take_resync(self) -> Snapshot:
        """Clear the resync flag and return the snapshot to start again from."""
        # Snapshot first: the delta its flush pushes is covered by it, and is ignored
        # while ``resync`` is still set.
        snapshot = self._hub.snapshot()
        self.resync = False
        self._clear()
        return snapshot

    def close(self) -> None:
        self._hub._subscriptions.discard(self)


class SourceHandle:
    """The hub as one source sees it: the model scoped to that source."""

    def __init__(self, hub: Hub, name: str) -> None:
        self._hub = hub
        self.name = name

    def get(self, kind: Kind, id: str) -> Entity | None:
        return self._hub.fleet.get(kind, id)

    def put(self, entity: Entity) -> bool:
        return self._hub._put(entity)

    def delete(self, kind: Kind, id: str) -> bool:
        return self._hub._delete(kind, id)

    def sync(self, kind: Kind, entities: Iterable[Entity]) -> int:
        fleet = self._hub.fleet
        keep: set[str] = set()
        changed = 0
        for e in entities:
            keep.add(e.id)
            changed += self._hub._put(e)
        for gone in fleet.ids_of_source(kind, self.name) - keep:
            changed += self._hub._delete(kind, gone)
        return changed

    def status(self, status: str, *, error: str | None = None, **fields: Any) -> None:
        current = self._hub.fleet.get("source", self.name)
        if not isinstance(current, Source):
            return  # removed while its task was still finishing
        now = time.time()
        changes: dict[str, Any] = {"status": status, "error": error, **fields}
        if status != current.status:
            changes["since"] = now
            if status == "online":
                changes.setdefault("last_seen", now)
        self._hub._put(dataclasses.replace(current, **changes))


class Hub:
    """Runs sources and keeps the fleet model; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        factories: dict[str, SourceFactory] | None = None,
        max_backlog: int = 1_000,
        note_history: int = 500,
    ) -> None:
        self.config = config
        self.fleet = Fleet(
            config.hub.name, ring=config.hub.delta_ring, finished_jobs=config.hub.finished_jobs
        )
        self.batch_interval = config.hub.batch_interval
        self.max_backlog = max_backlog
        self.rules = NotificationRules(
            flap_changes=config.hub.flap_changes, flap_window=config.hub.flap_window
        )
        self._flap_task: asyncio.Task[None] | None = None
        self._notes: OrderedDict[str, Notification] = OrderedDict()
        """The last ``note_history`` notifications by id, oldest first (see :attr:`notes`)."""
        self._note_history = note_history
        self._factories = factories if factories is not None else default_factories()
        self._runners: dict[str, SourceRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False
        """Between start() and stop(): a source added then starts at once."""
        self._subscriptions: set[Subscription] = set()
        self._flush_handle: asyncio.Handle | None = None
        self._credits = float(COMMIT_BURST)
        self._credited = -math.inf  # when _credits was last refilled (the loop's clock)
        self._last_change = -math.inf  # when the last change came (the loop's clock)
        self.started = time.time()
        self.links: list[Any] = []
        """Started after the sources and stopped before them: e.g. a bus link that puts a
        collector's sources into the model (fleetwatch.bus); each has async start/stop."""
        self.action_hooks: list[Callable[[dict[str, Any]], None]] = []
        """Called with each action run and its outcome (the history records them)."""
        for cfg in config.sources.values():
            self.add_source(cfg)

    # -- sources ---------------------------------------------------------------

    def add_source(self, cfg: SourceConfig) -> None:
        if cfg.name in self._runners or self.fleet.get("source", cfg.name) is not None:
            raise ValueError(f"source {cfg.name!r} exists already")
        factory = self._factories.get(cfg.kind)
        now = time.time()
        try:
            if factory is None:
                raise SourceError(f"sources of kind {cfg.kind!r} are not supported by this version")
            runner = factory(cfg, SourceHandle(self, cfg.name))
        except SourceError as exc:
            # Shown as a source in error, so the rest of the fleet is still watched.
            self._put(
                Source(
                    id=cfg.name,
                    kind=cfg.kind,
                    name=cfg.name,
                    status="error",
                    since=now,
                    error=str(exc),
                )
            )
            return
        self._runners[cfg.name] = runner
        self._put(
            Source(
                id=cfg.name,
                kind=cfg.kind,
                name=cfg.name,
                url=runner.url,
                status="connecting",
                since=now,
                actions=runner.actions(),
            )
        )
        if self._started:
            self._start_one(cfg.name)

    def runner(self, name: str) -> SourceRunner | None:
        return self._runners.get(name)

    def attach(self, runner: SourceRunner) -> None:
        """Route actions (and log reads) on source ``runner.name`` to ``runner``, whose
        entities someone else puts into the model (a collector's, fleetwatch.bus)."""
        self._runners[runner.name] = runner

    def detach(self, name: str) -> None:
        self._runners.pop(name, None)

    async def start(self) -> None:
        self._started = True
        if self._flap_task is None and self.rules.flap_changes > 0:
            self._flap_task = asyncio.get_running_loop().create_task(
                self._flap_watch(), name="flap-watch"
            )
        for name in self._runners:
            if name not in self._tasks:
                self._start_one(name)
        for link in self.links:
            await link.start()

    def _start_one(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self._runners[name].run(), name=f"source:{name}"
        )
        self._tasks[name] = task

    async def stop(self) -> None:
        self._started = False
        if self._flap_task is not None:
            self._flap_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flap_task
            self._flap_task = None
        for link in self.links:
            await link.stop()
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for r in self._runners.values():
            try:
                await r.close()
            except Exception:
                log.exception("closing source %s", r.name)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.flush()

    # -- the model and its subscribers ---------------------------------------------

    def _put(self, entity: Entity) -> bool:
        # No rule looks at jobs, the bulk of a busy build cluster: skip the rules for them.
        ruled = entity.KIND in self.rules.kinds
        old = self.fleet.get(entity.KIND, entity.id) if ruled else None
        if not self.fleet.put(entity):
            return False
        if ruled:
            self._noted(self.rules.derive(old, entity))
        self._changed()
        return True

    def _delete(self, kind: Kind, id: str) -> bool:
        if not self.fleet.delete(kind, id):
            return False
        if kind == "process":
            self.rules.forget(id)
        self._changed()
        return True

    async def _flap_watch(self) -> None:
        """Tell when flapping processes are stable again (a cheap periodic check)."""
        period = max(0.05, min(1.0, self.rules.flap_window / 10))
        while True:
            await asyncio.sleep(period)
            self._noted(self.rules.tick())

    def _noted(self, notes: Iterable[Notification]) -> None:
        kept = self._notes
        for note in notes:
            # A flapping note re-sent (same id): the history holds it once, at its newest.
            kept.pop(note.id, None)
            kept[note.id] = note
            if len(kept) > self._note_history:
                kept.popitem(last=False)
            for sub in list(self._subscriptions):
                sub.push(note)

    @property
    def notes(self) -> list[Notification]:
        """The last ``note_history`` notifications, oldest first; a flapping note once: its
        newest copy, where that copy came."""
        return list(self._notes.values())

    def _refill(self, now: float) -> float:
        """The commit credits at ``now`` (one per ``batch_interval`` since the last refill)."""
        if self.batch_interval <= 0:
            self._credits = float(COMMIT_BURST)
        else:
            gained = (now - self._credited) / self.batch_interval
            self._credits = min(float(COMMIT_BURST), self._credits + gained)
        self._credited = now
        return self._credits

    def _changed(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: changes wait for an explicit flush()
        now = loop.time()
        if now - self._last_change >= self.batch_interval:
            # No change for a whole batch_interval: changes stopped coming, and the next
            # few are not a stream. A steady stream never pauses that long.
            self._credits, self._credited = float(COMMIT_BURST), now
        self._last_change = now
        if self._flush_handle is not None:
            return
        credits = self._refill(now)
        if credits >= 1:
            self._flush_handle = loop.call_soon(self._scheduled_flush)
        else:
            wait = (1 - credits) * self.batch_interval
            self._flush_handle = loop.call_later(wait, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_handle = None
        self.flush()

    def flush(self) -> Delta | None:
        """Commit pending changes now and push the delta to every subscriber."""
        delta = self.fleet.commit()
        if delta is None:
            return None
        with contextlib.suppress(RuntimeError):
            # Every commit spends a credit, explicit ones too (a snapshot, an action).
            self._refill(asyncio.get_running_loop().time())
            self._credits = max(0.0, self._credits - 1)
        for sub in list(self._subscriptions):
            sub.push(delta)
        return delta

    def snapshot(self) -> Snapshot:
        """The current state, with pending changes committed (and pushed) first."""
        self.flush()
        return self.fleet.snapshot()

    def subscribe(self, max_backlog: int | None = None, *, client: bool = True) -> Subscription:
        """A new subscription. ``client=False`` for the hub's own followers (metrics, the
        history, a collector's bus): they are not counted in :attr:`subscribers`."""
        sub = Subscription(self, self.max_backlog if max_backlog is None else max_backlog)
        sub.client = client
        self._subscriptions.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        """Clients following the hub (stream clients, TUIs, Multivisor's event streams)."""
        return sum(s.client for s in self._subscriptions)

    def backlog(self) -> int:
        """The most deltas any subscriber has queued and not read yet."""
        return max((s.backlog for s in self._subscriptions), default=0)

    # -- actions -----------------------------------------------------------------

    def resolve(self, target: Target) -> str:
        """The name of the source that owns ``target``; raise UnknownTarget."""
        if target.kind == "source":
            if self.fleet.get("source", target.id) is None:
                raise UnknownTarget(f"no source {target.id!r}")
            return target.id
        if target.kind == "group":
            source, sep, group = target.id.partition(":")
            if not sep or not any(
                p.group == group  # type: ignore[union-attr]
                for p in (
                    self.fleet.get("process", i)
                    for i in self.fleet.ids_of_source("process", source)
                )
            ):
                raise UnknownTarget(f"no group {target.id!r}")
            return source
        if target.kind in ("node", "process", "job"):
            entity = self.fleet.get(target.kind, target.id)  # type: ignore[arg-type]
            if entity is None:
                raise UnknownTarget(f"no {target.kind} {target.id!r}")
            return entity.source
        raise UnknownTarget(f"no target kind {target.kind!r}")

    async def run_action(
        self, target: Target, name: str, params: dict[str, Any] | None = None, *, user: str = "-"
    ) -> ActionResult:
        """Check and route an action to its source; raise ActionError subclasses when refused."""
        params = dict(params or {})
        source_name = self.resolve(target)
        runner = self._runners.get(source_name)
        spec = next(
            (
                a
                for a in (runner.actions() if runner else ())
                if a.name == name and target.kind in a.targets
            ),
            None,
        )
        if runner is None or spec is None:
            raise UnknownAction(f"{target.kind} {target.id!r} has no action {name!r}")
        if target.kind == "node" and spec.roles:
            node = self.fleet.get("node", target.id)
            role = node.labels.get("role") if isinstance(node, Node) else None
            if not spec.applies_to_role(role):
                raise UnknownAction(
                    f"node {target.id!r} has no action {name!r}: it is for "
                    f"{' or '.join(spec.roles)} nodes, and this node's role is "
                    f"{role or 'none'}"
                )
        check_params(spec, params)
        started = time.monotonic()
        try:
            result = await runner.perform(target, name, params)
        except SourceError as exc:
            result = ActionResult.failed(str(exc) or type(exc).__name__)
        # What the action changed goes out before its answer: commit now, and let the
        # streams woken by it write their frames before the caller writes the answer.
        if self.flush() is not None:
            await asyncio.sleep(0)
        audit.info(
            "user=%s action=%s target=%s:%s params=%s ok=%s error=%s (%.0f ms)",
            user,
            name,
            target.kind,
            target.id,
            params,
            result.ok,
            result.error,
            (time.monotonic() - started) * 1000,
        )
        if self.action_hooks:
            done = {
                "ts": time.time(),
                "user": user,
                "name": name,
                "target": {"kind": target.kind, "id": target.id},
                "params": params,
                "ok": result.ok,
                "error": result.error,
                "ms": round((time.monotonic() - started) * 1000, 3),
            }
            for hook in self.action_hooks:
                hook(done)
        return result

    # -- capabilities ----------------------------------------------------------------

    async def read_log(
        self,
        process_id: str,
        channel: str = "stdout",
        offset: int | None = None,
        length: int = 65536,
    ) -> LogChunk:
        """A window of a process's log, from its source (:class:`LogReader`).

        Raise UnknownTarget (404) for an unknown process, NoLogs (409) when its source
        cannot read logs, BadParams (400) for a bad channel, offset or length; a
        SourceError when the system failed to answer (offline: Unreachable).
        """
        process = self.fleet.get("process", process_id)
        if process is None:
            raise UnknownTarget(f"no process {process_id!r}")
        if channel not in LOG_CHANNELS:
            raise BadParams(f"channel must be {' or '.join(LOG_CHANNELS)}, not {channel!r}")
        if offset is not None and offset < 0:
            raise BadParams("offset must be 0 or more")
        if length < 1:
            raise BadParams("length must be 1 or more")
        runner = self._runners.get(process.source)
        if not isinstance(runner, LogReader):
            raise NoLogs(f"process {process_id!r} has no readable log")
        return await runner.read_log(process_id, channel, offset, length)

    async def refresh(self, source_id: str | None = None) -> list[str]:
        """Make sources re-read their systems now (every source, or ``source_id``'s).

        Returns once each :class:`Refresher` among them has reported a read that started
        after the call (or could not make one in a bounded time), with the changes
        committed; the names of those that did are returned. A source without the
        capability is left alone (a no-op). Raise UnknownTarget for an unknown source.
        """
        if source_id is not None and self.fleet.get("source", source_id) is None:
            raise UnknownTarget(f"no source {source_id!r}")
        names = list(self._runners) if source_id is None else [source_id]
        refreshers: list[tuple[str, Refresher]] = []
        for name in names:
            runner = self._runners.get(name)
            if isinstance(runner, Refresher):
                refreshers.append((name, runner))
        results = await asyncio.gather(
            *(r.refresh() for _, r in refreshers), return_exceptions=True
        )
        self.flush()
        done: list[str] = []
        for (name, _), result in zip(refreshers, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.error("source %s: refresh failed: %r", name, result)
            elif result:
                done.append(name)
        return done

    def sources_matching(self, pattern: str) -> list[str]:
        return [s for s in self._runners if fnmatch.fnmatchcase(s, pattern)]


def check_params(spec: ActionSpec, params: dict[str, Any]) -> None:
    """Validate ``params`` against the action's ParamSpecs in place (defaults filled in)."""
    known = {p.name: p for p in spec.params}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise BadParams(f"action {spec.name!r} takes no parameter {', '.join(unknown)}")
    for p in spec.params:
        if p.name not in params:
            if p.required and p.default is None:
                raise BadParams(f"action {spec.name!r} needs parameter {p.name!r}")
            if p.default is not None:
                params[p.name] = p.default
            continue
        value = params[p.name]
        expected: type | tuple[type, ...] = {"string": str, "integer": int, "boolean": bool}[p.type]
        if not isinstance(value, expected) or (p.type == "integer" and isinstance(value, bool)):
            raise BadParams(f"parameter {p.name!r} of {spec.name!r} must be a {p.type}")


def default_factories() -> dict[str, SourceFactory]:
    # Each kind's modules are imported when a source of that kind is made: a hub of
    # supervisors starts without the icecream code (about 50 ms of a cold start).
    from fleetwatch.config import (
        IcecreamSourceConfig,
        PiwheelsSourceConfig,
        SupervisorSourceConfig,
    )

    def supervisor(cfg: SourceConfig, handle: SourceHandle) -> SourceRunner:
        from fleetwatch.sources.supervisor import SupervisorSource

        assert isinstance(cfg, SupervisorSourceConfig)
        return SupervisorSource(cfg, handle)

    def icecream(cfg: SourceConfig, handle: SourceHandle) -> SourceRunner:
        from fleetwatch.sources.icecream.source import IcecreamSource

        assert isinstance(cfg, IcecreamSourceConfig)
        return IcecreamSource(cfg, handle)

    def piwheels(cfg: SourceConfig, handle: SourceHandle) -> SourceRunner:
        from fleetwatch.sources.piwheels.source import PiwheelsSource

        assert isinstance(cfg, PiwheelsSourceConfig)
        return PiwheelsSource(cfg, handle)

    return {"supervisor": supervisor, "icecream": icecream, "piwheels": piwheels}
