"""Notifications: what an operator should be told, derived from model changes by rules.

A rule looks at one entity before and after a change. The rules here are written
over supervisord's state groups (as supervisor's own ``states.py`` groups them), so
a process that leaves the running group without being stopped is news, while one
stopped by an operator is not.

Flapping (issue 12): a process that changes state ``flap_changes`` times within
``flap_window`` seconds (stops, and starts from STOPPED, are an operator's doing and not
counted) gets ONE ``kind="flapping"`` note instead of one note per change. While it
flaps each further change re-sends that note with the same ``id``, a new ``ts`` and a
growing ``count`` (``updated=True``), and its per-change notes are suppressed. Once it
has been quiet (no state change) for ``flap_window`` seconds,
:meth:`NotificationRules.tick` (called periodically by the hub) gives one
``kind="stable"`` note and the process is watched afresh.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from fleetwatch.model import Entity, Node, Process, Source

__all__ = [
    "FLAP_CHANGES",
    "FLAP_WINDOW",
    "RUNNING_STATES",
    "STOPPED_STATES",
    "Notification",
    "NotificationRules",
]

Severity = Literal["info", "warning", "error"]
NoteKind = Literal["flapping", "stable"]

FLAP_CHANGES = 5
"""Default ``[hub] flap_changes``: state changes of one process that make it flapping."""
FLAP_WINDOW = 60.0
"""Default ``[hub] flap_window``: seconds those changes fall within, and the quiet time
after which a flapping process is stable again."""

#: supervisord's "running" states (the process has a pid or is about to).
RUNNING_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF", "STOPPING"})
#: supervisord's "stopped" states.
STOPPED_STATES = frozenset({"STOPPED", "EXITED", "FATAL", "UNKNOWN"})

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    id: str
    ts: float
    severity: Severity
    source: str
    subject: dict[str, str]
    title: str
    text: str
    kind: NoteKind | None = None
    """``flapping`` or ``stable`` (flap detection); None for a plain note."""
    count: int | None = None
    """A flapping note's state changes so far."""
    since: float | None = None
    """When a flapping episode began (the first change counted)."""
    updated: bool = False
    """True when this note replaces an earlier one with the same ``id``."""

    def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "t": "note",
            "id": self.id,
            "ts": self.ts,
            "severity": self.severity,
            "source": self.source,
            "subject": self.subject,
            "title": self.title,
            "text": self.text,
        }
        # Additive fields, only on the notes they belong to.
        if self.kind is not None:
            frame["kind"] = self.kind
        if self.count is not None:
            frame["count"] = self.count
        if self.since is not None:
            frame["since"] = self.since
        if self.updated:
            frame["updated"] = True
        return frame


def _note(
    entity: Entity, severity: Severity, title: str, text: str, ts: float | None = None
) -> Notification:
    return Notification(
        id=f"n{next(_ids)}",
        ts=time.time() if ts is None else ts,
        severity=severity,
        source=entity.source,
        subject={"kind": entity.KIND, "id": entity.id},
        title=title,
        text=text,
    )


@dataclass(slots=True)
class _Flap:
    note: Notification
    last: float
    """When the last state change came."""
    process: Process


OPERATOR_STATES = frozenset({"STOPPING", "STOPPED"})
"""States only an operator's stop leads to (or from, for STOPPED): not flapping."""


def _counts(old: Process, new: Process) -> bool:
    """Is this a state change that flapping counts? Not a stop, nor a start from STOPPED:
    an operator's restart (STOPPING, STOPPED, STARTING, RUNNING) counts once, a
    process that exits and is restarted by supervisord each of its changes."""
    if old.state == new.state:
        return False
    return new.state not in OPERATOR_STATES and old.state != "STOPPED"


def _where(p: Process) -> str:
    return f"{p.group}:{p.name} on {p.source}"


