"""What every source has in common: the sink it reports to, reconnect back-off, actions.

A source owns one connection to one watched system. It reports what it sees to a
:class:`SourceSink` (the hub), reconnects with :class:`Backoff` after a failure,
and re-reads the full state after every reconnect so the model converges to the
truth. It never touches HTTP clients, the UI or other sources.

What only some sources can do is a *capability*, an ABC a source class also derives
from, which the hub looks for (``Hub.read_log``, ``Hub.refresh``); clients reach it
through the hub and never ask which class a source is:

* :class:`LogReader` — windows of a process's stdout/stderr log (supervisord);
* :class:`Refresher` — re-read the watched system now (a poller that would otherwise
  read it at its next tick); a source without it has nothing to re-read on demand.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from fleetwatch.errors import RemoteProtocolError, SourceError, Unreachable
from fleetwatch.model import ActionSpec, Entity, Kind

__all__ = [
    "LOG_CHANNELS",
    "ActionResult",
    "Backoff",
    "LogChunk",
    "LogReader",
    "Refresher",
    "Source",
    "SourceSink",
    "Target",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """What an action acts on: ``kind`` is a model kind or ``group`` (id ``SOURCE:GROUP``)."""

    kind: str
    id: str


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    error: str | None = None
    detail: Any = None

    @classmethod
    def failed(cls, error: str, detail: Any = None) -> ActionResult:
        return cls(False, error, detail)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error, "detail": self.detail}


LOG_CHANNELS = ("stdout", "stderr")


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A window of a process log: ``text`` is bytes ``[offset, end)`` decoded."""

    text: str
    offset: int
    end: int
    size: int
    reset: bool = False
    """True when the requested offset lay past the end (the log was rotated or cleared)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LogReader(abc.ABC):
    """Capability: the source can read its processes' logs."""

    @abc.abstractmethod
    async def read_log(
        self, process_id: str, channel: str, offset: int | None, length: int
    ) -> LogChunk:
        """Read up to ``length`` bytes of ``channel`` (``stdout``/``stderr``) from ``offset``.

        ``offset`` None reads the last ``length`` bytes. The chunk's ``offset``/``end`` are
        exact byte offsets (a follower reads on from ``end``); an ``offset`` past the end
        reads from 0 with ``reset``. Raise UnknownTarget for a process the source does
        not have, SourceError when the system failed to answer.
        """


class Refresher(abc.ABC):
    """Capability: the source can re-read its system on demand."""

    @abc.abstractmethod
    async def refresh(self) -> bool:
        """Read the system again, starting now; return once what it read is reported.

        True when a read that started after the call has been reported to the sink;
        False when none could be made within a bounded time (the source is not
        connected, or the read failed). Never raises for the system's failures.
        """


class SourceSink(Protocol):
    """What a source may do to the model (the hub implements it, per source)."""

    def put(self, entity: Entity) -> bool: ...

    def delete(self, kind: Kind, id: str) -> bool: ...

    def sync(self, kind: Kind, entities: Iterable[Entity]) -> int:
        """Make this source's entities of ``kind`` exactly ``entities``."""
        ...

    def status(self, status: str, *, error: str | None = None, **fields: Any) -> None:
        """Set the source's status (and other Source fields such as version, info)."""
        ...

    def get(self, kind: Kind, id: str) -> Entity | None: ...


class Backoff:
    """Capped exponential back-off with jitter, quick for short outages.

    During the first ``quick_window`` seconds of an outage the delay doubles from
    ``initial`` up to ``quick_cap``, so a system back after a short outage is seen
    again within about ``quick_cap`` seconds. After that it keeps doubling up to
    ``slow_cap`` to spare long-dead peers. Each delay is jittered by ±``jitter``
    so many sources do not retry in lock-step.
    """

    def __init__(
        self,
        *,
        initial: float = 0.1,
        quick_cap: float = 1.0,
        quick_window: float = 60.0,
        slow_cap: float = 30.0,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.quick_cap = quick_cap
        self.quick_window = quick_window
        self.slow_cap = slow_cap
        self.jitter = jitter
        self._clock = clock
        self._rng = rng or random.Random()
        self._outage_start: float | None = None
        self._delay = 0.0

    def reset(self) -> None:
        """The peer answered: the next outage starts from the initial delay."""
        self._outage_start = None
        self._delay = 0.0

    @property
    def outage(self) -> float:
        """Seconds since the current outage began (0 when none)."""
        return 0.0 if self._outage_start is None else self._clock() - self._outage_start

    def next_delay(self) -> float:
        now = self._clock()
        if self._outage_start is None:
            self._outage_start = now
        cap = self.quick_cap if now - self._outage_start < self.quick_window else self.slow_cap
        self._delay = min(cap, self.initial if self._delay == 0 else self._delay * 2)
        spread = self._delay * self.jitter
        return max(0.0, self._delay + self._rng.uniform(-spread, spread))


class Source(abc.ABC):
    """One connection to one watched system; subclasses implement :meth:`session`."""

    kind: ClassVar[str]

    def __init__(self, name: str, sink: SourceSink, *, backoff: Backoff | None = None) -> None:
        self.name = name
        self.sink = sink
        self.backoff = backoff or Backoff()

    @property
    def url(self) -> str:
        """Where the system is reached, without credentials."""
        return ""

    @abc.abstractmethod
    def actions(self) -> tuple[ActionSpec, ...]:
        """The actions this source can perform, by target kind."""

    @abc.abstractmethod
    async def session(self) -> None:
        """Connect, read the full state, then follow changes until the connection fails.

        Raise :class:`SourceError` (or let a transport error escape) when it does;
        :meth:`run` reports it and reconnects after a back-off delay.
        """

    @abc.abstractmethod
    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        """Carry out an action that :meth:`actions` lists for ``target.kind``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called once when the hub stops)."""

    async def run(self) -> None:
        """Run sessions forever, reconnecting with back-off; cancel the task to stop."""
        while True:
            try:
                await self.session()
                error: str | None = "connection closed"
                status = "offline"
            except asyncio.CancelledError:
                raise
            except Unreachable as exc:
                status, error = "offline", str(exc) or type(exc).__name__
            except (RemoteProtocolError, SourceError) as exc:
                status, error = "error", str(exc) or type(exc).__name__
            except Exception as exc:  # a bug: report it on the source, keep the hub alive
                log.exception("source %s: unexpected error", self.name)
                status, error = "error", f"internal error: {type(exc).__name__}: {exc}"
            self.down(status, error)
            delay = self.backoff.next_delay()
            log.info("source %s %s (%s); retrying in %.2fs", self.name, status, error, delay)
            await asyncio.sleep(delay)

    last_ok: float | None = None
    """When the system last answered (Unix time); sources update it as they hear from it."""

    def down(self, status: str, error: str | None) -> None:
        """Report a failed session (subclasses may also mark their nodes offline)."""
        self.sink.status(status, error=error, last_seen=self.last_ok)

    def online(self, *, error: str | None = None, **fields: Any) -> None:
        """Report a successful (re)connection: status online, back-off reset.

        ``error`` may say what is degraded while online (e.g. a fallback in use).
        """
        self.backoff.reset()
        if self.last_ok is None:
            self.last_ok = time.time()
        self.sink.status("online", error=error, last_seen=self.last_ok, **fields)
