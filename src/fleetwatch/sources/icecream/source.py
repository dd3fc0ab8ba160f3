"""Watching an icecream scheduler as a monitor, and controlling it through its text port.

Each session locates the scheduler (``scheduler = "host[:port]"``, else
``ICECC_SCHEDULER`` / ``USE_SCHEDULER``, else UDP discovery on ``netname``),
connects, negotiates the protocol (offering 44; a scheduler may take ~36 s to
answer, so the handshake waits up to 60 s), logs in as a monitor and then only
reads: the scheduler never reads from a monitor again, and drops one whose socket
would block (trap 16), so the reader never waits on anything else. TCP keepalive
is on, since a quiet cluster sends nothing for long stretches (trap 15).

Host and job ids belong to one scheduler run, so every session starts from an
empty cluster; and since a better scheduler on the same netname makes the current
one drop its monitors (trap 17), every reconnect in ``auto`` mode discovers again.

Blocked hosts come from the text port's ``listblocks``, read at every session
start, every :data:`BLOCKS_EVERY` seconds and after each action; two refusals in a
row there end the session (the scheduler is gone even if no EOF came).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import Any

from fleetwatch.config import IcecreamSourceConfig
from fleetwatch.errors import RemoteProtocolError, SourceError, Unreachable
from fleetwatch.model import ActionSpec, Node
from fleetwatch.sources.base import ActionResult, Backoff, Source, SourceSink, Target
from fleetwatch.sources.icecream import discovery
from fleetwatch.sources.icecream.cluster import Cluster
from fleetwatch.sources.icecream.protocol import MAX_VERSION, Closed, Codec, MonLogin, Negotiated
from fleetwatch.sources.icecream.textport import KeptTextPort, parse_listblocks

__all__ = ["ACTIONS", "IcecreamSource"]

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
BLOCKS_EVERY = 10.0
BLOCKS_RETRY = 2.0
HOSTS_EVERY = 0.1
"""Seconds between publishes of changed hosts (the hub commits every 0.1 s anyway)."""

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(name="block", title="Block host", targets=("node",), confirm=True, hotkey="b"),
    ActionSpec(name="unblock", title="Unblock host", targets=("node",), hotkey="u"),
    ActionSpec(name="remove", title="Remove host", targets=("node",), confirm=True),
)
_COMMANDS = {"block": "blockcs", "unblock": "unblockcs", "remove": "removecs"}


class IcecreamSource(Source):
    kind = "icecream"

    def __init__(
        self,
        config: IcecreamSourceConfig,
        sink: SourceSink,
        *,
        backoff: Backoff | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        # Reconnecting too eagerly costs: each accept makes the scheduler pause (trap 3).
        super().__init__(config.name, sink, backoff=backoff or Backoff(initial=0.5, quick_cap=2.0))
        self.config = config
        self.env = env
        self.scheduler: discovery.Scheduler | None = None
        self.cluster: Cluster | None = None
        self._textport: KeptTextPort | None = None
        self._refresh_blocks = asyncio.Event()
        self._gone = ""
        """Why the session must end, when a helper task found out first."""

    @property
    def url(self) -> str:
        explicit = discovery.explicit_scheduler(self.config.scheduler, self.env)
        if self.scheduler is not None:
            return f"icecream://{self.scheduler.address}"
        return f"icecream://{explicit}" if explicit else f"icecream://auto/{self.config.netname}"

    def actions(self) -> tuple[ActionSpec, ...]:
        return ACTIONS

    async def locate(self) -> discovery.Scheduler:
        explicit = discovery.explicit_scheduler(self.config.scheduler, self.env)
        if explicit is not None:
            host, port = discovery.split_host_port(explicit)
            if host:
                return discovery.Scheduler(host=host, port=port)
            found = await discovery.discover(port=port)  # ":port" alone: discover on that port
        else:
            found = await discovery.discover()
        chosen = discovery.choose(found, self.config.netname)
        if chosen is None:
            names = ", ".join(sorted({s.netname for s in found})) or "none"
            raise Unreachable(
                f"no scheduler for netname {self.config.netname!r} answered (found: {names})"
            )
        return chosen

    async def session(self) -> None:
        self._gone = ""
        sched = await self.locate()
        self.scheduler = sched
        self._textport = textport = KeptTextPort(sched.host, sched.port + 1)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(sched.host, sched.port), CONNECT_TIMEOUT
            )
        except TimeoutError:
            raise Unreachable(f"{sched.address}: connect timed out") from None
        except OSError as exc:
            raise Unreachable(f"{sched.address}: {exc.strerror or exc}") from None
        _keepalive(writer)
        codec = Codec(max_version=MAX_VERSION, role="monitor")
        tasks: list[asyncio.Task[None]] = []
        hosts_later: asyncio.TimerHandle | None = None
        try:
            writer.write(codec.data_to_send())
            version = await asyncio.wait_for(
                self._handshake(codec, reader, writer), HANDSHAKE_TIMEOUT
            )
            writer.write(codec.send(MonLogin()))
            await writer.drain()
            # Ids belong to one scheduler run: start from an empty cluster.
            self.sink.sync("node", [])
            self.sink.sync("job", [])
            self.cluster = cluster = Cluster(
                self.name, self.sink, deferred=True, hosts_every=HOSTS_EVERY
            )
            self.last_ok = time.time()
            self.online(
                version=str(version),
                url=self.url,
                info={
                    "scheduler": sched.address,
                    "netname": sched.netname or self.config.netname,
                    "protocol": version,
                    "scheduler_version": sched.version or None,
                },
            )
            cluster.on_totals = self._publish_totals
            self._publish_totals(cluster.summary())  # all zero: a new session counts anew
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(self._poll_blocks(writer))]

            def flush_hosts() -> None:
                nonlocal hosts_later
                hosts_later = None
                cluster.publish_hosts()

            while True:
                data = await reader.read(65536)
                if self._gone:
                    raise Unreachable(self._gone)
                codec.receive_data(data)
                for event in codec.events():
                    if isinstance(event, Closed):
                        raise Unreachable("the scheduler closed the connection")
                    cluster.apply(event)  # type: ignore[arg-type]
                cluster.publish()  # the jobs this read changed, once each; hosts when due
                if cluster.hosts_pending and hosts_later is None:
                    hosts_later = loop.call_later(HOSTS_EVERY, flush_hosts)
                self.last_ok = time.time()
        except TimeoutError:
            raise Unreachable(
                f"{sched.address}: no protocol handshake within {HANDSHAKE_TIMEOUT:g}s"
            ) from None
        except ConnectionError as exc:
            raise Unreachable(self._gone or f"{sched.address}: {exc}") from None
        finally:
            if hosts_later is not None:
                hosts_later.cancel()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, SourceError):
                    await task
            await textport.close()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handshake(
        self, codec: Codec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> int:
        await writer.drain()
        while True:
            data = await reader.read(4096)
            codec.receive_data(data)
            for event in codec.events():
                out = codec.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
                if isinstance(event, Negotiated):
                    return event.version
                if isinstance(event, Closed):
                    raise Unreachable("the scheduler closed the connection during the handshake")
                raise RemoteProtocolError(f"{type(event).__name__} before the handshake ended")
            out = codec.data_to_send()
            if out:
                writer.write(out)
                await writer.drain()

    async def _poll_blocks(self, writer: asyncio.StreamWriter) -> None:
        """Read ``listblocks`` now and then; it doubles as the scheduler's liveness check.

        A quiet cluster sends a monitor nothing for long stretches, so a silent
        connection says nothing (trap 15). When the text port refuses twice in a row,
        the scheduler is gone: the monitor connection is aborted and the session ends.
        """
        failures = 0
        while True:
            try:
                blocked = await self.blocked_hosts()
            except SourceError as exc:
                failures += 1
                log.warning("source %s: listblocks failed: %s", self.name, exc)
                if failures >= 2:
                    self._gone = f"the scheduler's text port fails: {exc}"
                    writer.transport.abort()
                    return
            else:
                failures = 0
                if self.cluster is not None:
                    self.cluster.set_blocked(set(blocked))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._refresh_blocks.wait(), BLOCKS_RETRY if failures else BLOCKS_EVERY
                )
            self._refresh_blocks.clear()

    def _publish_totals(self, totals: dict[str, float]) -> None:
        """``source.info.totals``, put with the jobs and hosts it counts (Cluster.publish)."""
        current = self.sink.get("source", self.name)
        info = dict(getattr(current, "info", {}) or {})
        if info.get("totals") != totals:
            info["totals"] = totals
            self.sink.status("online", error=None, info=info)

    async def blocked_hosts(self) -> list[str]:
        if self._textport is None:
            raise Unreachable("no scheduler located yet")
        (reply,) = await self._textport.run("listblocks")
        return parse_listblocks(reply)

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        node = self.sink.get("node", target.id)
        if not isinstance(node, Node) or self._textport is None:
            return ActionResult.failed(f"no host {target.id!r} known to the scheduler")
        try:
            (reply,) = await self._textport.run(f"{_COMMANDS[name]} {node.name}")
        except SourceError as exc:
            return ActionResult.failed(str(exc))
        self._refresh_blocks.set()
        return ActionResult(True, None, {"reply": reply})


def _keepalive(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
