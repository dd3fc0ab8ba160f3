"""``fleetwatch history PROCESS|HOST`` and ``fleetwatch status --at TIME`` (issue 13).

Both read the hub's history API (``/api/history/...``). Times on the command line are the
user's local time: ``2026-12-02T03:12`` or ``2026-12-02 03:12`` (ISO 8601; with a zone,
that zone), ``3:12`` (the last 3:12, today's or yesterday's), ``yesterday 03:00``,
``today 8:00``, ``now``, ``-2h`` / ``2h ago`` (``s``, ``m``, ``h``, ``d``, ``w``) or Unix
seconds. They are sent as Unix seconds.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Mapping
from typing import Any

from fleetwatch.cli import render
from fleetwatch.cli.common import Failure, hub_errors, write, write_json
from fleetwatch.cli.status import KINDS, PLURALS, status_lines
from fleetwatch.client import HubClient, HubError

__all__ = ["history", "parse_when", "status_at"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"^-\s*(\d+(?:\.\d+)?)\s*([smhdw])$|^(\d+(?:\.\d+)?)\s*([smhdw])\s+ago$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_when(text: str, now: float | None = None) -> float:
    """Unix seconds for a time on the command line (see the module docstring);
    ValueError with a readable message when it is none of those."""
    now = time.time() if now is None else now
    value = " ".join(text.strip().lower().split())
    match = _RELATIVE.match(value)
    if match:
        amount, unit = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
        return now - float(amount) * _UNITS[unit]
    if value == "now":
        return now
    with_day = re.match(r"^(today|yesterday)(?:\s+(.*))?$", value)
    if with_day:
        day = datetime.datetime.fromtimestamp(now).date()
        if with_day.group(1) == "yesterday":
            day -= datetime.timedelta(days=1)
        clock = _clock(with_day.group(2) or "0:00")
        if clock is None:
            raise ValueError(f"not a time: {text!r} (expected {with_day.group(1)} HH:MM)")
        return datetime.datetime.combine(day, clock).timestamp()
    clock = _clock(value)
    if clock is not None:
        today = datetime.datetime.fromtimestamp(now).date()
        when = datetime.datetime.combine(today, clock).timestamp()
        if when > now:  # the last such moment: yesterday's
            when = datetime.datetime.combine(today - datetime.timedelta(days=1), clock).timestamp()
        return when
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds > 1e8:
            return seconds
    try:
        parsed = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (try 2026-12-02T03:12, 3:12, yesterday 03:00 or -2h)"
        ) from None
    return parsed.timestamp()  # naive: local time


def _clock(text: str) -> datetime.time | None:
    match = _CLOCK.match(text)
    if match is None:
        return None
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return datetime.time(hour, minute, second)


def _when(option: str, text: str | None, default: float | None = None) -> float | None:
    if text is None:
        return default
    try:
        return parse_when(text)
    except ValueError as exc:
        raise Failure(f"{option}: {exc}") from None


def _stamp(ts: float | None, *, day: bool = False) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if day else "%H:%M:%S", time.localtime(ts))


def _history_get(hub: HubClient, path: str, **params: Any) -> Any:
    with hub_errors():
        return hub.get(path, **params)


def status_at(hub: HubClient, at_text: str, q: str, as_json: bool) -> None:
    """``status --at TIME``: the tables of ``status`` for the fleet as it was then."""
    at = _when("--at", at_text)
    fleet = _history_get(hub, "/api/history/fleet", at=at)
    data: dict[str, Any] = {PLURALS[k]: fleet.get(PLURALS[k], []) for k in KINDS}
    data["all_sources"] = data["sources"]
    if q.strip():
        from fleetwatch import filters

        try:
            f = filters.parse(q)
        except ValueError as exc:
            raise Failure(f"filter {q!r}: {exc}") from None
        for kind in KINDS:
            data[PLURALS[kind]] = [r for r in data[PLURALS[kind]] if f.matches(r)]
    if as_json:
        write_json({"at": fleet.get("at"), **{PLURALS[k]: data[PLURALS[k]] for k in KINDS}})
        return
    color = render.color_enabled()
    header = render.paint(
        f"past view: the fleet at {_stamp(fleet.get('at'), day=True)} (from the history)",
        "bold",
        color,
    )
    write([header, "", *status_lines(data, q, color=color, now=float(fleet["at"]))])


def history(
    hub: HubClient, target: str, since: str | None, until: str | None, as_json: bool
) -> None:
    """``fleetwatch history PROCESS|HOST``: its state changes (and a host's jobs)."""
    end = _when("--until", until, time.time())
    assert end is not None
    start = _when("--since", since, end - 86400)
    if start is not None and start > end:
        raise Failure("--since is after --until")
    kind, id = _resolve(hub, target)
    path = f"/api/history/{'processes' if kind == 'process' else 'nodes'}/{_quote(id)}"
    answer = _history_get(hub, path, since=start, until=end)
    if as_json:
        write_json(answer)
        return
    color = render.color_enabled()
    out = [
        f"{render.paint(id, 'bold', color)}  {_stamp(answer['since'], day=True)}"
        f" → {_stamp(answer['until'], day=True)}"
    ]
    initial = answer.get("initial")
    rows = [["at start", *(_state_cells(initial) if initial else ["unknown", ""])]]
    styles = [["", render.style_of(str(initial.get("state"))) if initial else ""]]
    for c in answer["changes"]:
        rows.append([_stamp(c["ts"], day=True), *_state_cells(c)])
        styles.append(["", render.style_of(str(c.get("state")))])
    out += render.table(["WHEN", "STATE", "DETAIL"], rows, styles, color=color)
    if not answer["changes"]:
        out.append("no state change in that range")
    if kind == "node":
        jobs = answer.get("jobs", [])
        totals = answer.get("totals", {})
        if jobs:
            job_rows = [
                [
                    j["id"],
                    j.get("state") or "",
                    j.get("client") or "-",
                    j.get("server") or "-",
                    _stamp(j.get("ended")),
                    j.get("file") or "",
                ]
                for j in jobs
            ]
            job_styles = [["", render.style_of(str(j.get("state")))] for j in jobs]
            out += [
                "",
                *render.table(
                    ["JOB", "STATE", "CLIENT", "SERVER", "ENDED", "FILE"],
                    job_rows,
                    job_styles,
                    color=color,
                ),
            ]
        out += [
            "",
            f"jobs: {totals.get('done', 0)} done, {totals.get('failed', 0)} failed,"
            f" {totals.get('local', 0)} local",
        ]
    write(out)


def _state_cells(row: Mapping[str, Any]) -> list[str]:
    state = row.get("state")
    if state is None:
        return ["(removed)", ""]
    detail = ""
    if row.get("spawnerr"):
        detail = str(row["spawnerr"])
    elif row.get("exitstatus") is not None and state in ("EXITED", "STOPPED", "FATAL"):
        detail = f"exit status {row['exitstatus']}"
    elif row.get("pid"):
        detail = f"pid {row['pid']}"
    return [str(state), detail]


def _quote(id: str) -> str:
    import urllib.parse

    return urllib.parse.quote(id, safe=":/")


def _resolve(hub: HubClient, target: str) -> tuple[str, str]:
    """``("process"|"node", id)``: an id as given (``SOURCE:GROUP:NAME``, ``SOURCE/HOST``),
    else a process (``*:NAME``, ``*:GROUP:NAME``) or host name the hub has now."""
    if target.count(":") == 2:
        return "process", target
    if "/" in target and ":" not in target:
        return "node", target
    try:
        processes = hub.rows("processes")
        nodes = hub.rows("nodes")
    except HubError as exc:
        raise Failure(str(exc)) from None
    found = [("process", p["id"]) for p in processes if p["id"].endswith(f":{target}")]
    found += [("node", n["id"]) for n in nodes if target in (n["id"], n.get("name"))]
    if not found:
        raise Failure(
            f"no process or host {target!r} now: give its whole id"
            " (SOURCE:GROUP:NAME or SOURCE/HOST)"
        )
    if len(found) > 1:
        names = ", ".join(i for _, i in found[:5])
        raise Failure(f"{target!r} is ambiguous: {names}")
    return found[0]
