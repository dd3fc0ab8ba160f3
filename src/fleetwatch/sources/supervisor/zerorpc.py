"""Multivisor's RPC agent (``multivisor-rpc``), spoken over zerorpc: ZeroMQ + msgpack.

A Multivisor user's hosts run an agent, inside supervisord or beside it as an
event listener, that republishes every supervisord XML-RPC method under its bare
name (``getAllProcessInfo``, ``startProcess``, ...) plus a server-push
``event_stream``. This module lets fleetwatch use those agents unchanged, so
``fleetwatch serve -c multivisor.conf`` watches the same hosts Multivisor did.

The wire (zerorpc protocol v3, as multivisor 7.1 vendors it):

* a DEALER socket sends ``[b"", msgpack([header, name, args])]``; ``header`` is
  ``{"message_id": ID, "v": 3}`` for a new request, plus ``"response_to": ID`` for
  every later event on the same channel;
* the server answers on the channel with ``OK [result]``, ``ERR [type, message,
  traceback]``, or for a stream ``STREAM item`` … ``STREAM_DONE``;
* both ends send ``_zpc_hb`` on an open channel every 5 s and drop a channel that
  stays silent for 10 s;
* a stream's sender may only send as many events as the receiver granted with
  ``_zpc_more [n]`` (one is granted at the start).

The agent has no authentication of its own (Multivisor's trap T1): bind it to
loopback or a management network.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq
import zmq.asyncio

from fleetwatch.errors import RemoteProtocolError, SourceError, Unreachable
from fleetwatch.sources.supervisor.protocol import Fault, Faults

__all__ = ["MultivisorAgentClient", "ZeroRPCEvent", "pack_event", "unpack_event"]

log = logging.getLogger(__name__)

HEARTBEAT = 5.0
"""Seconds between heartbeats; a channel silent for twice this long is lost."""
_STREAM_SLOTS = 100


@dataclass(frozen=True, slots=True)
class ZeroRPCEvent:
    header: dict[str, Any]
    name: str
    args: Any

    @property
    def channel(self) -> bytes | None:
        value = self.header.get("response_to")
        return value if isinstance(value, bytes) else None


def pack_event(header: dict[str, Any], name: str, args: Any) -> bytes:
    return msgpack.packb([header, name, args], use_bin_type=True)  # type: ignore[no-any-return]


def unpack_event(blob: bytes) -> ZeroRPCEvent:
    """Decode one zerorpc event; raise RemoteProtocolError for anything else."""
    try:
        value = msgpack.unpackb(blob, raw=False)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise RemoteProtocolError(f"not a zerorpc event: {exc}") from None
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise RemoteProtocolError(f"zerorpc event is {value!r:.60}, not [header, name, args]")
    header, name, args = value
    if not isinstance(name, str):
        raise RemoteProtocolError(f"zerorpc event name is {name!r:.40}")
    return ZeroRPCEvent(header if isinstance(header, dict) else {}, name, args)


_XMLRPC_FAULT = re.compile(r"<Fault (-?\d+): '(.*)'>\s*$", re.S)
_RPC_ERROR = re.compile(r"code=(-?\d+), text='(.*)'\s*$", re.S)

#: Errors the event-listener agent relays when its own XML-RPC call could not reach its
#: supervisord (refused, reset, socket gone, timed out): the daemon is down, so the
#: source is offline, not in error (issue #8: a supervisord killed under a live agent).
_UNREACHABLE = frozenset(
    {
        "OSError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "FileNotFoundError",
        "TimeoutError",
        "timeout",
        "gaierror",
        "RemoteDisconnected",
        "BadStatusLine",
        "IncompleteRead",
    }
)
#: http.client's complaints about a connection left half-used by an earlier failure.
#: The agent (supervisor.childutils' transport) never drops such a connection: once its
#: supervisord died mid-call, every later call fails this way, even after a restart.
_STUCK = frozenset({"CannotSendRequest", "ResponseNotReady", "ImproperConnectionState"})


def remote_error(args: Any) -> SourceError:
    """The exception an ``ERR [type, message, traceback]`` event stands for."""
    name, message = (str(args[0]), str(args[1])) if isinstance(args, list | tuple) else ("?", "")
    if name in _UNREACHABLE:
        return Unreachable(f"the agent cannot reach its supervisord ({name}: {message})")
    if name in _STUCK:
        return Unreachable(
            f"the agent cannot reach its supervisord ({name}: {message}); its connection "
            "stays broken after its supervisord died: restart the agent (multivisor-rpc)"
        )
    # The event-listener agent relays xmlrpc.client.Fault; the in-process one RPCError.
    for pattern in (_XMLRPC_FAULT, _RPC_ERROR):
        m = pattern.search(message)
        if m:
            return Fault(int(m.group(1)), m.group(2) or Faults(int(m.group(1))).name)
    if name == "NameError":
        return Fault(Faults.UNKNOWN_METHOD, f"UNKNOWN_METHOD: {message}")
    if name == "ProtocolError" and " 500 " in message:
        from fleetwatch.sources.supervisor.client import HTTPStatusError

        return HTTPStatusError(500, "Internal Server Error (from the agent)")
    return SourceError(f"agent error {name}: {message}")


class MultivisorAgentClient:
    """Calls supervisord methods through a Multivisor RPC agent at ``host:port``.

    Offers the same ``call`` / ``multicall`` as the XML-RPC client, plus
    :meth:`events`, the agent's push stream.
    """

    def __init__(self, address: str, *, timeout: float = 5.0) -> None:
        self.address = address
        self.endpoint = f"tcp://{address.removeprefix('tcp://')}"
        self.timeout = timeout
        self._ctx = zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[bytes, asyncio.Queue[ZeroRPCEvent]] = {}
        self._ids = itertools.count(1)
        self._base = os.urandom(8).hex().encode()
        self._error: SourceError | None = None

    def _new_id(self) -> bytes:
        return f"{next(self._ids):08x}".encode() + self._base

    def reset(self) -> None:
        """Drop the socket; the next call connects afresh (a host may have rebooted)."""
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        self._error = None
        for queue in self._channels.values():
            queue.put_nowait(ZeroRPCEvent({}, "_fw_reset", None))

    def _socket(self) -> zmq.asyncio.Socket:
        if self._sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
            sock.connect(self.endpoint)
            self._sock = sock
            self._reader = asyncio.get_running_loop().create_task(self._read(sock))
        return self._sock

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            frames = await sock.recv_multipart()
            try:
                event = unpack_event(frames[-1])
            except RemoteProtocolError as exc:
                # Garbage on the wire: this connection is no longer trustworthy.
                self._error = exc
                for queue in self._channels.values():
                    queue.put_nowait(ZeroRPCEvent({}, "_fw_error", None))
                return
            waiting = self._channels.get(event.channel or b"")
            if waiting is not None:
                waiting.put_nowait(event)

    async def _send(self, header: dict[str, Any], name: str, args: Any) -> None:
        await self._socket().send_multipart([b"", pack_event(header, name, args)])

    @contextlib.asynccontextmanager
    async def _channel(self, name: str, args: Sequence[Any]) -> AsyncIterator[ZeroRPCEvent]:
        """Open a channel with a request; yields the request event, heartbeats while open."""
        mid = self._new_id()
        queue: asyncio.Queue[ZeroRPCEvent] = asyncio.Queue()
        self._channels[mid] = queue
        request = ZeroRPCEvent({"message_id": mid, "v": 3}, name, list(args))

        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT)
                await self._send(
                    {"message_id": self._new_id(), "v": 3, "response_to": mid}, "_zpc_hb", [0]
                )

        await self._send(request.header, name, request.args)
        heart = asyncio.get_running_loop().create_task(beat())
        try:
            yield request
        finally:
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError, zmq.ZMQError):
                await heart
            self._channels.pop(mid, None)

    async def _next(self, mid: bytes, timeout: float) -> ZeroRPCEvent:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
        # together with an event, and a cancelled follower then reads the stream (and its
        # heartbeats) forever, so the hub never stops.
        try:
            async with asyncio.timeout(timeout):
                event = await self._channels[mid].get()
        except TimeoutError:
            raise Unreachable(f"no answer from the agent within {timeout:g}s") from None
        if event.name == "_fw_error":
            raise self._error or RemoteProtocolError("garbage from the agent")
        if event.name == "_fw_reset":
            raise Unreachable("connection reset")
        return event

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call a supervisord method (``supervisor.X`` or bare ``X``) through the agent."""
        name = method.split(".", 1)[1] if "." in method else method
        limit = timeout or self.timeout
        async with self._channel(name, params) as request:
            mid = request.header["message_id"]
            while True:
                event = await self._next(mid, limit)
                if event.name == "OK":
                    args = event.args
                    if not isinstance(args, list | tuple) or not args:
                        raise RemoteProtocolError(f"OK without a result: {args!r:.60}")
                    return args[0]
                if event.name == "ERR":
                    raise remote_error(event.args)
                if event.name in ("_zpc_hb", "_zpc_more"):
                    continue
                raise RemoteProtocolError(f"unexpected {event.name!r} answering {name}")

    async def multicall(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any]:
        """The calls side by side (the agent's multicall is not relied upon).

        The agent runs them one after another on its supervisord, but their round trips
        overlap: a session's first read costs one wait, not six.
        """

        async def one(method: str, params: Sequence[Any]) -> Any:
            try:
                return await self.call(method, *params, timeout=timeout)
            except Fault as f:
                return f

        results = await asyncio.gather(*(one(m, p) for m, p in calls), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r  # each call ended (none is left running); the first failure counts
        return results

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The agent's ``event_stream``: supervisord events as dicts, until the stream fails."""
        async with self._channel("event_stream", ()) as request:
            mid = request.header["message_id"]
            granted = 1
            while True:
                event = await self._next(mid, HEARTBEAT * 2.5)
                if event.name == "STREAM":
                    granted -= 1
                    if granted < _STREAM_SLOTS // 2:
                        more = _STREAM_SLOTS - granted
                        granted += more
                        header = {"message_id": self._new_id(), "v": 3, "response_to": mid}
                        await self._send(header, "_zpc_more", [more])
                    if isinstance(event.args, dict):
                        yield event.args
                elif event.name == "STREAM_DONE":
                    raise Unreachable("the agent ended its event stream")
                elif event.name == "ERR":
                    raise remote_error(event.args)
                elif event.name not in ("_zpc_hb", "_zpc_more"):
                    raise RemoteProtocolError(f"unexpected {event.name!r} in the event stream")

    async def aclose(self) -> None:
        self.reset()
