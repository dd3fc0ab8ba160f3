"""What the TUI shows of each entity, as plain data: no Textual, no I/O.

The list has piw-monitor's columns (:data:`COLUMNS`): state, ``#``, label, ABI, up
time, task time and task. Each kind of entity fills the ones that apply to it:

==================  ======  ==========  ========  ==============  ==============  ============
row                 ``#``   Label       ABI       Up Time         Task Time       Task
==================  ======  ==========  ========  ==============  ==============  ============
supervisord process pid     group:name  -         since started   since stopped   state, why
icecream host       hostid  host        platform  since joined    -               job and load
                                                                                  bars (sundae)
piwheels master     -       host        -         since started   since heard     "Doing
                                                                                  whatever..."
piwheels slave      id      label       abi       since seen      since build or  its status
                                                                  since heard
==================  ======  ==========  ========  ==============  ==============  ============

Entities are the stream's JSON objects (``dict``), as :class:`fleetwatch.client.mirror.Mirror`
keeps them. Times are Unix seconds; a supervisord's own clock is turned into the hub's
with ``source.info.clock_offset`` (hub clock minus daemon clock).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.text import Text

__all__ = [
    "COLUMNS",
    "Graph",
    "Row",
    "bar",
    "duration",
    "graphs_for",
    "is_master",
    "make_row",
    "row_key",
    "row_kinds",
    "sort_key",
    "state_style",
]

COLUMNS: tuple[str, ...] = ("S", "#", "Label", "ABI", "Up Time", "Task Time", "Task")
"""piw-monitor's list columns (its ``Label^`` and ``ABI^`` are the sort keys here too)."""

MARK = "▪"

_PROCESS_STYLES = {
    "RUNNING": "green",
    "STARTING": "yellow",
    "BACKOFF": "yellow",
    "STOPPING": "yellow",
    "STOPPED": "grey50",
    "EXITED": "red",
    "FATAL": "bold red",
    "UNKNOWN": "red",
}
_NODE_STYLES = {
    "online": "green",
    "okay": "green",
    "building": "green",
    "idle": "grey50",
    "sleeping": "grey50",
    "starting": "grey70",
    "terminating": "red",
    "sending": "blue",
    "cleaning": "magenta",
    "alert": "yellow",
    "blocked": "yellow",
    "dead": "red",
    "offline": "red",
    "error": "red",
}
_SOURCE_STYLES = {"online": "green", "connecting": "yellow", "offline": "red", "error": "bold red"}


def state_style(kind: str, state: str) -> str:
    """The colour of an entity's state mark."""
    if kind == "process":
        return _PROCESS_STYLES.get(state, "white")
    if kind == "source":
        return _SOURCE_STYLES.get(state, "white")
    return _NODE_STYLES.get(state, "white")


