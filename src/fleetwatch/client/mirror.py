"""The hub's stream kept as a local copy of the model: what live clients draw from.

:class:`Mirror` connects to ``WS /api/stream``, takes the snapshot, applies each delta
(checking that the numbering has no gap: a delta whose ``seq`` minus its number of
changes is not the mirror's ``seq`` makes it reconnect and resume), keeps the recent
notifications, and reconnects for ever with a back-off, resuming with
``since``/``epoch`` so a short outage costs only the missed deltas. Every change is
told to the listeners as an :class:`Event`; ``status`` says where the link is
(``connecting`` → ``connected`` → ``reconnecting`` → ``connected`` ...), and
:attr:`Mirror.status_text` says it as the TUI's status line does.

It runs in the caller's asyncio loop (``await mirror.run()``; cancel the task to stop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from fleetwatch.client import HubClient

__all__ = ["KINDS", "PLURALS", "Event", "Mirror"]

log = logging.getLogger(__name__)

KINDS = ("source", "node", "process", "job")
PLURALS = {"source": "sources", "node": "nodes", "process": "processes", "job": "jobs"}
Status = Literal["connecting", "connected", "reconnecting"]
_STATUS_TEXT = {
    "connecting": "Waiting for connection",
    "connected": "Connected",
    "reconnecting": "Reconnecting",
}


@dataclass(frozen=True, slots=True)
class Event:
    """What changed in the mirror.

    * ``snapshot``: the whole model was (re)loaded;
    * ``delta``: ``changes`` were applied (the stream's change dicts: op, kind, id, value);
    * ``note``: ``note`` arrived (the notification frame);
    * ``status``: the link's status changed (``Mirror.status``, ``Mirror.error``).
    """

    type: Literal["snapshot", "delta", "note", "status"]
    changes: tuple[dict[str, Any], ...] = ()
    note: dict[str, Any] | None = None


@dataclass
class _Backoff:
    initial: float = 0.1
    cap: float = 2.0
    delay: float = field(default=0.0)

    def next(self) -> float:
        self.delay = min(self.cap, self.initial if self.delay == 0 else self.delay * 2)
        return self.delay * random.uniform(0.8, 1.2)


class Mirror:
    """A live local copy of a hub's model (see the module docstring)."""

    def __init__(self, client: HubClient, *, max_notes: int = 200) -> None:
        self.client = client
        self.status: Status = "connecting"
        self.error: str | None = None
        """Why the link is down, when it is."""
        self.name = ""
        self.seq = -1
        self.epoch: Any = None
        self.entities: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.notes: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_notes)
        self.listeners: list[Callable[[Event], None]] = []
        self.synced = asyncio.Event()
        """Set once the first snapshot is in (and kept set across reconnects)."""
        self._ws: ClientConnection | None = None

    @property
    def status_text(self) -> str:
        return _STATUS_TEXT[self.status]

    def get(self, kind: str, id: str) -> dict[str, Any] | None:
        return self.entities[kind].get(id)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.entities[kind].values())

    async def run(self) -> None:
        """Follow the stream for ever, reconnecting; cancel the task to stop."""
        backoff = _Backoff()
        while True:
            try:
                await self._session(backoff)
                self.error = "the hub closed the stream"
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, TimeoutError) as exc:
                self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except _Gap as exc:
                self.error = str(exc)
            self._ws = None
            self._set_status("reconnecting" if self.synced.is_set() else "connecting")
            await asyncio.sleep(backoff.next())

    async def wait_synced(self, timeout: float) -> None:
        """Until the first snapshot is in; ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self.synced.wait()

    async def _session(self, backoff: _Backoff) -> None:
        url = self.client.stream_url
        if self.synced.is_set() and self.seq >= 0:
            url += f"?since={self.seq}&epoch={self.epoch}"
        headers = {k: v for k, v in self.client.headers.items() if k == "Authorization"}
        async with connect(url, additional_headers=headers, max_size=None, open_timeout=10) as ws:
            self._ws = ws
            if "?since=" not in url:
                await ws.send("{}")  # "nothing yet": the snapshot comes without the wait
            async for message in ws:
                frame = json.loads(message)
                self._frame(frame)
                if self.status != "connected":
                    backoff.delay = 0.0
                    self.error = None
                    self._set_status("connected")

    def _frame(self, frame: dict[str, Any]) -> None:
        t = frame.get("t")
        if t == "snapshot":
            self.name = frame.get("name", "")
            self.seq = frame["seq"]
            self.epoch = frame.get("epoch")
            for kind in KINDS:
                self.entities[kind] = {e["id"]: e for e in frame.get(PLURALS[kind], ())}
            self.synced.set()
            self._tell(Event("snapshot"))
        elif t == "delta":
            changes = frame["changes"]
            if frame["seq"] - len(changes) != self.seq:
                raise _Gap(f"a gap in the stream: at {self.seq}, got delta {frame['seq']}")
            for change in changes:
                table = self.entities[change["kind"]]
                if change["op"] == "put":
                    table[change["id"]] = change["value"]
                else:
                    table.pop(change["id"], None)
            self.seq = frame["seq"]
            self._tell(Event("delta", changes=tuple(changes)))
        elif t == "note":
            note = {k: v for k, v in frame.items() if k != "t"}
            if note.get("updated"):  # a flapping note re-sent: keep it once
                for kept in [n for n in self.notes if n.get("id") == note.get("id")]:
                    self.notes.remove(kept)
            self.notes.append(note)
            self._tell(Event("note", note=note))

    def _set_status(self, status: Status) -> None:
        if status != self.status:
            self.status = status
            self._tell(Event("status"))

    def _tell(self, event: Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not cut the stream
                log.exception("mirror listener failed on %s", event.type)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()


class _Gap(Exception):
    """The numbering of deltas skipped: resume from the last good seq."""
