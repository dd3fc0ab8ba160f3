"""The Prometheus metrics (publishers/metrics.py): counters from changes, gauges from the model,
the exposition parsed back with prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetwatch.config import Config, HubConfig
from fleetwatch.hub import Hub
from fleetwatch.model import Entity, Job, Node, Process, Source
from fleetwatch.publishers.metrics import FleetMetrics
from fleetwatch.publishers.notifications import Notification


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: bytes, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


class Rig:
    """A hub with no sources; entities are put straight into it and committed."""

    def __init__(self) -> None:
        self.hub = Hub(Config(path="test", hub=HubConfig(), sources={}))
        self.metrics = FleetMetrics(self.hub)
        self.metrics.baseline(self.hub.snapshot())

    def put(self, *entities: Entity) -> None:
        for e in entities:
            self.hub._put(e)
        delta = self.hub.flush()
        assert delta is not None
        self.metrics.apply(delta)

    def text(self, **kw: Any) -> bytes:
        return self.metrics.exposition(**kw)


def proc(state: str, pid: int = 0, source: str = "sv", name: str = "web") -> Process:
    return Process(
        id=f"{source}:{name}:{name}", source=source, group=name, name=name, state=state, pid=pid
    )


def job(id: str, state: str, **kw: Any) -> Job:
    return Job(id=f"ice#{id}", source="ice", client="c", server="r1", state=state, **kw)


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.put(Source(id="sv", kind="supervisor", name="sv", status="online"))
    r.put(Source(id="ice", kind="icecream", name="ice", status="offline"))
    return r


def test_processes_by_state_include_every_state_of_a_supervisor(rig: Rig) -> None:
    rig.put(proc("RUNNING", 10), proc("FATAL", name="db"))
    t = rig.text()
    assert value(t, "fleetwatch_processes", source="sv", state="RUNNING") == 1
    assert value(t, "fleetwatch_processes", source="sv", state="FATAL") == 1
    assert value(t, "fleetwatch_processes", source="sv", state="BACKOFF") == 0
    assert value(t, "fleetwatch_source_up", source="sv", kind="supervisor") == 1
    assert value(t, "fleetwatch_source_up", source="ice", kind="icecream") == 0
    assert (
        value(t, "fleetwatch_source_status", source="ice", kind="icecream", status="offline") == 1
    )


def test_restarts_count_starts_after_the_first_sight_guards_a_respawn_between_polls(
    rig: Rig,
) -> None:
    rig.put(proc("RUNNING", 10))  # first seen running: no restart
    rig.put(proc("STOPPED"))
    rig.put(proc("STARTING"))
    rig.put(proc("RUNNING", 11))  # STARTING -> RUNNING is the same start
    rig.put(proc("RUNNING", 12))  # a new pid between two polls: respawned
    rig.put(proc("EXITED"))
    rig.put(proc("RUNNING", 13))  # STARTING missed by the poll
    t = rig.text()
    assert value(t, "fleetwatch_process_restarts_total", source="sv", process="sv:web:web") == 3
    assert value(t, "fleetwatch_process_transitions_total", source="sv", state="RUNNING") == 2


def test_jobs_started_finished_and_their_durations(rig: Rig) -> None:
    rig.put(job("1", "waiting", metrics={"requested": 100.0}))
    rig.put(job("1", "running", started=100.5, metrics={"requested": 100.0}))
    rig.put(job("1", "done", started=100.5, ended=103.5, metrics={"requested": 100.0}))
    rig.put(job("2", "running", started=200.0))
    rig.put(job("2", "failed", started=200.0, ended=200.2))
    rig.put(job("3", "done", started=1.0, ended=2.0))  # begun and ended between two commits
    rig.put(job("3", "done", started=1.0, ended=2.0, metrics={"exitcode": 0}))  # counted once
    t = rig.text()
    assert value(t, "fleetwatch_jobs_started_total", source="ice", host="r1") == 3
    assert value(t, "fleetwatch_jobs_finished_total", source="ice", host="r1", result="done") == 2
    assert value(t, "fleetwatch_jobs_finished_total", source="ice", host="r1", result="failed") == 1
    assert value(t, "fleetwatch_job_duration_seconds_count", source="ice", host="r1") == 3
    assert value(
        t, "fleetwatch_job_duration_seconds_sum", source="ice", host="r1"
    ) == pytest.approx(4.2)
    assert (
        value(t, "fleetwatch_job_duration_seconds_bucket", source="ice", host="r1", le="0.25") == 1
    )
    assert value(t, "fleetwatch_job_queue_wait_seconds_count", source="ice", host="r1") == 1
    assert value(t, "fleetwatch_job_queue_wait_seconds_sum", source="ice", host="r1") == 0.5
    assert value(t, "fleetwatch_jobs", source="ice", state="running") == 0


def test_jobs_in_the_starting_snapshot_are_not_counted(rig: Rig) -> None:
    rig.hub._put(job("9", "done", started=1.0, ended=2.0))
    rig.hub.flush()
    rig.metrics.baseline(rig.hub.snapshot())  # as after a resync
    rig.put(job("9", "done", started=1.0, ended=2.0, metrics={"exitcode": 0}))
    rig.put(job("10", "running", started=5.0))
    t = rig.text()
    assert (
        value(t, "fleetwatch_jobs_finished_total", source="ice", host="r1", result="done") is None
    )
    assert value(t, "fleetwatch_jobs", source="ice", state="running") == 1


def test_farm_queues_and_compile_hosts_come_from_node_metrics(rig: Rig) -> None:
    rig.put(
        Node(
            id="piw:master",
            source="piw",
            name="master",
            metrics={"queue.cp311": 7.0, "builds.cp311": 3.0},
        ),
        Node(
            id="ice/r1",
            source="ice",
            name="r1",
            metrics={"load": 250.0, "max_jobs": 4.0, "jobs": 1.0},
        ),
    )
    t = rig.text()
    assert value(t, "fleetwatch_farm_queue", source="piw", abi="cp311") == 7
    assert value(t, "fleetwatch_farm_builds", source="piw", abi="cp311") == 3
    assert value(t, "fleetwatch_node_load", source="ice", node="r1") == 250
    assert value(t, "fleetwatch_node_jobs", source="ice", node="r1", what="slots") == 4
    assert value(t, "fleetwatch_nodes", source="ice", state="online") == 1


def test_a_restricted_scrape_shows_only_its_sources_and_the_hub_series(rig: Rig) -> None:
    rig.put(proc("RUNNING", 10), proc("RUNNING", 20, source="other"))
    rig.put(Source(id="other", kind="supervisor", name="other", status="online"))
    t = rig.text(sees=lambda s: s == "sv")
    names = {(n, dict(labels).get("source")) for n, labels in samples(t)}
    assert ("fleetwatch_processes", "sv") in names
    assert all(source in (None, "sv") for _, source in names), names
    assert value(t, "fleetwatch_hub_seq") == rig.hub.fleet.seq
    full = rig.text()
    assert value(full, "fleetwatch_processes", source="other", state="RUNNING") == 1


def test_hub_internals(rig: Rig) -> None:
    sub = rig.hub.subscribe()
    rig.put(proc("RUNNING", 10))
    t = rig.text()
    assert value(t, "fleetwatch_hub_stream_clients") == 1
    assert value(t, "fleetwatch_hub_lag_deltas") == 1
    assert value(t, "fleetwatch_hub_changes_total") == 3
    assert value(t, "fleetwatch_hub_entities", kind="process") == 1
    assert value(t, "fleetwatch_hub_ring_deltas") == rig.hub.fleet.ring_size
    sub.close()


def test_the_grafana_dashboard_and_the_docs_name_only_exported_series(rig: Rig) -> None:
    """docs/grafana-dashboard.json and docs/metrics.md must not drift from the code."""
    import json
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    rig.put(proc("RUNNING", 10))
    rig.put(proc("STOPPED"))
    rig.put(proc("RUNNING", 11))
    rig.put(job("1", "running", started=1.0, metrics={"requested": 0.5}))
    rig.put(job("1", "done", started=1.0, ended=2.0))
    rig.put(
        Node(id="piw:master", source="piw", name="master", metrics={"queue.cp311": 1.0}),
        Node(id="ice/r1", source="ice", name="r1", metrics={"load": 1.0, "max_jobs": 1.0}),
    )
    rig.metrics.note(
        Notification(id="n1", ts=0.0, severity="error", source="sv", subject={}, title="t", text="")
    )
    exported = {name for name, _ in samples(rig.text())}
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bfleetwatch_[a-z_]+", target["expr"])
    }
    assert used, "the dashboard queries nothing"
    assert used <= exported, sorted(used - exported)
    documented = set(re.findall(r"`(fleetwatch_[a-z_]+)`", (docs / "metrics.md").read_text()))
    families = {  # as they are written in the exposition: counters with their _total
        f.name + ("_total" if f.type == "counter" else "")
        for f in text_string_to_metric_families(rig.text().decode())
    }
    assert families == documented, (sorted(families - documented), sorted(documented - families))
