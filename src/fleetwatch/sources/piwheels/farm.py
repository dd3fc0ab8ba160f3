"""A piwheels build farm as its master's status messages describe it. No I/O.

:class:`Farm` turns decoded status messages (:mod:`.protocol`) into fleetwatch
entities, reported to a sink (the hub's :class:`~fleetwatch.hub.SourceHandle`).
Everything is idempotent: a control ``HELLO`` makes the master replay its history to
*every* monitor (trap 2), so the same HELLO, STATS and last replies come again and
again; applying them twice changes nothing.

Times are the master's own clock (tag 0 datetimes, UTC) as Unix seconds: one clock
for the whole farm, and the one piw-monitor computes its Up Time and Task Time from.

The source (``kind = "piwheels"``, id = the config's source name) gets, through
:meth:`Farm.source_info`, ``info = {"dialect": "modern"|"legacy"|None,
"master_version": "0.17+"|"0.14-0.16"|None, "status_queue": ..., "control_queue": ...,
"slaves": N, "builds_running": N}`` (the source adds the queue addresses).

Master node
    id ``"{source}:master"``, name = the master's label (host name; ``"master"`` before
    its HELLO). ``state``: ``online``, or ``offline`` while the source says the master
    is silent (:meth:`Farm.set_offline`).

    labels: ``role`` = ``"master"``; ``paused`` = ``"true"``/``"false"`` (inferred, the
    protocol has no such field, trap 7: a slave got ``SLEEP true``, or we sent
    ``SLEEP null`` / ``PAUSE``; cleared by ``WAKE null`` / ``RESUME`` sent, or a
    ``SLEEP false`` or ``BUILD`` newer than the pause, or a master ``STATS`` more than
    10 s newer); ``label``, ``os_name``, ``os_version``, ``board_revision``,
    ``board_serial`` (HELLO); ``started`` (ISO 8601, UTC); ``dialect``; ``alert`` =
    the piw-monitor alert reasons joined by ``,`` (``silent``, ``disk``, ``mem``,
    ``swap``, ``load``, ``temperature``), ``""`` when none.

    metrics, every numeric STATS field under its protocol name: ``packages_built``,
    ``builds_last_hour`` (the total over ABIs), ``builds_time`` (s), ``builds_size``
    (bytes), ``builds_pending`` (total), ``new_last_hour``, ``files_count``,
    ``downloads_last_hour``, ``downloads_last_month``, ``downloads_all``,
    ``disk_size``, ``disk_free``, ``mem_size``, ``mem_free``, ``swap_size``,
    ``swap_free`` (bytes), ``load_average``, ``cpu_temp`` (°C), ``stats_timestamp``
    (the STATS ``timestamp``, Unix s); per ABI ``queue.{abi}`` (``builds_pending``)
    and ``builds.{abi}`` (``builds_last_hour``); ``started`` (Unix s) and
    ``last_seen`` (Unix s, the newest master timestamp seen); ``slaves`` (count). A
    legacy (0.14-0.16) map-shaped STATS gives the keys it has under their own names
    (``builds_count``, ``builds_success`` too; ``builds_time`` in s). Only the newest
    STATS (by its ``timestamp``) is shown: replayed history never goes back in time.

Build slave node
    id ``"{source}:slave:{slave_id}"``, name = the slave's label. ``state`` (piw-monitor's
    S column, with its names): ``starting`` (HELLO/ACK, no request yet), ``idle``
    (``SLEEP false``: nothing to build), ``sleeping`` (``SLEEP true``: the master is
    paused), ``building`` (after ``BUILD``), ``sending`` (after ``SEND``), ``cleaning``
    (after ``DONE``), ``terminating`` (after ``DIE``; the node is removed 5 s later, as
    piw-monitor does), ``dead`` (nothing heard for its ``busy_timeout``: the master
    will drop it), ``offline`` (the master itself is silent).

    labels: ``role`` = ``"slave"``, ``label``, ``abi`` (native ABI), ``platform``,
    ``py_version``, ``os_name``, ``os_version``, ``board_revision``, ``board_serial``,
    ``index_url`` (from ACK); ``task`` = ``"package version"`` while a build runs
    (BUILD…DONE), ``""`` otherwise; ``status`` = piw-monitor's Task text
    (``Initializing``, ``Waiting for jobs``, ``Building <pkg> <ver>``, ``Transferring
    file``, ``Cleaning up after build``, ``Terminating``); ``alert`` as for the
    master (thresholds of piw-monitor: disk/mem free < 10 %, swap free < 50 % when
    there is swap, load > 4, temperature > 78 °C, ``silent`` after half its busy
    timeout).

    metrics: ``slave_id``; ``first_seen``, ``last_seen`` (Unix s, master clock);
    ``build_timeout``, ``busy_timeout`` (s); ``clock_skew`` (s: the master's last-seen
    time minus the slave's own STATS timestamp, piw-monitor's "Clock Delta");
    ``task_started`` (Unix s, when the running build began; absent when none); and
    from the slave's newest STATS: ``disk_size``, ``disk_free``, ``mem_size``,
    ``mem_free``, ``swap_size``, ``swap_free`` (bytes), ``load_average``, ``cpu_temp``
    (°C), ``stats_timestamp`` (Unix s, slave clock). Legacy slaves have no STATS.

Builds (jobs)
    id ``"{source}:build:{n}"``, ``n`` counting from 1 per farm (it keeps counting
    across a master restart, so no id is reused while the hub runs). ``client`` = the
    slave node id, ``server`` = the master node id, ``file`` = ``"package version (abi)"``,
    ``started`` = the BUILD's timestamp, ``ended`` = the DONE's (or DIE's).
    ``state``: ``running`` from BUILD; then ``done`` after BUILD → SEND → DONE;
    ``failed`` otherwise. ``metrics["reason"]`` says why (:data:`REASONS`): 0 built,
    1 failed (BUILD → DONE with no SEND), 2 skipped (a SKIP for the slave or for all
    was sent while it ran), 3 killed (DIE while it ran), 4 lost (the master restarted,
    or the slave started another build with no DONE seen). Also ``files`` (SEND count)
    and ``duration`` (s). A replayed BUILD of the build the slave is already running
    is that build, not a new one. Finished builds enter the hub's finished-job ring.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from fleetwatch.model import ActionSpec, Entity, Job, Kind, Node
from fleetwatch.sources.piwheels.protocol import (
    Ack,
    Build,
    Control,
    Dialect,
    LegacyMasterStats,
    LegacySlaveHello,
    MasterHello,
    MasterStats,
    SlaveEvent,
    SlaveHello,
    SlaveStats,
    StatusMessage,
    dialect_of,
)

__all__ = [
    "ACTIONS",
    "MASTER_ACTIONS",
    "REASONS",
    "SLAVE_ACTIONS",
    "SLAVE_STATES",
    "Farm",
    "NotPossible",
    "plan",
]

REASONS: Final = {0: "built", 1: "failed", 2: "skipped", 3: "killed", 4: "lost"}
"""``Job.metrics["reason"]`` of a finished build → what it means."""

SLAVE_STATES: Final = (
    "starting",
    "idle",
    "sleeping",
    "building",
    "sending",
    "cleaning",
    "terminating",
    "dead",
    "offline",
)

REMOVE_AFTER: Final = 5.0
"""Seconds a slave stays (``terminating``) after its DIE, as in piw-monitor."""
STATS_PERIOD: Final = 10.0
"""The master publishes STATS every 10 s (not while paused)."""

_STATUS_TEXT: Final = {
    "HELLO": "Initializing",
    "ACK": "Initializing",
    "SLEEP": "Waiting for jobs",
    "SEND": "Transferring file",
    "DONE": "Cleaning up after build",
    "DIE": "Terminating",
}
_STATE_OF: Final = {
    "HELLO": "starting",
    "ACK": "starting",
    "SEND": "sending",
    "DONE": "cleaning",
    "DIE": "terminating",
}
_LEGACY_VERSIONS: Final = {"modern": "0.17+", "legacy": "0.14-0.16"}


# -------------------------------------------------------------------------------- actions

ACTIONS: Final = (
    ActionSpec(
        name="pause",
        title="Pause: SLEEP null - every master task pauses (PyPI polling, web pages, "
        "stats), idle slaves are told to sleep; builds already running go on",
        targets=("source", "node"),
        roles=("master",),
        hotkey="p",
    ),
    ActionSpec(
        name="halt",
        title="Halt: SLEEP null, then SKIP null - pause, and abort every running build "
        "at its slave's next report (5-10 s); skipped packages are not blacklisted",
        targets=("source", "node"),
        roles=("master",),
        confirm=True,
        hotkey="h",
    ),
    ActionSpec(
        name="resume",
        title="Resume: WAKE null on the master (tasks resume, every slave's kill/skip "
        "flags cleared), WAKE id on a slave (undoes a pending stop or kill)",
        targets=("source", "node"),
        roles=("master", "slave"),
        hotkey="r",
    ),
    ActionSpec(
        name="stop_slaves",
        title="Stop slaves: KILL null - every slave is told to exit at its next request "
        "for work; builds already running finish first",
        targets=("source", "node"),
        roles=("master",),
        confirm=True,
    ),
    ActionSpec(
        name="kill_slaves",
        title="Kill slaves: KILL null, then SKIP null - running builds are aborted at "
        "their next report and every slave exits",
        targets=("source", "node"),
        roles=("master",),
        confirm=True,
    ),
    ActionSpec(
        name="stop_master",
        title="Stop master: QUIT - the master exits (about 1 s); slaves keep running and "
        "come back after their 5-minute timeout when a master returns",
        targets=("source", "node"),
        roles=("master",),
        confirm=True,
        hotkey="t",
    ),
    ActionSpec(
        name="skip",
        title="Skip build: SKIP id - the slave's current build is aborted at its next "
        "report (5-10 s) and not recorded; the package is re-queued later",
        targets=("node",),
        roles=("slave",),
        confirm=True,
        hotkey="i",
    ),
    ActionSpec(
        name="stop",
        title="Stop slave: KILL id - the slave exits at its next request for work; a "
        "build already running finishes first (WAKE id undoes it until then)",
        targets=("node",),
        roles=("slave",),
        confirm=True,
        hotkey="s",
    ),
    ActionSpec(
        name="kill",
        title="Kill slave: KILL id, then SKIP id - its build is aborted at the next "
        "report and the slave exits",
        targets=("node",),
        roles=("slave",),
        confirm=True,
        hotkey="k",
    ),
)
"""The actions of a piwheels source, with what a real master does (piwheels.md §4.1).

