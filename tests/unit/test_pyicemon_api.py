"""pyicemon's documented API under ``fleetwatch.icecream``: messages, Connection, Monitor, page.

The network tests talk to :class:`ReplayScheduler`, a stand-in on 127.0.0.1 that
replays the recorded capture of a real icecc 1.4 scheduler byte for byte (see its
docstring). The test against the real scheduler lives elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

import fleetwatch.icecream as pyicemon
from fleetwatch.errors import LocalProtocolError, RemoteProtocolError
from fleetwatch.icecream import Connection, ConnectionClosed, Monitor, messages
from fleetwatch.icecream.__main__ import page_server
from fleetwatch.publishers import WebsocketPublisher
from fleetwatch.publishers.websocket import build_links, build_nodes
from fleetwatch.sources.icecream.protocol import (
    NEED_DATA,
    Closed,
    Codec,
    End,
    JobLocalDone,
    MonGetCS,
    MonJobBegin,
    MonJobDone,
    MonLocalJobBegin,
    MonLogin,
    MonStats,
    Negotiated,
    UnknownMessage,
)
from tests.conftest import IN_CI, wait_for

DEADLINE = 10.0

# -- the recorded capture ----------------------------------------------------------------------

_HERE = Path(__file__).resolve()
_CAPTURE_PLACES = (
    _HERE.parents[1] / "vectors" / "icecream-capture.jsonl",
    _HERE.parents[3] / "shared" / "protocols" / "icecream-capture.jsonl",
)


def _capture_lines() -> list[tuple[int, dict[str, Any]]]:
    for path in _CAPTURE_PLACES:
        if path.exists():
            with path.open() as f:
                return [(no, json.loads(line)) for no, line in enumerate(f, 1)]
    message = f"icecream-capture.jsonl not found in {[str(p) for p in _CAPTURE_PLACES]}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def session(name: str) -> tuple[dict[str, Any], list[tuple[int, float, bytes]]]:
    """A session's header and its frames as (line number, t, whole frame bytes)."""
    lines = [(no, d) for no, d in _capture_lines() if d.get("session") == name]
    header = next(d for _, d in lines if "handshake_rx_hex" in d)
    frames = [(no, d["t"], bytes.fromhex(d["frame_hex"])) for no, d in lines if "frame_hex" in d]
    return header, frames


# -- a scheduler stand-in ----------------------------------------------------------------------


