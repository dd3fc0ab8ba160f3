"""Prometheus metrics of the fleet and of the hub itself (``GET /metrics``).

Two kinds of series, both from ``prometheus-client``:

* **Counters and histograms** that need the history of changes (how many times a
  process restarted, jobs started and finished, job durations and queue waits) are
  kept by :class:`FleetMetrics`, which follows the hub like a stream client does: one
  :class:`~fleetwatch.hub.Subscription`, read in a task of its own, so the hub's hot
  path pays nothing but the subscription's ``push``. They count from the hub's start
  (Prometheus' counters may reset; ``rate()`` copes).
* **Gauges** of what is true now (sources up, processes by state, build-farm queues,
  hub internals) are read from the model at each scrape by :class:`_ModelCollector`.

Every series about a watched system carries a ``source`` label, so a restricted
account's scrape is the same exposition with the other sources' samples left out
(:meth:`FleetMetrics.exposition`). The list of series, with their meaning, is
``docs/metrics.md``; keep the two in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from fleetwatch.model import Delta, Job, Node, Process, Snapshot, Source
from fleetwatch.publishers.notifications import Notification

if TYPE_CHECKING:
    from fleetwatch.hub import Hub

__all__ = ["CONTENT_TYPE", "FleetMetrics"]

log = logging.getLogger(__name__)

# A ``*_created`` gauge beside every counter and histogram doubles the series for a fact
# (the hub's start) that ``fleetwatch_hub_uptime_seconds`` already gives.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: supervisord's states, each always exported (as 0 when no process is in it), so a
#: dashboard's per-state panel has every line from the first scrape.
PROCESS_STATES = (
    "STOPPED",
    "STARTING",
    "RUNNING",
    "BACKOFF",
    "STOPPING",
    "EXITED",
    "FATAL",
    "UNKNOWN",
)
SOURCE_STATUSES = ("connecting", "online", "offline", "error")
JOB_STATES = ("waiting", "running", "local")
"""The states of a job not yet finished (finished ones are counted, not gauged)."""

#: Compile jobs take from a fraction of a second to minutes; builds of a farm up to hours.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
FINISHED_KEPT = 100_000
"""How many finished jobs are remembered, so a later put of one is not counted again."""
LAG_EVERY = 1.0
"""Seconds between two measurements of the event loop's lag."""


def _starts(old: Process | None, new: Process) -> bool:
    """Whether ``old`` → ``new`` is the process being started (again)."""
    if old is None:
        return False  # first seen: not a start the hub saw
    if new.state == "STARTING":
        return old.state != "STARTING"
    if new.state == "RUNNING":
        # RUNNING from anything but STARTING: the poll missed STARTING; a new pid while
        # running: the process was respawned between two polls.
        return old.state != "STARTING" and (old.state != "RUNNING" or old.pid != new.pid)
    return False


def _host(job: Job) -> str:
    return job.server or job.client