def duration(seconds: float | None) -> str:
    """``HH:MM:SS`` as piw-monitor shows times, ``Nd HH:MM:SS`` past a day; ``""`` for none."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def bar(value: float, total: float, width: int = 8, fill: str = "█", empty: str = "░") -> str:
    """A ratio bar of ``width`` cells (``value`` of ``total``; an empty bar when total is 0)."""
    if total <= 0 or width <= 0:
        return empty * width
    cells = round(width * min(1.0, max(0.0, value / total)))
    return fill * cells + empty * (width - cells)


def is_master(node: Mapping[str, Any]) -> bool:
    return _labels(node).get("role") == "master"


def row_kinds(source: Mapping[str, Any]) -> tuple[str, ...]:
    """Which kinds of a source's entities are rows of the list.

    A supervisord's one node is the daemon itself (shown as the source), so only its
    processes are rows; icecream hosts and piwheels master and slaves are nodes.
    """
    return ("process",) if source.get("kind") == "supervisor" else ("node", "process")


def row_key(kind: str, id: str) -> str:
    """The list's key of an entity (ids of two kinds may coincide)."""
    return f"{kind}|{id}"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the list: the cells in :data:`COLUMNS` order."""

    key: str
    cells: tuple[Text | str, ...]


def sort_key(kind: str, entity: Mapping[str, Any]) -> tuple[Any, ...]:
    """Source, then the piwheels master first, then (ABI, label) as piw-monitor sorts."""
    labels = _labels(entity)
    if kind == "process":
        label = _process_label(entity)
        abi = ""
    else:
        label = labels.get("label") or str(entity.get("name", ""))
        abi = labels.get("abi") or labels.get("platform") or ""
    return (str(entity.get("source", "")), not is_master(entity), abi, label, str(entity["id"]))


def make_row(
    kind: str,
    entity: Mapping[str, Any],
    source: Mapping[str, Any] | None,
    now: float,
    *,
    branch: str = "",
) -> Row:
    """The row of ``entity`` at time ``now``; ``branch`` (``├─``/``└─``) prefixes the mark."""
    if kind == "process":
        cells = _process_cells(entity, source, now)
    elif source is not None and source.get("kind") == "piwheels":
        cells = _piwheels_cells(entity, source, now)
    elif source is not None and source.get("kind") == "icecream":
        cells = _icecream_cells(entity, now)
    else:
        cells = _node_cells(entity, now)
    if branch:
        mark = cells[0]
        prefixed = Text(f"{branch} ")
        prefixed.append(mark if isinstance(mark, Text) else Text(str(mark)))
        cells = (prefixed, *cells[1:])
    return Row(row_key(kind, str(entity["id"])), cells)


def _mark(kind: str, state: str) -> Text:
    return Text(MARK, style=state_style(kind, state))


def _labels(entity: Mapping[str, Any]) -> Mapping[str, str]:
    labels = entity.get("labels")
    return labels if isinstance(labels, Mapping) else {}


def _metrics(entity: Mapping[str, Any]) -> Mapping[str, float]:
    metrics = entity.get("metrics")
    return metrics if isinstance(metrics, Mapping) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _process_label(p: Mapping[str, Any]) -> str:
    group, name = str(p.get("group", "")), str(p.get("name", ""))
    return name if group in ("", name) else f"{group}:{name}"


def _clock_offset(source: Mapping[str, Any] | None) -> float:
    info = source.get("info") if source is not None else None
    offset = info.get("clock_offset") if isinstance(info, Mapping) else None
    return _num(offset) or 0.0


def _since(now: float, then: Any, offset: float = 0.0) -> float | None:
    t = _num(then)
    return None if not t else now - (t + offset)


def _process_cells(
    p: Mapping[str, Any], source: Mapping[str, Any] | None, now: float
) -> tuple[Text | str, ...]:
    state = str(p.get("state", "UNKNOWN"))
    offset = _clock_offset(source)
    running = state in ("RUNNING", "STOPPING")
    up = duration(_since(now, p.get("started"), offset)) if running else ""
    down = "" if running else duration(_since(now, p.get("stopped"), offset))
    why = p.get("spawnerr") or ("" if state == "RUNNING" else p.get("description") or "")
    task = Text(state, style=state_style("process", state))
    if why:
        task.append(f"  {why}")
    pid = p.get("pid")
    return (_mark("process", state), str(pid) if pid else "", _process_label(p), "", up, down, task)


def _node_cells(n: Mapping[str, Any], now: float) -> tuple[Text | str, ...]:
    state = str(n.get("state", ""))
    metrics = _metrics(n)
    task = state
    if "processes" in metrics:
        task = f"{state}  {int(metrics.get('running', 0))}/{int(metrics['processes'])} running"
    return (
        _mark("node", state),
        "",
        str(n.get("name", "")),
        "",
        duration(_since(now, n.get("since"))),
        "",
        task,
    )


def _icecream_cells(n: Mapping[str, Any], now: float) -> tuple[Text | str, ...]:
    """A host as icecream-sundae draws it: a job bar (``=`` remote, ``%`` local) and load."""
    state = str(n.get("state", ""))
    labels, metrics = _labels(n), _metrics(n)
    slots = int(metrics.get("max_jobs", 0) or 0)
    remote = int(metrics.get("jobs", 0) or 0)
    local = int(metrics.get("local_jobs", 0) or 0)
    width = max(slots, remote + local, 1)
    shown = min(width, 16)
    scale = shown / width
    r_cells = round(remote * scale)
    l_cells = min(shown - r_cells, round(local * scale))
    task = Text()
    task.append("[")
    task.append("=" * r_cells, style="cyan")
    task.append("%" * l_cells, style="magenta")
    task.append("·" * (shown - r_cells - l_cells), style="grey50")
    task.append(f"] {remote}/{slots}")
    if local:
        task.append(f" +{local} local")
    load = min(1000.0, max(0.0, metrics.get("load", 0.0) or 0.0))
    task.append("  load ")
    task.append(
        bar(load, 1000, 6), style="red" if load >= 800 else "yellow" if load >= 500 else "green"
    )
    task.append(f" {load / 10:.0f}%")
    if state == "blocked":
        task.append("  blocked", style="yellow")
    return (
        _mark("node", state),
        labels.get("hostid", ""),
        str(n.get("name", "")),
        labels.get("platform", ""),
        duration(_since(now, n.get("since"))),
        "",
        task,
    )


def _piwheels_cells(
    n: Mapping[str, Any], source: Mapping[str, Any], now: float
) -> tuple[Text | str, ...]:
    """piw-monitor's rows (the model: :mod:`fleetwatch.sources.piwheels.farm`)."""
    labels, metrics = _labels(n), _metrics(n)
    state = str(n.get("state", ""))
    alert = bool(labels.get("alert"))
    if is_master(n):
        if source.get("status") != "online" or state != "online":
            alert = True
        task = Text("Doing whatever the master does")
        if labels.get("paused") == "true":
            task.append("  (paused)", style="yellow")
        return (
            _mark("node", "alert" if alert else "okay"),
            "",
            labels.get("label") or str(n.get("name", "")),
            "",
            duration(_since(now, metrics.get("started"))),
            duration(_since(now, metrics.get("last_seen"))),
            task,
        )
    slave_id = metrics.get("slave_id")
    busy = metrics.get("task_started")
    mark = state if state in ("dead", "offline") or not alert else "alert"
    return (
        _mark("node", mark),
        str(int(slave_id)) if slave_id is not None else str(n["id"]).rsplit(":", 1)[-1],
        labels.get("label") or str(n.get("name", "")),
        labels.get("abi", ""),
        duration(_since(now, metrics.get("first_seen"))),
        duration(_since(now, busy if busy else metrics.get("last_seen"))),
        labels.get("status", ""),
    )


