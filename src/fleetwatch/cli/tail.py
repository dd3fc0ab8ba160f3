"""``fleetwatch tail [-f] [--stderr] [-n LINES] PROCESS``: a process's log through the hub.

Reads windows of ``GET /api/processes/{id}/log``. The hub cuts windows on UTF-8
character boundaries and answers exact byte offsets (``offset``/``end``), so a
follower that asks from the last ``end`` neither loses nor repeats a byte, and a
character written across two reads arrives whole. A ``reset`` (the log was cleared or
rotated) starts again from its beginning. Output is written as UTF-8 whatever the
locale (``LANG=C`` included). Ctrl-C ends ``-f`` with exit status 0.
"""

from __future__ import annotations

import fnmatch
import sys
import time
from typing import Any

from fleetwatch.cli.common import Failure, hub_errors, write
from fleetwatch.client import HubClient, HubError

__all__ = ["FOLLOW_INTERVAL", "WINDOW", "find_process", "last_lines", "tail"]

WINDOW = 65536
"""Bytes asked for per read."""
MAX_BACK = 4 * 1024 * 1024
"""How far back ``-n LINES`` looks for its lines at most."""
FOLLOW_INTERVAL = 0.25
"""Seconds between reads while following."""


def find_process(hub: HubClient, name: str) -> str:
    """The one process id ``name`` names: an id, a glob, or a bare program name."""
    with hub_errors():
        ids = [p["id"] for p in hub.rows("processes")]
    if name in ids:
        return name
    pattern = name if (":" in name or "*" in name) else f"*:{name}"
    found = [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
    if not found:
        raise Failure(f"no process matches {name!r}")
    if len(found) > 1:
        raise Failure(f"{name!r} matches {len(found)} processes: {', '.join(sorted(found))}")
    return str(found[0])


def last_lines(text: str, n: int) -> str:
    """The last ``n`` lines of ``text`` (a last line without its newline counts)."""
    if n <= 0:
        return ""
    lines = text.splitlines(keepends=True)
    return "".join(lines[-n:])


def _first(hub: HubClient, pid: str, channel: str) -> dict[str, Any]:
    """The tail window; a 5xx is retried for a while: the hub answers 502 while the log
    ends inside a character (the rest of it not written yet)."""
    for _ in range(20):
        try:
            return hub.log(pid, channel, None, WINDOW)
        except HubError as exc:
            if exc.status < 500:
                raise
            time.sleep(FOLLOW_INTERVAL)
    return hub.log(pid, channel, None, WINDOW)


def tail(hub: HubClient, name: str, *, follow: bool, stderr: bool, lines: int) -> None:
    pid = find_process(hub, name)
    channel = "stderr" if stderr else "stdout"
    with hub_errors():
        chunk = _first(hub, pid, channel)
        length = WINDOW
        # Not enough lines in the window, and more log before it: look further back.
        while chunk["offset"] > 0 and chunk["text"].count("\n") <= lines and length < MAX_BACK:
            length *= 4
            chunk = hub.log(pid, channel, None, length)
    text = chunk["text"]
    if chunk["offset"] > 0 or len(text.splitlines()) > lines:
        text = last_lines(text, lines)
    if text:
        write(text)
    if not follow:
        return
    end = chunk["end"]
    down = more = False
    try:
        while True:
            if not more:
                time.sleep(FOLLOW_INTERVAL)
            try:
                chunk = hub.log(pid, channel, end, WINDOW)
            except HubError as exc:
                if exc.status in (400, 404, 409):
                    raise Failure(str(exc)) from None
                if not down:
                    sys.stderr.write(f"fleetwatch: {exc}; retrying\n")
                    down = True
                more = False
                continue
            down = False
            if chunk.get("reset"):
                sys.stderr.write("fleetwatch: the log was cleared or rotated\n")
            if chunk["text"]:
                write(chunk["text"])
            end = chunk["end"]
            # A full window means more is waiting: read on at once.
            more = chunk["end"] - chunk["offset"] >= WINDOW - 3
    except KeyboardInterrupt:
        return