class FleetMetrics:
    """The hub's metrics: follow it with :meth:`run`, scrape with :meth:`exposition`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.restarts = Counter(
            "fleetwatch_process_restarts",
            "Times a process was started again after the hub had seen it (any cause: an "
            "operator, autorestart, a respawn between two polls)",
            ["source", "process"],
            registry=r,
        )
        self.transitions = Counter(
            "fleetwatch_process_transitions",
            "Process state changes, by the state entered",
            ["source", "state"],
            registry=r,
        )
        self.jobs_started = Counter(
            "fleetwatch_jobs_started",
            "Jobs that began running (remote on `host`, or local on their client)",
            ["source", "host"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "fleetwatch_jobs_finished",
            "Jobs that finished, by result: done or failed",
            ["source", "host", "result"],
            registry=r,
        )
        self.job_duration = Histogram(
            "fleetwatch_job_duration_seconds",
            "Time from a job's start to its end",
            ["source", "host"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.job_wait = Histogram(
            "fleetwatch_job_queue_wait_seconds",
            "Time from a compile job's request to its start on `host` (icecream)",
            ["source", "host"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.notes = Counter(
            "fleetwatch_notifications",
            "Notifications the rules raised, by severity",
            ["source", "severity"],
            registry=r,
        )
        self.changes = Counter("fleetwatch_hub_changes", "Changes the hub committed", registry=r)
        self.commits = Counter(
            "fleetwatch_hub_commits", "Deltas the hub committed (batches of changes)", registry=r
        )
        self.resyncs = Counter(
            "fleetwatch_hub_metrics_resyncs",
            "Times these metrics fell behind the hub and started again from a snapshot "
            "(changes in between are not counted)",
            registry=r,
        )
        self.loop_lag = Gauge(
            "fleetwatch_hub_loop_lag_seconds",
            "How late the hub's event loop ran a timer, measured every second",
            registry=r,
        )
        self.registry.register(_ModelCollector(hub))
        self._processes: dict[str, Process] = {}
        self._jobs: dict[str, Job] = {}
        """Jobs not yet finished, as last seen."""
        self._finished: OrderedDict[str, None] = OrderedDict()
        """Jobs already counted as finished, newest last (bounded: FINISHED_KEPT)."""
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        """Label children by (metric, label values): ``labels()`` costs a lock and a
        validation per call, a quarter of the follower's time before this cache."""

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- following the hub ---------------------------------------------------------

    def baseline(self, snapshot: Snapshot) -> None:
        """Start from ``snapshot``: what it holds is not counted as news."""
        self._processes = {p.id: p for p in snapshot.processes}
        self._jobs = {j.id: j for j in snapshot.jobs if j.state not in ("done", "failed")}
        self._finished = OrderedDict.fromkeys(
            j.id for j in snapshot.jobs if j.state in ("done", "failed")
        )

    def apply(self, delta: Delta) -> None:
        self.commits.inc()
        self.changes.inc(delta.size)
        for change in delta.changes:
            if change.kind == "process":
                if change.op == "del":
                    self._processes.pop(change.id, None)
                elif isinstance(change.value, Process):
                    self._process(change.value)
            elif change.kind == "job":
                if change.op == "del":
                    self._jobs.pop(change.id, None)
                elif isinstance(change.value, Job):
                    self._job(change.value)

    def note(self, note: Notification) -> None:
        self._child(self.notes, note.source, note.severity).inc()

    def _process(self, new: Process) -> None:
        old = self._processes.get(new.id)
        self._processes[new.id] = new
        if old is not None and old.state != new.state:
            self._child(self.transitions, new.source, new.state).inc()
        if _starts(old, new):
            self._child(self.restarts, new.source, new.id).inc()

    def _job(self, new: Job) -> None:
        if new.id in self._finished:
            return  # counted when it finished (a later put only refines it)
        old = self._jobs.get(new.id)
        host = _host(new)
        finished = new.state in ("done", "failed")
        if finished:
            self._jobs.pop(new.id, None)
            self._finished[new.id] = None
            if len(self._finished) > FINISHED_KEPT:
                self._finished.popitem(last=False)
        else:
            self._jobs[new.id] = new
        # A job may be first seen finished: a fast one went waiting -> running -> done
        # between two commits, and is one change.
        begun = new.state in ("running", "local") or (finished and new.started is not None)
        if begun and (old is None or old.state == "waiting"):
            self._child(self.jobs_started, new.source, host).inc()
            requested = new.metrics.get("requested")
            if new.started is not None and requested is not None and new.state != "local":
                self._child(self.job_wait, new.source, host).observe(
                    max(0.0, new.started - requested)
                )
        if finished:
            self._child(self.jobs_finished, new.source, host, new.state).inc()
            if new.started is not None and new.ended is not None:
                self._child(self.job_duration, new.source, host).observe(
                    max(0.0, new.ended - new.started)
                )

    async def run(self) -> None:
        """Follow the hub until cancelled."""
        sub = self.hub.subscribe(max_backlog=10_000, client=False)
        lag = asyncio.get_running_loop().create_task(self._measure_lag(), name="metrics:lag")
        try:
            self.baseline(self.hub.snapshot())
            while True:
                items = await sub.next()
                if sub.resync:
                    self.resyncs.inc()
                    self.baseline(sub.take_resync())
                    continue
                for item in items:
                    if isinstance(item, Delta):
                        self.apply(item)
                    else:
                        self.note(item)
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag
            sub.close()

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_EVERY
            await asyncio.sleep(LAG_EVERY)
            self.loop_lag.set(max(0.0, loop.time() - due))

    # -- scraping ------------------------------------------------------------------

    def exposition(self, sees: Callable[[str], bool] | None = None) -> bytes:
        """The text exposition; with ``sees``, only samples of the sources it accepts
        (series without a ``source`` label are the hub's own and always shown)."""
        if sees is None:
            return generate_latest(self.registry)
        return generate_latest(_Filtered(self.registry, sees))


class _Filtered:
    """A registry's metrics, less the samples of sources the caller may not see."""

    def __init__(self, registry: CollectorRegistry, sees: Callable[[str], bool]) -> None:
        self._registry = registry
        self._sees = sees

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            kept.samples = [
                s
                for s in metric.samples
                if "source" not in s.labels or self._sees(s.labels["source"])
            ]
            yield kept


