"""Notifications: what an operator should be told, derived from model changes by rules.

A rule looks at one entity before and after a change. The rules here are written
over supervisord's state groups (as supervisor's own ``states.py`` groups them), so
a process that leaves the running group without being stopped is news, while one
stopped by an operator is not.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fleetwatch.model import Entity, Node, Process, Source

__all__ = [
    "RUNNING_STATES",
    "STOPPED_STATES",
    "Notification",
    "NotificationRules",
]

Severity = Literal["info", "warning", "error"]

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

    def frame(self) -> dict[str, Any]:
        return {
            "t": "note",
            "id": self.id,
            "ts": self.ts,
            "severity": self.severity,
            "source": self.source,
            "subject": self.subject,
            "title": self.title,
            "text": self.text,
        }


def _note(entity: Entity, severity: Severity, title: str, text: str) -> Notification:
    return Notification(
        id=f"n{next(_ids)}",
        ts=time.time(),
        severity=severity,
        source=entity.source,
        subject={"kind": entity.KIND, "id": entity.id},
        title=title,
        text=text,
    )


class NotificationRules:
    """Derives notifications from (old, new) entity pairs."""

    kinds = frozenset({"process", "source", "node"})
    """The kinds any rule looks at: the hub skips the others (jobs are many)."""

    def derive(self, old: Entity | None, new: Entity) -> Iterator[Notification]:
        if isinstance(new, Process):
            yield from self._process(old if isinstance(old, Process) else None, new)
        elif isinstance(new, Source):
            yield from self._source(old if isinstance(old, Source) else None, new)
        elif isinstance(new, Node):
            yield from self._node(old if isinstance(old, Node) else None, new)

    def _process(self, old: Process | None, new: Process) -> Iterator[Notification]:
        if old is None or old.state == new.state:
            return
        where = f"{new.group}:{new.name} on {new.source}"
        if new.state == "FATAL":
            why = f": {new.spawnerr}" if new.spawnerr else ""
            yield _note(new, "error", f"{new.name} failed", f"{where} went FATAL{why}")
        elif old.state == "RUNNING" and new.state in ("EXITED", "BACKOFF", "UNKNOWN"):
            status = f" (exit status {new.exitstatus})" if new.exitstatus is not None else ""
            yield _note(
                new,
                "warning",
                f"{new.name} exited",
                f"{where} left RUNNING unexpectedly: {new.state}{status}",
            )
        elif old.state in STOPPED_STATES and old.state != "STOPPED" and new.state == "RUNNING":
            yield _note(new, "info", f"{new.name} running", f"{where} is RUNNING again")

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