class NotificationRules:
    """Derives notifications from (old, new) entity pairs.

    ``flap_changes`` state changes of one process within ``flap_window`` seconds make
    it flapping (module docstring); ``flap_changes=0`` turns that off. ``clock`` gives
    the time (seconds, wall clock: it is also the notes' ``ts``); tests inject one.
    """

    kinds = frozenset({"process", "source", "node"})
    """The kinds any rule looks at: the hub skips the others (jobs are many)."""

    def __init__(
        self,
        *,
        flap_changes: int = FLAP_CHANGES,
        flap_window: float = FLAP_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.flap_changes = flap_changes
        self.flap_window = flap_window
        self.clock = clock
        self._changes: dict[str, deque[float]] = {}
        """Recent state-change times of processes that are not flapping."""
        self._flapping: dict[str, _Flap] = {}

    @property
    def flapping(self) -> dict[str, Notification]:
        """The current flapping note of each flapping process, by process id."""
        return {pid: f.note for pid, f in self._flapping.items()}

    def derive(self, old: Entity | None, new: Entity) -> Iterator[Notification]:
        if isinstance(new, Process):
            before = old if isinstance(old, Process) else None
            if before is not None and _counts(before, new) and self.flap_changes > 0:
                flap = self._flap(new)
                if flap is not None:
                    yield flap
                    return  # its per-change notes are suppressed while it flaps
            yield from self._process(before, new)
        elif isinstance(new, Source):
            yield from self._source(old if isinstance(old, Source) else None, new)
        elif isinstance(new, Node):
            yield from self._node(old if isinstance(old, Node) else None, new)

    def _flap(self, new: Process) -> Notification | None:
        """Count a state change of ``new``; the flapping note to send, if it flaps."""
        now = self.clock()
        flap = self._flapping.get(new.id)
        if flap is not None:
            count = (flap.note.count or 0) + 1
            flap.note = replace(
                flap.note,
                ts=now,
                count=count,
                updated=True,
                text=self._flap_text(new, count, now - (flap.note.since or now)),
            )
            flap.last = now
            flap.process = new
            return flap.note
        times = self._changes.setdefault(new.id, deque())
        times.append(now)
        while times and times[0] <= now - self.flap_window:
            times.popleft()
        if len(times) < self.flap_changes:
            return None
        del self._changes[new.id]
        since = times[0]
        note = replace(
            _note(new, "warning", f"{new.name} flapping", "", now),
            kind="flapping",
            count=len(times),
            since=since,
            text=self._flap_text(new, len(times), now - since),
        )
        self._flapping[new.id] = _Flap(note=note, last=now, process=new)
        return note

    @staticmethod
    def _flap_text(p: Process, count: int, seconds: float) -> str:
        return f"{_where(p)} changed state {count} times in {seconds:.0f} s (now {p.state})"

    def tick(self, now: float | None = None) -> list[Notification]:
        """The "stable again" notes of processes quiet for ``flap_window``; prune counts.

        Cheap: it looks only at flapping processes and the change counts kept.
        """
        now = self.clock() if now is None else now
        notes: list[Notification] = []
        for pid, flap in list(self._flapping.items()):
            if now - flap.last < self.flap_window:
                continue
            del self._flapping[pid]
            p = flap.process
            notes.append(
                replace(
                    _note(
                        p,
                        "info" if p.state == "RUNNING" else "warning",
                        f"{p.name} stable again",
                        f"{_where(p)} stopped flapping after {flap.note.count} state "
                        f"changes; it is {p.state}",
                        now,
                    ),
                    kind="stable",
                    count=flap.note.count,
                    since=flap.note.since,
                )
            )
        for pid, times in list(self._changes.items()):
            if not times or times[-1] <= now - self.flap_window:
                del self._changes[pid]
        return notes

    def forget(self, process_id: str) -> None:
        """A process is gone: drop what is counted of it (no "stable" note follows)."""
        self._changes.pop(process_id, None)
        self._flapping.pop(process_id, None)

    def _process(self, old: Process | None, new: Process) -> Iterator[Notification]:
        if old is None or old.state == new.state:
            return
        where = _where(new)
        now = self.clock()
        if new.state == "FATAL":
            why = f": {new.spawnerr}" if new.spawnerr else ""
            yield _note(new, "error", f"{new.name} failed", f"{where} went FATAL{why}", now)
        elif old.state == "RUNNING" and new.state in ("EXITED", "BACKOFF", "UNKNOWN"):
            status = f" (exit status {new.exitstatus})" if new.exitstatus is not None else ""
            yield _note(
                new,
                "warning",
                f"{new.name} exited",
                f"{where} left RUNNING unexpectedly: {new.state}{status}",
                now,
            )
        elif old.state in STOPPED_STATES and old.state != "STOPPED" and new.state == "RUNNING":
            yield _note(new, "info", f"{new.name} running", f"{where} is RUNNING again", now)

    def _source(self, old: Source | None, new: Source) -> Iterator[Notification]:
        if old is None or old.status == new.status:
            return
        if new.status in ("offline", "error"):
            why = f": {new.error}" if new.error else ""
            yield _note(new, "error", f"{new.name} {new.status}", f"{new.kind} {new.name}{why}")
        elif new.status == "online" and old.status in ("offline", "error"):
            yield _note(new, "info", f"{new.name} online", f"{new.kind} {new.name} is back")

    def _node(self, old: Node | None, new: Node) -> Iterator[Notification]:
        if old is None or old.state == new.state:
            return
        if new.state == "offline":
            yield _note(new, "warning", f"{new.name} offline", f"host {new.name} went offline")
