"""``WS /api/stream``: a snapshot or the missed deltas, then live deltas and notifications.

Protocol (text frames of JSON):

* The client may say where it is: ``?since=SEQ&epoch=EPOCH`` in the URL, or a first
  message ``{"since": SEQ, "epoch": EPOCH}`` (``{}`` for "nothing yet"). A client that
  says nothing within :data:`HELLO_WAIT` seconds is treated as new. ``epoch`` is the one
  of the snapshot the client started from; when it is not this hub's (the hub restarted
  and counts from 0 again) the client gets a snapshot. Without ``epoch`` the ``since``
  is trusted, as before.
* The server answers ``{"t": "snapshot", "seq", "name", "epoch", "sources", "nodes",
  "processes", "jobs"}`` — or, when the delta ring still reaches back to
  ``SEQ``, the missed ``{"t": "delta", ...}`` frames — and then streams
  ``{"t": "delta", "seq", "changes"}`` and ``{"t": "note", ...}`` frames.
* Deltas are gap-free: a delta's ``seq`` minus its number of changes is the
  previous delta's ``seq``. A client that falls too far behind is sent a fresh
  snapshot instead of the deltas it missed.
* The client may send ``{"ping": X}`` at any time; the server answers ``{"t": "pong", "ping": X}``.
* A binary frame is not part of the protocol: the server closes with 1003 (unsupported
  data) and logs one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from fleetwatch.hub import Hub, Subscription
from fleetwatch.model import Delta, Snapshot, dumps
from fleetwatch.web.auth import CREDENTIALS_GONE, CredentialsGone

if TYPE_CHECKING:
    from fleetwatch.web.auth import StreamView

__all__ = ["HELLO_WAIT", "UNSUPPORTED_DATA", "BinaryFrame", "StreamState", "serve_stream"]

log = logging.getLogger(__name__)

HELLO_WAIT = 0.25
UNSUPPORTED_DATA = 1003
"""The close code for a binary frame (RFC 6455 7.4.1)."""


class BinaryFrame(Exception):
    """The client sent a binary frame; the protocol is text frames only."""


class StreamState(enum.Enum):
    HELLO = "hello"
    """Accepted; waiting to learn where the client is."""
    STREAMING = "streaming"
    CLOSED = "closed"


def snapshot_frame(snapshot: Snapshot) -> bytes:
    return dumps({"t": "snapshot", **snapshot.as_dict()})


class _Stream:
    def __init__(self, ws: WebSocket, hub: Hub, view: StreamView | None = None) -> None:
        self.ws = ws
        self.hub = hub
        self.view = view
        """What this client may see (a restricted account: only its sources)."""
        self.state = StreamState.HELLO
        self.sent_seq = -1
        self.sub: Subscription | None = None

    async def send(self, frame: bytes) -> None:
        await self.ws.send_text(frame.decode("utf-8"))

    async def receive_text(self) -> str:
        """The next text frame; WebSocketDisconnect when the client left, BinaryFrame
        for a binary one (starlette's ``receive_text`` raises KeyError on those)."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text = message.get("text")
        if text is None:
            raise BinaryFrame
        return str(text)

    async def hello(self) -> int | None:
        params = self.ws.query_params
        if "since" in params:
            return self._resume(params.get("since"), params.get("epoch"))
        try:
            text = await asyncio.wait_for(self.receive_text(), HELLO_WAIT)
        except TimeoutError:
            return None
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(msg, dict):
            return None
        return self._resume(msg.get("since"), msg.get("epoch"))

    def _resume(self, since: Any, epoch: Any) -> int | None:
        if epoch is not None and epoch != self.hub.fleet.epoch:
            return None  # another hub's numbers
        return _parse_seq(since)

    async def start(self, since: int | None) -> None:
        # Subscribing and choosing the first frames happen with no await in between,
        # so no delta can fall between them: nothing is lost and nothing doubled.
        self.sub = self.hub.subscribe()
        self.hub.flush()
        if self.view is not None and not self.view.resumable:
            since = None  # its numbering is its own: it starts from a snapshot
        missed = self.hub.fleet.deltas_since(since) if since is not None else None
        self.state = StreamState.STREAMING
        if missed is None:
            snap = self.hub.fleet.snapshot()
            self.sent_seq = snap.seq
            await self.send(self._snapshot(snap))
            return
        # Set before sending: a delta committed while these are sent arrives through
        # the subscription and must not be taken as already sent.
        self.sent_seq = self.hub.fleet.seq
        for delta in missed:
            await self._send_delta(delta)

    async def pump(self) -> None:
        assert self.sub is not None
        while True:
            items = await self.sub.next()
            if self.sub.resync:
                snap = self.sub.take_resync()
                self.sent_seq = snap.seq
                await self.send(self._snapshot(snap))
                continue
            for item in items:
                if isinstance(item, Delta):
                    if item.seq <= self.sent_seq:
                        continue  # already in the snapshot or deltas we sent
                    await self._send_delta(item)
                    self.sent_seq = item.seq
                elif self.view is None:
                    await self.send(dumps(item.frame()))
                else:
                    note = self.view.note(item.frame())
                    if note is not None:
                        await self.send(note)

    def _snapshot(self, snap: Snapshot) -> bytes:
        return snapshot_frame(snap) if self.view is None else self.view.snapshot(snap)

    async def _send_delta(self, delta: Delta) -> None:
        frame = delta.frame() if self.view is None else self.view.delta(delta)
        if frame is not None:
            await self.send(frame)

    async def listen(self) -> None:
        while True:
            msg = await self.receive_text()
            try:
                data: Any = orjson.loads(msg)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict) and "ping" in data:
                await self.send(dumps({"t": "pong", "ping": data["ping"]}))

    def close(self) -> None:
        self.state = StreamState.CLOSED
        if self.sub is not None:
            self.sub.close()


def _parse_seq(value: Any) -> int | None:
    try:
        seq = int(value)
    except (TypeError, ValueError):
        return None
    return seq if seq >= 0 else None


async def serve_stream(ws: WebSocket, hub: Hub, view: StreamView | None = None) -> None:
    await ws.accept()
    stream = _Stream(ws, hub, view)
    try:
        await stream.start(await stream.hello())
        pump = asyncio.ensure_future(stream.pump())
        listen = asyncio.ensure_future(stream.listen())
        done, pending = await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                raise exc
    except CredentialsGone:
        log.info("stream closed: its credentials were revoked or expired")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(CREDENTIALS_GONE, "credentials revoked or expired")
    except BinaryFrame:
        client = ws.client.host if ws.client else "?"
        log.warning("stream client %s sent a binary frame: closing with 1003", client)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(UNSUPPORTED_DATA, "binary frames are not supported")
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away (RuntimeError: sent after close)
    finally:
        stream.close()
