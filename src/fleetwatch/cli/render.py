"""Plain-text rendering for the command line: human ages, state colours, aligned tables.

Standard library only, on purpose: Rich costs ~30 ms to import, more than the rest of
``fleetwatch status`` after the interpreter and Typer, so one-shot commands write their
tables themselves (ANSI colours on a terminal, none when piped or with ``NO_COLOR``),
and only ``fleetwatch watch`` uses Rich (:mod:`fleetwatch.cli.watch`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

__all__ = [
    "STATE_STYLES",
    "age",
    "color_enabled",
    "paint",
    "process_when",
    "style_of",
    "summary",
    "table",
]

Row = Mapping[str, Any]

#: The style of each state, in Rich's names (``fleetwatch watch`` uses them as they are).
STATE_STYLES: dict[str, str] = {
    # supervisord
    "RUNNING": "green",
    "STARTING": "yellow",
    "BACKOFF": "yellow",
    "STOPPING": "yellow",
    "STOPPED": "dim",
    "EXITED": "red",
    "FATAL": "bold red",
    "UNKNOWN": "bold red",
    # sources
    "online": "green",
    "connecting": "yellow",
    "offline": "red",
    "error": "bold red",
    # nodes and jobs
    "blocked": "yellow",
    "waiting": "yellow",
    "running": "green",
    "local": "cyan",
    "done": "dim",
    "failed": "red",
}

_ANSI = {"green": "32", "yellow": "33", "red": "31", "cyan": "36", "dim": "2", "bold": "1"}


def style_of(state: str | None) -> str:
    return STATE_STYLES.get(state or "", "")


def color_enabled(stream: IO[str] | None = None) -> bool:
    """Colours on a terminal, unless ``NO_COLOR`` is set; ``FORCE_COLOR`` forces them."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, style: str, on: bool) -> str:
    if not on or not style:
        return text
    codes = ";".join(_ANSI[w] for w in style.split() if w in _ANSI)
    return f"\x1b[{codes}m{text}\x1b[0m" if codes else text


def age(seconds: float) -> str:
    """A duration for people: ``42 s``, ``5m 03s``, ``3h 12m``, ``2d 4h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


def process_when(p: Row, clock_offset: float = 0.0, now: float | None = None) -> str:
    """``up 3h 12m`` for a running process, ``exited 20 s ago`` for one that stopped...

    ``started``/``stopped`` are the daemon's clock; ``clock_offset`` (the source's
    ``info.clock_offset``, hub clock minus daemon clock) brings them to ours.
    """
    now = time.time() if now is None else now
    state = p.get("state") or ""
    started, stopped = p.get("started"), p.get("stopped")
    if state in ("RUNNING", "STOPPING") and started:
        return f"up {age(now - (started + clock_offset))}"
    if state in ("STARTING", "BACKOFF") and started:
        return f"starting for {age(now - (started + clock_offset))}"
    if stopped:
        verb = {"EXITED": "exited", "FATAL": "failed", "STOPPED": "stopped"}.get(state, "stopped")
        return f"{verb} {age(now - (stopped + clock_offset))} ago"
    if state == "STOPPED":
        return "not started"
    return ""


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: Sequence[Sequence[str]] | None = None,
    *,
    color: bool = False,
) -> list[str]:
    """Lines of a left-aligned table, columns two spaces apart; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    last = len(headers) - 1

    def line(cells: Sequence[str], cell_styles: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            padded = cell if i == last else cell.ljust(widths[i])
            parts.append(paint(padded, cell_styles[i] if i < len(cell_styles) else "", color))
        return "  ".join(parts).rstrip()

    out = [line(headers, ["bold"] * len(headers))]
    for n, row in enumerate(rows):
        out.append(line(row, styles[n] if styles else ()))
    return out


_PLURAL = {"source": "sources", "process": "processes", "node": "nodes", "job": "jobs"}


def summary(counts: Mapping[str, Mapping[str, int]]) -> str:
    """``3 sources (3 online), 12 processes (10 RUNNING, 2 STOPPED), ...``.

    ``counts`` maps a kind to its counts by state; kinds with nothing are left out,
    but for sources and processes. States come most frequent first, then by name.
    """
    parts = []
    for kind, by_state in counts.items():
        total = sum(by_state.values())
        if not total and kind not in ("source", "process"):
            continue
        noun = kind if total == 1 else _PLURAL.get(kind, kind + "s")
        ordered = sorted(by_state.items(), key=lambda x: (-x[1], x[0]))
        detail = ", ".join(f"{n} {s}" for s, n in ordered if n)
        parts.append(f"{total} {noun}" + (f" ({detail})" if detail else ""))
    return ", ".join(parts)
