"""The TUI under load: a tree (and list) of 2,000 processes taking 200 changes a second.

A backend in this process feeds :class:`fleetwatch.tui.FleetApp` (run headless by
Textual's ``run_test``) a snapshot of ``--sources`` supervisord sources with ``--rows``
processes in all, then ``--rate`` changes a second (state flips, in batches every 50 ms,
as the hub's stream would send them). It prints:

* key press → screen updated: each press of Down/Up in the list, from the key event
  until the new selection is drawn (the refresh after it), p50/p95;
* the process's CPU time over ``--seconds`` of changes without key presses, as a
  percentage of one core (the change generator included: it is a small part).

    .venv/bin/python bench/tui.py
    .venv/bin/python bench/tui.py --rows 5000 --rate 500

Targets (issue 10): p95 < 100 ms, CPU < 30 % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from fleetwatch.client.mirror import KINDS, Event
from fleetwatch.sources.supervisor.source import ACTIONS
from fleetwatch.tui import FleetApp

STATES = ("RUNNING", "STOPPED", "STARTING", "BACKOFF", "EXITED")


class FeedBackend:
    """A model of supervisord sources and a steady stream of process changes."""

    def __init__(self, sources: int, rows: int, rate: float) -> None:
        self.name = "bench"
        self.where = "in-process"
        self.status_text = "Connected"
        self.listeners: list[Callable[[Event], None]] = []
        self.entities: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.rate = rate
        self.changes = 0
        actions = [
            {
                "name": a.name,
                "title": a.title,
                "targets": list(a.targets),
                "confirm": a.confirm,
                "hotkey": a.hotkey,
                "params": [],
            }
            for a in ACTIONS
            if not a.params
        ]
        now = time.time()
        for s in range(sources):
            sid = f"sv{s:02d}"
            self.entities["source"][sid] = {
                "id": sid,
                "kind": "supervisor",
                "name": sid,
                "status": "online",
                "since": now,
                "actions": actions,
                "info": {"clock_offset": 0},
            }
        for i in range(rows):
            sid = f"sv{i % sources:02d}"
            group = f"g{(i // sources) % 20:02d}"
            pid = f"{sid}:{group}:p{i:05d}"
            self.entities["process"][pid] = self._process(pid, sid, group, f"p{i:05d}", now)
        self._ids = list(self.entities["process"])

    def _process(self, id: str, source: str, group: str, name: str, now: float) -> dict[str, Any]:
        return {
            "id": id,
            "source": source,
            "group": group,
            "name": name,
            "state": "RUNNING",
            "pid": random.randint(100, 99999),
            "started": now - random.uniform(0, 86400),
            "stopped": None,
            "exitstatus": 0,
            "description": "",
            "spawnerr": "",
            "stdout_logfile": "",
            "stderr_logfile": "",
        }

    async def run(self) -> None:
        self._tell(Event("snapshot"))
        self._tell(Event("status"))
        per_batch = max(1, round(self.rate / 20))
        next_at = time.monotonic()
        while True:
            next_at += 0.05
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            changes = []
            for id in random.sample(self._ids, per_batch):
                value = {**self.entities["process"][id], "state": random.choice(STATES)}
                self.entities["process"][id] = value
                changes.append({"op": "put", "kind": "process", "id": id, "value": value})
            self.changes += len(changes)
            self._tell(Event("delta", changes=tuple(changes)))

    def _tell(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)

    async def action(self, kind: str, id: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "error": None, "detail": None}

    async def log(self, id: str, channel: str, offset: int | None, length: int) -> dict[str, Any]:
        return {"text": "", "offset": 0, "end": 0, "reset": False}

    async def close(self) -> None:
        return None


async def measure(args: argparse.Namespace) -> None:
    backend = FeedBackend(args.sources, args.rows, args.rate)
    app = FleetApp(backend)
    async with app.run_test(size=(160, 48)) as pilot:
        started = time.monotonic()
        while len(app._row_order) < args.rows:
            if time.monotonic() - started > 60:
                raise SystemExit(f"only {len(app._row_order)} rows after 60 s")
            await pilot.pause(0.05)
        print(
            f"{args.rows} rows in {args.sources} sources listed after "
            f"{time.monotonic() - started:.2f} s"
        )
        app.query_one("#list").focus()
        await pilot.pause(0.2)
        latencies = []
        for i in range(args.presses):
            before = app.selected
            drawn = asyncio.Event()
            t0 = time.perf_counter()
            app.simulate_key("down" if (i // 20) % 2 == 0 else "up")
            while app.selected == before:
                if time.perf_counter() - t0 > 30:
                    raise SystemExit("a key press changed nothing in 30 s")
                await asyncio.sleep(0.001)
            app.call_after_refresh(drawn.set)  # the screen with the new selection is out
            await drawn.wait()
            latencies.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        print(
            f"key press -> screen updated: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
            f"max {latencies[-1]:.1f} ms ({len(latencies)} presses)"
        )
        c0, w0, n0 = time.process_time(), time.monotonic(), backend.changes
        await asyncio.sleep(args.seconds)
        cpu = time.process_time() - c0
        wall = time.monotonic() - w0
        rate = (backend.changes - n0) / wall
        print(
            f"CPU with {rate:.0f} changes/s and no keys: {100 * cpu / wall:.1f} % of one core "
            f"over {wall:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0, help="changes per second")
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="the CPU window")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
