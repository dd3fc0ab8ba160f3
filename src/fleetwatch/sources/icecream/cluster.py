"""An icecream cluster as the scheduler's monitor messages describe it. No I/O.

:class:`Cluster` turns messages into fleetwatch entities, reported to a sink:

* a compile host is a node ``SOURCE/NAME``. Hosts are keyed by *name*, because a
  daemon that logs in again gets a new host id (trap 12); its counters carry over,
  also across the ``State:Offline`` that comes between (within one scheduler run).
  Every MON_STATS key is kept: text ones as labels, numbers as metrics (``LoadAvg10``
  is really the 15-minute average and becomes ``loadavg15``). ``State:Offline``
  removes the host.
* a job is ``SOURCE#ID``: ``waiting`` (MON_GET_CS) → ``running`` (MON_JOB_BEGIN) →
  ``done`` or ``failed`` (MON_JOB_DONE, by exit code); ``local`` (MON_LOCAL_JOB_BEGIN)
  → ``done`` (JOB_LOCAL_DONE). A BEGIN or DONE for an id never seen (a monitor that
  joined mid-build) is applied as far as it can be, never an error. Times are the
  hub's receive times: ``stime`` values come from other machines' clocks (trap 14).
* per-host counters (metrics): ``jobs`` running there now, ``jobs_done``,
  ``jobs_failed``, ``local_jobs``, ``requested`` (as a client), ``busy_msec``,
  ``avg_msec``, ``bytes_in``, ``bytes_out``; and cluster totals in :attr:`totals`,
  including the queue wait from request to begin. A job's ``metrics.lang`` is the
  language code (:data:`LANGS`), ``metrics.requested`` when it was asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetwatch.model import Entity, Job, Kind, Node, positional
from fleetwatch.sources.icecream.protocol import (
    JobLocalDone,
    Message,
    MonGetCS,
    MonJobBegin,
    MonJobDone,
    MonLocalJobBegin,
    MonStats,
)

__all__ = ["LANGS", "Cluster", "parse_number"]

LANGS = {0: "C", 1: "C++", 2: "ObjC", 3: "ObjC++", 4: "Custom"}

# MON_STATS keys: text → label name; number → metric name.
_LABELS = {
    "Platform": "platform",
    "Version": "protocol",
    "Features": "features",
    "NoRemote": "no_remote",
}
_METRICS = {
    "MaxJobs": "max_jobs",
    "Speed": "speed",
    "Load": "load",
    "LoadAvg1": "loadavg1",
    "LoadAvg5": "loadavg5",
    "LoadAvg10": "loadavg15",
    "FreeMem": "free_mem_mib",
}
_COUNTERS = (
    "jobs",
    "jobs_done",
    "jobs_failed",
    "local_jobs",
    "local_done",
    "requested",
    "busy_msec",
    "bytes_in",
    "bytes_out",
)


def parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN is no number


class Sink(Protocol):
    def put(self, entity: Entity) -> bool: ...

    def delete(self, kind: Kind, id: str) -> bool: ...


@dataclass(slots=True)
class _Host:
    name: str
    hostid: int
    address: str = ""
    stats: dict[str, str] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    since: float = 0.0
    blocked: bool = False
    stats_at: float = 0.0
    """When the scheduler last sent this host's stats (its load is as of then)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Derived from ``stats`` when they change (not on every counter bump)."""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Job:
    id: int
    client: str = ""
    server: str = ""
    state: str = "waiting"
    file: str = ""
    requested: float | None = None
    started: float | None = None
    ended: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def _derive(host: _Host) -> None:
    """A host's labels and stats metrics from its MON_STATS keys (all of them are kept)."""
    stats = host.stats
    labels = {label: stats[key] for key, label in _LABELS.items() if key in stats}
    metrics: dict[str, float] = {}
    for key, metric in _METRICS.items():
        if key in stats:
            value = parse_number(stats[key])
            if value is not None:
                metrics[metric] = value
    # Keys icecream may add later are kept too, as labels.
    for key, text in stats.items():
        if key not in _LABELS and key not in _METRICS and key not in ("Name", "IP", "State"):
            labels[key.lower()] = text
    if host.hostid >= 0:
        labels["hostid"] = str(host.hostid)
    host.labels, host.metrics = labels, metrics