class ReplayScheduler:
    """A byte-exact stand-in for the icecc 1.4 scheduler, replaying the recorded capture.

    It serves one monitor connection on 127.0.0.1, as the scheduler recorded in
    ``icecream-capture.jsonl`` (session ``mon-v44``) did: it runs the version
    handshake with fleetwatch's own codec in the scheduler role (maximum 43, so it
    sends exactly the recorded ``2b000000 2b000000``), waits for the monitor's
    MON_LOGIN, sends the recorded frames unchanged in the recorded TCP batches
    (all of them, or those up to capture line ``upto``), and then closes the
    connection without an END frame, as the scheduler did at its exit. With
    ``hold_open`` it keeps the connection open instead until the peer or
    :meth:`close` ends it. Every byte the monitor sent is kept in :attr:`received`.
    """

    def __init__(
        self,
        name: str = "mon-v44",
        *,
        upto: int | None = None,
        max_version: int = 43,
        hold_open: bool = False,
    ) -> None:
        self.header, frames = session(name)
        self.batches: list[bytes] = []
        last_t = None
        for no, t, frame in frames:
            if upto is not None and no > upto:
                break
            if t != last_t:
                self.batches.append(b"")
                last_t = t
            self.batches[-1] += frame
        self.frames = sum(1 for no, _, _ in frames if upto is None or no <= upto)
        self.max_version = max_version
        self.hold_open = hold_open
        self.received = bytearray()
        self.version: int | None = None
        self.logged_in = threading.Event()
        self.error: BaseException | None = None
        self._conn: socket.socket | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(DEADLINE)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="replay-scheduler", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return  # closed before anyone connected
        self._conn = conn
        try:
            with conn:
                conn.settimeout(DEADLINE)
                if self._handshake_and_login(conn):
                    self.logged_in.set()
                    for batch in self.batches:
                        conn.sendall(batch)
                    while self.hold_open and conn.recv(4096):
                        pass  # the scheduler never reads a monitor after its login
        except Exception as exc:
            self.error = exc

    def _handshake_and_login(self, conn: socket.socket) -> bool:
        codec = Codec(max_version=self.max_version, role="scheduler")
        while True:
            event = codec.next_event()
            out = codec.data_to_send()
            if out:
                conn.sendall(out)
            if event is NEED_DATA:
                data = conn.recv(65536)
                self.received += data
                codec.receive_data(data)
            elif isinstance(event, Negotiated):
                self.version = event.version
            elif isinstance(event, MonLogin):
                return True
            elif isinstance(event, Closed):
                return False
            else:
                raise AssertionError(f"the monitor sent {event!r} before MON_LOGIN")

    def close(self) -> None:
        self._listener.close()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the stand-in scheduler did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def scheduler() -> Iterator[Callable[..., ReplayScheduler]]:
    started: list[ReplayScheduler] = []

    def make(*args: Any, **kw: Any) -> ReplayScheduler:
        s = ReplayScheduler(*args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.close()


class Publishers:
    """WebsocketPublishers on free loopback ports and their clients, all closed at teardown."""

    def __init__(self) -> None:
        self.made: list[WebsocketPublisher] = []
        self.clients: list[ClientConnection] = []

    def new(self) -> WebsocketPublisher:
        publisher = WebsocketPublisher(port=0)
        self.made.append(publisher)
        return publisher

    def client(self, publisher: WebsocketPublisher) -> ClientConnection:
        url = f"ws://127.0.0.1:{publisher.port}/"
        client = connect(url, open_timeout=DEADLINE, legacy=True)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for publisher in self.made:
            publisher.close()
            assert not any(t.is_alive() for t in publisher._threads), "publisher threads run on"
            assert publisher.clients == 0


@pytest.fixture
def ws() -> Iterator[Publishers]:
    publishers = Publishers()
    yield publishers
    publishers.close()


def recv_json(client: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(client.recv(timeout=DEADLINE))
    return frame


def run_to_end(mon: Monitor) -> None:
    """Run the monitor in a thread until it returns (the stand-in's EOF), within the deadline."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            mon.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="monitor", daemon=True)
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        mon.close()
        thread.join(DEADLINE)
        pytest.fail("Monitor.run() did not return at the scheduler's EOF")
    if errors:
        raise errors[0]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def publish(self, mon: Monitor) -> None:
        self.calls.append(len(mon.jobs))


# -- messages ------------------------------------------------------------------------------------

SAMPLES = [
    messages.LoginMessage(),
    messages.StatsMessage(7, "Name:a\nIP:10.0.0.7\nMaxJobs:4\nLoad:250\n"),
    messages.GetCSMessage("work/src/unit1.c", 1, 12, 3),
    messages.JobBeginMessage(12, 1_795_380_097, 2),
    messages.JobDoneMessage(12, -1, 1015, 313, 13, 6571, 35784, 100000, 900, 2500, 1),
    messages.LocalJobBeginMessage(hostid=1, job_id=40, stime=1_795_380_119, file="work/obj/prog"),
    messages.LocalJobBeginMessage(hostid=1, job_id=33, stime=1_795_380_103, file=""),  # icerun
    messages.LocalJobDoneMessage(40),
    messages.EndMessage(),
    messages.UnknownMessage(90, b"\x00\x01binary"),
]
VERSIONS = [21, 22, 28, 29, 38, 39, 43, 44]


def test_pyicemon_names_are_the_codec_classes() -> None:
    assert messages.LoginMessage is MonLogin
    assert messages.StatsMessage is MonStats
    assert messages.GetCSMessage is MonGetCS
    assert messages.JobBeginMessage is MonJobBegin
    assert messages.JobDoneMessage is MonJobDone
    assert messages.LocalJobBeginMessage is MonLocalJobBegin
    assert messages.LocalJobDoneMessage is JobLocalDone
    assert messages.EndMessage is End
    assert messages.msg_types[0x52] is MonLogin
    assert messages.msg_types[0x4F] is JobLocalDone
    assert messages.LoginMessage() == MonLogin()  # constructs with no arguments


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: f"{type(m).__name__}")
def test_pack_unpack_round_trip(msg: messages.Message, version: int) -> None:
    data = msg.pack(version)
    assert data[:4] == struct.pack(">I", msg.msg_type)  # type word, then the body
    assert messages.unpack(data, version) == msg
    assert messages.unpack(msg.pack()) == msg  # both default to version 44


def test_job_done_client_count_needs_version_39() -> None:
    msg = messages.JobDoneMessage(5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, client_count=3)
    assert messages.unpack(msg.pack(39), 39) == msg
    assert messages.unpack(msg.pack(38), 38) == msg._replace(client_count=0)
    assert len(msg.pack(38)) == 4 + 44
    assert len(msg.pack(39)) == 4 + 48


def test_pyicemon_attribute_names() -> None:
    stats = messages.StatsMessage(3, "Name:icelab-remote2\nIP:127.0.0.1\nMaxJobs:2\n")
    assert (stats.host_id, stats.data["Name"], stats.data["MaxJobs"]) == (3, "icelab-remote2", "2")
    begin = messages.JobBeginMessage(9, 1234, 2)
    assert (begin.job_id, begin.time, begin.host_id) == (9, 1234, 2)
    done = messages.JobDoneMessage(9, 118, 10, 20, 30, 0, 0, 0, 0, 0, 1)
    assert (done.rc, done.real_ms, done.user_ms, done.sys_ms) == (118, 10, 20, 30)
    local = messages.LocalJobBeginMessage(1, 40, 99, "work/obj/unit5.o")
    assert (local.client_id, local.job_id, local.time, local.filename) == (
        1,
        40,
        99,
        "work/obj/unit5.o",
    )
    get_cs = messages.GetCSMessage("a.c", 1, 2, 3)
    assert (get_cs.filename, get_cs.lang, get_cs.job_id, get_cs.client_id) == ("a.c", 1, 2, 3)


def test_unknown_type_is_an_unknown_message_and_garbage_raises() -> None:
    assert messages.unpack(b"\x00\x00\x00\x5aabc") == UnknownMessage(90, b"abc")
    with pytest.raises(RemoteProtocolError):
        messages.unpack(b"\x00\x00\x00\x57\x00\x00")  # MON_STATS cut short
    with pytest.raises(RemoteProtocolError):
        messages.unpack(b"\x00\x00")


@pytest.mark.parametrize("name", ["mon-v44", "mon-v38", "mon-v28", "mon-v21"])
def test_every_recorded_frame_unpacks_and_packs_back_byte_exact(name: str) -> None:
    header, frames = session(name)
    version = header["negotiated_version"]
    for no, _, frame in frames:
        data = frame[4:]  # messages.unpack takes the type word and body, no length word
        msg = messages.unpack(data, version)
        assert not isinstance(msg, UnknownMessage), f"line {no}"
        assert msg.pack(version) == data, f"line {no}"


def test_readme_messages_usage() -> None:
    _, frames = session("mon-v44")
    wire_data = frames[0][2][4:]
    # As pyicemon's README: unpack exactly one message, pack it again.
    m = messages.unpack(wire_data, 43)
    data = m.pack(43)
    assert data == wire_data
    assert isinstance(m, messages.StatsMessage)
    assert m.data["Name"] == "icelab-client"


# -- Connection ----------------------------------------------------------------------------------


def test_readme_connection_usage_is_byte_exact(scheduler: Callable[..., ReplayScheduler]) -> None:
    sched = scheduler(upto=4)
    conn = pyicemon.Connection("127.0.0.1", sched.port)
    try:
        m = messages.LoginMessage()
        conn.send_message(m)
        got = [conn.get_message() for _ in range(3)]
    finally:
        conn.close()
    assert conn.version == 43 == sched.header["negotiated_version"]
    # What we sent is what the recorded monitor sent: our 44, the minimum, MON_LOGIN.
    recorded = sched.header["handshake_tx_hex"] + sched.header["login_tx_hex"]
    wait_for(lambda: sched.received.hex() == recorded, DEADLINE, "the handshake and login bytes")
    assert [m.hostid for m in got if isinstance(m, MonStats)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("sched_max", "offer", "expected"), [(43, 44, 43), (38, 44, 38), (43, 30, 30), (21, 44, 21)]
)
def test_version_negotiation(
    scheduler: Callable[..., ReplayScheduler], sched_max: int, offer: int, expected: int
) -> None:
    sched = scheduler(max_version=sched_max, upto=0)
    with Connection("127.0.0.1", sched.port, version=offer) as conn:
        assert conn.version == expected
        assert conn.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    wait_for(lambda: sched.version == expected, DEADLINE, "the stand-in to agree")


def test_a_scheduler_below_21_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        done = threading.Event()

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(struct.pack("<I", 20))
                done.wait(DEADLINE)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with pytest.raises(RemoteProtocolError, match="20"):
                Connection("127.0.0.1", port, timeout=DEADLINE)
        finally:
            done.set()
            thread.join(DEADLINE)


def test_handshake_timeout() -> None:
    # The kernel completes the connect; nobody ever answers (a slow scheduler, trap 3).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            Connection("127.0.0.1", port, timeout=0.3)
        assert time.monotonic() - started < DEADLINE


def test_eof_raises_connection_closed(scheduler: Callable[..., ReplayScheduler]) -> None:
    sched = scheduler(upto=2)
    with Connection("127.0.0.1", sched.port) as conn:
        conn.send_message(MonLogin())
        assert isinstance(conn.get_message(), MonStats)
        with pytest.raises(ConnectionClosed):
            conn.get_message()
        with pytest.raises(ConnectionError):  # and again: it stays closed
            conn.get_message()


def test_get_message_timeout_keeps_the_stream(scheduler: Callable[..., ReplayScheduler]) -> None:
    sched = scheduler(upto=0, hold_open=True)
    with Connection("127.0.0.1", sched.port) as conn:
        conn.send_message(MonLogin())
        with pytest.raises(TimeoutError):
            conn.get_message(timeout=0.2)
        with pytest.raises(LocalProtocolError):  # a monitor only ever sends MON_LOGIN/END
            conn.send_message(messages.LocalJobDoneMessage(1))


# -- Monitor -------------------------------------------------------------------------------------

# (capture line to replay up to, expected cs {id: (name, maxjobs, active)},
#  expected jobs {id: (filename, client, host, local)}) -- lines as in CAPTURES.md.
CHECKPOINTS = {
    # t=13.6 s: six jobs requested by host 1; five of them begun on hosts 1, 2 and 3.
    33: (
        {1: ("icelab-client", 2, 2), 2: ("icelab-remote1", 2, 2), 3: ("icelab-remote2", 2, 1)},
        {
            1: ("work/src/unit6.c", 1, 3, False),
            2: ("work/src/unit4.c", 1, 1, False),
            3: ("work/src/unit3.c", 1, 2, False),
            4: ("work/src/unit1.c", 1, 1, False),
            5: ("work/src/unit5.c", 1, 0, False),
            6: ("work/src/unit2.c", 1, 2, False),
        },
    ),
    # Host 3 left (124) and came back as host 4 (127); jobs 36 and 39 ended with 118 and
    # job 39's file is being built locally as job 40 (140).
    140: (
        {1: ("icelab-client", 2, 2), 2: ("icelab-remote1", 2, 1), 4: ("icelab-remote2", 2, 1)},
        {
            35: ("work/src/unit1.c", 1, 4, False),
            37: ("work/src/unit2.c", 1, 2, False),
            38: ("work/src/unit4.c", 1, 1, False),
            40: ("work/obj/unit5.o", 1, 1, True),
        },
    ),
    # The whole session: every daemon went offline, every job ended (255s included).
    172: ({}, {}),
}


@pytest.mark.parametrize("upto", sorted(CHECKPOINTS))
def test_monitor_state_after_replay(scheduler: Callable[..., ReplayScheduler], upto: int) -> None:
    sched = scheduler(upto=upto)
    recorder = Recorder()
    mon = Monitor("127.0.0.1", sched.port)
    mon.add_publisher(recorder)
    run_to_end(mon)

    want_cs, want_jobs = CHECKPOINTS[upto]
    assert {h.id: (h.name, h.maxjobs, h.active_jobs()) for h in mon.cs.values()} == want_cs
    assert all(h.ip == "127.0.0.1" for h in mon.cs.values())
    assert {j.id: (j.filename, j.client_id, j.host_id, j.local) for j in mon.jobs.values()} == (
        want_jobs
    )
    assert len(recorder.calls) == sched.frames  # one publish per message
    assert sched.logged_in.is_set()


def test_readme_monitor_usage(scheduler: Callable[..., ReplayScheduler], ws: Publishers) -> None:
    from fleetwatch.icecream.publishers import WebsocketPublisher as ReadmeWebsocketPublisher

    assert ReadmeWebsocketPublisher is WebsocketPublisher
    sched = scheduler(upto=33)
    mon = pyicemon.Monitor("127.0.0.1", sched.port)
    publisher = ws.new()  # the README's WebsocketPublisher(port=9999), on a free port
    mon.addPublisher(publisher)
    run_to_end(mon)  # pyicemon blocked forever; ours returns at the scheduler's EOF

    client = ws.client(publisher)
    frame = recv_json(client)  # a new client gets the whole frame at once
    assert set(frame) == {"timestamp", "index", "nodes", "links"}
    assert frame["nodes"] == [
        {"id": 1, "name": "icelab-client", "ip": "127.0.0.1", "load": 100.0, "maxjobs": 2},
        {"id": 2, "name": "icelab-remote1", "ip": "127.0.0.1", "load": 100.0, "maxjobs": 2},
        {"id": 3, "name": "icelab-remote2", "ip": "127.0.0.1", "load": 50.0, "maxjobs": 2},
    ]
    assert frame["links"] == [
        {"source": 1, "target": 1, "value": 10},
        {"source": 1, "target": 2, "value": 10},
        {"source": 1, "target": 3, "value": 10},
    ]


def test_monitor_takes_a_connection_and_close_stops_run(
    scheduler: Callable[..., ReplayScheduler],
) -> None:
    sched = scheduler(upto=4, hold_open=True)
    conn = Connection("127.0.0.1", sched.port)
    mon = Monitor(conn)  # pyicemon's code took a Connection
    assert mon.conn is conn
    wait_for(sched.logged_in.is_set, DEADLINE, "MON_LOGIN")
    thread = threading.Thread(target=mon.run, daemon=True)
    thread.start()
    wait_for(lambda: len(mon.cs) == 3, DEADLINE, "the login snapshot")
    mon.close()  # from another thread: run() returns
    thread.join(DEADLINE)
    assert not thread.is_alive()


class StubSource:
    """pyicemon's DummyConnection: scripted messages, then EOF."""

    def __init__(self, *msgs: messages.Message) -> None:
        self.sent: list[messages.Message] = []
        self.msgs = list(msgs)

    def send_message(self, msg: messages.Message) -> None:
        self.sent.append(msg)

    def get_message(self) -> messages.Message:
        if not self.msgs:
            raise ConnectionClosed("end of script")
        return self.msgs.pop(0)


def stats(hostid: int, name: str = "h", maxjobs: str | None = "4") -> MonStats:
    text = f"Name:{name}\nIP:10.0.0.{hostid}\n" + (f"MaxJobs:{maxjobs}\n" if maxjobs else "")
    return MonStats(hostid, text)


def done(job_id: int) -> MonJobDone:
    return MonJobDone(job_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def test_monitor_logs_in_and_run_returns_at_end() -> None:
    source = StubSource(stats(1), End(), stats(2))
    mon = Monitor(source)
    assert source.sent == [MonLogin()]
    mon.run()
    assert list(mon.cs) == [1]  # END stops the loop; stats(2) is never read


def test_pyicemon_negative_jobs_scenario() -> None:
    # pyicemon's own test: a job begins before its host's stats; its DONE comes twice.
    mon = Monitor(StubSource())
    mon.handle(MonGetCS("file.c", 1, 1, 201))
    mon.handle(MonJobBegin(1, 0, 101))
    mon.handle(stats(101, "cs1"))
    assert mon.cs[101].active_jobs() == 1
    mon.handle(done(1))
    mon.handle(done(1))
    assert mon.cs[101].active_jobs() == 0


def test_unknown_jobs_and_hosts_do_not_crash() -> None:
    mon = Monitor(StubSource())
    mon.handle(MonJobBegin(7, 0, 1))  # begin for a job never announced (connected mid-build)
    mon.handle(done(8))
    mon.handle(JobLocalDone(9))
    mon.handle(MonLocalJobBegin(5, 10, 0, "work/obj/prog"))  # pyicemon: KeyError on cs[5]
    mon.handle(MonStats(6, "State:Offline\n"))  # offline for a host never seen
    mon.handle(UnknownMessage(90, b""))
    assert list(mon.jobs) == [10]
    assert mon.jobs[10].local
    assert mon.jobs[10].host_id == 5
    mon.handle(stats(5, maxjobs=None))  # a host without MaxJobs: 0, load guard below
    assert (mon.cs[5].maxjobs, mon.cs[5].active_jobs()) == (0, 1)
    mon.handle(JobLocalDone(10))
    assert mon.cs[5].active_jobs() == 0
    assert mon.jobs == {}


def test_repeated_stats_keep_running_jobs() -> None:
    # Every monitor login re-sends the snapshot (trap 23); pyicemon then forgot the jobs.
    mon = Monitor(StubSource())
    mon.handle(stats(1, "a", "2"))
    mon.handle(MonGetCS("x.c", 0, 1, 1))
    mon.handle(MonJobBegin(1, 0, 1))
    mon.handle(stats(1, "a", "8"))
    assert (mon.cs[1].active_jobs(), mon.cs[1].maxjobs) == (1, 8)


def test_publishers_called_after_every_message_and_failures_are_contained() -> None:
    class Broken:
        def publish(self, mon: Monitor) -> None:
            raise RuntimeError("boom")

    recorder = Recorder()
    mon = Monitor(StubSource(stats(1), MonGetCS("x.c", 0, 1, 1), UnknownMessage(90, b"")))
    mon.addPublisher(Broken())
    mon.add_publisher(recorder)
    mon.run()
    assert recorder.calls == [0, 1, 1]


# -- WebsocketPublisher -------------------------------------------------------------------------


def host(id: int, active: int, maxjobs: int = 2) -> SimpleNamespace:
    return SimpleNamespace(
        id=id, name=f"h{id}", ip=f"10.0.0.{id}", maxjobs=maxjobs, active_jobs=lambda: active
    )


def view(hosts: list[SimpleNamespace], pairs: list[tuple[int, int]]) -> SimpleNamespace:
    jobs = {n: SimpleNamespace(client_id=c, host_id=s) for n, (c, s) in enumerate(pairs)}
    return SimpleNamespace(cs={h.id: h for h in hosts}, jobs=jobs)


def test_nodes_and_links() -> None:
    hosts = [host(2, 1, maxjobs=0), host(1, 3, maxjobs=2)]
    assert [(n["id"], n["load"]) for n in build_nodes(hosts)] == [(1, 150.0), (2, 0.0)]
    cs = {h.id: h for h in hosts}
    jobs = [SimpleNamespace(client_id=c, host_id=s) for c, s in [(1, 2), (1, 2), (2, 1), (1, 0)]]
    assert build_links(cs, jobs) == [  # one per pair; host 0 (not begun) has no link
        {"source": 1, "target": 2, "value": 10},
        {"source": 2, "target": 1, "value": 10},
    ]


def test_frames_leave_out_what_did_not_change(
    ws: Publishers,
) -> None:
    publisher = ws.new()
    client = ws.client(publisher)
    first = recv_json(client)
    assert (first["nodes"], first["links"], first["index"]) == ([], [], 0)

    publisher.publish(view([host(1, 1), host(2, 0)], []))
    a = recv_json(client)
    assert set(a) == {"timestamp", "index", "nodes"}
    assert a["index"] == 1
    publisher.publish(view([host(1, 1), host(2, 0)], [(1, 2)]))  # links only
    b = recv_json(client)
    assert set(b) == {"timestamp", "index", "links"}
    assert b["index"] == 2
    assert b["links"] == [{"source": 1, "target": 2, "value": 10}]
    assert b["timestamp"] - a["timestamp"] >= publisher.MIN_SEND_GAP_S - 0.002  # throttled
    publisher.publish(view([host(1, 1), host(2, 0)], [(1, 2)]))  # no change: no frame
    publisher.publish(view([host(1, 2), host(2, 0)], [(1, 2)]))  # nodes only
    c = recv_json(client)
    assert set(c) == {"timestamp", "index", "nodes"}
    assert c["index"] == 3
    assert c["nodes"][0]["load"] == 100.0

    late = ws.client(publisher)  # a new client: the whole frame at once
    full = recv_json(late)
    assert (full["nodes"], full["links"], full["index"]) == (c["nodes"], b["links"], 3)
    wait_for(lambda: publisher.clients == 2, DEADLINE, "two clients")


def test_live_frames_follow_the_replay(
    scheduler: Callable[..., ReplayScheduler], ws: Publishers
) -> None:
    publisher = ws.new()
    client = ws.client(publisher)
    frames = [recv_json(client)]
    sched = scheduler(upto=140)
    mon = Monitor("127.0.0.1", sched.port)
    mon.add_publisher(publisher)
    run_to_end(mon)

    state: dict[str, Any] = {}
    want_links = [
        {"source": 1, "target": 1, "value": 10},
        {"source": 1, "target": 2, "value": 10},
        {"source": 1, "target": 4, "value": 10},
    ]
    want_loads = [100.0, 50.0, 50.0]

    def loads() -> list[float]:
        return [n["load"] for n in state.get("nodes", [])]

    # Wait for the final state as a whole (issue #8, item 11): frames sent while the
    # monitor ran may already hold the final links and three nodes, but not their last
    # loads, which come in the trailing frame.
    while state.get("links") != want_links or loads() != want_loads:
        try:
            frame = recv_json(client)
        except TimeoutError:
            pytest.fail(f"the final state never came: links {state.get('links')}, loads {loads()}")
        frames.append(frame)
        state.update({k: frame[k] for k in ("nodes", "links") if k in frame})
    assert [f["index"] for f in frames] == list(range(len(frames)))
    assert all("nodes" in f or "links" in f for f in frames)
    gaps = [b["timestamp"] - a["timestamp"] for a, b in itertools.pairwise(frames[1:])]
    assert all(g >= publisher.MIN_SEND_GAP_S - 0.002 for g in gaps), gaps


# -- python -m fleetwatch.icecream: the page ----------------------------------------------------


def test_page_server_serves_a_self_contained_page() -> None:
    server = page_server("127.0.0.1", 0, ws_port=12345)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/", timeout=DEADLINE) as r:
            page = r.read().decode()
        with urllib.request.urlopen(f"{base}/config.json", timeout=DEADLINE) as r:
            assert json.load(r) == {"ws_port": 12345}
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/../secret", timeout=DEADLINE)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLINE)
    assert "Not connected" in page
    assert "Connected" in page
    assert "new WebSocket" in page
    assert " src=" not in page
    assert " href=" not in page
    assert "https://" not in page
