"""The agent at run time: the model, the listener loop, the hub server, the waker.

Standard library only, Python 3.8+ (see the package docstring for the protocol).
Threads: the main thread speaks the event-listener protocol on stdin/stdout and
never waits on anything but supervisord; a worker re-reads processes over XML-RPC
and takes snapshots; a waker pokes supervisord's HTTP server when an event is due
(see :class:`Waker`); a pid watcher learns of exits through pidfds; the TCP server
runs one reader and one writer thread per hub connection.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import heapq
import http.client
import io
import ipaddress
import itertools
import logging
import os
import secrets
import select
import socket
import socketserver
import ssl
import threading
import time
import xmlrpc.client
from typing import Any, Callable, TextIO
from urllib.parse import quote, urlsplit

from fleetwatch.agent.protocol import (
    MAX_LINE,
    PROTOCOL,
    Event,
    ListenerCodec,
    ProtocolError,
    agent_proof,
    apply_event,
    client_proof,
    decode_frame,
    encode_frame,
    merge_info,
    proof_matches,
    public_record,
    record_key,
)

__all__ = ["Agent", "AgentServer", "Supervisor", "Waker", "run_listener"]

log = logging.getLogger("fleetwatch.agent")

SYNC_TYPE = "fleetwatch-sync"
"""The REMOTE_COMMUNICATION type of the agent's own snapshot markers."""

POKE_SCHEDULE = (0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0)
"""Seconds after an event is due at which supervisord is poked, until it arrives."""

_WAIT_ENDS = ("RUNNING", "STOPPED", "EXITED", "FATAL", "BACKOFF")
"""States that end a deferred ``wait=True`` start or stop."""

MARKER_WAIT = 2.0
"""Seconds a snapshot waits for its marker event (REMOTE_COMMUNICATION not subscribed?)."""

HEARTBEAT = 5.0
"""Seconds of silence after which a hub connection is sent a ping."""

MAX_BACKLOG = 10_000
"""Frames queued for one hub; past that its queue is dropped and a snapshot sent."""


# -- supervisord's XML-RPC, with the standard library ------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _Transport(xmlrpc.client.Transport):
    """xmlrpc.client's transport with a timeout, over TCP or a unix socket."""

    def __init__(self, timeout: float, unix_path: str | None = None) -> None:
        super().__init__()
        self._timeout = timeout
        self._unix_path = unix_path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._unix_path is not None:
            _, self._extra_headers, _ = self.get_host_info(host)
            return _UnixHTTPConnection(self._unix_path, self._timeout)
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


