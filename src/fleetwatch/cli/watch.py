"""``fleetwatch watch [FILTER]``: a live view of the fleet in the terminal, until Ctrl-C.

The hub's stream is kept in a :class:`~fleetwatch.client.mirror.Mirror` (snapshot, then
deltas, resuming after an outage); every change marks the view dirty and a Rich ``Live``
redraws it at most 10 times a second (and once a second anyway, for the ages). The
filter is the same language as everywhere (:mod:`fleetwatch.filters`), applied here to
the mirror. Ctrl-C ends it with exit status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleetwatch import filters
from fleetwatch.cli import render
from fleetwatch.cli.common import hub_errors
from fleetwatch.cli.status import FINISHED
from fleetwatch.client import HubClient
from fleetwatch.client.mirror import Mirror

__all__ = ["REDRAW_INTERVAL", "view", "watch"]

REDRAW_INTERVAL = 0.1


def watch(hub: HubClient, q: str) -> None:
    with hub_errors():
        hub.get("/api/health")  # an unreachable hub is exit 2 now, not a view that waits
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_follow(hub, q))


async def _follow(hub: HubClient, q: str) -> None:
    mirror = Mirror(hub)
    flt = filters.parse(q)
    dirty = asyncio.Event()
    mirror.listeners.append(lambda event: dirty.set())
    task = asyncio.create_task(mirror.run())
    console = Console()
    try:
        with Live(view(mirror, flt, q), console=console, auto_refresh=False) as live:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dirty.wait(), 1.0)
                dirty.clear()
                live.update(view(mirror, flt, q), refresh=True)
                await asyncio.sleep(REDRAW_INTERVAL)
    finally:
        task.cancel()
        await mirror.close()


def _state(text: str) -> Text:
    return Text(text, style=render.style_of(text))


def view(mirror: Mirror, flt: filters.Filter, q: str, now: float | None = None) -> Group:
    """What the screen shows: a header, the matching entities' tables, a summary."""
    now = time.time() if now is None else now

    def keep(row: Mapping[str, Any]) -> bool:
        return not flt or flt.matches(row)

    title = mirror.name or mirror.client.url
    link = mirror.status_text + (f" ({mirror.error})" if mirror.error else "")
    head = Text.assemble(
        (title, "bold"),
        "  ",
        (link, "green" if mirror.status == "connected" else "yellow"),
        ("  filter: " + q if q.strip() else "", "dim"),
        ("  Ctrl-C to quit", "dim"),
    )
    parts: list[Any] = [head]
    srcs = sorted((s for s in mirror.all("source") if keep(s)), key=lambda s: s["id"])
    offsets = {
        s["id"]: float((s.get("info") or {}).get("clock_offset") or 0.0)
        for s in mirror.all("source")
    }
    if srcs:
        t = Table("source", "kind", "status", "since", "url / error", box=None, header_style="bold")
        for s in srcs:
            since = s.get("since")
            t.add_row(
                s["id"],
                s.get("kind") or "",
                _state(s.get("status") or ""),
                f"for {render.age(now - since)}" if since else "",
                s.get("error") or s.get("url") or "",
            )
        parts.append(t)
    procs = sorted((p for p in mirror.all("process") if keep(p)), key=lambda p: p["id"])
    if procs:
        t = Table("process", "state", "pid", "when", box=None, header_style="bold")
        for p in procs:
            t.add_row(
                p["id"],
                _state(p.get("state") or ""),
                str(p.get("pid") or "-"),
                render.process_when(p, offsets.get(p["source"], 0.0), now),
            )
        parts.append(t)
    nodes = sorted((n for n in mirror.all("node") if keep(n)), key=lambda n: n["id"])
    if nodes:
        t = Table("node", "state", "address", box=None, header_style="bold")
        for n in nodes:
            t.add_row(n["id"], _state(n.get("state") or ""), n.get("address") or "-")
        parts.append(t)
    jobs = [
        j for j in mirror.all("job") if keep(j) and (q.strip() or j.get("state") not in FINISHED)
    ]
    if jobs:
        t = Table("job", "state", "client", "server", "file", box=None, header_style="bold")
        for j in sorted(jobs, key=lambda j: j["id"]):
            t.add_row(
                j["id"],
                _state(j.get("state") or ""),
                j.get("client") or "-",
                j.get("server") or "-",
                j.get("file") or "",
            )
        parts.append(t)
    counts: dict[str, dict[str, int]] = {}
    for kind, field in (
        ("source", "status"),
        ("process", "state"),
        ("node", "state"),
        ("job", "state"),
    ):
        tally: dict[str, int] = {}
        for row in mirror.all(kind):
            if keep(row):
                tally[row.get(field) or "?"] = tally.get(row.get(field) or "?", 0) + 1
        counts[kind] = tally
    parts.append(Text(render.summary(counts), style="bold"))
    if mirror.notes:
        last = mirror.notes[-1]
        parts.append(Text(f"last: {last.get('title', '')}", style="dim"))
    return Group(*parts)