def _add_finished(counters: dict[str, float], msg: MonJobDone) -> None:
    """Count a finished job into a host's counters or the cluster's totals."""
    counters["jobs_failed" if msg.exitcode != 0 else "jobs_done"] += 1
    counters["busy_msec"] += msg.real_msec
    counters["bytes_in"] += msg.in_compressed
    counters["bytes_out"] += msg.out_compressed


class Cluster:
    """The state of one scheduler session; create a new one on every reconnect."""

    def __init__(
        self,
        source: str,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        deferred: bool = False,
        hosts_every: float = 0.0,
    ) -> None:
        """``deferred``: changed hosts and jobs wait for :meth:`publish` (once per read
        batch), so a busy cluster sends a host once per batch, not once per message of
        each of its jobs, and a job that went waiting → running (→ done) within one
        batch once, in its last state."""
        self.source = source
        self.sink = sink
        self.clock = clock
        self.deferred = deferred
        self._dirty: set[str] = set()
        self._dirty_jobs: dict[int, _Job] = {}
        self.hosts_every = hosts_every
        self._hosts_at = float("-inf")
        self.hosts: dict[str, _Host] = {}
        """By name."""
        self.ids: dict[int, str] = {}
        """Host id → name (ids are per scheduler run)."""
        self._retired: dict[str, _Host] = {}
        """Hosts that went offline, by name: their counters carry over a re-login, and a
        host blocked after it went (``blockcs`` takes a host offline first) is shown
        with what was last known of it."""
        self.jobs: dict[int, _Job] = {}
        """Jobs not finished yet."""
        self.totals: dict[str, float] = dict.fromkeys(
            (
                "jobs_done",
                "jobs_failed",
                "local_jobs",
                "local_done",
                "busy_msec",
                "bytes_in",
                "bytes_out",
                "queue_msec",
                "queued",
            ),
            0,
        )
        self.messages = 0
        self.on_totals: Callable[[dict[str, float]], None] | None = None
        """Called by :meth:`publish` with :meth:`summary` when a counter changed, in the
        same synchronous step as the jobs and hosts it counts, so they are committed
        together and one snapshot's numbers agree (issue 12)."""
        self._counted: set[str] = set()
        """Hosts whose counters changed since the last publish (sent with the jobs)."""
        self._totals_dirty = False

    # -- the dispatcher ---------------------------------------------------------------------

    def apply(self, msg: Message) -> None:
        self.messages += 1
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(self, msg)

    def _stats(self, msg: MonStats) -> None:
        stats = msg.stats
        if stats.get("State") == "Offline":
            name = self.ids.pop(msg.hostid, None)
            host = self.hosts.get(name) if name else None
            if host is not None and host.hostid == msg.hostid:
                if host.blocked:
                    self._put_host(host)  # stays, shown blocked
                else:
                    del self.hosts[host.name]
                    self._retired[host.name] = host  # for a later re-login or block
                    self._dirty.discard(host.name)
                    self.sink.delete("node", self._node_id(host.name))
            return
        name = stats.get("Name") or self.ids.get(msg.hostid) or f"host-{msg.hostid}"
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = _Host(name=name, hostid=msg.hostid, since=self.clock())
            if name in self._retired:
                host.counters = self._retired.pop(name).counters
        elif host.hostid != msg.hostid:
            self.ids.pop(host.hostid, None)  # the same daemon, logged in again
            host.hostid = msg.hostid
            host.since = self.clock()
        self.ids[msg.hostid] = name
        # A snapshot or login STATS lacks LoadAvg*/FreeMem: keep the last known ones.
        host.stats.update(stats)
        host.stats_at = self.clock()
        host.address = stats.get("IP", host.address)
        _derive(host)
        self._put_host(host)

    def _get_cs(self, msg: MonGetCS) -> None:
        client = self._host_name(msg.client_id)
        job = self.jobs.get(msg.job_id)
        if job is None:
            job = self.jobs[msg.job_id] = _Job(msg.job_id)
        job.client, job.file = client, msg.filename
        job.requested = self.clock()
        job.metrics["lang"] = msg.lang
        job.metrics["requested"] = job.requested
        self._count(client, "requested", 1)
        self._put_job(job)

    def _begin(self, msg: MonJobBegin) -> None:
        job = self.jobs.get(msg.job_id)
        if job is None:
            job = self.jobs[msg.job_id] = _Job(msg.job_id)  # joined mid-build
        now = self.clock()
        job.server, job.state, job.started = self._host_name(msg.hostid), "running", now
        if job.requested is not None:
            wait = (now - job.requested) * 1000
            job.metrics["queue_msec"] = wait
            self.totals["queue_msec"] += wait
            self.totals["queued"] += 1
        self._totals_dirty = True
        self._count(job.server, "jobs", 1)
        self._put_job(job)

    def _done(self, msg: MonJobDone) -> None:
        job = self.jobs.pop(msg.job_id, None)
        if job is None:
            return  # never seen: nothing to show (no file, no client)
        failed = msg.exitcode != 0
        job.state = "failed" if failed else "done"
        job.ended = self.clock()
        job.metrics.update(
            exitcode=msg.exitcode,
            real_msec=msg.real_msec,
            user_msec=msg.user_msec,
            sys_msec=msg.sys_msec,
            pfaults=msg.pfaults,
            in_compressed=msg.in_compressed,
            in_uncompressed=msg.in_uncompressed,
            out_compressed=msg.out_compressed,
            out_uncompressed=msg.out_uncompressed,
            flags=msg.flags,
        )
        server = job.server
        if server and job.started is not None:
            counters = self._counters(server)
            if counters is not None:
                counters["jobs"] = max(0, counters["jobs"] - 1)
                _add_finished(counters, msg)
                self._put_counted(self.hosts[server])
        _add_finished(self.totals, msg)
        self._totals_dirty = True
        self._put_job(job)

    def _local_begin(self, msg: MonLocalJobBegin) -> None:
        host = self._host_name(msg.hostid)
        job = self.jobs[msg.job_id] = _Job(
            msg.job_id, client=host, server=host, state="local", file=msg.file
        )
        job.started = job.requested = self.clock()
        self._count(host, "local_jobs", 1)
        self.totals["local_jobs"] += 1
        self._put_job(job)

    def _local_done(self, msg: JobLocalDone) -> None:
        job = self.jobs.pop(msg.job_id, None)
        if job is None:
            return
        # The protocol carries no exit code for a local job: it finished, and nobody
        # knows how. ``done`` with ``result_unknown`` — never shown as a success.
        job.state, job.ended = "done", self.clock()
        job.metrics["result_unknown"] = 1
        if job.started is not None:
            job.metrics["real_msec"] = (job.ended - job.started) * 1000
        self.totals["local_done"] += 1
        self._count(job.client, "local_done", 1)
        self._put_job(job)

    _handlers: dict[type, Callable[[Cluster, Any], None]] = {
        MonStats: _stats,
        MonGetCS: _get_cs,
        MonJobBegin: _begin,
        MonJobDone: _done,
        MonLocalJobBegin: _local_begin,
        JobLocalDone: _local_done,
    }

    # -- blocked hosts (from the text port) ------------------------------------------------

    def set_blocked(self, names: set[str]) -> None:
        """Mark exactly ``names`` blocked; a blocked host the scheduler dropped stays, shown so."""
        for host in list(self.hosts.values()):
            if host.blocked and host.name not in names:
                host.blocked = False
                if self.ids.get(host.hostid) != host.name:  # not logged in: only a placeholder
                    del self.hosts[host.name]
                    self._dirty.discard(host.name)
                    self.sink.delete("node", self._node_id(host.name))
                else:
                    self._put_host(host)
        for name in names:
            known = self.hosts.get(name)
            if known is None:
                known = self.hosts[name] = _Host(name=name, hostid=-1, since=self.clock())
                gone = self._retired.pop(name, None)
                if gone is not None:  # keep what was known of it (address, stats, counters)
                    known.address, known.stats, known.counters, known.stats_at = (
                        gone.address,
                        gone.stats,
                        gone.counters,
                        gone.stats_at,
                    )
                    known.counters["jobs"] = 0
                    _derive(known)
            if not known.blocked:
                known.blocked = True
                known.since = self.clock()
                self._put_host(known)

    # -- entities ---------------------------------------------------------------------------

    def _node_id(self, name: str) -> str:
        return f"{self.source}/{name}"

    def _host_name(self, hostid: int) -> str:
        return self.ids.get(hostid, f"host-{hostid}" if hostid else "")

    def _counters(self, name: str) -> dict[str, float] | None:
        host = self.hosts.get(name)
        return host.counters if host is not None else None

    def _count(self, name: str, counter: str, delta: float) -> None:
        self._totals_dirty = True
        host = self.hosts.get(name)
        if host is not None:
            host.counters[counter] += delta
            self._put_counted(host)

    def _put_counted(self, host: _Host) -> None:
        """A host whose counters changed: with ``deferred`` it goes out with the jobs."""
        if self.deferred:
            self._counted.add(host.name)
        else:
            self._emit_host(host)

    def publish(self) -> None:
        """Send the jobs changed since the last call, with the hosts and totals that
        count them; other host changes (stats) when they are due (with ``deferred``)."""
        jobs, self._dirty_jobs = self._dirty_jobs, {}
        for job in jobs.values():
            self._emit_job(job)
        counted, self._counted = self._counted, set()
        for name in counted:
            host = self.hosts.get(name)
            if host is not None:
                self._dirty.discard(name)
                self._emit_host(host)
        if self._totals_dirty:
            self._totals_dirty = False
            if self.on_totals is not None:
                self.on_totals(self.summary())
        if self._dirty and self.clock() - self._hosts_at >= self.hosts_every:
            self.publish_hosts()

    def summary(self) -> dict[str, float]:
        """``source.info.totals``: the cumulative counters of this session (since the
        hub connected to the scheduler) and the jobs of each state now. Every name is
        defined in docs/architecture.md (Counters)."""
        totals = dict(self.totals)
        queued = totals.pop("queued")
        totals["avg_queue_msec"] = totals.pop("queue_msec") / queued if queued else 0.0
        finished = totals["jobs_done"] + totals["jobs_failed"]
        totals["avg_msec"] = totals["busy_msec"] / finished if finished else 0.0
        now = dict.fromkeys(("waiting", "running", "local"), 0)
        for j in self.jobs.values():
            now[j.state] = now.get(j.state, 0) + 1
        totals["waiting_jobs"] = now["waiting"]
        totals["running_jobs"] = now["running"]
        totals["local_now"] = now["local"]
        totals["active_jobs"] = now["running"] + now["local"]
        return totals

    @property
    def hosts_pending(self) -> bool:
        """Changed hosts wait for :meth:`publish_hosts`."""
        return bool(self._dirty)

    def publish_hosts(self) -> None:
        self._hosts_at = self.clock()
        dirty, self._dirty = self._dirty, set()
        for name in dirty:
            host = self.hosts.get(name)
            if host is not None:
                self._emit_host(host)

    def _put_host(self, host: _Host) -> None:
        if self.deferred:
            self._dirty.add(host.name)
        else:
            self._emit_host(host)

    def _emit_host(self, host: _Host) -> None:
        counters = host.counters
        done = counters["jobs_done"] + counters["jobs_failed"]
        metrics = {
            **host.metrics,
            **counters,
            "avg_msec": counters["busy_msec"] / done if done else 0.0,
        }
        if host.blocked and self.ids.get(host.hostid) != host.name and host.stats_at:
            # Blocked and dropped by the scheduler: its load is the last it sent.
            metrics["stale_since"] = host.stats_at
        labels = host.labels
        if host.hostid >= 0 and labels.get("hostid") != str(host.hostid):
            labels = host.labels = {**labels, "hostid": str(host.hostid)}
        self.sink.put(
            _new_node(
                self._node_id(host.name),
                self.source,
                host.name,
                host.address,
                "blocked" if host.blocked else "online",
                host.since,
                labels,
                metrics,
            )
        )

    def _put_job(self, job: _Job) -> None:
        if self.deferred:
            self._dirty_jobs[job.id] = job
        else:
            self._emit_job(job)

    def _emit_job(self, job: _Job) -> None:
        self.sink.put(
            _new_job(
                f"{self.source}#{job.id}",
                self.source,
                job.client,
                job.server,
                job.state,
                job.file,
                job.started,
                job.ended,
                dict(job.metrics),
            )
        )


_new_job = positional(Job)
_new_node = positional(Node)
