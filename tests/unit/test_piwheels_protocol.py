"""The piwheels codec against the traffic of a real piw-master (vectors/piwheels-capture.jsonl)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import cbor2
import pytest

from fleetwatch.errors import LocalProtocolError, RemoteProtocolError
from fleetwatch.sources.piwheels.protocol import (
    MASTER_STATS_FIELDS,
    NO_DATA,
    Ack,
    Build,
    Control,
    LegacyMasterStats,
    LegacySlaveHello,
    MasterHello,
    MasterStats,
    SlaveEvent,
    SlaveHello,
    SlaveStats,
    decode_control,
    decode_status,
    dialect_of,
    encode_control,
    encode_status,
)

CAPTURE = Path(__file__).parents[1] / "vectors" / "piwheels-capture.jsonl"
LINES = [json.loads(line) for line in CAPTURE.read_text().splitlines()]
STATUS = [
    (i, bytes.fromhex(d["frame_hex"])) for i, d in enumerate(LINES, 1) if d["dir"] == "status"
]
CONTROL = [
    (i, bytes.fromhex(d["frame_hex"])) for i, d in enumerate(LINES, 1) if d["dir"] == "control"
]


def frame(line: int) -> bytes:
    return bytes.fromhex(LINES[line - 1]["frame_hex"])


def enc(item: Any) -> bytes:
    return cbor2.dumps(item, timezone=dt.UTC)


def test_the_capture_has_every_kind_of_frame() -> None:
    assert len(STATUS) == 102
    assert len(CONTROL) == 8
    kinds = {type(decode_status(f)).__name__ for _, f in STATUS}
    assert kinds == {"MasterHello", "MasterStats", "SlaveEvent"}
    inner = {m.message for _, f in STATUS if isinstance(m := decode_status(f), SlaveEvent)}
    assert inner == {"HELLO", "STATS", "ACK", "SLEEP", "BUILD", "SEND", "DONE", "DIE"}


@pytest.mark.parametrize(("line", "data"), STATUS, ids=[f"line{i}" for i, _ in STATUS])
def test_every_status_frame_decodes_and_reencodes_byte_for_byte(line: int, data: bytes) -> None:
    msg = decode_status(data)
    assert encode_status(msg) == data
    assert dialect_of(msg) in ("modern", None)


@pytest.mark.parametrize(("line", "data"), CONTROL, ids=[f"line{i}" for i, _ in CONTROL])
def test_every_control_frame_decodes_and_reencodes_byte_for_byte(line: int, data: bytes) -> None:
    msg = decode_control(data)
    assert encode_control(msg) == data
    assert (
        str(msg)
        == {
            1: "HELLO",
            17: "HELLO",
            46: "SLEEP null",
            58: "WAKE null",
            63: "SKIP 2",
            73: "KILL 1",
            80: "HELLO",
            110: "QUIT",
        }[line]
    )


@pytest.mark.parametrize(("line", "data"), STATUS[:12], ids=[f"line{i}" for i, _ in STATUS[:12]])
def test_every_prefix_and_trailing_bytes_are_protocol_errors(line: int, data: bytes) -> None:
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_status(data[:cut])
    with pytest.raises(RemoteProtocolError, match="after the CBOR item"):
        decode_status(data + b"\x00")


def test_fuzzed_frames_raise_only_the_protocol_error() -> None:
    rng = random.Random(10)
    frames = [f for _, f in STATUS + CONTROL]
    for _ in range(3000):
        data = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        for decode in (decode_status, decode_control):
            with contextlib.suppress(RemoteProtocolError):
                decode(bytes(data))
    for _ in range(500):
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        with pytest.raises(RemoteProtocolError):
            decode_status(b"\x82" + junk if rng.random() < 0.5 else junk + b"\xff")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff",
        b"\x9f" * 100_000,  # indefinite arrays nested deeper than anything sane
        b"\x00" * (1 << 21),  # over MAX_FRAME
        enc("HELLO"),  # a status message without payload
        enc(["HELLO", None]),
        enc(["FOO", []]),
        enc(["STATS", [0] * 19]),
        enc(["STATS", []]),
        enc(["SLAVE", [True, dt.datetime.now(dt.UTC), "SLEEP", False]]),  # bool is no id
        enc(["SLAVE", [1, dt.datetime.now(dt.UTC), "NOPE", None]]),
        enc(["SLAVE", [1, dt.datetime.now(dt.UTC), "DONE", None]]),  # DONE needs tag 2002
        enc(["SLAVE", [1, dt.datetime.now(dt.UTC), "BUILD", ["pkg"]]]),
        enc(["SLAVE", [1, "2026-11-22T20:44:11Z", "SLEEP", False]]),  # text, not tag 0
        enc(["STATS", {"bogus": 1}]),
        enc(["STATS", {"builds_time": 5}]),  # legacy map, timedelta expected
        enc([1, 2]),
        enc({"a": 1}),
        b"\x83\x01\x02\x03",
    ],
)
def test_garbage_is_a_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_status(data)


def test_a_naive_datetime_is_refused() -> None:
    naive = cbor2.CBORTag(0, "2026-11-22T20:44:11")
    data = enc(["HELLO", [naive, "vm", "os", "1", "r", "s"]])
    with pytest.raises(RemoteProtocolError):
        decode_status(data)


def test_master_hello_and_stats_fields() -> None:
    hello = decode_status(frame(2))
    assert hello == MasterHello(
        started=dt.datetime(2026, 11, 22, 20, 44, 11, 94867, tzinfo=dt.UTC),
        label="vm",
        os_name="Debian GNU/Linux",
        os_version="12 (bookworm)",
        board_revision="unknown",
        board_serial="unknown",
    )
    first = decode_status(frame(3))  # the first STATS after start (trap 8)
    assert isinstance(first, MasterStats)
    assert first.disk_size == first.disk_free == 0
    assert first.builds_pending == {}
    assert first.builds_last_hour == {"cp311": 0}
    assert first.builds_time == dt.timedelta(0)
    assert first.load_average == 0.08349609375
    assert first.cpu_temp == 0.0
    later = decode_status(frame(4))
    assert isinstance(later, MasterStats)
    assert later.builds_pending == {"cp311": 3}
    assert later.disk_size == 270553174016
    assert len(MASTER_STATS_FIELDS) == 19


def test_slave_inner_messages() -> None:
    hello = decode_status(frame(6))
    assert isinstance(hello, SlaveEvent)
    assert isinstance(hello.data, SlaveHello)
    assert hello.slave_id == 1
    assert hello.data.label == "lab-slave-2"
    assert hello.data.build_timeout == dt.timedelta(seconds=600)  # tag 2001
    assert hello.data.busy_timeout == dt.timedelta(seconds=300)
    assert decode_status(frame(7)).data == Ack(  # type: ignore[union-attr]
        slave_id=1, index_url="http://127.0.0.1:8099/simple"
    )
    stats = decode_status(frame(10)).data  # type: ignore[union-attr]
    assert isinstance(stats, SlaveStats)
    assert stats.timestamp.tzinfo is not None
    assert decode_status(frame(11)).data == Build(package="piwlab-demo", version="0.1")  # type: ignore[union-attr]
    assert decode_status(frame(40)).data == "piwlab_demo-0.1-py3-none-any.whl"  # type: ignore[union-attr]
    assert decode_status(frame(41)).data is NO_DATA  # type: ignore[union-attr]  # tag 2002
    assert decode_status(frame(43)).data is False  # type: ignore[union-attr]
    assert decode_status(frame(48)).data is True  # type: ignore[union-attr]
    assert decode_status(frame(78)).data is NO_DATA  # type: ignore[union-attr]


def test_die_may_carry_plain_null() -> None:
    """Trap 5: a slave that expired gets a DIE with plain null, not tag 2002."""
    msg = SlaveEvent(slave_id=3, timestamp=dt.datetime.now(dt.UTC), message="DIE", data=None)
    data = encode_status(msg)
    assert data.endswith(b"\x63DIE\xf6")
    assert decode_status(data) == msg
    with_tag = SlaveEvent(slave_id=3, timestamp=msg.timestamp, message="DIE")
    assert encode_status(with_tag).endswith(b"\x63DIE\xd9\x07\xd2\xf6")


def test_datetimes_are_utc_text_without_zero_microseconds() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    msg = SlaveEvent(slave_id=1, timestamp=when, message="SLEEP", data=False)
    assert b'"2026-01-02T03:04:05Z"'[1:-1] in encode_status(msg)
    other_zone = when.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert encode_status(SlaveEvent(slave_id=1, timestamp=other_zone, message="SLEEP", data=False))
    assert encode_status(msg) == encode_status(
        SlaveEvent(slave_id=1, timestamp=other_zone, message="SLEEP", data=False)
    )
    with pytest.raises(LocalProtocolError):
        encode_status(
            SlaveEvent(slave_id=1, timestamp=when.replace(tzinfo=None), message="SLEEP", data=False)
        )


def test_control_messages_are_the_bytes_piw_monitor_sends() -> None:
    """piwheels.md §3: payload-less messages are bare strings, "all" is an explicit null."""
    assert encode_control(Control("HELLO")).hex() == "6548454c4c4f"
    assert encode_control(Control("QUIT")).hex() == "6451554954"
    assert encode_control(Control("SLEEP", None)).hex() == "8265534c454550f6"
    assert encode_control(Control("WAKE", None)).hex() == "826457414b45f6"
    assert encode_control(Control("KILL", 2)).hex() == "82644b494c4c02"
    assert encode_control(Control("SKIP", None)).hex() == "8264534b4950f6"
    assert encode_control(Control("PAUSE")).hex() == "6550415553 45".replace(" ", "")
    assert encode_control(Control("RESUME")).hex() == "66524553554d45"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Control("HELLO", None),  # trap 4: never ["HELLO", null]
        lambda: Control("QUIT", 1),
        lambda: Control("KILL"),  # "all" is an explicit None
        lambda: Control("SLEEP", "1"),  # type: ignore[arg-type]
        lambda: Control("SKIP", True),
        lambda: Control("BOGUS"),
    ],
)
def test_ill_formed_control_messages_are_local_errors(build: Any) -> None:
    with pytest.raises(LocalProtocolError):
        build()


@pytest.mark.parametrize(
    "data",
    [enc(["HELLO", None]), enc(["QUIT", None]), enc("KILL"), enc(["KILL", "2"]), enc("NOPE")],
)
def test_control_frames_the_master_would_drop(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_control(data)


def test_legacy_dialect_map_stats_and_short_slave_hello() -> None:
    stats = enc(
        [
            "STATS",
            {
                "packages_built": 10,
                "builds_count": 12,
                "builds_last_hour": 2,
                "builds_success": 11,
                "builds_time": cbor2.CBORTag(2001, [0, 3600, 0]),
                "builds_size": 1 << 20,
                "builds_pending": 7,
                "files_count": 30,
                "disk_free": 1 << 30,
                "disk_size": 1 << 32,
                "downloads_last_month": 100,
                "downloads_all": 1000,
            },
        ]
    )
    msg = decode_status(stats)
    assert isinstance(msg, LegacyMasterStats)
    assert msg.values["builds_time"] == dt.timedelta(hours=1)
    assert dialect_of(msg) == "legacy"
    assert encode_status(msg) == stats
    hello = enc(
        [
            "SLAVE",
            [
                1,
                dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                "HELLO",
                [cbor2.CBORTag(2001, [0, 10800, 0]), "37", "cp37m", "linux_armv7l", "pi3"],
            ],
        ]
    )
    slave = decode_status(hello)
    assert isinstance(slave, SlaveEvent)
    assert isinstance(slave.data, LegacySlaveHello)
    assert dialect_of(slave) == "legacy"
    assert encode_status(slave) == hello
    sleep = enc(
        ["SLAVE", [1, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "SLEEP", cbor2.CBORTag(2002, None)]]
    )
    assert decode_status(sleep).data is NO_DATA  # type: ignore[union-attr]
    assert Control("PAUSE").legal_in("legacy")
    assert not Control("PAUSE").legal_in("modern")
    assert not Control("KILL", None).legal_in("legacy")
    assert Control("KILL", 1).legal_in("legacy")
    assert not Control("SKIP", 1).legal_in("legacy")
