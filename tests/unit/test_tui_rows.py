"""What the TUI's list shows of each kind of row (``fleetwatch.tui.rows``: plain data)."""

from __future__ import annotations

from typing import Any

from fleetwatch.tui import rows as R

NOW = 1_000_000.0


def cells(kind: str, e: dict[str, Any], source: dict[str, Any], **kw: Any) -> list[str]:
    return [str(c) for c in R.make_row(kind, e, source, NOW, **kw).cells]


def test_duration_as_piw_monitor_shows_it() -> None:
    assert R.duration(0) == "00:00:00"
    assert R.duration(3 * 3600 + 2 * 60 + 1.9) == "03:02:01"
    assert R.duration(86400 + 5) == "1d 00:00:05"
    assert R.duration(-4) == "00:00:00"
    assert R.duration(None) == ""
    assert R.duration(float("nan")) == ""


def test_bar() -> None:
    assert R.bar(1, 4, 8) == "██░░░░░░"
    assert R.bar(9, 4, 4) == "████"
    assert R.bar(1, 0, 3) == "░░░"


def test_supervisor_process_row_uses_the_daemons_clock() -> None:
    source = {"id": "sv", "kind": "supervisor", "info": {"clock_offset": 10}}
    running = {
        "id": "sv:web:web",
        "source": "sv",
        "group": "web",
        "name": "web",
        "state": "RUNNING",
        "pid": 42,
        "started": NOW - 70 - 10,
        "description": "pid 42, uptime 0:01:10",
    }
    assert cells("process", running, source) == ["▪", "42", "web", "", "00:01:10", "", "RUNNING"]
    fatal = {
        **running,
        "id": "sv:workers:w_0",
        "group": "workers",
        "name": "w_0",
        "state": "FATAL",
        "pid": None,
        "stopped": NOW - 5 - 10,
        "spawnerr": "can't find command",
    }
    row = cells("process", fatal, source)
    assert row[1:6] == ["", "workers:w_0", "", "", "00:00:05"]
    assert row[6] == "FATAL  can't find command"
    assert R.make_row("process", fatal, source, NOW).key == "process|sv:workers:w_0"


def test_icecream_host_has_sundaes_job_bar_and_load() -> None:
    source = {"id": "ice", "kind": "icecream"}
    host = {
        "id": "ice/h1",
        "source": "ice",
        "name": "h1",
        "state": "online",
        "since": NOW - 3,
        "labels": {"hostid": "7", "platform": "x86_64"},
        "metrics": {"max_jobs": 4, "jobs": 2, "local_jobs": 1, "load": 500},
    }
    row = cells("node", host, source)
    assert row[:6] == ["▪", "7", "h1", "x86_64", "00:00:03", ""]
    assert row[6] == "[==%·] 2/4 +1 local  load ███░░░ 50%"


def test_piwheels_rows_and_order() -> None:
    source = {"id": "piw", "kind": "piwheels", "status": "online"}
    master = {
        "id": "piw:master",
        "source": "piw",
        "name": "vm",
        "state": "online",
        "labels": {"role": "master", "label": "vm", "paused": "false", "alert": ""},
        "metrics": {"started": NOW - 180, "last_seen": NOW - 2},
    }
    slave = {
        "id": "piw:slave:2",
        "source": "piw",
        "name": "lab-slave-1",
        "state": "building",
        "labels": {"role": "slave", "label": "lab-slave-1", "abi": "cp311", "alert": ""},
        "metrics": {"slave_id": 2, "first_seen": NOW - 179, "task_started": NOW - 4},
    }
    slave["labels"]["status"] = "Building piwlab-slow 0.1"
    other = {**slave, "id": "piw:slave:1", "name": "lab-slave-2"}
    other["labels"] = {**slave["labels"], "label": "lab-slave-2", "status": "Waiting for jobs"}
    other["metrics"] = {"slave_id": 1, "first_seen": NOW - 179, "last_seen": NOW - 1}
    m = cells("node", master, source)
    assert m == ["▪", "", "vm", "", "00:03:00", "00:00:02", "Doing whatever the master does"]
    s = cells("node", slave, source, branch="├─")
    assert s == [
        "├─ ▪",
        "2",
        "lab-slave-1",
        "cp311",
        "00:02:59",
        "00:00:04",
        slave["labels"]["status"],
    ]
    o = cells("node", other, source, branch="└─")
    assert o[1] == "1"
    assert o[5] == "00:00:01"  # no build: since last heard
    order = sorted([other, slave, master], key=lambda n: R.sort_key("node", n))
    assert [n["id"] for n in order] == ["piw:master", "piw:slave:2", "piw:slave:1"]
    # A paused master says so; a silent one is an alert (yellow), an okay one green.
    paused = {**master, "labels": {**master["labels"], "paused": "true"}}
    assert cells("node", paused, source)[6].endswith("(paused)")
    okay = R.make_row("node", master, source, NOW).cells[0]
    silent = R.make_row("node", master, {**source, "status": "offline"}, NOW).cells[0]
    assert okay.style == "green"  # type: ignore[union-attr]
    assert silent.style == "yellow"  # type: ignore[union-attr]


def test_history_graphs_per_kind() -> None:
    master = {"labels": {"role": "master"}, "metrics": {}}
    titles = [g.title for g in R.graphs_for("piwheels", master)]
    assert titles == ["Downloads/hr", "Temperature", "Load Avg", "Disk", "Swap", "Memory"]
    disk = next(g for g in R.graphs_for("piwheels", master) if g.title == "Disk")
    assert disk.value({"disk_size": 200, "disk_free": 50}) == 75.0
    assert disk.value({"disk_size": 0, "disk_free": 0}) is None  # the first STATS (trap 8)
    assert [g.title for g in R.graphs_for("supervisor", {})] == ["Running", "Processes"]
    assert R.row_kinds({"kind": "supervisor"}) == ("process",)
    assert R.row_kinds({"kind": "piwheels"}) == ("node", "process")