@dataclass(frozen=True, slots=True)
class Graph:
    """A small history graph of the stats box: a title and how to read a sample."""

    title: str
    value: Callable[[Mapping[str, float]], float | None]
    unit: str = ""


def _used(what: str) -> Callable[[Mapping[str, float]], float | None]:
    def used(m: Mapping[str, float]) -> float | None:
        size = m.get(f"{what}_size")
        free = m.get(f"{what}_free")
        if not size or free is None:
            return None
        return 100.0 * (size - free) / size

    return used


def _metric(name: str, scale: float = 1.0) -> Callable[[Mapping[str, float]], float | None]:
    def read(m: Mapping[str, float]) -> float | None:
        value = _num(m.get(name))
        return None if value is None else value * scale

    return read


_PIW_SLAVE_GRAPHS = (
    Graph("Temperature", _metric("cpu_temp"), "°C"),
    Graph("Load Avg", _metric("load_average")),
    Graph("Disk", _used("disk"), "%"),
    Graph("Swap", _used("swap"), "%"),
    Graph("Memory", _used("mem"), "%"),
)
_PIW_MASTER_GRAPHS = (Graph("Downloads/hr", _metric("downloads_last_hour")), *_PIW_SLAVE_GRAPHS)
_ICECREAM_GRAPHS = (
    Graph("Jobs", _metric("jobs")),
    Graph("Load", _metric("load", 0.1), "%"),
    Graph("Load avg 1m", _metric("loadavg1", 0.001)),
    Graph("Done", _metric("jobs_done")),
)
_SUPERVISOR_GRAPHS = (
    Graph("Running", _metric("running")),
    Graph("Processes", _metric("processes")),
)


def graphs_for(source_kind: str, node: Mapping[str, Any]) -> tuple[Graph, ...]:
    """The history graphs of a node's stats box (piw-monitor's for a build farm)."""
    if source_kind == "piwheels":
        return _PIW_MASTER_GRAPHS if is_master(node) else _PIW_SLAVE_GRAPHS
    if source_kind == "icecream":
        return _ICECREAM_GRAPHS
    if source_kind == "supervisor":
        return _SUPERVISOR_GRAPHS
    return tuple(Graph(k, _metric(k)) for k in list(_metrics(node))[:6])