Master actions (``roles`` ``("master",)``, :data:`MASTER_ACTIONS`) act on the source or
on its master node; slave actions (``("slave",)``, :data:`SLAVE_ACTIONS`) on a slave node,
and ``resume`` on either. There
is no per-slave pause: a real master sets a flag for ``SLEEP id`` that nothing reads
(verified live), so it is not offered. A 0.14-0.16 master knows only ``PAUSE``,
``RESUME``, ``KILL id`` and ``QUIT``: ``halt``, ``kill_slaves``, ``skip`` and ``kill``
fail there, ``stop_slaves`` sends ``KILL id`` to each known slave.
"""

MASTER_ACTIONS: Final = frozenset(a.name for a in ACTIONS if "master" in a.roles)
SLAVE_ACTIONS: Final = frozenset(a.name for a in ACTIONS if "slave" in a.roles)


class NotPossible(Exception):
    """An action that cannot be carried out on this target or master (the text says why)."""


def plan(
    name: str, slave: int | None, dialect: Dialect | None, slaves: tuple[int, ...] = ()
) -> list[Control]:
    """The control messages for action ``name`` on the master (``slave=None``) or a slave.

    ``dialect`` None (not known yet) is spoken to as modern. ``slaves`` are the known
    slave ids (a legacy master's ``stop_slaves`` kills them one by one).
    """
    legacy = dialect == "legacy"
    if slave is None:
        if name not in MASTER_ACTIONS:
            raise NotPossible(f"{name} acts on a build slave, not on the master")
        if legacy:
            if name == "pause":
                return [Control("PAUSE")]
            if name == "resume":
                return [Control("RESUME")]
            if name == "stop_master":
                return [Control("QUIT")]
            if name == "stop_slaves":
                if not slaves:
                    raise NotPossible("no build slave is known to stop")
                return [Control("KILL", s) for s in slaves]
            raise NotPossible(f"a 0.14-0.16 master has no SKIP: {name} is not possible")
        return {
            "pause": [Control("SLEEP", None)],
            "halt": [Control("SLEEP", None), Control("SKIP", None)],
            "resume": [Control("WAKE", None)],
            "stop_slaves": [Control("KILL", None)],
            "kill_slaves": [Control("KILL", None), Control("SKIP", None)],
            "stop_master": [Control("QUIT")],
        }[name]
    if name not in SLAVE_ACTIONS:
        if name == "pause":
            raise NotPossible(
                "a piwheels master cannot pause one slave (SLEEP id does nothing): "
                "pause the master, or stop the slave"
            )
        raise NotPossible(f"{name} acts on the master, not on a build slave")
    if legacy:
        if name == "stop":
            return [Control("KILL", slave)]
        raise NotPossible(f"a 0.14-0.16 master has no SKIP or WAKE: {name} is not possible")
    return {
        "skip": [Control("SKIP", slave)],
        "stop": [Control("KILL", slave)],
        "kill": [Control("KILL", slave), Control("SKIP", slave)],
        "resume": [Control("WAKE", slave)],
    }[name]


class Sink(Protocol):
    def put(self, entity: Entity) -> bool: ...

    def delete(self, kind: Kind, id: str) -> bool: ...


def _ts(value: dt.datetime) -> float:
    return value.timestamp()


@dataclass(slots=True)
class _Build:
    n: int
    slave: int
    package: str
    version: str
    abi: str
    started: float
    files: int = 0
    skip: bool = False
    state: str = "running"
    ended: float | None = None
    reason: int | None = None


@dataclass(slots=True)
class _Slave:
    id: int
    first_seen: float
    last_seen: float
    hello: SlaveHello | LegacySlaveHello | None = None
    index_url: str = ""
    message: str = "HELLO"
    state: str = "starting"
    status: str = "Initializing"
    stats: SlaveStats | None = None
    stats_seen: float = 0.0
    """The master's last-seen time when the newest stats came (for the clock skew)."""
    build: _Build | None = None
    died: float | None = None
    """Hub time (the farm's clock) of the DIE; removed REMOVE_AFTER later."""


@dataclass(slots=True)
class _Master:
    hello: MasterHello | None = None
    stats: MasterStats | None = None
    legacy_stats: LegacyMasterStats | None = None
    last_seen: float = 0.0
    paused: bool = False
    paused_at: float = 0.0
    """Master time of the evidence for ``paused``."""
    extra: dict[str, float] = field(default_factory=dict)


class Farm:
    """The state of one master; :meth:`reset` when the master restarts."""

    def __init__(self, source: str, sink: Sink, *, clock: Callable[[], float] = time.time):
        self.source = source
        self.sink = sink
        self.clock = clock
        self.master_id = f"{source}:master"
        self.dialect: Dialect | None = None
        self.master = _Master()
        self.slaves: dict[int, _Slave] = {}
        self.offline = False
        self._next_build = 1
        self.messages = 0

    # -- ids ---------------------------------------------------------------------------------

    def slave_node_id(self, slave_id: int) -> str:
        return f"{self.source}:slave:{slave_id}"

    def build_job_id(self, n: int) -> str:
        return f"{self.source}:build:{n}"

    @property
    def started(self) -> dt.datetime | None:
        """When the master started (its HELLO), None before that."""
        return self.master.hello.started if self.master.hello else None

    def source_info(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "master_version": _LEGACY_VERSIONS.get(self.dialect or ""),
            "slaves": len(self.slaves),
            "builds_running": sum(1 for s in self.slaves.values() if s.build is not None),
        }

    # -- applying messages --------------------------------------------------------------------

    def apply(self, msg: StatusMessage) -> bool:
        """Apply one status message; True when it showed a new master (``reset`` done)."""
        self.messages += 1
        restarted = False
        proved = dialect_of(msg)
        if proved is not None:
            self.dialect = proved
        if isinstance(msg, MasterHello):
            old = self.master.hello
            if old is not None and old.started != msg.started:
                self.reset()
                restarted = True
            self.master.hello = msg
            self._seen(_ts(msg.started))
            self._put_master()
        elif isinstance(msg, MasterStats):
            t = _ts(msg.timestamp)
            self._seen(t)
            if self.master.paused and t > self.master.paused_at + STATS_PERIOD:
                self.master.paused = False  # STATS stop while paused
            if self.master.stats is None or msg.timestamp > self.master.stats.timestamp:
                self.master.stats = msg
            self._put_master()
        elif isinstance(msg, LegacyMasterStats):
            self.master.legacy_stats = msg
            self._put_master()
        elif isinstance(msg, SlaveEvent):
            self._slave_event(msg)
        return restarted

    def _seen(self, t: float) -> None:
        if t > self.master.last_seen:
            self.master.last_seen = t

    def _slave_event(self, msg: SlaveEvent) -> None:
        t = _ts(msg.timestamp)
        self._seen(t)
        slave = self.slaves.get(msg.slave_id)
        name, data = msg.message, msg.data
        if slave is None:
            if name == "DIE":
                return  # a slave we never knew of left
            slave = self.slaves[msg.slave_id] = _Slave(msg.slave_id, first_seen=t, last_seen=t)
            self._put_master()  # its slave count
        if t > slave.last_seen:
            slave.last_seen = t
        if name == "HELLO":
            assert isinstance(data, (SlaveHello, LegacySlaveHello))
            slave.hello = data
            slave.first_seen = t  # a HELLO's timestamp is the first-seen time
            if slave.build is None and slave.died is None and slave.message in ("HELLO", "ACK"):
                slave.state, slave.status = "starting", "Initializing"
        elif name == "STATS":
            assert isinstance(data, SlaveStats)
            if slave.stats is None or data.timestamp > slave.stats.timestamp:
                slave.stats = data
                slave.stats_seen = t
        else:
            self._reply(slave, name, data, t)
        self._put_slave(slave)

    def _reply(self, slave: _Slave, name: str, data: Any, t: float) -> None:
        """A reply the master sent the slave (or a replay of its last one)."""
        if name == "CONT":
            return
        slave.message = name
        if name == "ACK":
            assert isinstance(data, Ack)
            slave.index_url = data.index_url
        elif name == "SLEEP":
            if data is True:
                if not self.master.paused:
                    self.master.paused, self.master.paused_at = True, t
                    self._put_master()
                elif t > self.master.paused_at:
                    self.master.paused_at = t
            elif self.master.paused and t > self.master.paused_at:
                self.master.paused = False
                self._put_master()
            self._end_build(slave, t, lost=True)
        elif name == "BUILD":
            assert isinstance(data, Build)
            key = (data.package, data.version)
            if self.master.paused and t > self.master.paused_at:
                self.master.paused = False
                self._put_master()
            if slave.build is None or (slave.build.package, slave.build.version) != key:
                # else: a replay of the build it is running (the last reply, trap 2)
                self._end_build(slave, t, lost=True)
                abi = slave.hello.abi if slave.hello else ""
                slave.build = _Build(self._next_build, slave.id, *key, abi=abi, started=t)
                self._next_build += 1
                self._put_job(slave.build)
        elif name == "SEND":
            if slave.build is not None:
                slave.build.files += 1
                self._put_job(slave.build)
        elif name == "DONE":
            self._end_build(slave, t)
        elif name == "DIE":
            self._end_build(slave, t, killed=True)
            if slave.died is None:
                slave.died = self.clock()
        self._derive_state(slave)

    def _derive_state(self, slave: _Slave) -> None:
        name = slave.message
        if name == "SLEEP":
            paused = self.master.paused
            slave.state, slave.status = ("sleeping" if paused else "idle"), "Waiting for jobs"
        elif name == "BUILD":
            b = slave.build
            slave.state = "building"
            slave.status = f"Building {b.package} {b.version}" if b else "Building"
        else:
            slave.state = _STATE_OF.get(name, slave.state)
            slave.status = _STATUS_TEXT.get(name, slave.status)

    def _end_build(
        self, slave: _Slave, t: float, *, lost: bool = False, killed: bool = False
    ) -> None:
        b = slave.build
        if b is None or (lost and t < b.started):
            return  # nothing running, or an older message (a replay) that cannot end it
        slave.build = None
        b.ended = max(t, b.started)
        if killed:
            b.state, b.reason = "failed", 3
        elif lost:
            b.state, b.reason = "failed", 4
        elif b.skip:
            b.state, b.reason = "failed", 2
        elif b.files:
            b.state, b.reason = "done", 0
        else:
            b.state, b.reason = "failed", 1
        self._put_job(b)

    # -- our own commands, the master's restarts, silence ---------------------------------------

    def sent(self, control: Control) -> None:
        """Note a control message we sent: what it implies that no status message says."""
        name, slave = control.name, control.slave
        if (name == "SLEEP" and slave is None) or name == "PAUSE":
            if not self.master.paused:
                self.master.paused, self.master.paused_at = True, self.master.last_seen
                self._put_master()
        elif (name == "WAKE" and slave is None) or name == "RESUME":
            if self.master.paused:
                self.master.paused = False
                self._put_master()
            for s in self.slaves.values():
                if s.state == "sleeping":
                    s.state = "idle"
                    self._put_slave(s)
        elif name == "SKIP":
            for s in self.slaves.values():
                if s.build is not None and (slave is None or s.id == slave):
                    s.build.skip = True

    def reset(self) -> None:
        """The master restarted (a new ``started``): its slaves and their builds are gone."""
        t = self.master.last_seen
        for slave in list(self.slaves.values()):
            self._end_build(slave, t, lost=True)
            self.sink.delete("node", self.slave_node_id(slave.id))
        self.slaves.clear()
        self.master = _Master()

    def set_offline(self, offline: bool) -> None:
        """The master went silent (True) or was heard again (False)."""
        if offline == self.offline:
            return
        self.offline = offline
        self._put_master()
        for slave in self.slaves.values():
            self._put_slave(slave)

    def tick(self) -> None:
        """Remove slaves whose DIE is REMOVE_AFTER old; re-derive silence (call every ~1 s)."""
        now = self.clock()
        for slave in list(self.slaves.values()):
            if slave.died is not None and now - slave.died >= REMOVE_AFTER:
                del self.slaves[slave.id]
                self.sink.delete("node", self.slave_node_id(slave.id))
                self._put_master()
            else:
                self._put_slave(slave)  # alert/dead follow the master's clock

    # -- entities -----------------------------------------------------------------------------

    def master_node(self) -> Node:
        m = self.master
        hello = m.hello
        labels: dict[str, str] = {
            "role": "master",
            "paused": "true" if m.paused else "false",
            "dialect": self.dialect or "",
        }
        metrics: dict[str, float] = {"slaves": len(self.slaves)}
        if m.last_seen:
            metrics["last_seen"] = m.last_seen
        if hello is not None:
            labels.update(
                label=hello.label,
                os_name=hello.os_name,
                os_version=hello.os_version,
                board_revision=hello.board_revision,
                board_serial=hello.board_serial,
                started=hello.started.isoformat().replace("+00:00", "Z"),
            )
            metrics["started"] = _ts(hello.started)
        s = m.stats
        alerts: list[str] = []
        if self.offline:
            alerts.append("silent")
        if s is not None:
            metrics.update(
                stats_timestamp=_ts(s.timestamp),
                packages_built=s.packages_built,
                builds_last_hour=sum(s.builds_last_hour.values()),
                builds_time=s.builds_time.total_seconds(),
                builds_size=s.builds_size,
                builds_pending=sum(s.builds_pending.values()),
                new_last_hour=s.new_last_hour,
                files_count=s.files_count,
                downloads_last_hour=s.downloads_last_hour,
                downloads_last_month=s.downloads_last_month,
                downloads_all=s.downloads_all,
                disk_size=s.disk_size,
                disk_free=s.disk_free,
                mem_size=s.mem_size,
                mem_free=s.mem_free,
                swap_size=s.swap_size,
                swap_free=s.swap_free,
                load_average=s.load_average,
                cpu_temp=s.cpu_temp,
            )
            for abi, n in s.builds_pending.items():
                metrics[f"queue.{abi}"] = n
            for abi, n in s.builds_last_hour.items():
                metrics[f"builds.{abi}"] = n
            alerts += _alerts(s, 70.0)
        elif m.legacy_stats is not None:
            for key, value in m.legacy_stats.values.items():
                metrics[key] = (
                    value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
                )
        labels["alert"] = ",".join(alerts)
        return Node(
            id=self.master_id,
            source=self.source,
            name=hello.label if hello else "master",
            state="offline" if self.offline else "online",
            since=_ts(hello.started) if hello else 0.0,
            labels=labels,
            metrics=metrics,
        )

    def slave_node(self, slave: _Slave) -> Node:
        h = slave.hello
        labels: dict[str, str] = {
            "role": "slave",
            "label": h.label if h else "",
            "abi": h.abi if h else "",
            "platform": h.platform if h else "",
            "py_version": h.py_version if h else "",
            "os_name": getattr(h, "os_name", ""),
            "os_version": getattr(h, "os_version", ""),
            "board_revision": getattr(h, "board_revision", ""),
            "board_serial": getattr(h, "board_serial", ""),
            "index_url": slave.index_url,
            "task": f"{slave.build.package} {slave.build.version}" if slave.build else "",
            "status": slave.status,
        }
        metrics: dict[str, float] = {
            "slave_id": slave.id,
            "first_seen": slave.first_seen,
            "last_seen": slave.last_seen,
        }
        busy_timeout = 300.0
        if h is not None:
            metrics["build_timeout"] = h.build_timeout.total_seconds()
            if isinstance(h, SlaveHello):
                busy_timeout = h.busy_timeout.total_seconds()
                metrics["busy_timeout"] = busy_timeout
        if slave.build is not None:
            metrics["task_started"] = slave.build.started
        alerts: list[str] = []
        st = slave.stats
        if st is not None:
            metrics.update(
                stats_timestamp=_ts(st.timestamp),
                clock_skew=slave.stats_seen - _ts(st.timestamp),
                disk_size=st.disk_size,
                disk_free=st.disk_free,
                mem_size=st.mem_size,
                mem_free=st.mem_free,
                swap_size=st.swap_size,
                swap_free=st.swap_free,
                load_average=st.load_average,
                cpu_temp=st.cpu_temp,
            )
            alerts += _alerts(st, 78.0)
        state = slave.state
        silence = self.master.last_seen - slave.last_seen
        if slave.died is None:
            if silence > busy_timeout:
                state = "dead"
            if silence > busy_timeout / 2:
                alerts.insert(0, "silent")
        if self.offline:
            state = "offline"
        labels["alert"] = ",".join(alerts)
        return Node(
            id=self.slave_node_id(slave.id),
            source=self.source,
            name=labels["label"] or f"slave {slave.id}",
            state=state,
            since=slave.first_seen,
            labels=labels,
            metrics=metrics,
        )

    def _put_master(self) -> None:
        m = self.master
        if m.last_seen or m.hello or m.stats or m.legacy_stats or self.slaves:
            self.sink.put(self.master_node())
        # else: never heard of (a source that is offline from the start has no master node)

    def _put_slave(self, slave: _Slave) -> None:
        self.sink.put(self.slave_node(slave))

    def _put_job(self, b: _Build) -> None:
        metrics: dict[str, float] = {"files": b.files}
        if b.ended is not None:
            metrics["duration"] = b.ended - b.started
        if b.reason is not None:
            metrics["reason"] = b.reason
        self.sink.put(
            Job(
                id=self.build_job_id(b.n),
                source=self.source,
                client=self.slave_node_id(b.slave),
                server=self.master_id,
                state=b.state,
                file=f"{b.package} {b.version} ({b.abi})" if b.abi else f"{b.package} {b.version}",
                started=b.started,
                ended=b.ended,
                metrics=metrics,
            )
        )


def _alerts(s: MasterStats | SlaveStats, hot: float) -> list[str]:
    """piw-monitor's alert checks on disk, memory, swap, load and temperature."""
    out: list[str] = []
    if s.disk_size and s.disk_free / s.disk_size < 0.1:
        out.append("disk")
    if s.mem_size and s.mem_free / s.mem_size < 0.1:
        out.append("mem")
    if s.swap_size and s.swap_free / s.swap_size < 0.5:
        out.append("swap")
    if s.load_average > 4.0:
        out.append("load")
    if s.cpu_temp > hot:
        out.append("temperature")
    return out