class _ModelCollector(Collector):
    """Gauges read from the model at each scrape."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def describe(self) -> Iterable[Metric]:
        return ()  # names are known only at collect time; nothing to check up front

    def collect(self) -> Iterable[Metric]:
        fleet = self.hub.fleet
        sources: list[Source] = [s for s in fleet.all("source") if isinstance(s, Source)]
        yield from _source_gauges(sources)
        yield from _process_gauges(fleet.all("process"), sources)
        yield from _node_gauges(fleet.all("node"))
        yield from _job_gauges(fleet.all("job"), sources)
        yield from self._hub_gauges()

    def _hub_gauges(self) -> Iterator[Metric]:
        hub = self.hub
        clients = hub.subscribers
        yield _gauge(
            "fleetwatch_hub_seq", "The sequence number of the last committed change", hub.fleet.seq
        )
        yield _gauge("fleetwatch_hub_stream_clients", "Stream clients following the hub", clients)
        yield _gauge(
            "fleetwatch_hub_lag_deltas",
            "The longest backlog of deltas a stream client has not read yet",
            hub.backlog(),
        )
        yield _gauge(
            "fleetwatch_hub_ring_deltas",
            "Deltas in the ring a resuming client can be sent",
            hub.fleet.ring_size,
        )
        yield _gauge(
            "fleetwatch_hub_entities",
            "Entities in the model",
            None,
            ("kind",),
            [((k,), float(hub.fleet.count(k))) for k in ("source", "node", "process", "job")],
        )
        yield _gauge(
            "fleetwatch_hub_uptime_seconds",
            "Seconds since the hub started",
            time.time() - hub.started,
        )


def _gauge(
    name: str,
    doc: str,
    value: float | None,
    labels: tuple[str, ...] = (),
    samples: Iterable[tuple[tuple[str, ...], float]] = (),
) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, value=value, labels=None if value is not None else labels)
    for label_values, v in samples:
        g.add_metric(list(label_values), v)
    return g


def _source_gauges(sources: list[Source]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "fleetwatch_source_up", "1 when the source is online, else 0", labels=["source", "kind"]
    )
    status = GaugeMetricFamily(
        "fleetwatch_source_status",
        "1 for the source's current status (connecting, online, offline, error), 0 for the others",
        labels=["source", "kind", "status"],
    )
    for s in sources:
        up.add_metric([s.id, s.kind], 1.0 if s.status == "online" else 0.0)
        for st in SOURCE_STATUSES:
            status.add_metric([s.id, s.kind, st], 1.0 if s.status == st else 0.0)
    yield up
    yield status


def _process_gauges(processes: Iterable[Any], sources: list[Source]) -> Iterator[Metric]:
    counts: dict[tuple[str, str], int] = {}
    for s in sources:
        if s.kind == "supervisor":
            for st in PROCESS_STATES:
                counts[(s.id, st)] = 0
    for p in processes:
        key = (p.source, p.state)
        counts[key] = counts.get(key, 0) + 1
    g = GaugeMetricFamily(
        "fleetwatch_processes", "Processes by supervisord state", labels=["source", "state"]
    )
    for (source, state), n in sorted(counts.items()):
        g.add_metric([source, state], float(n))
    yield g


def _node_gauges(nodes: Iterable[Any]) -> Iterator[Metric]:
    by_state: dict[tuple[str, str], int] = {}
    load = GaugeMetricFamily(
        "fleetwatch_node_load",
        "A compile host's load as the scheduler reports it (icecream, 0-1000)",
        labels=["source", "node"],
    )
    running = GaugeMetricFamily(
        "fleetwatch_node_jobs",
        "Jobs running on a compile host now, and its slots (icecream)",
        labels=["source", "node", "what"],
    )
    queue = GaugeMetricFamily(
        "fleetwatch_farm_queue",
        "Builds waiting in a build farm's queue, per ABI",
        labels=["source", "abi"],
    )
    builds = GaugeMetricFamily(
        "fleetwatch_farm_builds", "Builds a farm's master counts per ABI", labels=["source", "abi"]
    )
    for n in nodes:
        if not isinstance(n, Node):
            continue
        key = (n.source, n.state)
        by_state[key] = by_state.get(key, 0) + 1
        m = n.metrics
        if "load" in m and "max_jobs" in m:
            load.add_metric([n.source, n.name], float(m["load"]))
            running.add_metric([n.source, n.name, "running"], float(m.get("jobs", 0.0)))
            running.add_metric([n.source, n.name, "slots"], float(m["max_jobs"]))
        for key_, value in m.items():
            if key_.startswith("queue."):
                queue.add_metric([n.source, key_.removeprefix("queue.")], float(value))
            elif key_.startswith("builds."):
                builds.add_metric([n.source, key_.removeprefix("builds.")], float(value))
    states = GaugeMetricFamily("fleetwatch_nodes", "Nodes by state", labels=["source", "state"])
    for (source, state), count in sorted(by_state.items()):
        states.add_metric([source, state], float(count))
    yield states
    yield load
    yield running
    yield queue
    yield builds


def _job_gauges(jobs: Iterable[Any], sources: list[Source]) -> Iterator[Metric]:
    counts: dict[tuple[str, str], int] = {}
    for s in sources:
        if s.kind in ("icecream", "piwheels"):
            for st in JOB_STATES:
                counts[(s.id, st)] = 0
    for j in jobs:
        if j.state in JOB_STATES:
            key = (j.source, j.state)
            counts[key] = counts.get(key, 0) + 1
    g = GaugeMetricFamily(
        "fleetwatch_jobs", "Jobs not finished yet, by state", labels=["source", "state"]
    )
    for (source, state), n in sorted(counts.items()):
        g.add_metric([source, state], float(n))
    yield g