class Supervisor:
    """supervisord as the agent reaches it: ``SUPERVISOR_SERVER_URL`` and credentials."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        parts = urlsplit(url)
        auth = ""
        if username:
            auth = f"{quote(username, safe='')}:{quote(password or '', safe='')}@"
        if parts.scheme == "unix":
            self._unix: str | None = parts.path or parts.netloc
            self._address: tuple[Any, ...] = ()
            self._endpoint = f"http://{auth}localhost/RPC2"
        elif parts.scheme in ("http", "https"):
            self._unix = None
            self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
            self._endpoint = f"{parts.scheme}://{auth}{parts.netloc}/RPC2"
        else:
            raise ValueError(f"unsupported SUPERVISOR_SERVER_URL {url!r}")

    def proxy(self, timeout: float | None = None) -> xmlrpc.client.ServerProxy:
        """A fresh proxy (one connection per call: faster for large answers, trap T16)."""
        transport = _Transport(timeout or self.timeout, self._unix)
        return xmlrpc.client.ServerProxy(self._endpoint, transport=transport, allow_none=True)

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        proxy = self.proxy(timeout)
        try:
            return getattr(proxy, method)(*params)
        finally:
            proxy("close")()

    def multicall(self, calls: list[tuple[str, list[Any]]], timeout: float | None = None) -> Any:
        return self.call(
            "system.multicall",
            [{"methodName": m, "params": list(p)} for m, p in calls],
            timeout=timeout,
        )

    def poke(self) -> None:
        """Wake supervisord's poll loop: connect to its HTTP server and hang up.

        supervisord hands a buffered event to a listener only on its next loop pass,
        which may sleep up to 1 s in poll(). A connection makes its listening socket
        readable (one pass: accept), the hang-up makes the new channel readable
        (a second pass: close). No request is sent, nothing is logged.
        """
        if self._unix is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = self._unix
        else:
            family = socket.AF_INET6 if ":" in str(self._address[0]) else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            target = self._address
        try:
            sock.settimeout(1.0)
            sock.connect(target)
        except OSError as exc:
            log.debug("poke failed: %s", exc)
        finally:
            sock.close()


# -- waking supervisord when an event is due ---------------------------------------


class Waker:
    """Pokes supervisord at the moments an event becomes due, until it arrives.

    supervisord makes some transitions on its own, in a loop pass that nothing
    wakes: STARTING→RUNNING once ``startsecs`` passed, BACKOFF→STARTING after the
    back-off delay, the SIGKILL after ``stopwaitsecs``, and the reaping of a child
    that died (its pipes' end-of-file may wake the loop before the child can be
    reaped). The event it then buffers waits for the next pass: up to 1 s. The
    agent knows when each is due (from the previous event and the config, or from
    a pidfd that turns readable when the child exits), so it pokes the loop then,
    on :data:`POKE_SCHEDULE`, and stops as soon as an event for that process arrives.
    """

    def __init__(self, poke: Callable[[], None], clock: Callable[[], float] = time.monotonic):
        self._poke = poke
        self._clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._generation: dict[str, int] = {}
        self._cond = threading.Condition()
        self.pokes = 0
        self._once = False
        self._stopped = False

    def expect(self, key: str, delay: float) -> None:
        """An event about ``key`` is due in ``delay`` seconds: poke until it arrives."""
        with self._cond:
            gen = self._generation.get(key, 0) + 1
            self._generation[key] = gen
            at = self._clock() + max(0.0, delay)
            for offset in POKE_SCHEDULE:
                heapq.heappush(self._heap, (at + offset, gen, key))
            self._cond.notify()

    def once(self) -> None:
        """Poke once, now (a pass of supervisord's loop completes waiting XML-RPC calls)."""
        with self._cond:
            self._once = True
            self._cond.notify()

    def arrived(self, key: str) -> None:
        """An event about ``key`` arrived: its pending pokes are dropped."""
        with self._cond:
            if key in self._generation:
                self._generation[key] += 1

    def due(self) -> tuple[bool, float | None]:
        """Pop what is due now: (poke now?, seconds until the next entry)."""
        now = self._clock()
        with self._cond:
            fire, self._once = self._once, False
            while self._heap and self._heap[0][0] <= now:
                _, gen, key = heapq.heappop(self._heap)
                if self._generation.get(key) == gen:
                    fire = True
            while self._heap and self._generation.get(self._heap[0][2]) != self._heap[0][1]:
                heapq.heappop(self._heap)
            wait = self._heap[0][0] - now if self._heap else None
        return fire, wait

    def run(self) -> None:
        while not self._stopped:
            fire, wait = self.due()
            if fire:
                self.pokes += 1
                self._poke()
                continue
            with self._cond:
                idle = not self._heap or self._heap[0][0] > self._clock()
                if not self._stopped and not self._once and idle:
                    self._cond.wait(wait)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()


def pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid`` (readable once it exits), or None where there is none.

    ``os.pidfd_open`` needs Python 3.9; on 3.8 the syscall (434 on every Linux
    architecture) is made through ctypes.
    """
    opener = getattr(os, "pidfd_open", None)
    try:
        if opener is not None:
            return int(opener(pid))
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.syscall(434, pid, 0))
        return fd if fd >= 0 else None
    except (OSError, AttributeError):
        return None


class PidWatcher:
    """Calls ``on_exit(key, pid)`` when a watched process exits (Linux pidfds)."""

    def __init__(self, on_exit: Callable[[str, int], None]) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._fds: dict[int, tuple[str, int]] = {}
        self._by_key: dict[str, int] = {}
        self._poll = select.poll()
        self._wake_r, self._wake_w = os.pipe()
        self._poll.register(self._wake_r, select.POLLIN)

    def watch(self, key: str, pid: int) -> None:
        with self._lock:
            old = self._by_key.get(key)
            if old is not None and self._fds.get(old, ("", 0))[1] == pid:
                return
            if old is not None:
                self._drop(old)
            fd = pidfd_open(pid)
            if fd is None:
                return
            self._fds[fd] = (key, pid)
            self._by_key[key] = fd
            self._poll.register(fd, select.POLLIN)
        os.write(self._wake_w, b"x")

    def _drop(self, fd: int) -> None:
        key, _ = self._fds.pop(fd)
        if self._by_key.get(key) == fd:
            del self._by_key[key]
        self._poll.unregister(fd)
        os.close(fd)

    def run(self) -> None:
        while True:
            for fd, _ in self._poll.poll():
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    continue
                with self._lock:
                    if fd not in self._fds:
                        continue
                    key, pid = self._fds[fd]
                    self._drop(fd)
                try:
                    self._on_exit(key, pid)
                except Exception:  # keep watching the others
                    log.exception("handling the exit of %s failed", key)


# -- the model ---------------------------------------------------------------------


class _Sync:
    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.seen = False
        self.result: list[Any] | None = None
        self.after: list[Event] = []


class Agent:
    """The agent's model of its supervisord and the numbered stream of its changes.

    The model is a snapshot plus every change since, each change numbered by
    ``seq``. A snapshot is taken atomically with respect to the event stream: one
    ``system.multicall`` sends a REMOTE_COMMUNICATION marker event and reads the
    state, so events delivered before the marker are already in the snapshot and
    events after it are newer (supervisord delivers a pool's events in order).
    """

    def __init__(self, supervisor: Supervisor, *, waker: Waker | None = None) -> None:
        self.supervisor = supervisor
        self.waker = waker
        self.pids: PidWatcher | None = None
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self.daemon: dict[str, Any] = {}
        self.processes: dict[str, dict[str, Any]] = {}
        self.config: dict[str, tuple[float, float]] = {}
        self.ready = threading.Event()
        self.subscribers: set[Any] = set()
        self.lock = threading.RLock()
        self._markers = itertools.count(1)
        self._sync: _Sync | None = None
        self._sync_done = threading.Condition(self.lock)
        self._last_poolserial: int | None = None
        self._work = threading.Condition(self.lock)
        self._dirty: set[str] = set()
        self._dirty_groups: set[str] = set()
        self._want_resync = False
        self.events = 0
        self.resyncs = 0

    # the stream

    def publish(self, frame: dict[str, Any]) -> None:
        """Number ``frame`` and queue it for every subscriber (lock held)."""
        self.seq += 1
        frame["seq"] = self.seq
        data = encode_frame(frame)
        for sub in list(self.subscribers):
            sub.send_stream(data)

    def snapshot_frame(self) -> dict[str, Any]:
        with self.lock:
            return {
                "t": "snapshot",
                "seq": self.seq,
                "epoch": self.epoch,
                "supervisor": dict(self.daemon),
                "processes": [public_record(r) for r in self.processes.values()],
            }

    def subscribe(self, sub: Any) -> None:
        with self.lock:
            self.subscribers.add(sub)
            sub.send_stream(encode_frame(self.snapshot_frame()), snapshot=True)

    def unsubscribe(self, sub: Any) -> None:
        with self.lock:
            self.subscribers.discard(sub)

    # snapshots

    def begin_sync(self) -> _Sync:
        with self.lock:
            sync = _Sync(f"{os.getpid()}-{self.epoch}-{next(self._markers)}")
            self._sync = sync
            return sync

    def resync(self, sync: _Sync | None = None) -> None:
        """Take a snapshot and publish it (from the worker thread; see the class doc)."""
        sync = sync or self.begin_sync()
        try:
            result = self.supervisor.multicall(
                [
                    ("supervisor.sendRemoteCommEvent", [SYNC_TYPE, sync.marker]),
                    ("supervisor.getIdentification", []),
                    ("supervisor.getSupervisorVersion", []),
                    ("supervisor.getPID", []),
                    ("supervisor.getAPIVersion", []),
                    ("supervisor.getState", []),
                    ("supervisor.getAllProcessInfo", []),
                    ("supervisor.getAllConfigInfo", []),
                ],
                timeout=30.0,
            )
            for item in result:
                if isinstance(item, dict) and "faultCode" in item:
                    raise xmlrpc.client.Fault(item["faultCode"], item["faultString"])
        except BaseException:
            with self.lock:
                if self._sync is sync:
                    self._sync = None
            raise
        with self.lock:
            sync.result = list(result)
            deadline = time.monotonic() + MARKER_WAIT
            while self._sync is sync and not sync.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "snapshot marker not received within %.0fs: is REMOTE_COMMUNICATION "
                        "in the listener's events? Installing the snapshot anyway",
                        MARKER_WAIT,
                    )
                    break
                self._sync_done.wait(left)
            if self._sync is sync:
                self._install(sync)

    def _install(self, sync: _Sync) -> None:
        assert sync.result is not None
        _, ident, version, pid, api, state, infos, configs = sync.result
        self._sync = None
        self.resyncs += 1
        self.daemon = {
            "identification": ident,
            "version": version,
            "pid": pid,
            "api_version": api,
            "state": state,
        }
        self.processes = {record_key(p): dict(p) for p in infos}
        self._read_config(configs)
        self._dirty.clear()
        self._dirty_groups.clear()
        frame = self.snapshot_frame()
        self.seq += 1
        frame["seq"] = self.seq
        data = encode_frame(frame)
        for sub in list(self.subscribers):
            sub.send_stream(data, snapshot=True)
        self.ready.set()
        for key, rec in self.processes.items():
            self._follow_process(key, rec, None)
        for event in sync.after:
            self._apply(event)

    def _read_config(self, configs: Any, groups: set[str] | None = None) -> None:
        for c in configs or ():
            if not isinstance(c, dict):
                continue
            if groups is not None and c.get("group") not in groups:
                continue
            try:
                timing = (float(c.get("startsecs", 1)), float(c.get("stopwaitsecs", 10)))
            except (TypeError, ValueError):
                continue
            self.config[f"{c.get('group')}:{c.get('name')}"] = timing

    # events (the listener thread)

    def handle_event(self, event: Event) -> None:
        with self.lock:
            self.events += 1
            last, self._last_poolserial = self._last_poolserial, event.poolserial
            gap = last is not None and event.poolserial > last + 1
            sync = self._sync
            if event.name == "REMOTE_COMMUNICATION" and event.fields.get("type") == SYNC_TYPE:
                if sync is not None and event.data.strip() == sync.marker:
                    sync.seen = True
                    if sync.result is not None:
                        self._install(sync)
                    self._sync_done.notify_all()
                return
            if gap:
                lost = event.poolserial - (last or 0) - 1
                log.warning("%d event(s) lost (buffer overflow): taking a snapshot", lost)
                self.request_resync()
            if sync is not None:
                if sync.seen:
                    sync.after.append(event)
                # else: it happened before the snapshot's marker, so the snapshot has it
                return
            self._apply(event)

    def _apply(self, event: Event) -> None:
        name = event.name
        fields = event.fields
        if name.startswith("PROCESS_STATE_"):
            state = name[len("PROCESS_STATE_") :]
            group, pname = fields.get("groupname", ""), fields.get("processname", "")
            key = f"{group}:{pname}"
            rec = apply_event(self.processes.get(key), group, pname, state, fields)
            self.processes[key] = rec
            self.publish(
                {
                    "t": "process",
                    "event": name,
                    "from_state": fields.get("from_state"),
                    "process": public_record(rec),
                }
            )
            self._dirty.add(key)
            self._work.notify()
            self._follow_process(key, rec, fields)
        elif name == "PROCESS_GROUP_ADDED":
            self._dirty_groups.add(fields.get("groupname", ""))
            self._work.notify()
        elif name == "PROCESS_GROUP_REMOVED":
            group = fields.get("groupname", "")
            for key in [k for k, r in self.processes.items() if r.get("group") == group]:
                rec = self.processes.pop(key)
                self.config.pop(key, None)
                self.publish({"t": "gone", "group": rec.get("group"), "name": rec.get("name")})
        elif name.startswith("SUPERVISOR_STATE_CHANGE_"):
            statename = name[len("SUPERVISOR_STATE_CHANGE_") :]
            codes = {"RUNNING": 1, "STOPPING": -1}
            daemon_state = {"statecode": codes.get(statename, 0), "statename": statename}
            self.daemon["state"] = daemon_state
            self.publish({"t": "supervisor", "event": name, "state": daemon_state})

    def _follow_process(self, key: str, rec: dict[str, Any], fields: dict[str, str] | None) -> None:
        """Arrange for supervisord to be woken when this process's next event is due."""
        waker = self.waker
        state = rec.get("statename")
        if waker is not None:
            waker.arrived(key)
            startsecs, stopwaitsecs = self.config.get(key, (1.0, 10.0))
            if state == "STARTING":
                # ``now - laststart > startsecs``: laststart is before we heard of it
                waker.expect(key, startsecs + 0.001 if fields is not None else 0.0)
            elif state == "BACKOFF":
                tries = (fields or {}).get("tries", "1")
                waker.expect(key, float(tries) + 0.001 if tries.isdigit() else 1.0)
            elif state == "STOPPING":
                waker.expect(key, stopwaitsecs + 0.001)
            if fields is not None and state in _WAIT_ENDS:
                # A startProcess/stopProcess(wait=True) may be waiting for this state: its
                # answer is sent on supervisord's next pass, up to 1 s later; wake it now.
                waker.once()
        pid = rec.get("pid")
        live = state in ("STARTING", "RUNNING", "STOPPING")
        if self.pids is not None and isinstance(pid, int) and pid > 0 and live:
            self.pids.watch(key, pid)

    def on_exit(self, key: str, pid: int) -> None:
        """A watched process exited: its EXITED/STOPPED/BACKOFF event is due now."""
        with self.lock:
            rec = self.processes.get(key)
            if rec is None or rec.get("pid") != pid:
                return  # its event arrived already
        if self.waker is not None:
            self.waker.expect(key, 0.0)

    def request_resync(self) -> None:
        with self.lock:
            self._want_resync = True
            self._work.notify()

    # the worker: re-reads and snapshots

    def work_once(self, timeout: float | None = None) -> bool:
        """Do the pending re-reads (or a snapshot); False when there was nothing."""
        with self.lock:
            if not (self._want_resync or self._dirty or self._dirty_groups):
                self._work.wait(timeout)
            resync, self._want_resync = self._want_resync, False
            dirty, self._dirty = self._dirty, set()
            groups, self._dirty_groups = self._dirty_groups, set()
        if resync:
            self.resync()
            return True
        if not (dirty or groups):
            return False
        if groups or len(dirty) > 20:
            calls: list[tuple[str, list[Any]]] = [("supervisor.getAllProcessInfo", [])]
            if groups:
                calls.append(("supervisor.getAllConfigInfo", []))
            result = self.supervisor.multicall(calls)
            infos = result[0] if isinstance(result[0], list) else []
            with self.lock:
                if groups and len(result) > 1:
                    self._read_config(result[1], groups)
                for info in infos:
                    key = record_key(info)
                    if key in dirty or (info.get("group") in groups and key not in self.processes):
                        self._merge(key, info, create=info.get("group") in groups)
            return True
        keys = sorted(dirty)
        result = self.supervisor.multicall([("supervisor.getProcessInfo", [k]) for k in keys])
        with self.lock:
            for key, info in zip(keys, result):
                if isinstance(info, dict) and "faultCode" not in info:
                    self._merge(key, info, create=False)
        return True

    def _merge(self, key: str, info: dict[str, Any], *, create: bool) -> None:
        """Apply a re-read (lock held). Only a group just added may bring new processes:
        a re-read taken before its group was removed must not bring it back as a ghost."""
        current = self.processes.get(key)
        if current is None and (not create or self._sync is not None):
            return
        new = merge_info(current, info)
        if new is None:
            return
        self.processes[key] = new
        old = public_record(current) if current else None
        if old is not None and {**old, "now": 0} == {**new, "now": 0}:
            return
        self.publish({"t": "process", "event": None, "process": public_record(new)})
        if current is None:
            self._follow_process(key, new, None)

    def run_worker(self) -> None:
        delay = 0.1
        while True:
            try:
                self.work_once(timeout=None)
                delay = 0.1
            except Exception as exc:  # refused, SHUTDOWN_STATE, garbage: resync after a pause
                log.warning("reading supervisord failed (%s); again in %.1fs", exc, delay)
                self.request_resync()
                time.sleep(delay)  # a back-off between retries, not a synchronisation
                delay = min(5.0, delay * 2)


# -- the listener loop -------------------------------------------------------------


def run_listener(agent: Agent, stdin: TextIO, stdout: TextIO) -> None:
    """Speak the event-listener protocol until supervisord closes stdin.

    ``stdin`` must be text decoded as UTF-8 without newline translation
    (``newline="\\n"``): ``len`` counts characters (trap T18). Nothing but the
    protocol is ever written to ``stdout``.
    """
    codec = ListenerCodec()
    while True:
        stdout.write(codec.ready())
        stdout.flush()
        event = codec.next_event()
        while event is None:
            wanted = codec.wanted()
            codec.feed(stdin.readline() if wanted == 0 else stdin.read(wanted))
            event = codec.next_event()
        try:
            agent.handle_event(event)
        except Exception:  # never fail the protocol: the event is acked, the model resyncs
            log.exception("handling %s failed; taking a snapshot", event.name)
            agent.request_resync()
        stdout.write(codec.ok())
        stdout.flush()


def protocol_streams() -> tuple[TextIO, TextIO]:
    """stdin/stdout for the protocol; ``sys.stdout`` then points at stderr (trap T18)."""
    import sys

    stdin = io.TextIOWrapper(
        os.fdopen(os.dup(0), "rb", buffering=0), encoding="utf-8", errors="replace", newline="\n"
    )
    stdout = io.TextIOWrapper(
        os.fdopen(os.dup(1), "wb", buffering=0), encoding="utf-8", newline="\n"
    )
    sys.stdout.flush()
    os.dup2(2, 1)  # a stray print() or a library's output lands in the log, not the protocol
    sys.stdout = sys.stderr
    return stdin, stdout


# -- the hub server ----------------------------------------------------------------


_CALL_PREFIXES = ("supervisor.", "system.")


class _Conn:
    """One authenticated hub connection: a writer thread and the request loop."""

    def __init__(self, server: AgentServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.agent = server.agent
        self.sock = sock
        self.peer = peer
        self._cv = threading.Condition()
        self._control: collections.deque[bytes] = collections.deque()
        """Replies, errors, pongs: never dropped."""
        self._frames: collections.deque[bytes] = collections.deque()
        """Numbered stream frames: dropped for a snapshot when a hub falls too far behind."""
        self._closed = False
        self._writing = False
        self._calls = threading.BoundedSemaphore(8)

    # writing

    def send(self, frame: dict[str, Any]) -> None:
        with self._cv:
            self._control.append(encode_frame(frame))
            self._cv.notify()

    def send_stream(self, data: bytes, snapshot: bool = False) -> None:
        """Queue a numbered frame (agent lock held); a hub too far behind gets a snapshot."""
        with self._cv:
            if snapshot:
                self._frames.clear()
            elif len(self._frames) >= MAX_BACKLOG:
                self._frames.clear()
                data = encode_frame(self.agent.snapshot_frame())
            self._frames.append(data)
            self._cv.notify()

    def writer(self) -> None:
        try:
            while True:
                with self._cv:
                    if not (self._control or self._frames or self._closed):
                        self._cv.wait(HEARTBEAT)
                    if self._closed:
                        return
                    if self._control:
                        data = self._control.popleft()
                    elif self._frames:
                        data = self._frames.popleft()
                    else:
                        data = encode_frame({"t": "ping"})
                self.sock.sendall(data)
        except OSError:
            pass
        finally:
            self.close()
            self.sock.close()

    def close(self) -> None:
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify()
        self.agent.unsubscribe(self)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # reading

    def handshake(self, reader: io.BufferedReader) -> bool:
        token = self.server.token
        nonce = secrets.token_hex(16)
        self.sock.sendall(
            encode_frame(
                {
                    "t": "hello",
                    "agent": "fleetwatch-agent",
                    "protocol": PROTOCOL,
                    "nonce": nonce,
                    "auth": "token" if token else "none",
                }
            )
        )
        self.sock.settimeout(10.0)
        try:
            frame = decode_frame(reader.readline(4096))
        except (ProtocolError, OSError) as exc:
            log.warning("refused %s: no valid auth frame (%s)", self.peer, exc)
            return False
        client_nonce = frame.get("nonce")
        if frame.get("t") != "auth" or not isinstance(client_nonce, str) or not client_nonce:
            self._refuse("expected an auth frame with a nonce")
            return False
        if token is not None:
            expected = client_proof(token, nonce, client_nonce)
            if not proof_matches(expected, frame.get("proof")):
                self._refuse("bad or missing token")
                return False
        self.sock.settimeout(None)
        proof = agent_proof(token, nonce, client_nonce) if token else None
        self.sock.sendall(encode_frame({"t": "welcome", "proof": proof, "epoch": self.agent.epoch}))
        return True

    def _refuse(self, why: str) -> None:
        log.warning("refused %s: %s", self.peer, why)
        with contextlib.suppress(OSError):
            self.sock.sendall(encode_frame({"t": "refused", "error": why}))

    def serve(self) -> None:
        reader = self.sock.makefile("rb")
        try:
            if not self.handshake(reader):
                return
            log.info("hub connected from %s", self.peer)
            self._writing = True
            threading.Thread(target=self.writer, name=f"out-{self.peer}", daemon=True).start()
            while not self._closed:
                line = reader.readline(MAX_LINE + 1)
                if not line:
                    return
                try:
                    self.handle(decode_frame(line))
                except ProtocolError as exc:
                    self.send({"t": "error", "error": str(exc)})
                    return
        except OSError:
            return
        finally:
            log.info("hub at %s disconnected", self.peer)
            self.close()
            reader.close()
            if not self._writing:
                self.sock.close()  # else the writer closes it when it is done

    def handle(self, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == "subscribe":
            if not self.agent.ready.wait(30.0):
                self.send({"t": "error", "error": "no snapshot of supervisord yet"})
                return
            self.agent.subscribe(self)
        elif op == "snapshot":
            self.agent.request_resync()
        elif op == "call":
            self._calls.acquire()
            threading.Thread(target=self._call, args=(frame,), daemon=True).start()
        elif op == "ping":
            self.send({"t": "pong"})
        else:
            self.send({"t": "error", "error": f"unknown op {op!r:.40}"})

    def _call(self, frame: dict[str, Any]) -> None:
        try:
            cid = frame.get("id")
            method = frame.get("method")
            params = frame.get("params") or []
            if not isinstance(method, str) or not method.startswith(_CALL_PREFIXES):
                self.send(
                    {"t": "reply", "id": cid, "fault": {"code": 1, "string": "UNKNOWN_METHOD"}}
                )
                return
            if not isinstance(params, list):
                self.send({"t": "reply", "id": cid, "error": "params must be an array"})
                return
            try:
                value = self.agent.supervisor.call(method, *params)
            except xmlrpc.client.Fault as f:
                self.send(
                    {
                        "t": "reply",
                        "id": cid,
                        "fault": {"code": f.faultCode, "string": f.faultString},
                    }
                )
            except xmlrpc.client.ProtocolError as exc:
                error = f"HTTP {exc.errcode} {exc.errmsg}"
                self.send({"t": "reply", "id": cid, "error": error, "http_status": exc.errcode})
            except Exception as exc:  # refused, timed out, garbage: the hub gets an answer
                self.send({"t": "reply", "id": cid, "error": f"supervisord: {exc}"})
            else:
                self.send({"t": "reply", "id": cid, "value": value})
        finally:
            self._calls.release()


class AgentServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """The hub-facing TCP server (TLS when given a context)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        agent: Agent,
        *,
        token: str | None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.agent = agent
        self.token = token
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if self.server.tls is not None:
            sock.settimeout(10.0)
            try:
                sock = self.server.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.warning("refused %s: TLS handshake failed (%s)", peer, exc)
                return
            sock.settimeout(None)
        _Conn(self.server, sock, peer).serve()


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback one ("" is every address)."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )
