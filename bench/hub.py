#!/usr/bin/env python3
"""Hub throughput: changes applied per second, and delivered per second to stream subscribers.

Target (issue text; a 2-core machine): >= 100,000 changes/s applied, and all 100
subscribers keep up at 10,000 changes/s.

Part 1, ``apply`` (in this process, no I/O): a :class:`~fleetwatch.hub.Hub` with no
sources; process changes go in through a :class:`~fleetwatch.hub.SourceHandle`, the
path every source uses (model + notification rules + commit scheduling), and are
committed with ``hub.flush()`` every ``--batch`` changes, as the hub's batching would.
The entities are built beforehand, so the figure is the hub's cost alone; what building
them costs a source is printed next to it. Then the JSON encoding of the deltas
(``Delta.frame()``, done once per delta for all subscribers) and of one snapshot.

Part 2, ``deliver`` (two processes, loopback only): the hub runs in a child process,
built by ``fleetwatch.server.build_server`` exactly as ``fleetwatch serve`` builds it,
with one extra source kind ``fake`` whose source holds ``--processes`` processes and,
on command, changes them at a steady rate (the put time rides in each process's
``started`` field). This process runs ``--subscribers`` real WebSocket clients
(``websockets``) on ``ws://127.0.0.1:PORT/api/stream``. Each client checks the gap-free
rule (a delta's seq minus its number of changes is the previous seq; a snapshot resets),
counts the changes it receives and the lag from the put times to its receive time. For
each rate the hub is driven for ``--seconds``; the figures are printed as a table.

Usage::

    .venv/bin/python bench/hub.py                      # both parts, the issue's numbers
    .venv/bin/python bench/hub.py --part apply
    .venv/bin/python bench/hub.py --part deliver --rates 1000,5000,10000 --seconds 10
    .venv/bin/python bench/hub.py --part deliver --compression none

This prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect

from fleetwatch import hub as hub_module
from fleetwatch.config import Config, HubConfig
from fleetwatch.demo.supervisord import free_port
from fleetwatch.hub import Hub, SourceHandle
from fleetwatch.model import ActionSpec, Delta, Fleet, Process
from fleetwatch.sources.base import ActionResult, Source, SourceSink, Target
from fleetwatch.web.stream import snapshot_frame

#: A restart cycle: every step is a change, and no notification rule fires on it.
STATES = ("STARTING", "RUNNING", "STOPPING", "STOPPED")
SOURCE = "bench"
SCRIPT = os.path.abspath(__file__)
TICK = 0.005
"""Seconds between two bursts of puts of the driver (the rate is kept over time)."""


def rss_mb(proc: psutil.Process | None = None) -> float:
    return (proc or psutil.Process()).memory_info().rss / 2**20


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set size of ``pid`` since it started."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


class Names:
    """Ids, groups and names of ``n`` processes of one source (100 per group)."""

    def __init__(self, source: str, n: int) -> None:
        self.source = source
        self.groups = [f"group{i // 100:03d}" for i in range(n)]
        self.names = [f"worker{i:05d}" for i in range(n)]
        self.ids = [f"{source}:{g}:{p}" for g, p in zip(self.groups, self.names, strict=True)]

    def process(self, i: int, state: str, pid: int | None, started: float) -> Process:
        """A process as the supervisord source would report it (realistic field sizes)."""
        name = self.names[i]
        return Process(
            id=self.ids[i],
            source=self.source,
            group=self.groups[i],
            name=name,
            state=state,
            pid=pid,
            started=started,
            stopped=None if pid else started,
            exitstatus=0,
            description=f"pid {pid}, uptime 0:00:00" if pid else "Not started",
            stdout_logfile=f"/var/log/supervisor/{name}-stdout.log",
            stderr_logfile=f"/var/log/supervisor/{name}-stderr.log",
        )


def variant(names: Names, k: int, started: float) -> Process:
    """The ``k``-th change of the cycle: process ``k % n``, the next state of its restart."""
    n = len(names.ids)
    i, lap = k % n, k // n
    state = STATES[lap % len(STATES)]
    pid = None if state == "STOPPED" else 10_000 + (i * 7 + lap) % 50_000
    return names.process(i, state, pid, started)


# ---------------------------------------------------------------------------- part 1


@dataclass
class ApplyRun:
    model_s: float
    hub_s: float
    flush_s: float
    encode_s: float
    deltas: int
    committed: int
    size: int
    ring_mb: float
    frames_mb: float
    ring_deltas: int


def apply_once(table: list[list[Process]], schedule: list[Process], batch: int) -> ApplyRun:
    """One run of part 1 on fresh models; memory figures are only meaningful on the first."""

    def load(put: Callable[[Process], bool]) -> None:
        for variants in table:
            put(variants[3])

    changes = len(schedule)
    # The model alone: Fleet.put + Fleet.commit.
    fleet = Fleet("bench")
    load(fleet.put)
    fleet.commit()
    gc.collect()
    t0 = time.perf_counter()
    for start in range(0, changes, batch):
        for entity in schedule[start : start + batch]:
            fleet.put(entity)
        fleet.commit()
    model_s = time.perf_counter() - t0
    del fleet
    gc.collect()

    # The hub path: SourceHandle.put (model + notification rules + flush scheduling)
    # and hub.flush() (commit + fan-out to subscribers; none here).
    hub = Hub(Config(path="bench", hub=HubConfig(name="bench")))
    handle = SourceHandle(hub, SOURCE)
    load(handle.put)
    hub.flush()
    gc.collect()
    rss_before = rss_mb()
    deltas: list[Delta] = []
    put, flush = handle.put, hub.flush
    flush_s = 0.0
    t0 = time.perf_counter()
    for start in range(0, changes, batch):
        for entity in schedule[start : start + batch]:
            put(entity)
        t1 = time.perf_counter()
        delta = flush()
        flush_s += time.perf_counter() - t1
        if delta is not None:
            deltas.append(delta)
    hub_s = time.perf_counter() - t0
    if hub._flush_handle is not None:
        hub._flush_handle.cancel()
    rss_ring = rss_mb()

    t0 = time.perf_counter()
    size = sum(len(d.frame()) for d in deltas)
    encode_s = time.perf_counter() - t0
    return ApplyRun(
        model_s=model_s,
        hub_s=hub_s,
        flush_s=flush_s,
        encode_s=encode_s,
        deltas=len(deltas),
        committed=sum(d.size for d in deltas),
        size=size,
        ring_mb=rss_ring - rss_before,
        frames_mb=rss_mb() - rss_ring,
        ring_deltas=hub.fleet._ring.maxlen or 0,
    )


async def bench_apply(processes: int, changes: int, batch: int, repeat: int) -> None:
    # Inside a running loop, so SourceHandle.put schedules the hub's batched flush as in
    # production (the scheduled flush never runs: this coroutine does not yield).
    print(
        f"== apply: {processes:,} processes, {changes:,} changes, a commit every {batch:,}; "
        f"best of {repeat} runs (median in brackets)"
    )
    names = Names(SOURCE, processes)
    builds: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        table = [[variant(names, lap * processes + i, 1.7e9 + lap) for lap in range(4)]
                 for i in range(processes)]  # fmt: skip
        builds.append(4 * processes / (time.perf_counter() - started))
    schedule = [table[k % processes][(k // processes) % 4] for k in range(changes)]
    runs = [apply_once(table, schedule, batch) for _ in range(repeat)]
    first = runs[0]

    def rate(values: list[float]) -> str:
        return f"{max(values):12,.0f} ({statistics.median(values):,.0f})"

    print(f"  building Process objects (a source's cost): {rate(builds)} /s")
    print(
        f"  model only (Fleet.put + commit):            "
        f"{rate([changes / r.model_s for r in runs])} changes/s"
    )
    print(
        f"  through the hub (SourceHandle.put + flush): "
        f"{rate([changes / r.hub_s for r in runs])} changes/s   [target >= 100,000]"
    )
    print(
        f"    of which hub.flush (commit):             {first.flush_s / first.hub_s:12.1%}"
        f"   ({first.deltas:,} deltas, {first.committed:,} changes committed)"
    )
    print(
        f"  Delta.frame() after commit (cached):       "
        f"{rate([r.committed / r.encode_s for r in runs])} changes/s   "
        f"{max(r.size / r.encode_s for r in runs) / 2**20:,.0f} MB/s, "
        f"{first.size / first.committed:.0f} bytes/change"
    )
    print(
        f"  applied + encoded once:                    "
        f"{rate([changes / (r.hub_s + r.encode_s) for r in runs])} changes/s"
    )
    hub = Hub(Config(path="bench", hub=HubConfig(name="bench")))
    handle = SourceHandle(hub, SOURCE)
    for variants in table:
        handle.put(variants[3])
    snaps: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        snapshot_bytes = len(snapshot_frame(hub.snapshot()))
        snaps.append(time.perf_counter() - t0)
    if hub._flush_handle is not None:
        hub._flush_handle.cancel()
    print(
        f"  snapshot of {processes:,} processes (flush + snapshot + JSON): "
        f"{min(snaps) * 1000:.1f} ms, {snapshot_bytes / 2**20:.1f} MB"
    )
    # Every delta but the newest is compacted to its frame when the next one commits, so
    # what the run's deltas hold is their frames (this run keeps all of them alive).
    per_change = (first.ring_mb + first.frames_mb) * 2**20 / max(1, first.committed)
    print(
        f"  memory of the deltas (compacted to their frames): "
        f"{first.ring_mb + first.frames_mb:,.0f} MB for {first.committed:,} changes "
        f"({per_change:.0f} B/change)"
    )
    ring_changes = Fleet("bench")._ring_changes_max
    full_ring = min(first.ring_deltas * 1_000, ring_changes) * per_change / 2**20
    print(
        f"    the default ring keeps at most {first.ring_deltas:,} deltas and "
        f"{ring_changes:,} changes: about {full_ring:,.0f} MB of history at most"
    )


# ---------------------------------------------------------------------------- part 2: hub


@dataclass(frozen=True, kw_only=True)
class FakeSourceConfig:
    name: str
    kind: str = "fake"


class FakeSource(Source):
    """Holds ``n`` processes and changes them at a steady rate when :meth:`drive` is called."""

    kind = "fake"

    def __init__(self, name: str, sink: SourceSink, processes: int) -> None:
        super().__init__(name, sink)
        self.names = Names(name, processes)
        self.k = 0
        self.ready = asyncio.Event()

    def actions(self) -> tuple[ActionSpec, ...]:
        return ()

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        return ActionResult.failed("the benchmark source has no actions")

    async def session(self) -> None:
        self.online()
        now = time.time()
        self.sink.sync("process", [variant(self.names, k, now) for k in range(len(self.names.ids))])
        self.k = len(self.names.ids)
        self.ready.set()
        await asyncio.Event().wait()  # forever: the source stays online

    async def drive(self, rate: float, seconds: float, stride: int = 1) -> tuple[int, float]:
        """Put ``rate`` changes per second for ``seconds``; return (puts, elapsed).

        Change ``k`` touches process ``(k * stride) % n`` (a ``stride`` prime to ``n``
        still moves every process one step per lap, and spreads changes over a table).
        """
        loop = asyncio.get_running_loop()
        put, n = self.sink.put, len(self.names.ids)
        begin = loop.time()
        done = 0
        while True:
            elapsed = loop.time() - begin
            if elapsed >= seconds:
                break
            due = int(rate * elapsed)
            now = time.time()
            while done < due:
                k = self.k
                put(variant(self.names, (k * stride) % n + k // n * n, now))
                self.k += 1
                done += 1
            await asyncio.sleep(TICK)
        return done, loop.time() - begin


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def serve_hub(port: int, processes: int) -> None:
    """The child process: ``build_server`` with a ``fake`` source; commands on stdin.

    Each command ``{"rate", "seconds"[, "stride"]}`` is answered with what was put and
    committed, and the wall-clock time of every commit (``bench/ui.py`` uses it too).
    """
    from fleetwatch.server import build_server

    sources: list[FakeSource] = []
    original = hub_module.default_factories

    def factories() -> dict[str, hub_module.SourceFactory]:
        def fake(cfg: Any, handle: SourceHandle) -> Source:
            sources.append(FakeSource(cfg.name, handle, processes))
            return sources[-1]

        return {**original(), "fake": fake}

    hub_module.default_factories = factories  # build_server's Hub(config) picks it up
    config = Config(
        path="bench",
        hub=HubConfig(name="bench", listen=f"127.0.0.1:{port}"),
        sources={SOURCE: FakeSourceConfig(name=SOURCE)},  # type: ignore[dict-item]
    )
    server, hub = build_server(config)
    commits: list[tuple[int, float]] = []
    flush = hub.flush

    def recording_flush() -> Delta | None:
        delta = flush()
        if delta is not None:
            commits.append((delta.seq, time.time()))
        return delta

    hub.flush = recording_flush  # type: ignore[method-assign]

    async def main() -> None:
        serving = asyncio.ensure_future(server.serve())
        try:
            while not server.started:
                if serving.done():
                    raise SystemExit("the hub did not start")
                await asyncio.sleep(0.05)
            await asyncio.wait_for(sources[0].ready.wait(), 60)
            hub.flush()
            emit({"ready": True, "seq": hub.fleet.seq})
            while True:
                line = await asyncio.to_thread(sys.stdin.readline)
                if not line or line.strip() == "quit":
                    break
                cmd = json.loads(line)
                hub.flush()
                commits.clear()
                seq0 = hub.fleet.seq
                puts, elapsed = await sources[0].drive(
                    cmd["rate"], cmd["seconds"], cmd.get("stride", 1)
                )
                await asyncio.sleep(hub.batch_interval * 2)
                hub.flush()
                emit(
                    {
                        "puts": puts,
                        "elapsed": elapsed,
                        "seq0": seq0,
                        "seq1": hub.fleet.seq,
                        "subscribers": hub.subscribers,
                        "commits": commits,
                    }
                )
        finally:
            server.should_exit = True
            await serving

    asyncio.run(main())


# ---------------------------------------------------------------------------- part 2: clients

DELTA = b'{"t":"delta","seq":'
SNAPSHOT = b'{"t":"snapshot"'
STARTED = b'"started":'
CHANGE = b'{"op":'


@dataclass
class PhaseStats:
    start: float
    changes: int = 0
    frames: int = 0
    resyncs: int = 0
    gaps: int = 0
    mismatches: int = 0
    last_recv: float = 0.0
    lag_newest: list[float] = field(default_factory=list)
    lag_oldest: list[float] = field(default_factory=list)


class Client:
    """One stream subscriber. ``full`` parses every frame with orjson (a browser's cost)
    and checks the quick scan against it; the others scan the bytes (seq, count, times)."""

    def __init__(self, url: str, compression: str | None, full: bool) -> None:
        self.url = url
        self.compression = compression
        self.full = full
        self.seq = -1
        self.snapshots = 0
        self.stats = PhaseStats(time.time())
        self.connected = asyncio.Event()
        self.error: BaseException | None = None
        self.target = 0
        self.reached = asyncio.Event()
        self.reached_at: float | None = None

    def expect(self, seq: int) -> None:
        """Set :attr:`reached` once this subscriber holds the state at ``seq``."""
        self.target = seq
        self.reached.clear()
        self.reached_at = None
        self._check(time.time())

    def _check(self, now: float) -> None:
        if self.target and self.reached_at is None and self.seq >= self.target:
            self.reached_at = now
            self.reached.set()

    async def run(self) -> None:
        try:
            async with connect(
                self.url,
                compression=self.compression,
                max_size=None,
                proxy=None,
                ping_interval=None,
                open_timeout=120,
                close_timeout=2,
            ) as ws:
                await ws.send("{}")
                await self.loop(ws)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            self.connected.set()

    async def loop(self, ws: ClientConnection) -> None:
        while True:
            message = await ws.recv(decode=False)
            self.handle(message if isinstance(message, bytes) else message.encode(), time.time())

    def handle(self, msg: bytes, now: float) -> None:
        st = self.stats
        if msg.startswith(DELTA):
            seq = int(msg[len(DELTA) : msg.index(b",", len(DELTA))])
            n = msg.count(CHANGE)
            if self.full:
                data = orjson.loads(msg)
                if data["seq"] != seq or len(data["changes"]) != n:
                    st.mismatches += 1
            if self.seq >= 0 and seq - n != self.seq:
                st.gaps += 1
            self.seq = seq
            st.changes += n
            st.frames += 1
            st.last_recv = now
            first, last = msg.find(STARTED), msg.rfind(STARTED)
            if first >= 0:
                st.lag_oldest.append(now - _number_at(msg, first + len(STARTED)))
                st.lag_newest.append(now - _number_at(msg, last + len(STARTED)))
        elif msg.startswith(SNAPSHOT):
            self.seq = int(orjson.loads(msg)["seq"])
            self.snapshots += 1
            if self.snapshots > 1:
                st.resyncs += 1
            self.connected.set()
        self._check(now)


def _number_at(msg: bytes, start: int) -> float:
    return float(msg[start : msg.index(b",", start)])


@dataclass
class Row:
    rate: int
    offered: float
    committed: float
    delivered: list[float]
    behind: int
    resyncs: int
    gaps: int
    mismatches: int
    drain: float
    lag_newest: list[float]
    lag_oldest: list[float]
    hub_cpu: float
    hub_rss: float
    hub_rss_peak: float
    client_cpu: float


async def bench_deliver(
    processes: int,
    subscribers: int,
    rates: list[int],
    seconds: float,
    compression: str | None,
    grace: float,
) -> None:
    port = free_port()
    print(
        f"\n== deliver: hub in a child process (build_server, 127.0.0.1:{port}), "
        f"{processes:,} processes, {subscribers} WebSocket subscribers in this process, "
        f"compression={compression or 'none'}, {seconds:g} s per rate"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--serve-hub",
        str(port),
        "--processes",
        str(processes),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,  # Ctrl-C reaches only us; we stop the hub in `finally`
    )
    assert child.stdin is not None
    assert child.stdout is not None
    clients: list[Client] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        if not line:
            raise SystemExit("the hub process exited before it was ready")
        hub_proc = psutil.Process(child.pid)
        me = psutil.Process()
        url = f"ws://127.0.0.1:{port}/api/stream"
        t0 = time.perf_counter()
        for i in range(subscribers):
            client = Client(url, compression, full=i == 0)
            clients.append(client)
            tasks.append(asyncio.create_task(client.run()))
            if i % 10 == 9:  # connect in waves of ten
                await asyncio.gather(*(c.connected.wait() for c in clients))
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 300)
        failed = [c.error for c in clients if c.error is not None]
        if failed:
            raise SystemExit(f"{len(failed)} subscribers failed to connect: {failed[0]!r}")
        print(
            f"  {subscribers} subscribers connected and got their snapshot in "
            f"{time.perf_counter() - t0:.1f} s; hub RSS {rss_mb(hub_proc):.0f} MB"
        )

        rows: list[Row] = []
        for rate in rates:
            await asyncio.sleep(1.0)  # quiet between two rates
            begin = time.time()
            for c in clients:
                c.stats = PhaseStats(begin)
            cpu0, me0, wall0 = _cpu(hub_proc), _cpu(me), time.perf_counter()
            samples: list[float] = []

            async def sample_rss(into: list[float] = samples) -> None:
                while True:
                    into.append(rss_mb(hub_proc))
                    await asyncio.sleep(0.25)

            sampler = asyncio.create_task(sample_rss())
            child.stdin.write((json.dumps({"rate": rate, "seconds": seconds}) + "\n").encode())
            await child.stdin.drain()
            reply = await asyncio.wait_for(child.stdout.readline(), seconds + 120)
            if not reply:
                raise SystemExit("the hub process exited during the run")
            cpu1, me1, wall1 = _cpu(hub_proc), _cpu(me), time.perf_counter()
            done = json.loads(reply)
            seq1 = done["seq1"]
            ended = time.time()
            for c in clients:
                c.expect(seq1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.reached.wait() for c in clients)), max(30.0, 3 * seconds)
                )
            drain = max((c.reached_at or time.time()) for c in clients) - ended
            sampler.cancel()
            expected = seq1 - done["seq0"]
            behind = sum(
                1
                for c in clients
                if c.stats.resyncs
                or c.stats.gaps
                or c.stats.changes != expected
                or c.stats.last_recv - ended > grace
                or c.seq < seq1
            )
            for c in clients:
                c.target = 0
            rows.append(
                Row(
                    rate=rate,
                    offered=done["puts"] / done["elapsed"],
                    committed=expected / done["elapsed"],
                    delivered=[
                        c.stats.changes / max(1e-9, c.stats.last_recv - begin) for c in clients
                    ],
                    behind=behind,
                    resyncs=sum(1 for c in clients if c.stats.resyncs),
                    gaps=sum(c.stats.gaps for c in clients),
                    mismatches=sum(c.stats.mismatches for c in clients),
                    drain=drain,
                    lag_newest=[x for c in clients for x in c.stats.lag_newest],
                    lag_oldest=[x for c in clients for x in c.stats.lag_oldest],
                    hub_cpu=(cpu1 - cpu0) / (wall1 - wall0) * 100,
                    hub_rss=rss_mb(hub_proc),
                    hub_rss_peak=max(samples, default=float("nan")),
                    client_cpu=(me1 - me0) / (wall1 - wall0) * 100,
                )
            )
            _print_row(rows[-1], subscribers, grace)
        _print_table(rows, subscribers)
        print(f"  hub peak RSS since start (VmHWM): {peak_rss_mb(child.pid):.0f} MB")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if child.returncode is None:
            with contextlib.suppress(OSError):
                child.stdin.write(b"quit\n")
                child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), 15)
            except TimeoutError:
                child.kill()
                await child.wait()


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _print_row(r: Row, subscribers: int, grace: float) -> None:
    ms = 1000
    print(
        f"  {r.rate:>6,}/s offered {r.offered:,.0f}/s, committed {r.committed:,.0f}/s; "
        f"per subscriber min {min(r.delivered):,.0f}/s median "
        f"{statistics.median(r.delivered):,.0f}/s; behind {r.behind}/{subscribers} "
        f"(resynced {r.resyncs}, gaps {r.gaps}, scan mismatches {r.mismatches}); "
        f"last subscriber caught up {r.drain:.2f} s after the hub's last flush "
        f"(behind = not caught up within {grace:g} s)"
    )
    if r.offered < 0.95 * r.rate:
        print(
            f"          the hub's loop was saturated: its own driver could put only "
            f"{r.offered:,.0f} of the {r.rate:,} changes/s asked for"
        )
    print(
        f"          lag newest change→recv p50 {percentile(r.lag_newest, 50) * ms:.0f} ms "
        f"p99 {percentile(r.lag_newest, 99) * ms:.0f} ms; oldest change of a delta→recv "
        f"p50 {percentile(r.lag_oldest, 50) * ms:.0f} ms "
        f"p99 {percentile(r.lag_oldest, 99) * ms:.0f} ms; hub CPU {r.hub_cpu:.0f} %, "
        f"RSS {r.hub_rss:.0f} MB (peak {r.hub_rss_peak:.0f}); clients' CPU {r.client_cpu:.0f} %"
    )


def _print_table(rows: list[Row], subscribers: int) -> None:
    ms = 1000
    print()
    columns = (
        "asked/s",
        "offered/s",
        "per sub min/s",
        "per sub median/s",
        "behind",
        "lag p50 ms",
        "lag p99 ms",
        "hub CPU %",
        "hub RSS MB",
        "clients CPU %",
        "all keep up",
    )
    print("  " + " | ".join(columns))
    widths = [len(c) for c in columns]
    for r in rows:
        cells = (
            f"{r.rate:,}",
            f"{r.offered:,.0f}",
            f"{min(r.delivered):,.0f}",
            f"{statistics.median(r.delivered):,.0f}",
            f"{r.behind}/{subscribers}",
            f"{percentile(r.lag_newest, 50) * ms:.0f}",
            f"{percentile(r.lag_newest, 99) * ms:.0f}",
            f"{r.hub_cpu:.0f}",
            f"{r.hub_rss:.0f}",
            f"{r.client_cpu:.0f}",
            "yes" if keeps_up(r) else "no",
        )
        print("  " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    print(
        "  (lag: from the put of the newest change of a delta to its receipt. All keep up: the "
        "hub put >= 95 % of the rate asked, and every subscriber received >= 95 % of it "
        "with no gap and no resync. Target: yes at 10,000 changes/s)"
    )


def keeps_up(r: Row) -> bool:
    return (
        r.offered >= 0.95 * r.rate
        and min(r.delivered) >= 0.95 * r.rate
        and r.behind == 0
        and r.gaps == 0
    )


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("apply", "deliver", "all"), default="all")
    parser.add_argument("--processes", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=1_000_000, help="part 1")
    parser.add_argument("--batch", type=int, default=1_000, help="changes per commit, part 1")
    parser.add_argument("--repeat", type=int, default=3, help="runs of part 1 (best is shown)")
    parser.add_argument("--subscribers", type=int, default=100, help="part 2")
    parser.add_argument(
        "--rates", default="1000,5000,10000", help="changes/s to drive, comma-separated (part 2)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate (part 2)")
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the clients offer: deflate, as browsers do (the default), or none",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=1.0,
        help="seconds after the drive within which a subscriber must have everything",
    )
    parser.add_argument("--serve-hub", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_hub is not None:
        serve_hub(args.serve_hub, args.processes)
        return 0
    print(
        f"fleetwatch bench/hub.py: Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, orjson {orjson.__version__}"
    )
    if args.part in ("apply", "all"):
        asyncio.run(bench_apply(args.processes, args.changes, args.batch, args.repeat))
        gc.collect()
    if args.part in ("deliver", "all"):
        rates = [int(r) for r in args.rates.split(",") if r.strip()]
        asyncio.run(
            bench_deliver(
                args.processes,
                args.subscribers,
                rates,
                args.seconds,
                None if args.compression == "none" else "deflate",
                args.grace,
            )
        )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
