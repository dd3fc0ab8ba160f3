"""Watching and controlling a piwheels master over its two monitor sockets (pyzmq, asyncio).

A session connects a SUB to the master's status queue (subscribed to everything) and
a PUSH to its control queue, as piw-monitor does, then:

* sends ``HELLO`` and repeats it (1 s, doubling up to 8 s or half the ``timeout``)
  until the master's own ``HELLO`` arrives: a subscription takes a moment to reach
  a PUB, and what is published before that is lost (trap 1). The SUB's socket
  monitor says when ZeroMQ (re)connects to the master, which happens when a master
  (re)starts; each connect starts the HELLOs again, so a restarted master is asked
  for its state at once.
* applies every status message to the :class:`~.farm.Farm` (replays are idempotent);
  a master ``HELLO`` with a new ``started`` resets its slaves (``Farm.apply``).
* a master silent for ``timeout`` (30 s; STATS come every 10 s) is ``offline``:
  the source's status and its nodes' states say so. Half-way through the silence it
  is sent a ``HELLO``, since a paused master publishes no STATS (trap 7) but still
  answers. When it is heard again the source is online and the HELLOs start again.
* a frame that does not decode (or a multipart message) is garbage: the session
  ends with :class:`~fleetwatch.errors.RemoteProtocolError`, so the source is in
  ``error`` and reconnects with fresh sockets after the back-off; the hub goes on.

The control PUSH has ``ZMQ_IMMEDIATE`` (a message is never queued for a master that
is not connected: a stale ``QUIT`` would stop the next one, trap 11) and a linger of
200 ms. Commands are sent without blocking: no connected master means the action
fails, saying so. The master never acknowledges a command (trap 10): a successful
action means "sent"; its effect shows in the status stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from fleetwatch.config import PiwheelsSourceConfig
from fleetwatch.errors import RemoteProtocolError
from fleetwatch.model import ActionSpec, Node
from fleetwatch.sources.base import ActionResult, Backoff, Source, SourceSink, Target
from fleetwatch.sources.piwheels.farm import ACTIONS, Farm, NotPossible, plan
from fleetwatch.sources.piwheels.protocol import (
    Control,
    MasterHello,
    decode_status,
    encode_control,
)

__all__ = ["PiwheelsSource"]

log = logging.getLogger(__name__)

HELLO_FIRST = 1.0
HELLO_MAX = 8.0
LINGER_MS = 200
DRAIN = 256
"""Frames read in one go before the loop yields (a replay is a few hundred)."""
TICK = 1.0


class PiwheelsSource(Source):
    kind = "piwheels"

    def __init__(
        self,
        config: PiwheelsSourceConfig,
        sink: SourceSink,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(config.name, sink, backoff=backoff or Backoff(initial=0.2, quick_cap=2.0))
        self.config = config
        self.timeout = config.timeout
        self.farm = Farm(config.name, sink)
        self._ctx: zmq.asyncio.Context | None = None
        self._push: zmq.Socket[bytes] | None = None
        """A blocking view of the control PUSH: a NOBLOCK send raises ``zmq.Again`` at once."""
        self._want_hello = asyncio.Event()
        self._answer = asyncio.Event()
        """Set when the master's HELLO arrives; cleared when a HELLO is wanted."""
        self._heard = 0.0
        """Monotonic time of the last frame from the master (0: never in this session)."""
        self._offline = False

    @property
    def url(self) -> str:
        return self.config.status_queue

    def actions(self) -> tuple[ActionSpec, ...]:
        return ACTIONS

    def _info(self) -> dict[str, Any]:
        return {
            **self.farm.source_info(),
            "status_queue": self.config.status_queue,
            "control_queue": self.config.control_queue,
        }

    def _context(self) -> zmq.asyncio.Context:
        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        return self._ctx

    # -- the session -----------------------------------------------------------------------

    async def session(self) -> None:
        ctx = self._context()
        sub = ctx.socket(zmq.SUB)
        push = ctx.socket(zmq.PUSH)
        monitor: zmq.asyncio.Socket | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, 100_000)  # a replay must not be dropped here (trap 3)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            monitor = sub.get_monitor_socket(zmq.EVENT_CONNECTED)
            push.setsockopt(zmq.IMMEDIATE, 1)
            push.setsockopt(zmq.LINGER, LINGER_MS)
            push.setsockopt(zmq.SNDHWM, 10)  # the master's PULL has HWM 10 too
            try:
                sub.connect(self.config.status_queue)
                push.connect(self.config.control_queue)
            except zmq.ZMQError as exc:
                raise RemoteProtocolError(f"cannot connect: {exc}") from None
            self._push = zmq.Socket.shadow(push.underlying)
            self._answer.clear()
            self._heard = 0.0
            self._want_hello.set()
            self.sink.status("connecting", error=None, info=self._info())
            loop = asyncio.get_running_loop()
            tasks = [
                loop.create_task(self._hellos()),
                loop.create_task(self._connects(monitor)),
                loop.create_task(self._ticks()),
            ]
            await self._read(sub)
        finally:
            self._push = None
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if monitor is not None:
                with contextlib.suppress(zmq.ZMQError):
                    sub.disable_monitor()
                monitor.close(0)
            sub.close(0)
            push.close(LINGER_MS)

    async def _read(self, sub: zmq.asyncio.Socket) -> None:
        started = time.monotonic()
        while True:
            last = self._heard or started
            wait = self.timeout - (time.monotonic() - last)
            if wait <= 0:
                self._silent(time.monotonic() - last)
                wait = self.timeout
            # Wake half-way through a silence to ask a (maybe paused) master for a HELLO.
            ready = await sub.poll(max(1, int(min(wait, self.timeout / 2) * 1000)))
            if not ready:
                if time.monotonic() - last >= self.timeout / 2:
                    self._want_hello.set()
                continue
            for _ in range(DRAIN):
                try:
                    frames = await sub.recv_multipart(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                self._frame(frames)

    def _frame(self, frames: list[bytes]) -> None:
        if len(frames) != 1:
            raise RemoteProtocolError(f"a {len(frames)}-part message (the master sends one frame)")
        msg = decode_status(frames[0])
        self._heard = time.monotonic()
        self.last_ok = time.time()
        if self._offline:
            self._offline = False
            self.farm.set_offline(False)
            self._want_hello.set()  # back: ask for its state again
        self.farm.apply(msg)
        if isinstance(msg, MasterHello):
            self._answer.set()
        self._report()

    def _report(self) -> None:
        current = self.sink.get("source", self.name)
        status = getattr(current, "status", None)
        info = self._info()
        version = self.farm.dialect and self.farm.source_info()["master_version"]
        if status != "online" or getattr(current, "info", None) != info:
            self.online(version=version, info=info)

    def _silent(self, seconds: float) -> None:
        if self._offline:
            return
        self._offline = True
        self._answer.clear()
        self.farm.set_offline(True)
        self.sink.status(
            "offline",
            error=f"no status message from the master for {seconds:.0f} s",
            last_seen=self.last_ok,
            info=self._info(),
        )

    async def _hellos(self) -> None:
        """Send HELLO whenever one is wanted, repeated until the master's HELLO comes."""
        while True:
            await self._want_hello.wait()
            self._want_hello.clear()
            self._answer.clear()
            delay = HELLO_FIRST
            while not self._answer.is_set():
                self._send(Control("HELLO"))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._answer.wait(), delay)
                delay = min(HELLO_MAX, self.timeout / 2, delay * 2)

    async def _connects(self, monitor: zmq.asyncio.Socket) -> None:
        """A (re)connect to the master's PUB: a master (re)started, ask it for its state."""
        while True:
            parts = await monitor.recv_multipart()
            event = parse_monitor_message(parts)
            if event["event"] == zmq.EVENT_CONNECTED:
                log.info("source %s: connected to %s", self.name, self.config.status_queue)
                self._want_hello.set()

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.farm.tick()
            current = self.sink.get("source", self.name)
            info = self._info()
            if current is not None and getattr(current, "info", None) != info:
                self.sink.status(current.status, error=current.error, info=info)  # type: ignore[union-attr]

    def _send(self, control: Control) -> bool:
        push = self._push
        if push is None:
            return False
        try:
            push.send(encode_control(control), zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            log.warning("source %s: sending %s failed: %s", self.name, control, exc)
            return False
        return True

    def down(self, status: str, error: str | None) -> None:
        self._offline = False
        self.farm.set_offline(True)
        self.sink.status(status, error=error, last_seen=self.last_ok, info=self._info())

    async def close(self) -> None:
        if self._ctx is not None:
            self._ctx.destroy(0)
            self._ctx = None

    # -- actions -----------------------------------------------------------------------------

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        slave: int | None = None
        if target.kind == "node" and target.id != self.farm.master_id:
            node = self.sink.get("node", target.id)
            if not isinstance(node, Node) or node.labels.get("role") != "slave":
                return ActionResult.failed(f"no build slave {target.id!r}")
            slave = int(node.metrics["slave_id"])
        try:
            controls = plan(name, slave, self.farm.dialect, tuple(sorted(self.farm.slaves)))
        except NotPossible as exc:
            return ActionResult.failed(str(exc))
        if self._push is None or not self._heard or self._offline:
            why = (
                "not heard from yet"
                if not self._heard
                else f"silent for {time.monotonic() - self._heard:.0f} s"
            )
            return ActionResult.failed(
                f"the master at {self.config.control_queue} is not there ({why}): nothing sent"
            )
        sent: list[str] = []
        for control in controls:
            if not self._send(control):
                return ActionResult.failed(
                    f"no master connected to {self.config.control_queue}: "
                    + (f"sent {', '.join(sent)}, not {control}" if sent else "nothing sent"),
                    {"sent": sent},
                )
            sent.append(str(control))
            self.farm.sent(control)
        return ActionResult(True, None, {"sent": sent, "acknowledged": False})
