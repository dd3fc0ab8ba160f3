"""``fleetwatch status``, ``sources`` and ``notes``: one-shot reads of a hub.

``status FILTER`` asks the hub to filter (``GET /api/{kind}?q=FILTER``, keep-alive);
with no filter it reads ``GET /api/fleet`` once. With ``--json`` the lists are printed
as the API sent them and nothing else is imported (no colours, no tables).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from fleetwatch.cli import render
from fleetwatch.cli.common import hub_errors, write, write_json
from fleetwatch.client import HubClient

__all__ = ["FINISHED", "fetch", "notes", "sources", "status", "status_lines"]

Row = Mapping[str, Any]
KINDS = ("source", "node", "process", "job")
PLURALS = {"source": "sources", "node": "nodes", "process": "processes", "job": "jobs"}
FINISHED = frozenset({"done", "failed"})


def fetch(hub: HubClient, q: str) -> dict[str, Any]:
    """``{"sources", "nodes", "processes", "jobs"}`` matching ``q``, plus ``all_sources``."""
    with hub_errors():
        if not q.strip():
            fleet = hub.fleet()
            out = {PLURALS[k]: fleet.get(PLURALS[k], []) for k in KINDS}
            out["all_sources"] = out["sources"]
            return out
        out = {PLURALS[k]: hub.rows(PLURALS[k], q) for k in KINDS}
        out["all_sources"] = hub.rows("sources")
        return out


def status(hub: HubClient, q: str, as_json: bool) -> None:
    data = fetch(hub, q)
    if as_json:
        write_json({PLURALS[k]: data[PLURALS[k]] for k in KINDS})
        return
    write(status_lines(data, q, color=render.color_enabled()))


def status_lines(
    data: Mapping[str, Any], q: str, *, color: bool, now: float | None = None
) -> list[str]:
    """The tables of ``fleetwatch status`` and its summary line."""
    now = time.time() if now is None else now
    offsets = {
        s["id"]: float((s.get("info") or {}).get("clock_offset") or 0.0)
        for s in data["all_sources"]
    }
    out: list[str] = []
    srcs = data["sources"]
    if srcs:
        out += source_table(srcs, color=color, now=now)
    procs = sorted(data["processes"], key=lambda p: p["id"])
    if procs:
        rows, styles = [], []
        for p in procs:
            state = p.get("state") or ""
            rows.append(
                [
                    p["id"],
                    state,
                    str(p["pid"]) if p.get("pid") else "-",
                    render.process_when(p, offsets.get(p["source"], 0.0), now),
                    _process_detail(p),
                ]
            )
            styles.append(["", render.style_of(state)])
        out += [
            "",
            *render.table(["PROCESS", "STATE", "PID", "WHEN", "DETAIL"], rows, styles, color=color),
        ]
    nodes = sorted(data["nodes"], key=lambda n: n["id"])
    if nodes:
        rows, styles = [], []
        for n in nodes:
            state = n.get("state") or ""
            since = n.get("since")
            rows.append(
                [
                    n["id"],
                    state,
                    n.get("address") or "-",
                    f"for {render.age(now - since)}" if since else "",
                    _metrics(n),
                ]
            )
            styles.append(["", render.style_of(state)])
        out += [
            "",
            *render.table(
                ["NODE", "STATE", "ADDRESS", "SINCE", "METRICS"], rows, styles, color=color
            ),
        ]
    jobs = data["jobs"]
    shown = [j for j in jobs if q.strip() or j.get("state") not in FINISHED]
    if shown:
        rows, styles = [], []
        for j in sorted(shown, key=lambda j: j["id"]):
            state = j.get("state") or ""
            rows.append(
                [
                    j["id"],
                    state,
                    j.get("client") or "-",
                    j.get("server") or "-",
                    j.get("file") or "",
                ]
            )
            styles.append(["", render.style_of(state)])
        out += [
            "",
            *render.table(["JOB", "STATE", "CLIENT", "SERVER", "FILE"], rows, styles, color=color),
        ]
    if out and out[0] == "":
        out.pop(0)
    if not (srcs or procs or nodes or shown):
        out.append(f"nothing matches {q!r}" if q.strip() else "the hub watches nothing yet")
    counts: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        field = "status" if kind == "source" else "state"
        tally: dict[str, int] = {}
        for row in data[PLURALS[kind]]:
            key = row.get(field) or "?"
            tally[key] = tally.get(key, 0) + 1
        counts[kind] = tally
    out += ["", render.summary(counts)]
    return out


def source_table(srcs: Sequence[Row], *, color: bool, now: float) -> list[str]:
    rows, styles = [], []
    for s in sorted(srcs, key=lambda s: s["id"]):
        st = s.get("status") or ""
        since = s.get("since")
        rows.append(
            [
                s["id"],
                s.get("kind") or "",
                st,
                f"for {render.age(now - since)}" if since else "",
                s.get("error") or s.get("url") or "",
            ]
        )
        styles.append(["", "", render.style_of(st)])
    return render.table(
        ["SOURCE", "KIND", "STATUS", "SINCE", "URL / ERROR"], rows, styles, color=color
    )


def _process_detail(p: Row) -> str:
    state = p.get("state")
    if p.get("spawnerr"):
        return str(p["spawnerr"])
    if state == "EXITED" and p.get("exitstatus") is not None:
        return f"exit status {p['exitstatus']}"
    return ""


def _metrics(n: Row) -> str:
    metrics = n.get("metrics") or {}
    return " ".join(f"{k}={_num(v)}" for k, v in sorted(metrics.items())[:4])


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def sources(hub: HubClient, q: str, as_json: bool) -> None:
    with hub_errors():
        rows = hub.rows("sources", q)
    if as_json:
        write_json(rows)
        return
    if not rows:
        write([f"no source matches {q!r}" if q.strip() else "the hub watches no source"])
        return
    write(source_table(rows, color=render.color_enabled(), now=time.time()))


def notes(hub: HubClient, limit: int, as_json: bool) -> None:
    with hub_errors():
        rows = hub.notifications(limit)
    if as_json:
        write_json(rows)
        return
    if not rows:
        write(["no notifications"])
        return
    color = render.color_enabled()
    styles = {"error": "red", "critical": "bold red", "warning": "yellow"}
    lines = []
    for n in rows:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n.get("ts") or 0))
        sev = str(n.get("severity") or "")
        text = f" — {n['text']}" if n.get("text") else ""
        sev_text = render.paint(sev.ljust(7), styles.get(sev.lower(), ""), color)
        lines.append(f"{stamp}  {sev_text}  {n.get('title', '')}{text}")
    write(lines)
