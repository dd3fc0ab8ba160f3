#!/usr/bin/env python3
"""Scale-out on Redis: 4 collectors x 5,000 processes through one redis-server to one hub.

Targets (issue 13): end-to-end delay from a change to a stream client p99 < 100 ms; the
hub's CPU; what a collector killed (SIGKILL) mid-stream lost: 0.

What runs (all on loopback, each a process of its own):

* Debian's ``redis-server`` on a free port, no persistence, in a temp dir;
* ``--collectors`` collectors, each ``fleetwatch.cli.collect.run_collector`` (what
  ``fleetwatch collect`` runs) over one *synthetic* supervisor source defined below (not
  real supervisords: 20,000 real programs do not fit on this machine). It follows the
  supervisor model (``SOURCE:GROUP:NAME`` processes, RUNNING/STOPPED, a full re-read
  on every (re)connect) and is deterministic: change number ``n`` (``--rate`` a second,
  from a start time ``t0`` shared by all) flips process ``n % procs`` and writes its
  tick into ``description``, so the truth at any tick is computed, not remembered —
  which is what lets a killed collector's restart be checked against it;
* the hub, ``fleetwatch serve -c HUB.toml --bus redis://...`` with no sources of its own;
* this process: one WebSocket stream client that checks the gap-free rule, measures the
  delay from each change's scheduled time to its arrival, and keeps a replica.

Half-way through, collector 0 is killed with SIGKILL and restarted ``--down`` seconds
later. At the end the replica and ``/api/fleet`` are compared with the truth. The delay
percentiles exclude the killed collector's catch-up (the changes it made while down
arrive when it is back: their "delay" is the outage, printed separately).

Usage::

    .venv/bin/python bench/scale.py                          # 4 x 5,000, 500 changes/s each
    .venv/bin/python bench/scale.py --collectors 2 --procs 500 --seconds 10   # smoke check

This prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import get_json, no_interrupts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ the model


class Schedule:
    """Change ``n`` happens at ``t0 + n / rate`` and flips process ``n % procs``."""

    def __init__(self, t0: float, rate: float, procs: int, changes: int) -> None:
        self.t0, self.rate, self.procs, self.changes = t0, rate, procs, changes

    def done_by(self, t: float) -> int:
        """How many changes have happened by time ``t``."""
        return max(0, min(self.changes, int((t - self.t0) * self.rate) + 1))

    def state(self, i: int, done: int) -> tuple[str, int]:
        """Process ``i`` after ``done`` changes: its state and the number of its last change
        (-1: never changed)."""
        count = 0 if done <= i else (done - 1 - i) // self.procs + 1
        last = -1 if count == 0 else i + (count - 1) * self.procs
        return ("STOPPED" if count % 2 else "RUNNING"), last

    def at(self, n: int) -> float:
        return self.t0 + n / self.rate


def process_id(source: str, i: int) -> str:
    return f"{source}:g{i // 100:03d}:p{i:05d}"


# ------------------------------------------------------------------------------ collector


def run_collector(args: argparse.Namespace) -> None:
    """A child: ``fleetwatch collect`` over one synthetic supervisor source."""
    from fleetwatch.cli.collect import run_collector as collect
    from fleetwatch.config import Config, HubConfig, SupervisorSourceConfig
    from fleetwatch.model import ActionSpec, Process
    from fleetwatch.sources.base import ActionResult, Source, Target

    sched = Schedule(args.t0, args.rate, args.procs, args.changes)

    class Synthetic(Source):
        kind = "supervisor"

        def actions(self) -> tuple[ActionSpec, ...]:
            return ()

        async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
            return ActionResult.failed("synthetic")

        def entity(self, i: int, done: int) -> Process:
            state, last = sched.state(i, done)
            return Process(
                id=process_id(self.name, i),
                source=self.name,
                group=f"g{i // 100:03d}",
                name=f"p{i:05d}",
                state=state,
                description=f"change {last}",
            )

        async def session(self) -> None:
            done = sched.done_by(time.time())
            self.sink.sync("process", [self.entity(i, done) for i in range(sched.procs)])
            self.online(version="synthetic")
            while done < sched.changes:
                wait = sched.at(done) - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                now_done = sched.done_by(time.time())
                for n in range(done, now_done):
                    self.sink.put(self.entity(n % sched.procs, n + 1))
                done = now_done
            await asyncio.Event().wait()

    cfg = Config(
        path="bench",
        hub=HubConfig(name=args.name, batch_interval=args.batch),
        sources={args.name: SupervisorSourceConfig(name=args.name, url="http://127.0.0.1:1")},
    )
    collect(
        cfg,
        args.bus,
        args.name,
        factories={"supervisor": lambda c, h: Synthetic(c.name, h)},
        snapshot_every=args.snapshot_every,
    )


# ------------------------------------------------------------------------------ main


def spawn(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    def __init__(self) -> None:
        self.seq = -1
        self.gaps = 0
        self.snapshots = 0
        self.procs: dict[str, tuple[str, str]] = {}
        self.delays: list[float] = []
        self.received: list[float] = []
        """When each of ``delays`` was received."""
        self.catchup: list[float] = []
        self.back = float("inf")
        """When the killed collector's first entry after its restart came."""

    async def run(self, url: str, sched: Schedule, killed: str, window: list[float]) -> None:
        from websockets.asyncio.client import connect

        async with connect(url, max_size=None) as ws:
            await ws.send("{}")
            async for raw in ws:
                now = time.time()
                frame = orjson.loads(raw)
                if frame["t"] == "snapshot":
                    self.snapshots += 1
                    self.seq = frame["seq"]
                    self.procs = {
                        p["id"]: (p["state"], p["description"]) for p in frame["processes"]
                    }
                elif frame["t"] == "delta":
                    if frame["seq"] - len(frame["changes"]) != self.seq:
                        self.gaps += 1
                    self.seq = frame["seq"]
                    for c in frame["changes"]:
                        if c["kind"] != "process":
                            continue
                        if c["op"] == "del":
                            self.procs.pop(c["id"], None)
                            continue
                        v = c["value"]
                        self.procs[c["id"]] = (v["state"], v["description"])
                        n = int(v["description"].split()[1])
                        if n < 0:
                            continue
                        delay = now - sched.at(n)
                        if v["source"] == killed and now > window[1] and self.back == float("inf"):
                            # The restarted collector's first entry (its snapshot): what it
                            # changed until now is its catch-up.
                            self.back = now
                        if v["source"] == killed and window[0] <= sched.at(n) <= self.back:
                            self.catchup.append(delay)
                        elif sched.at(n) >= sched.t0:
                            self.delays.append(delay)
                            self.received.append(now)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def orchestrate(args: argparse.Namespace, tmp: Path) -> None:
    redis_exe = shutil.which("redis-server")
    if redis_exe is None:
        sys.exit("bench/scale.py: redis-server is not installed (apt-get install redis-server)")
    rport = free_port()
    bus = f"redis://127.0.0.1:{rport}/0"
    procs: list[subprocess.Popen[bytes]] = []
    log = (tmp / "children.log").open("ab")
    try:
        procs.append(
            spawn(
                [
                    redis_exe,
                    "--port",
                    str(rport),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        changes = int(args.rate * args.seconds)
        t0 = time.time() + args.warmup
        sched = Schedule(t0, args.rate, args.procs, changes)
        names = [f"site{i}" for i in range(args.collectors)]

        def collector(name: str) -> subprocess.Popen[bytes]:
            return spawn(
                [
                    sys.executable,
                    __file__,
                    "--as-collector",
                    "--name",
                    name,
                    "--bus",
                    bus,
                    "--t0",
                    repr(t0),
                    "--rate",
                    str(args.rate),
                    "--procs",
                    str(args.procs),
                    "--changes",
                    str(changes),
                    "--batch",
                    str(args.batch),
                    "--snapshot-every",
                    str(args.snapshot_every),
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

        collectors = {n: collector(n) for n in names}
        procs += collectors.values()
        hport = free_port()
        (tmp / "hub.toml").write_text(
            f'[hub]\nname = "scale"\nlisten = "127.0.0.1:{hport}"\nbatch_interval = {args.batch}\n',
            encoding="utf-8",
        )
        hub = spawn(
            [
                sys.executable,
                "-m",
                "fleetwatch.cli",
                "serve",
                "-c",
                str(tmp / "hub.toml"),
                "--bus",
                bus,
            ],
            stdout=log,
            stderr=log,
        )
        procs.append(hub)
        base = f"http://127.0.0.1:{hport}"
        deadline = time.time() + 60
        while True:
            try:
                health = get_json(f"{base}/api/health", timeout=2)
                if health["sources"].get("online", 0) == len(names):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("bench/scale.py: the hub did not see every collector online in 60 s")
            await asyncio.sleep(0.2)
        if time.time() > t0:
            print(f"warning: start-up took longer than --warmup {args.warmup} s")
        killed = names[0]
        kill_at = t0 + args.seconds * 0.4
        window = [kill_at, kill_at + args.down]  # killed, restarted
        client = Client()
        task = asyncio.get_running_loop().create_task(
            client.run(f"ws://127.0.0.1:{hport}/api/stream", sched, killed, window)
        )
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu0, wall0 = cpu_seconds(hub.pid), time.monotonic()
        await asyncio.sleep(max(0.0, kill_at - time.time()))
        collectors[killed].kill()
        collectors[killed].wait()
        await asyncio.sleep(args.down)
        collectors[killed] = collector(killed)
        procs.append(collectors[killed])
        await asyncio.sleep(max(0.0, sched.at(changes) - time.time()))
        cpu1, wall1 = cpu_seconds(hub.pid), time.monotonic()
        truth = {}
        for name in names:
            for i in range(args.procs):
                state, last = sched.state(i, changes)
                truth[process_id(name, i)] = (state, f"change {last}")
        settle = time.time() + 30
        while time.time() < settle:
            if client.procs == truth:
                break
            await asyncio.sleep(0.1)
        settled = time.time() - sched.at(changes)
        task.cancel()
        fleet = get_json(f"{base}/api/fleet", timeout=30)
        model = {p["id"]: (p["state"], p["description"]) for p in fleet["processes"]}
        lost_client = sum(1 for k, v in truth.items() if client.procs.get(k) != v)
        lost_hub = sum(1 for k, v in truth.items() if model.get(k) != v)
        extra = len(set(model) - set(truth))
        total = args.collectors * args.rate
        ms = [pct(client.delays, q) * 1000 for q in (0.5, 0.95, 0.99)]
        calm = [
            d
            for d, r in zip(client.delays, client.received, strict=True)
            if not kill_at <= r <= client.back + 2
        ]
        rows = [
            ("collectors x processes", f"{args.collectors} x {args.procs:,} (synthetic)"),
            ("changes", f"{total:,.0f}/s for {args.seconds:g} s ({changes:,} per collector)"),
            ("batch_interval", f"{args.batch:g} s (collectors and hub)"),
            ("end-to-end delay p50", f"{ms[0]:7.1f} ms  ({len(client.delays):,} changes)"),
            ("end-to-end delay p95", f"{ms[1]:7.1f} ms"),
            ("end-to-end delay p99", f"{ms[2]:7.1f} ms  (target < 100 ms)"),
            ("end-to-end delay max", f"{max(client.delays, default=0) * 1000:7.1f} ms"),
            (
                "  p99 away from the restart",
                f"{pct(calm, 0.99) * 1000:7.1f} ms  ({len(calm):,} changes received outside "
                f"[kill, its return + 2 s]; the return came {client.back - kill_at:.1f} s "
                "after the kill)",
            ),
            (
                "killed collector catch-up",
                f"{len(client.catchup):,} changes made while it was down, "
                f"max delay {max(client.catchup, default=0):.2f} s",
            ),
            ("hub CPU", f"{(cpu1 - cpu0) / (wall1 - wall0) * 100:5.1f} % of one core"),
            ("stream gaps / snapshots", f"{client.gaps} / {client.snapshots}"),
            (
                "lost (stream replica)",
                f"{lost_client} of {len(truth):,} processes differ from the truth (target 0)",
            ),
            (
                "lost (hub /api/fleet)",
                f"{lost_hub}; extra {extra}; converged {settled:.2f} s after the last change",
            ),
        ]
        for label, value in rows:
            print(f"{label:<28}{value}")
    finally:
        with no_interrupts():
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collectors", type=int, default=4)
    ap.add_argument("--procs", type=int, default=5000, help="processes per collector")
    ap.add_argument("--rate", type=float, default=500, help="changes/s per collector")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=15, help="seconds to start everything")
    ap.add_argument("--down", type=float, default=2, help="seconds the killed collector is down")
    ap.add_argument("--batch", type=float, default=0.02, help="[hub] batch_interval")
    ap.add_argument("--snapshot-every", type=float, default=10)
    ap.add_argument("--as-collector", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    ap.add_argument("--bus", help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--changes", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.as_collector:
        run_collector(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="fw-scale-"))
    try:
        asyncio.run(orchestrate(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
