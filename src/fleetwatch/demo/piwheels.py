"""A stand-in piwheels master: the recorded traffic of a real one, over real ZeroMQ sockets.

A real piw-master cannot run here (it needs PostgreSQL, pinned old dependencies and
the internet), so tests and ``fleetwatch demo`` use :class:`StandInMaster` instead.
It binds the two monitor sockets a master binds (status and control), replays the
status frames of ``piwheels-capture.jsonl`` — recorded from a real piw-master with two
real build slaves (``shared/protocols/CAPTURES.md`` §2) — **byte for byte**, at their
recorded pace (``speed`` times faster), and records every control frame it receives.

How it follows the recording:

* Nothing is published before the first control ``HELLO`` (the recording starts
  with one), and playback waits until a subscriber is there: the status socket is an
  XPUB, wire-compatible with a master's PUB, which also tells it when a SUB has
  subscribed, so no frame is lost to the slow-joiner race.
* ``gated=True`` (tests): at each control frame the recorder sent other than HELLO
  (``SLEEP null``, ``WAKE null``, ``SKIP 2``, ``KILL 1``, ``QUIT``) playback stops until
  those exact bytes arrive, so what follows is the real master's answer to them.
  :attr:`waiting_for` names the frame awaited. At the recorded ``QUIT`` it closes its
  sockets and ends, as the master exited. ``gated=False`` (the demo) passes them by.
* Every later ``HELLO`` is answered with the recorded master ``HELLO`` frame (a real
  master would also replay its history; the recorded replays are played where they
  were recorded).
* ``loop=True`` starts again after the last frame. With ``fresh=True`` each pass has
  its datetimes moved so that the pass starts now: the frames are decoded, shifted and
  re-encoded by :mod:`fleetwatch.sources.piwheels.protocol` (so they are the capture's
  bytes except for the datetime texts). The master's ``started`` keeps the first
  pass's value, so the farm looks like one master running on, not one restarting.
* :meth:`hold` makes it silent (a hung master), :meth:`inject` publishes any bytes
  (garbage tests); :attr:`received` holds what came in on the control socket.

It runs in its own thread with blocking sockets, so it serves an asyncio hub in
the same process as well as one in another thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from fleetwatch.errors import ProtocolError
from fleetwatch.sources.piwheels.protocol import (
    Control,
    MasterHello,
    MasterStats,
    SlaveEvent,
    SlaveStats,
    StatusMessage,
    decode_control,
    decode_status,
    encode_status,
)

__all__ = ["CAPTURE", "StandInMaster", "Step", "describe", "load_capture"]

CAPTURE = Path(__file__).with_name("piwheels-capture.jsonl")
"""The recording (a copy of ``shared/protocols/piwheels-capture.jsonl``)."""

_HELLO = b"\x65HELLO"


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    t: float
    """Seconds since the recorder connected."""
    direction: str
    """``status`` (master → monitor) or ``control`` (monitor → master)."""
    frame: bytes


def load_capture(path: Path = CAPTURE) -> list[Step]:
    steps = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            steps.append(Step(float(d["t"]), d["dir"], bytes.fromhex(d["frame_hex"])))
    return steps


def _shift(msg: StatusMessage, by: dt.timedelta, started_by: dt.timedelta) -> StatusMessage:
    if isinstance(msg, MasterHello):
        return dataclasses.replace(msg, started=msg.started + started_by)
    if isinstance(msg, MasterStats):
        return dataclasses.replace(msg, timestamp=msg.timestamp + by)
    if isinstance(msg, SlaveEvent):
        data = msg.data
        if isinstance(data, SlaveStats):
            data = dataclasses.replace(data, timestamp=data.timestamp + by)
        return dataclasses.replace(msg, timestamp=msg.timestamp + by, data=data)
    return msg


class StandInMaster:
    """A stand-in for piw-master (see the module docstring): replays, records, obeys gates."""

    def __init__(
        self,
        status_queue: str,
        control_queue: str,
        *,
        steps: list[Step] | None = None,
        speed: float = 1.0,
        gated: bool = True,
        loop: bool = False,
        fresh: bool = False,
    ) -> None:
        self.status_queue = status_queue
        self.control_queue = control_queue
        self.steps = steps if steps is not None else load_capture()
        self.speed = speed
        self.gated = gated
        self.loop = loop
        self.fresh = fresh
        self.received: list[bytes] = []
        """Every control frame received, in order (bytes as they came)."""
        self.published = 0
        self.passes = 0
        self.waiting_for: bytes | None = None
        """The control frame playback waits for (``gated``), else None."""
        self.finished = threading.Event()
        """Set when the recording ended (at its QUIT when gated) and the sockets are closed."""
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._held = threading.Event()
        self._inject: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- control from the test or the demo ---------------------------------------------------

    def start(self) -> StandInMaster:
        self._thread = threading.Thread(target=self._run, name="piw-stand-in", daemon=True)
        self._thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the stand-in master did not bind its sockets")
        if self._error is not None:
            raise RuntimeError(f"the stand-in master failed: {self._error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> StandInMaster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self) -> None:
        """Publish nothing (and answer no HELLO) until :meth:`release`."""
        self._held.set()

    def release(self) -> None:
        self._held.clear()

    def inject(self, frame: bytes) -> None:
        """Publish ``frame`` as it is (it need not be CBOR)."""
        self._inject.put(frame)

    def controls(self) -> list[Control | bytes]:
        """What was received, decoded (a frame that does not decode stays bytes)."""
        out: list[Control | bytes] = []
        with self._lock:
            frames = list(self.received)
        for frame in frames:
            try:
                out.append(decode_control(frame))
            except ProtocolError:
                out.append(frame)
        return out

    def received_since(self, n: int) -> list[bytes]:
        with self._lock:
            return self.received[n:]

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        ctx = zmq.Context()
        pub = ctx.socket(zmq.XPUB)
        pull = ctx.socket(zmq.PULL)
        try:
            pub.setsockopt(zmq.LINGER, 0)
            pub.setsockopt(zmq.SNDHWM, 100_000)
            pull.setsockopt(zmq.LINGER, 0)
            pull.setsockopt(zmq.RCVHWM, 10)  # as the master's
            pub.bind(self.status_queue)
            pull.bind(self.control_queue)
        except zmq.ZMQError as exc:
            self._error = exc
            pub.close(0)
            pull.close(0)
            ctx.term()
            self.ready.set()
            return
        self.ready.set()
        try:
            self._serve(pub, pull)
        finally:
            pub.close(0)
            pull.close(0)
            ctx.term()
            self.finished.set()

    def _serve(self, pub: zmq.Socket[bytes], pull: zmq.Socket[bytes]) -> None:
        poller = zmq.Poller()
        poller.register(pub, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        steps = self.steps
        first = next(i for i, s in enumerate(steps) if s.direction == "status")
        hello_frame = next(s.frame for s in steps if s.frame.startswith(b"\x82\x65HELLO"))
        subscribers = 0
        playing = False
        hello_pending = False
        idx = 0
        due = 0.0
        unconsumed: list[bytes] = []  # control frames not yet matched by a gate
        by = started_by = dt.timedelta(0)
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = 50.0
            if playing and not self._held.is_set() and self.waiting_for is None:
                timeout = max(0.0, min(50.0, (due - now) * 1000))
            for sock, _ in poller.poll(int(timeout)):
                if sock is pub:
                    for msg in _drain(pub):
                        subscribers += {1: 1, 0: -1}.get(msg[0], 0) if msg else 0
                    continue
                for frame in _drain(pull):
                    with self._lock:
                        self.received.append(frame)
                    if frame == _HELLO:
                        if not playing:
                            hello_pending = True
                        elif not self._held.is_set():
                            self._publish(pub, hello_frame, by, started_by)
                    else:
                        unconsumed.append(frame)
            while True:
                try:
                    self._publish(pub, self._inject.get_nowait(), None, None)
                except queue.Empty:
                    break
            if hello_pending and subscribers > 0 and not playing:
                playing, hello_pending = True, False
                idx, due = first, time.monotonic()
                if self.fresh:
                    by = started_by = self._offset(steps[first:])
            if not playing or self._held.is_set():
                continue
            if self.waiting_for is not None:
                if self.waiting_for not in unconsumed:
                    continue
                unconsumed.remove(self.waiting_for)
                self.waiting_for = None
                idx += 1
                due = time.monotonic()
            # Play every step that is due.
            while idx < len(steps) and time.monotonic() >= due and self.waiting_for is None:
                step = steps[idx]
                if step.direction == "status":
                    self._publish(pub, step.frame, by, started_by)
                elif self.gated and step.frame != _HELLO:
                    if step.frame in unconsumed:
                        unconsumed.remove(step.frame)
                    else:
                        self.waiting_for = step.frame
                        break
                    if step.frame == b"\x64QUIT":
                        return  # the master exits
                idx += 1
                if idx < len(steps):
                    due += (steps[idx].t - step.t) / self.speed
            if idx >= len(steps):
                self.passes += 1
                if not self.loop:
                    return
                idx, due = first, time.monotonic() + 1.0 / self.speed
                if self.fresh:
                    by = self._offset(steps[first:])
                unconsumed.clear()

    def _offset(self, steps: list[Step]) -> dt.timedelta:
        """How far to move the recorded datetimes so that this pass starts now.

        The anchor is the first live ``SLAVE`` frame (replayed history carries older
        times): its datetime is when it was played, ``(t - t0) / speed`` from now.
        """
        for step in steps:
            if step.direction != "status":
                continue
            msg = decode_status(step.frame)
            if isinstance(msg, SlaveEvent) and msg.message == "HELLO":
                played = dt.datetime.now(dt.UTC) + dt.timedelta(
                    seconds=(step.t - steps[0].t) / self.speed
                )
                return played - msg.timestamp
        return dt.timedelta(0)

    def _publish(
        self,
        pub: zmq.Socket[bytes],
        frame: bytes,
        by: dt.timedelta | None,
        started_by: dt.timedelta | None,
    ) -> None:
        if self.fresh and by is not None and started_by is not None:
            frame = encode_status(_shift(decode_status(frame), by, started_by))
        pub.send(frame)
        self.published += 1


def _drain(sock: zmq.Socket[bytes]) -> list[bytes]:
    out: list[bytes] = []
    while True:
        try:
            out.append(sock.recv(zmq.NOBLOCK))
        except zmq.Again:
            return out


def describe(controls: list[Any]) -> list[str]:
    """``["HELLO", "SLEEP null", ...]`` for assertions and logs."""
    return [str(c) if isinstance(c, Control) else f"<{bytes(c).hex()}>" for c in controls]
