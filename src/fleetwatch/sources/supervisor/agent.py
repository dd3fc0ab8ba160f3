"""The hub's side of fleetwatch-agent: an asyncio client and the push-channel session.

A supervisor source that names ``agent = "host:9002"`` (with ``agent_token``) gets
its snapshot and every change pushed by the agent (``fleetwatch.agent``; its
docstring documents the wire), and sends its actions and log reads through it.
While the agent cannot be reached, a source that also names ``url`` polls
supervisord's XML-RPC instead, says so (``info.channel = "polling"``, the reason in
``error`` and ``info.agent_error``), and tries the agent again every
:attr:`AgentLink.retry_interval` seconds; a source with only ``agent`` is offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from fleetwatch.agent.protocol import (
    MAX_LINE,
    PROTOCOL,
    ProtocolError,
    agent_proof,
    client_proof,
    decode_frame,
    encode_frame,
    proof_matches,
)
from fleetwatch.errors import RemoteProtocolError, SourceError, Unreachable
from fleetwatch.sources.supervisor.client import HTTPStatusError, XmlRpcClient
from fleetwatch.sources.supervisor.protocol import Fault, ProcessInfo, decode_multicall
from fleetwatch.types import Secret

if TYPE_CHECKING:
    from fleetwatch.sources.supervisor.source import SupervisorSource

__all__ = ["AgentClient", "AgentLink", "AgentRefused", "agent_tls"]

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT = 15.0
"""Seconds without a frame after which the agent is taken for gone (it pings every 5 s)."""


def agent_tls(ca: str | None) -> ssl.SSLContext | None:
    """The TLS context for an agent whose certificate ``ca`` (a PEM file) vouches for."""
    if ca is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"agent_ca {ca!r}: {exc}") from None


class AgentRefused(SourceError):
    """The agent refused us (wrong or missing token), or could not prove it knows the token."""


class AgentClient:
    """One connection to a fleetwatch-agent: calls, and its numbered stream."""

    def __init__(
        self,
        address: str,
        *,
        token: Secret | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.address = address
        self.endpoint = f"{'tls' if tls else 'tcp'}://{address}"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._token = token
        self._tls = tls
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._stream: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._error: SourceError | None = None
        self.epoch: str | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._error is None

    async def connect(self) -> None:
        """Connect and authenticate; raise Unreachable, AgentRefused or RemoteProtocolError."""
        self.reset()
        try:
            reader, writer = await self._open()
        except TimeoutError:
            raise Unreachable(f"no answer within {self.connect_timeout:g}s") from None
        except ssl.SSLError as exc:
            raise AgentRefused(f"TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise Unreachable((exc.strerror or str(exc)).lower()) from None
        self._writer = writer
        self._error = None
        self._stream = asyncio.Queue()
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._tls,
                    limit=MAX_LINE + 1,
                    server_hostname=self.host if self._tls else None,
                )
                await self._handshake(reader, writer)
                return reader, writer
        except BaseException:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            raise

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await self._frame(reader)
        if hello.get("t") != "hello" or hello.get("agent") != "fleetwatch-agent":
            raise RemoteProtocolError(f"not a fleetwatch-agent: {hello!r:.80}")
        if hello.get("protocol") != PROTOCOL:
            raise RemoteProtocolError(f"agent speaks protocol {hello.get('protocol')!r}")
        agent_nonce = str(hello.get("nonce", ""))
        nonce = secrets.token_hex(16)
        token = self._token.reveal() if self._token else None
        if token is not None and hello.get("auth") != "token":
            raise AgentRefused("the agent runs without a token, but agent_token is set")
        proof = client_proof(token, agent_nonce, nonce) if token else None
        writer.write(encode_frame({"t": "auth", "nonce": nonce, "proof": proof}))
        await writer.drain()
        answer = await self._frame(reader)
        if answer.get("t") == "refused":
            raise AgentRefused(f"the agent refused us: {answer.get('error')}")
        if answer.get("t") != "welcome":
            raise RemoteProtocolError(f"expected welcome, got {answer!r:.80}")
        if token is not None and not proof_matches(
            agent_proof(token, agent_nonce, nonce), answer.get("proof")
        ):
            raise AgentRefused("the agent could not prove it knows the token")
        self.epoch = str(answer.get("epoch"))

    @staticmethod
    async def _frame(reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await reader.readline()
        except ValueError:  # over the limit
            raise RemoteProtocolError(f"line longer than {MAX_LINE} bytes") from None
        if not line:
            raise Unreachable("the agent closed the connection")
        try:
            return decode_frame(line)
        except ProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from None

    async def _read(self, reader: asyncio.StreamReader) -> None:
        error: SourceError
        try:
            while True:
                frame = await self._frame(reader)
                if frame.get("t") == "reply":
                    waiting = self._replies.pop(frame.get("id"), None)  # type: ignore[arg-type]
                    if waiting is not None and not waiting.done():
                        waiting.set_result(frame)
                else:
                    self._stream.put_nowait(frame)
        except SourceError as exc:
            error = exc
        except OSError as exc:
            error = Unreachable((exc.strerror or str(exc)).lower())
        self._fail(error)

    def _fail(self, error: SourceError) -> None:
        self._error = error
        for waiting in self._replies.values():
            if not waiting.done():
                waiting.set_exception(error)
        self._replies.clear()
        self._stream.put_nowait(None)

    async def _send(self, frame: dict[str, Any]) -> None:
        if self._writer is None:
            raise Unreachable("not connected to the agent")
        if self._error is not None:
            raise self._error
        self._writer.write(encode_frame(frame))
        await self._writer.drain()

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call a supervisord method through the agent; raise Fault as XML-RPC would."""
        cid = next(self._ids)
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[cid] = waiting
        try:
            await self._send({"op": "call", "id": cid, "method": method, "params": list(params)})
            async with asyncio.timeout(timeout or self.timeout):
                reply = await waiting
        except TimeoutError:
            limit = timeout or self.timeout
            raise Unreachable(f"no answer from the agent within {limit:g}s") from None
        finally:
            self._replies.pop(cid, None)
        if "fault" in reply:
            fault = reply["fault"]
            raise Fault(int(fault.get("code", 0)), str(fault.get("string", "")))
        if "error" in reply:
            if reply.get("http_status"):
                raise HTTPStatusError(int(reply["http_status"]), "(from the agent)")
            raise SourceError(f"agent: {reply['error']}")
        return reply.get("value")

    async def multicall(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any]:
        value = await self.call(
            "system.multicall",
            [{"methodName": m, "params": list(p)} for m, p in calls],
            timeout=timeout,
        )
        return decode_multicall(value, len(calls))

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """Subscribe; yield the snapshot and every stream frame, until the connection fails."""
        await self._send({"op": "subscribe"})
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_TIMEOUT):
                    frame = await self._stream.get()
            except TimeoutError:
                raise Unreachable(f"agent silent for {HEARTBEAT_TIMEOUT:g}s") from None
            if frame is None:
                raise self._error or Unreachable("connection closed")
            yield frame

    async def request_snapshot(self) -> None:
        await self._send({"op": "snapshot"})

    def reset(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._fail(Unreachable("connection reset"))
        self._error = None

    async def aclose(self) -> None:
        writer = self._writer
        self.reset()
        if writer is not None:
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


class AgentLink:
    """A supervisor source's push channel, with polling while the agent is unreachable."""

    retry_interval = 2.0
    """Seconds between attempts to reach the agent while polling."""

    def __init__(self, client: AgentClient, xmlrpc: XmlRpcClient | None) -> None:
        self.client = client
        self.xmlrpc = xmlrpc
        self.polling = False
        """True while the source's polling session runs in the agent's place."""
        self.reason: str | None = None
        self.frames = 0
        self.gaps = 0
        self.following = False
        """True while the agent's stream is followed (a snapshot applied, not polling)."""
        self.snapshots = 0
        """Snapshots applied in this link's life."""
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []

    def status_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A source's online() fields, saying which channel is in use and why."""
        info = dict(fields.get("info") or {})
        info["agent"] = self.client.address
        if self.polling:
            info["channel"] = "polling"
            info["agent_error"] = self.reason
            fields["error"] = (
                f"fleetwatch-agent at {self.client.address} unreachable ({self.reason}); "
                "polling XML-RPC meanwhile"
            )
        else:
            info["channel"] = "agent"
        fields["info"] = info
        return fields

    async def session(self, source: SupervisorSource) -> None:
        """The source's session: follow the agent; poll ``url`` whenever it is unreachable."""
        while True:
            try:
                await self.client.connect()
            except SourceError as exc:
                if self.xmlrpc is None:
                    raise type(exc)(f"fleetwatch-agent at {self.client.address}: {exc}") from None
                await self._poll_meanwhile(source, str(exc))
            try:
                source.client = self.client
                await self._follow(source)
            except SourceError as exc:
                if self.xmlrpc is None:
                    raise
                log.warning("source %s: agent connection lost (%s)", source.name, exc)
            finally:
                if self.xmlrpc is not None:
                    source.client = self.xmlrpc
                self.client.reset()

    async def _poll_meanwhile(self, source: SupervisorSource, reason: str) -> None:
        """Poll XML-RPC until the agent answers again (then return, connected)."""
        assert self.xmlrpc is not None
        log.warning("source %s: agent unreachable (%s): polling XML-RPC", source.name, reason)
        self.polling, self.reason = True, reason
        source.client = self.xmlrpc
        poller = asyncio.get_running_loop().create_task(source.session())
        try:
            while True:
                await asyncio.wait({poller}, timeout=self.retry_interval)
                if poller.done():
                    poller.result()
                    raise Unreachable("polling ended")
                try:
                    await self.client.connect()
                except SourceError as exc:
                    self.reason = str(exc)
                    continue
                return
        finally:
            self.polling = False
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, SourceError):
                await poller

    async def refresh(self, timeout: float) -> bool:
        """Ask the agent for a fresh snapshot; True once one sent after the request is applied.

        The agent reads supervisord for a snapshot after it took the request (a request
        arriving during a snapshot is served by another one), so the next snapshot frame
        is one read after the request, unless one was already being read: at worst a
        moment older than the call, and events after it follow on the stream anyway.
        """
        waiting: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (self.snapshots + 1, waiting)
        self._waiters.append(entry)
        try:
            await self.client.request_snapshot()
        except SourceError:
            self._waiters.remove(entry)
            return False
        await asyncio.wait({waiting}, timeout=timeout)
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            return False
        return waiting.result()

    def _wake(self, ok: bool) -> None:
        keep: list[tuple[int, asyncio.Future[bool]]] = []
        for target, waiting in self._waiters:
            if not ok or target <= self.snapshots:
                if not waiting.done():
                    waiting.set_result(ok)
            else:
                keep.append((target, waiting))
        self._waiters = keep

    async def _follow(self, source: SupervisorSource) -> None:
        try:
            await self._follow_frames(source)
        finally:
            self.following = False
            self._wake(False)

    async def _follow_frames(self, source: SupervisorSource) -> None:
        seq: int | None = None
        states: dict[str, str] = {}
        async for frame in self.client.frames():
            self.frames += 1
            kind = frame.get("t")
            source.last_ok = time.time()
            if kind in ("ping", "pong", "error"):
                if kind == "error":
                    log.warning("source %s: agent says %s", source.name, frame.get("error"))
                continue
            number = frame.get("seq")
            if kind == "snapshot":
                seq = number if isinstance(number, int) else None
                states = self._apply_snapshot(source, frame)
                self.following = True
                self.snapshots += 1
                self._wake(True)
                continue
            if seq is not None and number != seq + 1:
                self.gaps += 1
                log.warning("source %s: agent stream gap at %s: re-reading", source.name, seq)
                await self.client.request_snapshot()
            seq = number if isinstance(number, int) else seq
            if kind == "process":
                info = ProcessInfo.from_struct(frame.get("process"))
                process = source._process(info)
                source.sink.put(process)
                states[process.id] = process.state
                self._put_counts(source, states)
            elif kind == "gone":
                pid_id = f"{source.name}:{frame.get('group')}:{frame.get('name')}"
                source.sink.delete("process", pid_id)
                states.pop(pid_id, None)
                self._put_counts(source, states)
            elif kind == "supervisor":
                state = frame.get("state")
                if isinstance(state, dict) and state.get("statename") == "STOPPING":
                    raise Unreachable("supervisord is stopping (shutdown or restart)")

    def _apply_snapshot(self, source: SupervisorSource, frame: dict[str, Any]) -> dict[str, str]:
        daemon = frame.get("supervisor")
        if not isinstance(daemon, dict):
            raise RemoteProtocolError(f"snapshot without supervisor: {frame!r:.80}")
        processes = ProcessInfo.list_from(frame.get("processes"))
        now = time.time()
        offset = math.floor(now - processes[0].now) if processes else 0
        source._labels = {
            "identification": str(daemon.get("identification")),
            "supervisor_version": str(daemon.get("version")),
        }
        state = daemon.get("state")
        source._check_state(state)
        source.last_ok = now
        source.online(
            version=str(daemon.get("version")),
            info={
                "identification": str(daemon.get("identification")),
                "pid": daemon.get("pid"),
                "api_version": str(daemon.get("api_version")),
                "state": state.get("statename", "") if isinstance(state, dict) else "",
                "clock_offset": offset,
                "epoch": frame.get("epoch"),
            },
        )
        source._publish(processes)
        return {f"{source.name}:{p.group}:{p.name}": p.statename for p in processes}

    @staticmethod
    def _put_counts(source: SupervisorSource, states: dict[str, str]) -> None:
        running = sum(s == "RUNNING" for s in states.values())
        source._put_node("online", {"processes": len(states), "running": running})

    async def aclose(self) -> None:
        await self.client.aclose()
