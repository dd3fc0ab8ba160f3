"""pyicemon's ``Monitor``: the cluster's hosts and running jobs, kept from the scheduler's messages.

::

    from fleetwatch.icecream import Monitor
    from fleetwatch.publishers import WebsocketPublisher

    mon = Monitor("scheduler.example", 8765)  # connects, negotiates, logs in
    mon.add_publisher(WebsocketPublisher(port=9999))
    mon.run()  # returns when the scheduler closes the connection

State, rebuilt from nothing for every connection (host and job ids belong to
one scheduler run):

* ``cs``: ``{host id: CS}``, one per compile host the scheduler knows, with
  ``id``, ``name``, ``ip``, ``maxjobs``, ``stats`` (its last ``Key:Value`` set) and
  ``active_jobs()``. A host leaves when its ``State:Offline`` arrives.
* ``jobs``: ``{job id: Job}``, the jobs not yet done, with ``id``, ``filename``,
  ``client_id`` (the submitting host), ``host_id`` (the building host; 0 until the
  job begins) and ``local``.

After every message each publisher's ``publish(monitor)`` is called, in the
thread that runs :meth:`Monitor.run`; a publisher that raises is logged, not
fatal. Where pyicemon crashed or drifted, this one does not: a job that begins or
ends without having been announced (we connected mid-build) is ignored, a local
job on a host not yet known is kept and counted once the host appears, and a
host's repeated MON_STATS (every monitor login re-sends them) update it in place
instead of forgetting its running jobs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from fleetwatch.icecream.connection import DEFAULT_PORT, Connection, ConnectionClosed
from fleetwatch.sources.icecream.protocol import (
    MAX_VERSION,
    End,
    JobLocalDone,
    Message,
    MonGetCS,
    MonJobBegin,
    MonJobDone,
    MonLocalJobBegin,
    MonLogin,
    MonStats,
)

__all__ = ["CS", "Job", "MessageSource", "Monitor", "Publisher"]

log = logging.getLogger(__name__)


class MessageSource(Protocol):
    """What a :class:`Monitor` reads from: a :class:`Connection`, or a stand-in."""

    def send_message(self, msg: Message) -> None: ...
    def get_message(self) -> Message: ...


class Publisher(Protocol):
    """Anything with ``publish(monitor)``, called after every message."""

    def publish(self, mon: Monitor) -> None: ...


@dataclass(eq=False)
class CS:
    """A compile host ("compile server")."""

    id: int
    name: str
    ip: str
    maxjobs: int
    stats: dict[str, str] = field(default_factory=dict)
    """Its latest MON_STATS keys (Load, Platform, Speed, ...)."""
    job_ids: set[int] = field(default_factory=set)
    """The jobs it is building (remote or local)."""

    def active_jobs(self) -> int:
        return len(self.job_ids)

    def __str__(self) -> str:
        return f"[CS {self.id}] {self.name} : {self.ip}"


@dataclass(eq=False)
class Job:
    """A job that has not finished yet."""

    id: int
    filename: str
    client_id: int
    host_id: int = 0
    local: bool = False

    def __str__(self) -> str:
        return f"[Job {self.id}] {self.client_id} -> {self.host_id} : {self.filename}"


class Monitor:
    """Watch one icecream scheduler.

    Args:
        host: the scheduler's host name, or an open :class:`Connection` (or any
            object with ``send_message``/``get_message``), as pyicemon's code took.
        port: the scheduler's port when ``host`` is a name (8765).
        version: the highest protocol version to offer when connecting.
        timeout: seconds for the connect and the version handshake (a scheduler can
            take ~36 s to answer).

    The constructor connects (when given a name) and sends MON_LOGIN.
    """

    def __init__(
        self,
        host: str | MessageSource,
        port: int = DEFAULT_PORT,
        *,
        version: int = MAX_VERSION,
        timeout: float = 60.0,
    ) -> None:
        self.cs: dict[int, CS] = {}
        self.jobs: dict[int, Job] = {}
        self.publishers: list[Publisher] = []
        self.conn: MessageSource
        self._owns_conn = isinstance(host, str)
        if isinstance(host, str):
            conn = Connection(host, port, version=version, timeout=timeout)
            self.conn = conn
            try:
                conn.send_message(MonLogin())
            except BaseException:
                conn.close()
                raise
        else:
            self.conn = host
            self.conn.send_message(MonLogin())

    def add_publisher(self, publisher: Publisher) -> None:
        """Call ``publisher.publish(self)`` after every message from now on."""
        self.publishers.append(publisher)

    addPublisher = add_publisher  # pyicemon's spelling

    def run(self) -> None:
        """Read and apply messages until the scheduler closes the connection.

        pyicemon's ran forever; this returns when the connection ends (EOF, an END
        message, or :meth:`close` from another thread), so a caller can reconnect
        with a new Monitor. Other errors (a reset connection, bytes that do not
        decode) propagate. A connection the Monitor opened itself is closed on the
        way out.
        """
        try:
            while True:
                try:
                    msg = self.conn.get_message()
                except ConnectionClosed:
                    return
                if isinstance(msg, End):
                    return
                self.handle(msg)
                self._publish()
        finally:
            if self._owns_conn:
                self.close()

    def close(self) -> None:
        """Close the connection (if it can be closed); a running :meth:`run` returns."""
        close = getattr(self.conn, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- applying messages --------------------------------------------------------------------

    def handle(self, msg: Message) -> None:
        """Apply one message to :attr:`cs` and :attr:`jobs` (publishers are not called)."""
        if isinstance(msg, MonStats):
            self._stats(msg)
        elif isinstance(msg, MonGetCS):
            self._drop_job(msg.job_id)
            self.jobs[msg.job_id] = Job(msg.job_id, msg.filename, msg.client_id)
        elif isinstance(msg, MonJobBegin):
            self._job_begin(msg)
        elif isinstance(msg, MonLocalJobBegin):
            self._drop_job(msg.job_id)
            job = Job(msg.job_id, msg.file, msg.hostid, msg.hostid, local=True)
            self.jobs[job.id] = job
            if job.host_id in self.cs:
                self.cs[job.host_id].job_ids.add(job.id)
        elif isinstance(msg, MonJobDone | JobLocalDone):
            if self._drop_job(msg.job_id) is None:
                log.debug("done for unknown job %d ignored", msg.job_id)
        else:
            log.debug("not handling %r", msg)

    def _stats(self, msg: MonStats) -> None:
        stats = msg.stats
        if stats.get("State") == "Offline":
            gone = self.cs.pop(msg.hostid, None)
            if gone is not None:
                log.info("%s went offline", gone)
            return
        host = self.cs.get(msg.hostid)
        if host is None:
            host = CS(msg.hostid, stats.get("Name", ""), stats.get("IP", ""), 0)
            # Jobs that began before we heard of the host count from now on.
            host.job_ids = {j.id for j in self.jobs.values() if j.host_id == msg.hostid}
            self.cs[msg.hostid] = host
            log.info("new %s", host)
        host.name = stats.get("Name", host.name)
        host.ip = stats.get("IP", host.ip)
        host.maxjobs = _int(stats.get("MaxJobs"), host.maxjobs)
        host.stats.update(stats)

    def _job_begin(self, msg: MonJobBegin) -> None:
        job = self.jobs.get(msg.job_id)
        if job is None:
            log.debug("begin for unknown job %d ignored", msg.job_id)
            return
        old = self.cs.get(job.host_id)
        if old is not None:
            old.job_ids.discard(job.id)
        job.host_id = msg.hostid
        host = self.cs.get(msg.hostid)
        if host is not None:
            host.job_ids.add(job.id)

    def _drop_job(self, job_id: int) -> Job | None:
        job = self.jobs.pop(job_id, None)
        if job is not None and job.host_id in self.cs:
            self.cs[job.host_id].job_ids.discard(job_id)
        return job

    def _publish(self) -> None:
        for publisher in self.publishers:
            try:
                publisher.publish(self)
            except Exception:
                log.exception("publisher %r failed", publisher)


def _int(text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        return default
