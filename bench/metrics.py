#!/usr/bin/env python3
"""What ``GET /metrics`` costs the hub (issue 13).

Part 1, ``follow``: a :class:`~fleetwatch.hub.Hub` with no sources takes process and job
changes through a :class:`~fleetwatch.hub.SourceHandle` (the path every source uses),
committed every ``--batch`` changes, in one event loop — once alone and once with
:class:`~fleetwatch.publishers.metrics.FleetMetrics` following it as ``serve`` runs it
(a subscription read by its own task). It prints both rates and their ratio: the
metrics' share of the hub's time.

Part 2, ``scrape``: the time of one scrape (``FleetMetrics.exposition()``, the text the
route sends) for fleets of ``--sizes`` processes with as many compile hosts / 10 and
jobs / 2, and its size; once whole and once for a restricted account (filtered).

Usage::

    .venv/bin/python bench/metrics.py
    .venv/bin/python bench/metrics.py --changes 400000 --sizes 2000,10000

This prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from fleetwatch.config import Config, HubConfig
from fleetwatch.hub import Hub, SourceHandle
from fleetwatch.model import Job, Node, Process, Source
from fleetwatch.publishers.metrics import FleetMetrics

STATES = ("STARTING", "RUNNING", "STOPPING", "STOPPED")


def new_hub() -> Hub:
    return Hub(Config(path="bench", hub=HubConfig(), sources={}))


def changes(n: int, processes: int) -> list[Process | Job]:
    """``n`` changes: processes cycling through states, and one job in ten moving on."""
    out: list[Process | Job] = []
    for i in range(n):
        p = i % processes
        if i % 10 == 9:
            j = i // 10
            state = ("waiting", "running", "done")[j % 3]
            out.append(
                Job(
                    id=f"ice#{j // 3}",
                    source="ice",
                    client="c",
                    server=f"h{j % 50}",
                    state=state,
                    started=None if state == "waiting" else float(j),
                    ended=float(j) + 1.5 if state == "done" else None,
                    metrics={"requested": float(j) - 0.1},
                )
            )
        else:
            state = STATES[(i // processes) % len(STATES)]
            out.append(
                Process(
                    id=f"sv{p % 20}:g:p{p}",
                    source=f"sv{p % 20}",
                    group="g",
                    name=f"p{p}",
                    state=state,
                    pid=i if state == "RUNNING" else 0,
                )
            )
    return out


async def drive(entities: list[Process | Job], batch: int, follow: bool) -> float:
    hub = new_hub()
    metrics = FleetMetrics(hub)
    task = asyncio.get_running_loop().create_task(metrics.run()) if follow else None
    await asyncio.sleep(0)
    handle = SourceHandle(hub, "bench")
    t0 = time.perf_counter()
    for i, e in enumerate(entities, 1):
        handle.put(e)
        if i % batch == 0:
            hub.flush()
            await asyncio.sleep(0)  # let the follower (or nothing) run, as the loop would
    hub.flush()
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - t0
    if task is not None:
        task.cancel()
    return len(entities) / elapsed


def follow(n: int, batch: int, runs: int) -> None:
    entities = changes(n, 2_000)
    alone, followed = [], []
    for _ in range(runs):
        alone.append(asyncio.run(drive(entities, batch, follow=False)))
        followed.append(asyncio.run(drive(entities, batch, follow=True)))
    a, f = statistics.median(alone), statistics.median(followed)
    print(f"follow: {n:,} changes, commits of {batch}, median of {runs} runs")
    print(f"  hub alone            {a:>12,.0f} changes/s")
    print(f"  hub + metrics        {f:>12,.0f} changes/s")
    print(f"  ratio                {f / a:>12.2f}  (with metrics / without)")


def fleet_of(size: int) -> Hub:
    hub = new_hub()
    for s in range(20):
        hub._put(Source(id=f"sv{s}", kind="supervisor", name=f"sv{s}", status="online"))
    hub._put(Source(id="ice", kind="icecream", name="ice", status="online"))
    for i in range(size):
        hub._put(
            Process(
                id=f"sv{i % 20}:g:p{i}",
                source=f"sv{i % 20}",
                group="g",
                name=f"p{i}",
                state=STATES[i % 4],
            )
        )
    for h in range(size // 10):
        hub._put(
            Node(
                id=f"ice/h{h}",
                source="ice",
                name=f"h{h}",
                metrics={"load": 100.0, "max_jobs": 4.0, "jobs": 1.0},
            )
        )
    hub.flush()
    return hub


def scrape(sizes: list[int], runs: int) -> None:
    print(f"scrape: median of {runs} scrapes")
    print(f"  {'processes':>10} {'whole ms':>9} {'filtered ms':>12} {'bytes':>10}")
    for size in sizes:
        hub = fleet_of(size)
        metrics = FleetMetrics(hub)
        metrics.baseline(hub.snapshot())
        entities = changes(size, size)
        for e in entities:
            hub._put(e)
        delta = hub.flush()
        if delta is not None:
            metrics.apply(delta)
        whole, filtered = [], []
        text = b""
        for _ in range(runs):
            t0 = time.perf_counter()
            text = metrics.exposition()
            whole.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            metrics.exposition(lambda s: s == "sv0")
            filtered.append(time.perf_counter() - t0)
        print(
            f"  {size:>10,} {statistics.median(whole) * 1e3:>9.1f} "
            f"{statistics.median(filtered) * 1e3:>12.1f} {len(text):>10,}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("follow", "scrape", "all"), default="all")
    ap.add_argument("--changes", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="2000,10000")
    args = ap.parse_args()
    if args.part in ("follow", "all"):
        follow(args.changes, args.batch, args.runs)
    if args.part in ("scrape", "all"):
        scrape([int(s) for s in args.sizes.split(",")], args.runs)


if __name__ == "__main__":
    main()
