"""Where the TUI's model comes from and where its actions go: a hub over the network, or
one running in the same process.

Both backends keep the model as the stream's JSON objects (``entities[kind][id]``) and
tell their listeners each change as a :class:`fleetwatch.client.mirror.Event`, so the app
draws from either without knowing which:

* :class:`RemoteBackend`: a :class:`~fleetwatch.client.mirror.Mirror` of a hub's stream,
  and :class:`~fleetwatch.client.HubClient` calls (blocking HTTP, run in threads: one
  client for actions, one for log reads, so a slow stop never holds the log pane up).
* :class:`LocalBackend`: a :class:`~fleetwatch.hub.Hub` in this process (``fleetwatch
  piw-monitor``): a subscription to it, and its ``run_action`` called directly. No port
  is opened, so nobody else on the machine reaches the controls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from fleetwatch.client import HubClient, HubError
from fleetwatch.client.mirror import KINDS, PLURALS, Event, Mirror

if TYPE_CHECKING:
    from fleetwatch.hub import Hub

__all__ = ["Backend", "LocalBackend", "RemoteBackend"]

Listener = Callable[[Event], None]


class Backend(Protocol):
    """What the app needs of a model and its controls."""

    @property
    def name(self) -> str:
        """The hub's name."""
        ...

    @property
    def entities(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``entities[kind][id]``: the model as the stream's JSON objects."""
        ...

    @property
    def listeners(self) -> list[Listener]:
        """Called with each :class:`Event`, in the app's event loop."""
        ...

    @property
    def status_text(self) -> str:
        """The status line's first words ("Connected", "Waiting for connection", ...)."""
        ...

    @property
    def where(self) -> str:
        """What is watched, for the title (a URL, a queue address)."""
        ...

    async def run(self) -> None:
        """Follow the model until cancelled."""
        ...

    async def action(self, kind: str, id: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run an action: ``{ok, error, detail}`` (a refusal is a result, not an error)."""
        ...

    async def log(self, id: str, channel: str, offset: int | None, length: int) -> dict[str, Any]:
        """A window of a process's log (``{text, offset, end, reset}``); HubError if none."""
        ...

    async def close(self) -> None: ...


class RemoteBackend:
    """A hub reached over HTTP and its stream (``fleetwatch tui``)."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.client = HubClient(url, token=token)
        self.mirror = Mirror(self.client)
        self._actions = HubClient(url, token=token, timeout=120)
        self._logs = HubClient(url, token=token, timeout=15)
        self._action_lock = asyncio.Lock()
        self._log_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.mirror.name

    @property
    def entities(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.mirror.entities

    @property
    def listeners(self) -> list[Listener]:
        return self.mirror.listeners

    @property
    def status_text(self) -> str:
        return self.mirror.status_text

    @property
    def where(self) -> str:
        return self.client.url

    async def run(self) -> None:
        await self.mirror.run()

    async def action(self, kind: str, id: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self._action_lock:
            try:
                return await asyncio.to_thread(self._actions.action, kind, id, name, params)
            except HubError as exc:
                return {"ok": False, "error": str(exc), "detail": None}

    async def log(self, id: str, channel: str, offset: int | None, length: int) -> dict[str, Any]:
        async with self._log_lock:
            return await asyncio.to_thread(self._logs.log, id, channel, offset, length)

    async def close(self) -> None:
        await self.mirror.close()
        for client in (self.client, self._actions, self._logs):
            client.close()


class LocalBackend:
    """A hub running in this process, started by :meth:`run` and stopped when it ends.

    The status line follows the hub's one source: "Waiting for connection" until it is
    first online, then ``connected_text``, then "Reconnecting" whenever it is not online.
    """

    def __init__(self, hub: Hub, *, connected_text: str = "Connected", where: str = "") -> None:
        self.hub = hub
        self.name = hub.fleet.name
        self.entities: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.listeners: list[Listener] = []
        self.connected_text = connected_text
        self._where = where
        self._was_online = False
        self._running = False

    @property
    def status_text(self) -> str:
        sources = list(self.entities["source"].values())
        if sources and all(s.get("status") == "online" for s in sources):
            return self.connected_text
        return "Reconnecting" if self._was_online else "Waiting for connection"

    @property
    def where(self) -> str:
        return self._where

    async def run(self) -> None:
        self._running = True
        await self.hub.start()
        sub = self.hub.subscribe()
        try:
            self._load(self.hub.snapshot().as_dict())
            while True:
                items = await sub.next()
                if sub.resync:
                    self._load(sub.take_resync().as_dict())
                    continue
                for item in items:
                    self._item(item)
        finally:
            sub.close()
            await self.close()

    def _load(self, snapshot: dict[str, Any]) -> None:
        data = orjson.loads(_dumps(snapshot))
        for kind in KINDS:
            self.entities[kind] = {e["id"]: e for e in data[PLURALS[kind]]}
        self._tell(Event("snapshot"))
        self._status_changed()

    def _item(self, item: Any) -> None:
        from fleetwatch.model import Delta

        if isinstance(item, Delta):
            changes = orjson.loads(item.frame())["changes"]
            for change in changes:
                table = self.entities[change["kind"]]
                if change["op"] == "put":
                    table[change["id"]] = change["value"]
                else:
                    table.pop(change["id"], None)
            self._tell(Event("delta", changes=tuple(changes)))
            if any(c["kind"] == "source" for c in changes):
                self._status_changed()
        else:
            note = {k: v for k, v in item.frame().items() if k != "t"}
            self._tell(Event("note", note=note))

    def _status_changed(self) -> None:
        if any(s.get("status") == "online" for s in self.entities["source"].values()):
            self._was_online = True
        self._tell(Event("status"))

    def _tell(self, event: Event) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):  # a listener's bug must not stop the feed
                listener(event)

    async def action(self, kind: str, id: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        from fleetwatch.errors import ActionError
        from fleetwatch.sources.base import Target

        try:
            result = await self.hub.run_action(Target(kind, id), name, params, user="tui")
        except ActionError as exc:
            return {"ok": False, "error": str(exc), "detail": None}
        answer: dict[str, Any] = orjson.loads(_dumps(result.as_dict()))
        return answer

    async def log(self, id: str, channel: str, offset: int | None, length: int) -> dict[str, Any]:
        from fleetwatch.sources.supervisor import SupervisorSource

        process = self.hub.fleet.get("process", id)
        runner = self.hub.runner(process.source) if process is not None else None
        if not isinstance(runner, SupervisorSource):
            raise HubError(f"process {id!r} has no readable log", 409)
        chunk = await runner.read_log(id, channel, offset, length)
        answer: dict[str, Any] = orjson.loads(_dumps(chunk.as_dict()))
        return answer

    async def close(self) -> None:
        """Stop the hub (its sources close their sockets); once, whoever comes first."""
        if self._running:
            self._running = False
            await self.hub.stop()


def _dumps(value: Any) -> bytes:
    from fleetwatch.model import dumps

    return dumps(value)
