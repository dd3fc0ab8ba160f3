"""The icecream monitor codec: the recorded capture byte for byte, the handshake, a
scheduler↔monitor pair, aliases, garbage, round trips and fuzzing.

The capture (``tests/vectors/icecream-capture.jsonl``, described in
``CAPTURES.md`` §1) holds four monitor sessions recorded from a real icecc 1.4
scheduler; every frame in it must decode, and re-encode to the same bytes.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetwatch.errors import LocalProtocolError, RemoteProtocolError
from fleetwatch.sources.icecream.protocol import (
    MAX_FRAME,
    MAX_VERSION,
    MIN_VERSION,
    NEED_DATA,
    Closed,
    Codec,
    End,
    Event,
    HandshakeState,
    JobLocalDone,
    Message,
    MonGetCS,
    MonJobBegin,
    MonJobDone,
    MonLocalJobBegin,
    MonLogin,
    MonStats,
    MsgType,
    Negotiated,
    UnknownMessage,
    frame,
    pack_message,
    parse_stats,
    unpack_message,
)

CAPTURE = Path(__file__).resolve().parents[1] / "vectors" / "icecream-capture.jsonl"
SESSIONS = ("mon-v44", "mon-v38", "mon-v28", "mon-v21")
ALL_VERSIONS = range(MIN_VERSION, MAX_VERSION + 1)
# The capture's frame names, and the message class each must decode to.
CLASSES: dict[str, type[Any]] = {
    "MON_STATS": MonStats,
    "MON_GET_CS": MonGetCS,
    "MON_JOB_BEGIN": MonJobBegin,
    "MON_JOB_DONE": MonJobDone,
    "MON_LOCAL_JOB_BEGIN": MonLocalJobBegin,
    "JOB_LOCAL_DONE": JobLocalDone,
}
# The ids that decode to something other than UnknownMessage.
DECODED_TYPES = {67, 71, 77, 79, 82, 83, 84, 85, 86, 87}


@dataclass(frozen=True)
class Session:
    name: str
    offered: int
    version: int
    rx: bytes
    tx: bytes
    login: bytes
    frames: tuple[tuple[int, str, bytes], ...]
    """(capture line, frame name, frame bytes) in order."""
    eof_line: int

    @property
    def stream(self) -> bytes:
        """Everything the scheduler sent: its handshake bytes, then every frame."""
        return self.rx + b"".join(raw for _, _, raw in self.frames)


@functools.cache
def sessions() -> dict[str, Session]:
    assert CAPTURE.is_file(), f"the recorded capture is missing: {CAPTURE}"
    heads: dict[str, dict[str, Any]] = {}
    frames: dict[str, list[tuple[int, str, bytes]]] = {}
    eofs: dict[str, int] = {}
    for number, text in enumerate(CAPTURE.read_text().splitlines(), 1):
        line = json.loads(text)
        name = line["session"]
        if not name.startswith("mon-"):
            continue
        if "offered_version" in line:
            heads[name] = line
        elif "frame_hex" in line:
            frames.setdefault(name, []).append(
                (number, line["name"], bytes.fromhex(line["frame_hex"]))
            )
        elif line.get("eof"):
            eofs[name] = number
    return {
        name: Session(
            name=name,
            offered=head["offered_version"],
            version=head["negotiated_version"],
            rx=bytes.fromhex(head["handshake_rx_hex"]),
            tx=bytes.fromhex(head["handshake_tx_hex"]),
            login=bytes.fromhex(head["login_tx_hex"]),
            frames=tuple(frames[name]),
            eof_line=eofs[name],
        )
        for name, head in heads.items()
    }


def ready(version: int) -> Codec:
    """A monitor codec whose handshake settled on ``version``."""
    codec = Codec(max_version=version)
    codec.receive_data(struct.pack("<II", version, version))
    assert codec.events() == [Negotiated(version)]
    assert codec.data_to_send() == struct.pack("<II", version, version)
    return codec


def drain(codec: Codec) -> list[Event]:
    """Every event ``next_event()`` has for the bytes so far (stops after Closed)."""
    out: list[Event] = []
    while True:
        event = codec.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)  # type: ignore[arg-type]
        if isinstance(event, Closed):
            return out


def guard(codec: Codec, limit: int = 100) -> Codec:
    """Make ``codec.events()`` fail, not loop, if it calls ``next_event()`` endlessly."""
    if "next_event" not in vars(codec):
        real = codec.next_event
        calls = 0

        def next_event() -> Any:
            nonlocal calls
            calls += 1
            assert calls < limit, "events() keeps calling next_event()"
            return real()

        codec.next_event = next_event  # type: ignore[method-assign]
    return codec


def take_events(codec: Codec) -> list[Event]:
    return guard(codec).events()


READERS: dict[str, Callable[[Codec], list[Event]]] = {"next_event": drain, "events": take_events}


def feed(
    codec: Codec, chunks: Iterable[bytes], read: Callable[[Codec], list[Event]]
) -> list[Event]:
    out: list[Event] = []
    for chunk in chunks:
        codec.receive_data(chunk)
        out += read(codec)
    return out


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]  # b"" would be EOF


def decode_frame(raw: bytes, version: int) -> Message:
    """One frame through a fresh codec (which must take it whole and want nothing more)."""
    codec = ready(version)
    codec.receive_data(raw)
    (msg,) = codec.events()
    assert codec.next_event() is NEED_DATA
    return msg  # type: ignore[return-value]


def body_frame(mtype: int, body: bytes) -> bytes:
    return struct.pack(">II", len(body) + 4, mtype) + body


def cstr(text: str | bytes) -> bytes:
    """A string as icecream writes it: u32 length with the NUL, the bytes, NUL."""
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack(">I", len(raw) + 1) + raw + b"\0"


# -- the capture ----------------------------------------------------------------------------------


def test_capture_holds_the_four_documented_sessions() -> None:
    found = sessions()
    assert sorted(found) == sorted(SESSIONS)
    assert [(found[n].offered, found[n].version) for n in SESSIONS] == [
        (44, 43),
        (38, 38),
        (28, 28),
        (21, 21),
    ]
    assert [found[n].eof_line for n in SESSIONS] == [172, 341, 507, 670]
    for session in found.values():
        assert {name for _, name, _ in session.frames} <= set(CLASSES)
        assert len(session.frames) > 150


@pytest.mark.parametrize("name", SESSIONS)
def test_capture_handshake_bytes_are_ours(name: str) -> None:
    session = sessions()[name]
    codec = Codec(max_version=session.offered)
    assert codec.data_to_send() == session.tx[:4]  # our maximum, before anything arrives
    assert codec.next_event() is NEED_DATA
    assert codec.data_to_send() == b""  # the second value is never pipelined (trap 2)
    with pytest.raises(LocalProtocolError):
        codec.send(MonLogin())
    for i, byte in enumerate(session.rx, 1):
        codec.receive_data(bytes([byte]))
        event = codec.next_event()
        if i < 4:
            assert event is NEED_DATA
            assert codec.data_to_send() == b""
        elif i == 4:
            assert event is NEED_DATA
            assert codec.state is HandshakeState.AWAIT_PEER_MIN
            assert codec.data_to_send() == session.tx[4:]
        elif i < 8:
            assert event is NEED_DATA
        else:
            assert event == Negotiated(session.version)
    assert codec.version == session.version
    assert codec.state is HandshakeState.READY
    assert codec.data_to_send() == b""
    assert codec.send(MonLogin()) == session.login


@pytest.mark.parametrize("name", SESSIONS)
def test_capture_frames_decode_and_reencode_byte_for_byte(name: str) -> None:
    session = sessions()[name]
    for line, frame_name, raw in session.frames:
        msg = decode_frame(raw, session.version)
        assert isinstance(msg, CLASSES[frame_name]), f"line {line}: {msg!r}"
        assert frame(msg, session.version) == raw, f"line {line} re-encodes differently"
        assert unpack_message(raw[4:], session.version) == msg
        assert pack_message(msg, session.version) == raw[4:]


@pytest.mark.parametrize("name", SESSIONS)
@pytest.mark.parametrize("how", ["whole", "byte by byte", "random splits", "trailing bytes"])
@pytest.mark.parametrize("reader", ["next_event", "events"])
def test_capture_stream_decodes_however_it_is_cut(name: str, how: str, reader: str) -> None:
    session = sessions()[name]
    expected: list[Event] = [Negotiated(session.version)]
    expected += [decode_frame(raw, session.version) for _, _, raw in session.frames]
    stream = session.stream
    if how == "whole":
        chunks = [stream]
    elif how == "byte by byte":
        chunks = [bytes([b]) for b in stream]
    elif how == "random splits":
        rng = random.Random(f"{name}-{reader}")
        chunks = split(stream, (rng.randrange(len(stream)) for _ in range(len(stream) // 7)))
    else:
        # each frame arrives with the first bytes of the next one behind it
        raws = [session.rx] + [raw for _, _, raw in session.frames]
        chunks, carry = [], b""
        for i, raw in enumerate(raws):
            rest = raw[len(carry) :]
            following = raws[i + 1] if i + 1 < len(raws) else b""
            carry = following[: 1 + i % max(1, len(following) - 1)]
            chunks.append(rest + carry)
    codec = Codec(max_version=session.offered)
    got = feed(codec, chunks, READERS[reader])
    assert got == expected
    assert codec.frames == len(session.frames)
    codec.receive_data(b"")  # the scheduler closed the connection (no END frame)
    assert READERS[reader](codec) == [Closed()]
    assert codec.state is HandshakeState.CLOSED


@pytest.mark.parametrize("name", SESSIONS)
def test_capture_trailing_bytes_stay_buffered(name: str) -> None:
    session = sessions()[name]
    raws = [raw for _, _, raw in session.frames]
    for raw, following in itertools.pairwise(raws):
        for cut in (1, 7, 8, len(following) - 1):
            codec = ready(session.version)
            codec.receive_data(raw + following[:cut])
            assert codec.next_event() == decode_frame(raw, session.version)
            assert codec.next_event() is NEED_DATA
            codec.receive_data(following[cut:])
            assert codec.events() == [decode_frame(following, session.version)]


@pytest.mark.parametrize("name", SESSIONS)
@pytest.mark.parametrize("reader", ["next_event", "events"])
def test_capture_eof_mid_frame_is_a_remote_error(name: str, reader: str) -> None:
    session = sessions()[name]
    for _, _, raw in session.frames[::10]:
        for cut in (1, 4, 8, len(raw) - 1):
            codec = ready(session.version)
            codec.receive_data(raw[:cut])
            assert READERS[reader](codec) == []
            codec.receive_data(b"")
            with pytest.raises(RemoteProtocolError, match="middle of a frame"):
                READERS[reader](codec)
            assert codec.state is HandshakeState.ERROR
            with pytest.raises(LocalProtocolError):
                codec.receive_data(raw)


# -- documented samples (icecream.md §8.3) --------------------------------------------------------

STATS_TEXT = (
    "Name:icelab-client\nIP:127.0.0.1\nMaxJobs:2\nNoRemote:true\nPlatform:x86_64\nVersion:43\n"
    "Features:env_xz env_zstd\nSpeed:0.000000\nLoad:124\n"
)
SAMPLES: list[tuple[str, str, int, Message]] = [
    (
        "MON_STATS",
        "00000091 00000057 00000001 00000085" + STATS_TEXT.encode().hex() + "00",
        43,
        MonStats(hostid=1, statmsg=STATS_TEXT),
    ),
    (
        "MON_STATS offline",
        "0000001b 00000057 00000003 0000000f" + b"State:Offline\n".hex() + "00",
        43,
        MonStats(hostid=3, statmsg="State:Offline\n"),
    ),
    (
        "MON_GET_CS short",
        "00000025 00000053 00000011" + b"work/src/unit2.c".hex() + "00 00000000 00000001 00000001",
        43,
        MonGetCS(filename="work/src/unit2.c", lang=0, job_id=1, client_id=1),
    ),
    (
        "MON_GET_CS v28",
        "00000045 00000053 00000000 00000011"
        + b"work/src/unit1.c".hex()
        + "00 00000000 00000001 00000007"
        + b"x86_64".hex()
        + "00 00000000 00000000 00000001 00 00000012 00000001",
        28,
        MonGetCS(
            filename="work/src/unit1.c",
            lang=0,
            job_id=18,
            client_id=1,
            envs=(),
            job_count=1,
            target="x86_64",
            arg_flags=0,
            preferred_host="",
        ),
    ),
    (
        "MON_GET_CS v21",
        "00000040 00000053 00000000 00000011"
        + b"work/src/unit1.c".hex()
        + "00 00000000 00000001 00000007"
        + b"x86_64".hex()
        + "00 00000000 00000000 00000012 00000001",
        21,
        MonGetCS(filename="work/src/unit1.c", lang=0, job_id=18, client_id=1, target="x86_64"),
    ),
    (
        "MON_JOB_BEGIN",
        "00000010 00000054 00000002 6b034c8f 00000001",
        43,
        MonJobBegin(job_id=2, stime=0x6B034C8F, hostid=1),
    ),
    (
        "MON_JOB_DONE v43",
        "00000034 00000055 00000004 00000000 000001be 00000066 00000003 00000d80 00000000 00000000"
        "00000000 000009a0 00000001 00000004",
        43,
        MonJobDone(
            job_id=4,
            exitcode=0,
            real_msec=446,
            user_msec=102,
            sys_msec=3,
            pfaults=3456,
            in_compressed=0,
            in_uncompressed=0,
            out_compressed=0,
            out_uncompressed=2464,
            flags=1,
            client_count=4,
        ),
    ),
    (
        "MON_JOB_DONE v38",
        "00000030 00000055 00000004 00000000 000001be 00000066 00000003 00000d80 00000000 00000000"
        "00000000 000009a0 00000001",
        38,
        MonJobDone(
            job_id=4,
            exitcode=0,
            real_msec=446,
            user_msec=102,
            sys_msec=3,
            pfaults=3456,
            in_compressed=0,
            in_uncompressed=0,
            out_compressed=0,
            out_uncompressed=2464,
            flags=1,
            client_count=0,
        ),
    ),
    (
        "MON_LOCAL_JOB_BEGIN",
        "00000022 00000056 00000001 0000000e 6b034c92 0000000e" + b"work/obj/prog".hex() + "00",
        43,
        MonLocalJobBegin(hostid=1, job_id=14, stime=0x6B034C92, file="work/obj/prog"),
    ),
    (
        "MON_LOCAL_JOB_BEGIN icerun",
        "00000015 00000056 00000001 0000000f 6b034c92 00000001 00",
        43,
        MonLocalJobBegin(hostid=1, job_id=15, stime=0x6B034C92, file=""),
    ),
    ("JOB_LOCAL_DONE", "00000008 0000004f 0000000e", 43, JobLocalDone(job_id=14)),
]


@pytest.mark.parametrize(
    ("hex_frame", "version", "expected"), [x[1:] for x in SAMPLES], ids=[x[0] for x in SAMPLES]
)
def test_documented_samples_decode_to_their_fields(
    hex_frame: str, version: int, expected: Message
) -> None:
    raw = bytes.fromhex(hex_frame.replace(" ", ""))
    assert decode_frame(raw, version) == expected
    assert frame(expected, version) == raw


def test_sample_fields_by_name() -> None:
    by_name = {name: msg for name, _, _, msg in SAMPLES}
    stats = by_name["MON_STATS"]
    assert isinstance(stats, MonStats)
    assert stats.stats == {
        "Name": "icelab-client",
        "IP": "127.0.0.1",
        "MaxJobs": "2",
        "NoRemote": "true",
        "Platform": "x86_64",
        "Version": "43",
        "Features": "env_xz env_zstd",
        "Speed": "0.000000",
        "Load": "124",
    }
    assert (stats.host_id, stats.data["Load"]) == (1, "124")
    done = by_name["MON_JOB_DONE v43"]
    assert isinstance(done, MonJobDone)
    assert (done.rc, done.real_ms, done.user_ms, done.sys_ms) == (0, 446, 102, 3)
    local = by_name["MON_LOCAL_JOB_BEGIN"]
    assert isinstance(local, MonLocalJobBegin)
    assert (local.client_id, local.filename, local.time) == (1, "work/obj/prog", 0x6B034C92)
    begin = by_name["MON_JOB_BEGIN"]
    assert isinstance(begin, MonJobBegin)
    assert (begin.host_id, begin.time) == (1, 0x6B034C8F)


def test_parse_stats_splits_at_the_first_colon_only() -> None:
    assert parse_stats("Features:--\nX:a:b\nno colon\n\nState:Offline\n") == {
        "Features": "--",
        "X": "a:b",
        "State": "Offline",
    }


def test_signed_exit_codes() -> None:
    words = [7, 0xFFFFFFFF, *[0] * 9]
    msg = decode_frame(body_frame(85, struct.pack(">11I", *words)), 38)
    assert isinstance(msg, MonJobDone)
    assert msg.exitcode == -1
    assert frame(msg, 38)[12:16] == b"\xff\xff\xff\xff"


def test_strings_length_zero_embedded_nul_and_raw_bytes() -> None:
    # a length of 0 is the empty string too (icecream.md §1.4)
    assert decode_frame(body_frame(87, struct.pack(">II", 9, 0)), 43) == MonStats(9, "")
    # only the bytes before the first NUL count
    body = struct.pack(">II", 9, 6) + b"ab\0cd\0"
    assert decode_frame(body_frame(87, body), 43) == MonStats(9, "ab")
    # bytes that are not UTF-8 survive a round trip
    raw = body_frame(87, struct.pack(">I", 9) + cstr(b"Name:\xff\xfe caf\xc3\xa9\n"))
    msg = decode_frame(raw, 43)
    assert isinstance(msg, MonStats)
    assert msg.statmsg == "Name:\udcff\udcfe café\n"
    assert frame(msg, 43) == raw


def test_long_form_get_cs_with_environments() -> None:
    envs = (("x86_64", "/tmp/env.tar.gz"), ("", ""))
    msg = MonGetCS("a.c", 1, 5, 6, envs, 2, "x86_64", 3, "remote1")
    for version in (22, 28):
        raw = frame(msg, version)
        assert decode_frame(raw, version) == msg
    assert decode_frame(frame(msg, 21), 21) == msg._replace(preferred_host="")
    # from 29 on the short form carries only four fields
    assert decode_frame(frame(msg, 29), 29) == MonGetCS("a.c", 1, 5, 6)


def test_long_form_get_cs_environments_with_zero_length_strings() -> None:
    # Each string may be a bare zero length word (read as ""), so an environment can
    # take only 8 bytes; the count check must not refuse such a body.
    body = struct.pack(">I", 40) + b"\0" * 8 * 40 + cstr("f.c") + struct.pack(">II", 0, 1)
    body += cstr("x86_64") + struct.pack(">II", 0, 0) + cstr("") + struct.pack(">II", 3, 1)
    msg = decode_frame(body_frame(83, body), 28)
    assert isinstance(msg, MonGetCS)
    assert msg.envs == (("", ""),) * 40
    assert (msg.filename, msg.job_id, msg.client_id) == ("f.c", 3, 1)


# -- handshake ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "agreed"),
    [(44, 43, 43), (43, 44, 43), (44, 2**20, 44), (21, 21, 21), (38, 43, 38), (44, 22, 22)],
)
def test_handshake_settles_on_the_minimum(ours: int, theirs: int, agreed: int) -> None:
    codec = Codec(max_version=ours)
    assert codec.data_to_send() == struct.pack("<I", ours)
    codec.receive_data(struct.pack("<II", theirs, agreed) + frame(JobLocalDone(3), agreed))
    assert codec.events() == [Negotiated(agreed), JobLocalDone(3)]
    assert codec.data_to_send() == struct.pack("<I", agreed)
    assert codec.version == agreed


@pytest.mark.parametrize("theirs", [0, 1, 20, 2**20 + 1, 2**32 - 1])
@pytest.mark.parametrize("reader", ["next_event", "events"])
def test_handshake_refuses_a_version_out_of_range(theirs: int, reader: str) -> None:
    codec = Codec()
    codec.receive_data(struct.pack("<I", theirs))
    with pytest.raises(RemoteProtocolError, match=f"offers protocol {theirs}"):
        READERS[reader](codec)
    assert codec.state is HandshakeState.ERROR
    assert codec.data_to_send() == struct.pack("<I", 44)  # no second value was queued
    with pytest.raises(LocalProtocolError):
        codec.receive_data(b"\0\0\0\0")
    with pytest.raises(LocalProtocolError):
        codec.next_event()
    with pytest.raises(LocalProtocolError):
        codec.events()


@pytest.mark.parametrize("second", [42, 44, 21, 0])
def test_handshake_refuses_a_different_second_value(second: int) -> None:
    codec = Codec(max_version=44)
    codec.receive_data(struct.pack("<II", 43, second))
    with pytest.raises(RemoteProtocolError, match=f"settled on {second}, we on 43"):
        codec.next_event()
    assert codec.state is HandshakeState.ERROR
    with pytest.raises(LocalProtocolError):
        codec.receive_data(b"x")
    with pytest.raises(LocalProtocolError):
        codec.send(MonLogin())


def test_handshake_eof_is_closed() -> None:
    for reader in READERS.values():
        for before in (b"", b"\x2b\0", struct.pack("<I", 43), struct.pack("<I", 43) + b"\x2b"):
            codec = Codec()
            codec.receive_data(before)
            codec.receive_data(b"")
            assert reader(codec) == [Closed()]
            assert codec.state is HandshakeState.CLOSED
            with pytest.raises(LocalProtocolError):
                codec.send(MonLogin())
            with pytest.raises(LocalProtocolError):
                codec.receive_data(b"more")


def test_events_after_eof_returns_closed_and_never_loops() -> None:
    # A scheduler that hangs up before the handshake ends (it does so for v20) made
    # events() loop forever collecting Closed events; guard() turns that into a failure.
    for before in (b"", b"\x2b\0", struct.pack("<I", 43), struct.pack("<I", 43) + b"\x2b"):
        during = guard(Codec())
        during.receive_data(before)
        during.receive_data(b"")
        assert during.events() == [Closed()]
        assert during.events() == [Closed()]
        assert during.state is HandshakeState.CLOSED

    after = guard(ready(43))
    after.receive_data(frame(JobLocalDone(1), 43))
    after.receive_data(b"")
    assert after.events() == [JobLocalDone(1), Closed()]
    assert after.events() == [Closed()]
    assert after.next_event() == Closed()


def test_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Codec(max_version=20)
    with pytest.raises(LocalProtocolError):
        Codec(max_version=45)
    with pytest.raises(LocalProtocolError):
        Codec(role="daemon")
    with pytest.raises(LocalProtocolError):
        pack_message(MonLogin(), 20)
    with pytest.raises(LocalProtocolError):
        frame(MonLogin(), 45)
    codec = Codec()
    with pytest.raises(LocalProtocolError, match="finish the handshake"):
        codec.send(MonLogin())
    codec.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF"):
        codec.receive_data(b"x")


@pytest.mark.parametrize(
    "msg",
    [
        MonStats(1, "x"),
        MonGetCS("a.c", 0, 1, 1),
        MonJobBegin(1, 2, 3),
        MonJobDone(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        MonLocalJobBegin(1, 2, 3, ""),
        JobLocalDone(1),
        UnknownMessage(100, b""),
    ],
)
def test_a_monitor_sends_only_login_and_end(msg: Message) -> None:
    codec = ready(43)
    with pytest.raises(LocalProtocolError, match="a monitor only sends"):
        codec.send(msg)
    assert codec.send(MonLogin()) == bytes.fromhex("0000000400000052")
    assert codec.send(End()) == bytes.fromhex("0000000400000043")


# -- a scheduler and a monitor back to back -------------------------------------------------------


def pipe(src: Codec, dst: Codec) -> list[Event]:
    data = src.data_to_send()
    if data:
        dst.receive_data(data)
    return dst.events()


def connect(sched_version: int, mon_version: int) -> tuple[Codec, Codec]:
    scheduler = Codec(max_version=sched_version, role="scheduler")
    monitor = Codec(max_version=mon_version, role="monitor")
    got_s: list[Event] = []
    got_m: list[Event] = []
    for _ in range(3):
        got_m += pipe(scheduler, monitor)
        got_s += pipe(monitor, scheduler)
    agreed = min(sched_version, mon_version)
    assert got_s == [Negotiated(agreed)]
    assert got_m == [Negotiated(agreed)]
    assert scheduler.version == monitor.version == agreed
    assert scheduler.data_to_send() == monitor.data_to_send() == b""
    return scheduler, monitor


def messages_for(version: int) -> list[Message]:
    long_form = version < 29
    return [
        MonStats(1, "Name:icelab-client\nIP:127.0.0.1\nLoad:1000\n"),
        MonStats(1, "State:Offline\n"),
        MonGetCS(
            "work/src/ü.c",
            1,
            7,
            1,
            (("x86_64", "env"),) if long_form else (),
            1,
            "x86_64" if long_form else "",
            4 if long_form else 0,
            "remote1" if 22 <= version < 29 else "",
        ),
        MonJobBegin(7, 0x6B034C8F, 2),
        MonJobDone(7, -1, 1, 2, 3, 4, 5, 6, 7, 8, 1, 9 if version >= 39 else 0),
        MonJobDone(8, 255, *[0] * 9),
        MonLocalJobBegin(1, 9, 0x6B034C92, ""),
        MonLocalJobBegin(1, 10, 0x6B034C92, "work/obj/prog"),
        JobLocalDone(9),
        UnknownMessage(96, b"\0\0\0\1"),
        End(),
    ]


@pytest.mark.parametrize(
    ("sched_version", "mon_version"),
    [
        *[(43, 44), (44, 43), (44, 44), (43, 21), (21, 44), (38, 28), (28, 38)],
        *[(29, 28), (28, 29), (38, 39), (39, 38), (22, 21), (21, 22), (44, 39)],
    ],
)
def test_scheduler_monitor_pair(sched_version: int, mon_version: int) -> None:
    scheduler, monitor = connect(sched_version, mon_version)
    scheduler.receive_data(monitor.send(MonLogin()))
    assert scheduler.events() == [MonLogin()]
    sent = messages_for(min(sched_version, mon_version))
    wire = b"".join(scheduler.send(msg) for msg in sent)
    monitor.receive_data(wire[: len(wire) // 2])
    got = monitor.events()
    monitor.receive_data(wire[len(wire) // 2 :])
    got += monitor.events()
    assert got == sent
    monitor.receive_data(b"")
    assert monitor.events() == [Closed()]


# -- aliases, unknown types, frame and body errors -------------------------------------------------


@pytest.mark.parametrize("reader", ["next_event", "events"])
def test_aliases_71_and_77(reader: str) -> None:
    get_cs = MonGetCS("work/src/unit2.c", 1, 3, 1)
    done = MonJobDone(3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2)
    for version in (43, 38, 28, 21):
        expect_done = done if version >= 39 else done._replace(client_count=0)
        codec = ready(version)
        codec.receive_data(_retype(frame(get_cs, version), 71))
        codec.receive_data(_retype(frame(done, version), 77))
        got = READERS[reader](codec)
        assert got == [get_cs, expect_done], version
        assert isinstance(got[0], MonGetCS)
        assert got[0].msg_type == MsgType.MON_GET_CS
        assert got[1].msg_type == MsgType.MON_JOB_DONE
        assert unpack_message(_retype(frame(get_cs, version), 71)[4:], version) == get_cs


def _retype(raw: bytes, mtype: int) -> bytes:
    return raw[:4] + struct.pack(">I", mtype) + raw[8:]


@pytest.mark.parametrize("mtype", [65, 66, 68, 76, 80, 81, 88, 96, 97, 1000, 2**32 - 1, 0])
@pytest.mark.parametrize("reader", ["next_event", "events"])
def test_unknown_types_are_kept_not_errors(mtype: int, reader: str) -> None:
    codec = ready(43)
    body = b"\x00\x01\x02 anything"
    codec.receive_data(body_frame(mtype, body) + body_frame(mtype, b"") + frame(JobLocalDone(5)))
    got = READERS[reader](codec)
    assert got == [UnknownMessage(mtype, body), UnknownMessage(mtype, b""), JobLocalDone(5)]
    assert got[0].msg_type == mtype
    assert frame(got[0]) == body_frame(mtype, body)  # type: ignore[arg-type]
    assert unpack_message(struct.pack(">I", mtype) + body) == UnknownMessage(mtype, body)


@pytest.mark.parametrize("length", [0, 1, 3, MAX_FRAME + 1, 2**32 - 1])
@pytest.mark.parametrize("reader", ["next_event", "events"])
def test_frame_length_out_of_range(length: int, reader: str) -> None:
    codec = ready(43)
    codec.receive_data(struct.pack(">II", length, 87))
    with pytest.raises(RemoteProtocolError, match=f"frame length {length} outside"):
        READERS[reader](codec)
    assert codec.state is HandshakeState.ERROR


@pytest.mark.parametrize("reader", ["next_event", "events"])
def test_a_frame_of_exactly_one_mebibyte_is_fine(reader: str) -> None:
    codec = ready(43)
    body = b"z" * (MAX_FRAME - 4)
    raw = body_frame(200, body)
    codec.receive_data(raw[:100])
    assert READERS[reader](codec) == []
    codec.receive_data(raw[100:])
    assert READERS[reader](codec) == [UnknownMessage(200, body)]


BAD_BODIES: list[tuple[str, int, bytes, int, str]] = [
    ("stats extra", 87, struct.pack(">I", 1) + cstr("Load:5\n") + b"!", 43, "MON_STATS"),
    ("stats short", 87, struct.pack(">I", 1), 43, "MON_STATS"),
    ("stats string past end", 87, struct.pack(">II", 1, 9) + b"abc", 43, "MON_STATS statmsg"),
    ("get_cs short tail", 83, cstr("a.c") + b"\0" * 11, 43, "MON_GET_CS"),
    ("get_cs long tail", 83, cstr("a.c") + b"\0" * 13, 43, "MON_GET_CS"),
    ("get_cs string past end", 83, struct.pack(">I", 99) + b"a.c", 43, "MON_GET_CS filename"),
    ("get_cs no filename", 83, b"\0\0", 43, "MON_GET_CS filename"),
    ("get_cs v28 empty", 83, b"", 28, "MON_GET_CS"),
    ("get_cs v28 envs", 83, struct.pack(">I", 1000) + b"\0" * 40, 28, "MON_GET_CS"),
    (
        "get_cs v28 no job id",
        83,
        struct.pack(">I", 0)
        + cstr("a.c")
        + struct.pack(">II", 0, 1)
        + cstr("x")
        + b"\0" * 8
        + cstr(""),
        28,
        "MON_GET_CS",
    ),
    (
        "get_cs v21 extra",
        83,
        struct.pack(">I", 0)
        + cstr("a.c")
        + struct.pack(">II", 0, 1)
        + cstr("x")
        + b"\0" * 8
        + cstr(""),
        21,
        "MON_GET_CS",
    ),
    ("get_cs v28 no lang", 83, struct.pack(">I", 0) + cstr("a.c") + b"\0" * 7, 28, "MON_GET_CS"),
    ("job_begin short", 84, b"\0" * 11, 43, "MON_JOB_BEGIN"),
    ("job_begin long", 84, b"\0" * 13, 43, "MON_JOB_BEGIN"),
    ("job_done 11 words at v43", 85, b"\0" * 44, 43, "MON_JOB_DONE"),
    ("job_done 12 words at v38", 85, b"\0" * 48, 38, "MON_JOB_DONE"),
    ("job_done alias short", 77, b"\0" * 47, 43, "MON_JOB_DONE"),
    ("local_begin short", 86, b"\0" * 15, 43, "MON_LOCAL_JOB_BEGIN"),
    ("local_begin extra", 86, b"\0" * 12 + cstr("x") + b"\0", 43, "MON_LOCAL_JOB_BEGIN"),
    ("local_begin past end", 86, b"\0" * 12 + struct.pack(">I", 5), 43, "MON_LOCAL_JOB_BEGIN"),
    ("local_done short", 79, b"\0" * 3, 43, "JOB_LOCAL_DONE"),
    ("local_done long", 79, b"\0" * 5, 43, "JOB_LOCAL_DONE"),
    ("login with a body", 82, b"\0", 43, "MonLogin"),
    ("end with a body", 67, b"\0\0\0\0", 43, "End"),
]


@pytest.mark.parametrize(
    ("mtype", "body", "version", "what"),
    [b[1:] for b in BAD_BODIES],
    ids=[b[0] for b in BAD_BODIES],
)
def test_bad_bodies_name_the_message(mtype: int, body: bytes, version: int, what: str) -> None:
    raw = body_frame(mtype, body)
    for reader in READERS.values():
        codec = ready(version)
        codec.receive_data(frame(JobLocalDone(1), version) + raw)
        if reader is drain:
            assert codec.next_event() == JobLocalDone(1)
        with pytest.raises(RemoteProtocolError, match=what) as info:
            reader(codec)
        assert "at byte" in str(info.value)
        assert codec.state is HandshakeState.ERROR
        with pytest.raises(LocalProtocolError):
            codec.receive_data(raw)
    with pytest.raises(RemoteProtocolError, match=what):
        unpack_message(raw[4:], version)


def test_unpack_message_needs_a_type_word() -> None:
    with pytest.raises(RemoteProtocolError, match="4-byte type word"):
        unpack_message(b"\0\0\0")


# -- packing errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "version", "what"),
    [
        (MonStats(-1, ""), 43, "MonStats.hostid"),
        (MonStats(2**32, ""), 43, "MonStats.hostid"),
        (MonJobBegin(1, 2**32, 3), 43, "MonJobBegin.stime"),
        (MonJobBegin(1, 2, 1.5), 43, "MonJobBegin.hostid"),  # type: ignore[arg-type]
        (MonJobBegin("1", 2, 3), 43, "MonJobBegin.job_id"),  # type: ignore[arg-type]
        (MonJobDone(1, 2**31, 0, 0, 0, 0, 0, 0, 0, 0, 0), 43, "MonJobDone.exitcode"),
        (MonJobDone(1, -(2**31) - 1, 0, 0, 0, 0, 0, 0, 0, 0, 0), 43, "MonJobDone.exitcode"),
        (MonJobDone(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2**32), 43, "MonJobDone.client_count"),
        (MonJobDone(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, -3), 38, "MonJobDone.flags"),
        (MonLocalJobBegin(1, -1, 0, ""), 43, "MonLocalJobBegin.job_id"),
        (JobLocalDone(2**40), 43, "JobLocalDone.job_id"),
        (MonGetCS("a.c", 2**32, 0, 0), 43, "MonGetCS.lang"),
        (MonGetCS("a.c", 0, 0, -1), 28, "MonGetCS.client_id"),
        (MonGetCS("a.c", 0, 0, 0, job_count=-1), 28, "MonGetCS.job_count"),
        (MonGetCS("a.c", 0, 0, 0, arg_flags=2**32), 21, "MonGetCS.arg_flags"),
        (UnknownMessage(2**32, b""), 43, "UnknownMessage.type"),
        (UnknownMessage(-1, b""), 43, "UnknownMessage.type"),
    ],
)
def test_pack_refuses_values_out_of_range(msg: Message, version: int, what: str) -> None:
    with pytest.raises(LocalProtocolError, match=rf"{what}\b"):
        pack_message(msg, version)


def test_pack_ignores_fields_the_version_does_not_carry() -> None:
    # client_count is not on the wire below 39, so its value cannot be out of range there
    assert len(pack_message(MonJobDone(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2**40), 38)) == 48


@pytest.mark.parametrize(
    ("msg", "version", "what"),
    [
        (MonStats(1, "Name:a\0b"), 43, "MonStats.statmsg"),
        (MonGetCS("a\0.c", 0, 0, 0), 43, "MonGetCS.filename"),
        (MonGetCS("a.c", 0, 0, 0, target="x\0"), 28, "MonGetCS.target"),
        (MonGetCS("a.c", 0, 0, 0, preferred_host="\0"), 22, "MonGetCS.preferred_host"),
        (MonGetCS("a.c", 0, 0, 0, envs=(("x", "\0"),)), 28, "MonGetCS.envs"),
        (MonLocalJobBegin(1, 2, 3, "\0"), 43, "MonLocalJobBegin.file"),
    ],
)
def test_pack_refuses_a_nul_in_a_string(msg: Message, version: int, what: str) -> None:
    with pytest.raises(LocalProtocolError, match=rf"{what} contains a NUL"):
        pack_message(msg, version)


@pytest.mark.parametrize(
    ("msg", "what"),
    [
        (MonStats(1, b"bytes"), "MonStats.statmsg"),  # type: ignore[arg-type]
        (MonStats(1, "lone surrogate \ud800"), "MonStats.statmsg"),
        (MonLocalJobBegin(1, 2, 3, "\udfff"), "MonLocalJobBegin.file"),
        (MonGetCS(None, 0, 0, 0), "MonGetCS.filename"),  # type: ignore[arg-type]
    ],
)
def test_pack_refuses_strings_it_cannot_encode(msg: Message, what: str) -> None:
    with pytest.raises(LocalProtocolError, match=what):
        pack_message(msg)


@pytest.mark.parametrize("thing", [object(), ("a", 1), 42, None])
def test_pack_refuses_what_is_not_a_message(thing: Any) -> None:
    with pytest.raises(LocalProtocolError, match="not an icecream message"):
        pack_message(thing)


def test_frame_refuses_more_than_one_mebibyte() -> None:
    assert len(frame(UnknownMessage(200, b"z" * (MAX_FRAME - 4)))) == MAX_FRAME + 4
    with pytest.raises(LocalProtocolError, match="over"):
        frame(UnknownMessage(200, b"z" * (MAX_FRAME - 3)))
    with pytest.raises(LocalProtocolError):
        frame(MonStats(1, "x" * MAX_FRAME))


# -- round trips (hypothesis) ---------------------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
SIGNED = st.integers(-(2**31), 2**31 - 1)
# Any text without NUL (and without lone surrogates, which no str from the wire has and
# pack refuses), or any bytes without NUL as the decoder hands them out.
STRINGS = st.one_of(
    st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=40),
    st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"").decode("utf-8", "surrogateescape")),
)


def messages(version: int) -> st.SearchStrategy[Message]:
    long_form = version < 29
    get_cs = st.builds(
        MonGetCS,
        filename=STRINGS,
        lang=U32,
        job_id=U32,
        client_id=U32,
        envs=st.lists(st.tuples(STRINGS, STRINGS), max_size=3).map(tuple)
        if long_form
        else st.just(()),
        job_count=U32 if long_form else st.just(1),
        target=STRINGS if long_form else st.just(""),
        arg_flags=U32 if long_form else st.just(0),
        preferred_host=STRINGS if 22 <= version < 29 else st.just(""),
    )
    done = st.builds(
        MonJobDone,
        job_id=U32,
        exitcode=SIGNED,
        real_msec=U32,
        user_msec=U32,
        sys_msec=U32,
        pfaults=U32,
        in_compressed=U32,
        in_uncompressed=U32,
        out_compressed=U32,
        out_uncompressed=U32,
        flags=U32,
        client_count=U32 if version >= 39 else st.just(0),
    )
    unknown = st.builds(
        UnknownMessage,
        type=U32.filter(lambda t: t not in DECODED_TYPES),
        body=st.binary(max_size=64),
    )
    return st.one_of(
        st.just(MonLogin()),
        st.just(End()),
        st.builds(MonStats, hostid=U32, statmsg=STRINGS),
        get_cs,
        st.builds(MonJobBegin, job_id=U32, stime=U32, hostid=U32),
        done,
        st.builds(MonLocalJobBegin, hostid=U32, job_id=U32, stime=U32, file=STRINGS),
        st.builds(JobLocalDone, job_id=U32),
        unknown,
    )


VERSIONED = st.sampled_from(ALL_VERSIONS).flatmap(lambda v: st.tuples(st.just(v), messages(v)))


@settings(max_examples=1000, deadline=None)
@given(VERSIONED)
def test_pack_unpack_round_trip(case: tuple[int, Message]) -> None:
    version, msg = case
    data = pack_message(msg, version)
    assert struct.unpack(">I", data[:4])[0] == msg.msg_type
    assert unpack_message(data, version) == msg
    assert type(unpack_message(data, version)) is type(msg)
    assert frame(msg, version) == struct.pack(">I", len(data)) + data


def test_every_version_and_message_type_is_covered() -> None:
    # the property above samples; this walks every (version, type) pair once
    for version in ALL_VERSIONS:
        for msg in messages_for(version):
            assert unpack_message(pack_message(msg, version), version) == msg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(ALL_VERSIONS).flatmap(
        lambda v: st.tuples(st.just(v), st.lists(messages(v), max_size=12))
    ),
    st.lists(st.integers(0, 2000), max_size=20),
    st.sampled_from(sorted(READERS)),
)
def test_framing_round_trips_through_the_codec(
    case: tuple[int, list[Message]], cuts: list[int], reader: str
) -> None:
    version, sent = case
    stream = struct.pack("<II", version, version) + b"".join(frame(m, version) for m in sent)
    codec = Codec(max_version=version)
    got = feed(codec, split(stream, cuts), READERS[reader])
    assert got == [Negotiated(version), *sent]
    assert codec.frames == len(sent)
    codec.receive_data(b"")
    assert READERS[reader](codec) == [Closed()]


# -- fuzzing --------------------------------------------------------------------------------------


def outcome(
    version: int, chunks: Sequence[bytes], reader: Callable[[Codec], list[Event]], eof: bool
) -> tuple[list[Event], RemoteProtocolError | None]:
    """Feed a READY codec; only RemoteProtocolError may come out of it."""
    codec = ready(version)
    got: list[Event] = []
    try:
        for chunk in chunks:
            codec.receive_data(chunk)
            got += reader(codec)
        if eof:
            codec.receive_data(b"")
            got += reader(codec)
    except RemoteProtocolError as exc:
        assert codec.state is HandshakeState.ERROR
        return got, exc
    return got, None


def check_garbage(version: int, chunks: Sequence[bytes], eof: bool) -> bool:
    """Both readers agree; return whether the input was refused."""
    slow, slow_error = outcome(version, chunks, drain, eof)
    fast, fast_error = outcome(version, chunks, take_events, eof)
    assert (slow_error is None) == (fast_error is None), (slow_error, fast_error)
    if slow_error is None:
        assert fast == slow
    else:
        # events() loses the events of the batch that failed; what it gave is a prefix
        assert fast == slow[: len(fast)]
    for event in slow:
        assert isinstance(event, Message | Closed)
    return slow_error is not None


WORDS = st.lists(st.one_of(st.integers(0, 48), U32), max_size=16).map(
    lambda ws: struct.pack(f">{len(ws)}I", *ws)
)
FUZZ_FRAMES = st.lists(
    st.tuples(
        st.sampled_from([*DECODED_TYPES, 65, 96, 1234]),
        st.one_of(WORDS, st.binary(max_size=60), WORDS.map(lambda b: b + b"\0")),
        st.integers(-3, 3),
        st.booleans(),
    ),
    max_size=6,
).map(
    lambda fs: b"".join(
        struct.pack(">II", max(0, len(body) + 4 + (delta if skew else 0)), mtype) + body
        for mtype, body, delta, skew in fs
    )
)


@settings(max_examples=400, deadline=None)
@given(
    version=st.sampled_from([21, 22, 28, 29, 38, 39, 43, 44]),
    data=st.one_of(st.binary(max_size=200), FUZZ_FRAMES),
    cuts=st.lists(st.integers(0, 200), max_size=8),
    eof=st.booleans(),
)
def test_fuzz_garbage_only_ever_raises_remote_errors(
    version: int, data: bytes, cuts: list[int], eof: bool
) -> None:
    check_garbage(version, split(data, cuts), eof)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), eof=st.booleans())
def test_fuzz_the_handshake(data: bytes, eof: bool) -> None:
    for reader in READERS.values():
        codec = Codec()
        try:
            codec.receive_data(data)
            events = reader(codec)
            if eof:
                codec.receive_data(b"")
                events += reader(codec)
        except RemoteProtocolError:
            assert codec.state is HandshakeState.ERROR
            continue
        assert all(isinstance(e, Message | Negotiated | Closed) for e in events)


@pytest.mark.parametrize("name", SESSIONS)
def test_mutated_capture_frames_only_raise_remote_errors(name: str) -> None:
    session = sessions()[name]
    rng = random.Random(name)
    raws = [raw for _, _, raw in session.frames]
    refused = accepted = 0
    for i, raw in enumerate(raws):
        following = raws[(i + 1) % len(raws)]
        for kind in ("flip", "insert", "delete", "flip header", "truncate"):
            data = bytearray(raw)
            at = rng.randrange(len(data))
            if kind == "flip":
                data[at] ^= 1 << rng.randrange(8)
            elif kind == "insert":
                data.insert(at, rng.randrange(256))
            elif kind == "delete":
                del data[at]
            elif kind == "flip header":
                data[rng.randrange(8)] ^= 1 << rng.randrange(8)
            else:
                data = data[: rng.randrange(1, len(data))]
            stream = bytes(data) + following
            cuts = [rng.randrange(len(stream)) for _ in range(3)]
            if check_garbage(session.version, split(stream, cuts), eof=True):
                refused += 1
            else:
                accepted += 1
    # the mutations must have exercised both outcomes
    assert refused > len(raws)
    assert accepted > len(raws) // 2


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=40))
def test_strings_are_read_up_to_the_first_nul_as_c_does(raw: bytes) -> None:
    """Guards the fast string read (decode, then cut at the first "\\0") against the
    definition: the bytes before the first NUL, decoded, bad bytes escaped."""
    from fleetwatch.sources.icecream import protocol

    body = struct.pack("!I", len(raw)) + raw
    expected = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    assert protocol._string(body, 0, len(body), "f", 0) == (expected, len(body))
    # and the inline MON_GET_CS path of Codec.events() reads the same name
    frame_body = struct.pack("!I", len(raw)) + raw + struct.pack("!III", 0, 7, 1)
    data = struct.pack("!II", len(frame_body) + 4, 83) + frame_body
    codec = Codec()
    codec.data_to_send()
    codec.receive_data((43).to_bytes(4, "little") * 2)
    codec.events()
    codec.receive_data(data)
    (msg,) = codec.events()
    assert isinstance(msg, MonGetCS)
    assert msg.filename == expected
