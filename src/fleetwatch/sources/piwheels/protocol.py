"""The piw-master ⇄ monitor protocol as bytes in, messages out: a sans-IO codec.

A piwheels master (v0.14 and later) binds two ZeroMQ sockets for monitors: a PUB
*status* socket and a PULL *control* socket. Every ZeroMQ message is one frame that
holds one CBOR data item (``../shared/protocols/piwheels.md`` §3):

* a message without payload is a bare CBOR text string (``HELLO`` → ``65 48454c4c4f``);
* a message with payload is an array of two, ``[name, payload]``; "all slaves" is an
  explicit ``null`` payload (``SLEEP None`` → ``82 65 534c454550 f6``), never an absent
  one (trap 4);
* two private tags: **2001** = timedelta as ``[days, seconds, microseconds]``, **2002**
  = "no data" around ``null`` (:data:`NO_DATA`); datetimes are tag 0 RFC 3339 strings
  in UTC (``…Z``, microseconds left out when zero).

Every message is validated against the master's own schemas (piwheels'
``protocols.py``, ``monitor_stats`` and ``master_control``); anything else raises
:class:`~fleetwatch.errors.RemoteProtocolError` (a frame we received) or
:class:`~fleetwatch.errors.LocalProtocolError` (a message we were asked to build).
No other exception leaves :func:`decode_status` / :func:`decode_control`, whatever
the bytes.

Two dialects (trap 15): ``modern`` (v0.17 and later: 19-field ``STATS`` list,
``KILL``/``SLEEP``/``SKIP``/``WAKE`` with an int or null) and ``legacy`` (v0.14-v0.16:
``STATS`` is a map, the control set is ``HELLO``, ``PAUSE``, ``RESUME``, ``KILL int``,
``QUIT``). :func:`dialect_of` tells them apart by what a master sent.

Encoding (:func:`encode_status`, :func:`encode_control`) reproduces what the master's
cbor2 5.4 writes: shortest-form ints, floats as 8-byte doubles, maps in their order,
tags as above — every frame of the recorded capture re-encodes byte for byte
(``tests/unit/test_piwheels_protocol.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Final, Literal, TypeAlias

import cbor2

from fleetwatch.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CONTROL_NAMES",
    "LEGACY_CONTROL_NAMES",
    "LEGACY_STATS_KEYS",
    "MASTER_STATS_FIELDS",
    "MAX_FRAME",
    "NO_DATA",
    "SLAVE_MESSAGES",
    "SLAVE_STATS_FIELDS",
    "Ack",
    "Build",
    "Control",
    "Dialect",
    "LegacyMasterStats",
    "LegacySlaveHello",
    "MasterHello",
    "MasterStats",
    "NoData",
    "SlaveEvent",
    "SlaveHello",
    "SlaveStats",
    "StatusMessage",
    "decode_control",
    "decode_status",
    "dialect_of",
    "encode_control",
    "encode_status",
]

Dialect: TypeAlias = Literal["modern", "legacy"]

MAX_FRAME: Final = 1 << 20
"""Bytes: a bigger status frame is refused before decoding (the largest real one,
a master STATS, is about 200 bytes)."""

TAG_TIMEDELTA: Final = 2001
TAG_NO_DATA: Final = 2002


class NoData:
    """The "no data" marker (tag 2002 around ``null``); :data:`NO_DATA` is the one value."""

    __slots__ = ()
    _instance: NoData | None = None

    def __new__(cls) -> NoData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DATA"

    def __reduce__(self) -> str:
        return "NO_DATA"


NO_DATA: Final = NoData()

# ---------------------------------------------------------------------------- messages

MASTER_STATS_FIELDS: Final = (
    "timestamp",
    "packages_built",
    "builds_last_hour",
    "builds_time",
    "builds_size",
    "builds_pending",
    "new_last_hour",
    "files_count",
    "downloads_last_hour",
    "downloads_last_month",
    "downloads_all",
    "disk_size",
    "disk_free",
    "mem_size",
    "mem_free",
    "swap_size",
    "swap_free",
    "load_average",
    "cpu_temp",
)
"""The 19 fields of a modern master ``STATS``, in wire order (piwheels.md §4.3)."""

SLAVE_STATS_FIELDS: Final = (
    "timestamp",
    "disk_size",
    "disk_free",
    "mem_size",
    "mem_free",
    "swap_size",
    "swap_free",
    "load_average",
    "cpu_temp",
)
"""The 9 fields of a slave's ``STATS`` (inside ``SLAVE``), in wire order."""

LEGACY_STATS_KEYS: Final = {
    "packages_built": int,
    "builds_count": int,
    "builds_last_hour": int,
    "builds_success": int,
    "builds_time": dt.timedelta,
    "builds_size": int,
    "builds_pending": int,
    "files_count": int,
    "disk_free": int,
    "disk_size": int,
    "downloads_last_month": int,
    "downloads_all": int,
}
"""Keys (and types) of a v0.14-v0.16 master ``STATS`` map (piwheels.md §4.3)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MasterHello:
    """Status ``HELLO``: who the master is; sent only in answer to a control ``HELLO``."""

    started: dt.datetime
    label: str
    os_name: str
    os_version: str
    board_revision: str
    board_serial: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MasterStats:
    """Status ``STATS`` of a modern master (every 10 s, not while it is paused)."""

    timestamp: dt.datetime
    packages_built: int
    builds_last_hour: Mapping[str, int]
    builds_time: dt.timedelta
    builds_size: int
    builds_pending: Mapping[str, int]
    new_last_hour: int
    files_count: int
    downloads_last_hour: int
    downloads_last_month: int
    downloads_all: int
    disk_size: int
    disk_free: int
    mem_size: int
    mem_free: int
    swap_size: int
    swap_free: int
    load_average: float
    cpu_temp: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyMasterStats:
    """Status ``STATS`` of a v0.14-v0.16 master: a map (keys of :data:`LEGACY_STATS_KEYS`)."""

    values: Mapping[str, int | dt.timedelta]


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaveHello:
    """Inner ``HELLO`` of a ``SLAVE`` message: the slave registered (or a replay)."""

    build_timeout: dt.timedelta
    busy_timeout: dt.timedelta
    py_version: str
    abi: str
    platform: str
    label: str
    os_name: str
    os_version: str
    board_revision: str
    board_serial: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacySlaveHello:
    """Inner ``HELLO`` of a v0.14-v0.16 master: ``[timeout, py_version, abi, platform, label]``."""

    build_timeout: dt.timedelta
    py_version: str
    abi: str
    platform: str
    label: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaveStats:
    """Inner ``STATS``: the slave's own figures; ``timestamp`` is the *slave's* clock."""

    timestamp: dt.datetime
    disk_size: int
    disk_free: int
    mem_size: int
    mem_free: int
    swap_size: int
    swap_free: int
    load_average: float
    cpu_temp: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """Inner ``ACK``: the master accepted the slave."""

    slave_id: int
    index_url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Build:
    """Inner ``BUILD``: a build was handed to the slave."""

    package: str
    version: str


SlaveData: TypeAlias = (
    SlaveHello | LegacySlaveHello | SlaveStats | Ack | Build | bool | str | NoData | None
)

SLAVE_MESSAGES: Final = ("HELLO", "STATS", "ACK", "SLEEP", "BUILD", "SEND", "DONE", "DIE", "CONT")
"""Inner message names of ``SLAVE`` (piwheels.md §4.4); ``CONT`` is never published."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaveEvent:
    """Status ``SLAVE``: ``[slave_id, timestamp, message, data]``.

    ``timestamp`` is the master's *last-seen* time of the slave (its first-seen time
    for ``HELLO``), not the time of sending (trap 6). ``data`` by ``message``:
    ``HELLO`` :class:`SlaveHello` (or :class:`LegacySlaveHello`), ``STATS``
    :class:`SlaveStats`, ``ACK`` :class:`Ack`, ``SLEEP`` ``bool`` (``NO_DATA`` from a
    legacy master), ``BUILD`` :class:`Build`, ``SEND`` the file name, ``DONE`` and
    ``CONT`` ``NO_DATA``, ``DIE`` ``NO_DATA`` or ``None`` (slave expiry, trap 5).
    """

    slave_id: int
    timestamp: dt.datetime
    message: str
    data: SlaveData = field(default=NO_DATA)


StatusMessage: TypeAlias = MasterHello | MasterStats | LegacyMasterStats | SlaveEvent

CONTROL_NAMES: Final = {
    "HELLO": False,
    "QUIT": False,
    "KILL": True,
    "SLEEP": True,
    "SKIP": True,
    "WAKE": True,
}
"""Control messages of a modern master; True = takes a payload (slave id or null)."""

LEGACY_CONTROL_NAMES: Final = {
    "HELLO": False,
    "QUIT": False,
    "PAUSE": False,
    "RESUME": False,
    "KILL": True,
}
"""Control messages of a v0.14-v0.16 master (``KILL`` takes an int only)."""


@dataclass(frozen=True, slots=True)
class Control:
    """A control message. ``Control("HELLO")``, ``Control("KILL", 2)``, ``Control("SLEEP", None)``.

    For ``KILL``/``SLEEP``/``SKIP``/``WAKE`` the ``slave`` is required: an id, or
    ``None`` for every slave *and* the master; payload-less messages take none.
    """

    name: str
    slave: int | NoData | None = NO_DATA

    def __post_init__(self) -> None:
        takes = CONTROL_NAMES.get(self.name, LEGACY_CONTROL_NAMES.get(self.name))
        if takes is None:
            raise LocalProtocolError(f"no control message {self.name!r}")
        if takes and self.slave is NO_DATA:
            raise LocalProtocolError(f"{self.name} needs a slave id or None (all slaves)")
        if not takes and self.slave is not NO_DATA:
            raise LocalProtocolError(f"{self.name} takes no payload")
        if takes and not (self.slave is None or _is_int(self.slave)):
            raise LocalProtocolError(f"{self.name}: the slave must be an int or None")

    @property
    def has_payload(self) -> bool:
        return self.slave is not NO_DATA

    def legal_in(self, dialect: Dialect) -> bool:
        """True when a master of ``dialect`` knows this message (``KILL None`` is modern only)."""
        names = CONTROL_NAMES if dialect == "modern" else LEGACY_CONTROL_NAMES
        if self.name not in names:
            return False
        return dialect == "modern" or self.slave is not None

    def __str__(self) -> str:
        if not self.has_payload:
            return self.name
        return f"{self.name} {'null' if self.slave is None else self.slave}"


def dialect_of(msg: StatusMessage) -> Dialect | None:
    """The dialect a status message proves, or None when it fits both."""
    if isinstance(msg, MasterStats):
        return "modern"
    if isinstance(msg, LegacyMasterStats):
        return "legacy"
    if isinstance(msg, SlaveEvent):
        if isinstance(msg.data, (SlaveHello, SlaveStats)):
            return "modern"  # slaves report stats since v0.17
        if isinstance(msg.data, LegacySlaveHello):
            return "legacy"
    return None


# ---------------------------------------------------------------------------- decoding


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Bad(Exception):
    """A validation failure; turned into RemoteProtocolError with the message's name."""


def _int(value: object, what: str) -> int:
    if not _is_int(value):
        raise _Bad(f"{what}: expected an int, got {_kind(value)}")
    return value  # type: ignore[return-value]


def _float(value: object, what: str) -> float:
    # voluptuous' float accepts a float only; the master's psutil figures are floats.
    if not isinstance(value, float):
        raise _Bad(f"{what}: expected a float, got {_kind(value)}")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{what}: expected a text string, got {_kind(value)}")
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"{what}: expected a bool, got {_kind(value)}")
    return value


def _datetime(value: object, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise _Bad(f"{what}: expected a datetime (tag 0), got {_kind(value)}")
    offset = value.utcoffset()
    if offset is None:
        raise _Bad(f"{what}: a datetime without a time zone")
    return (
        value if offset == dt.timedelta(0) and value.tzinfo is dt.UTC else value.astimezone(dt.UTC)
    )


def _timedelta(value: object, what: str) -> dt.timedelta:
    if not isinstance(value, cbor2.CBORTag) or value.tag != TAG_TIMEDELTA:
        raise _Bad(f"{what}: expected a timedelta (tag 2001), got {_kind(value)}")
    parts = value.value
    # cbor2 6 hands a tag's array over as a tuple (immutable), cbor2 5 as a list.
    if (
        not isinstance(parts, (list, tuple))
        or len(parts) != 3
        or not all(_is_int(p) for p in parts)
    ):
        raise _Bad(f"{what}: tag 2001 must hold [days, seconds, microseconds]")
    try:
        return dt.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])
    except OverflowError:
        raise _Bad(f"{what}: timedelta out of range") from None


def _no_data(value: object, what: str, *, null_too: bool = False) -> NoData | None:
    if isinstance(value, cbor2.CBORTag) and value.tag == TAG_NO_DATA and value.value is None:
        return NO_DATA
    if null_too and value is None:
        return None
    raise _Bad(f"{what}: expected no data (tag 2002), got {_kind(value)}")


def _abi_counts(value: object, what: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Bad(f"{what}: expected a map of ABI to count, got {_kind(value)}")
    for k, v in value.items():
        _str(k, f"{what} key")
        _int(v, f"{what}[{k!r}]")
    return value


def _array(value: object, n: int, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(f"{what}: expected an array of {n}, got {_kind(value)}")
    if len(value) != n:
        raise _Bad(f"{what}: expected {n} items, got {len(value)}")
    return value


def _kind(value: object) -> str:
    if isinstance(value, cbor2.CBORTag):
        return f"tag {value.tag}"
    if value is None:
        return "null"
    return {
        bool: "a bool",
        int: "an int",
        float: "a float",
        str: "a text string",
        bytes: "a byte string",
        list: "an array",
        dict: "a map",
        dt.datetime: "a datetime",
    }.get(type(value), type(value).__name__)


def _load(frame: bytes) -> object:
    """One CBOR item, the whole frame; every decoding failure is a RemoteProtocolError."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise LocalProtocolError(f"a frame is bytes, not {type(frame).__name__}")
    if len(frame) > MAX_FRAME:
        raise RemoteProtocolError(f"frame of {len(frame)} bytes (at most {MAX_FRAME})")
    if not frame:
        raise RemoteProtocolError("empty frame")
    buf = BytesIO(frame)
    try:
        # No tag hook: tags 2001/2002 come back as CBORTag and are checked where the
        # schema allows them (cbor2 6 changed the hook's signature; this needs none).
        item = cbor2.CBORDecoder(buf).decode()
    except RecursionError:
        raise RemoteProtocolError("CBOR nested too deeply") from None
    except Exception as exc:  # cbor2 raises CBORDecodeError, ValueError, TypeError, ...
        raise RemoteProtocolError(f"not CBOR: {exc}") from None
    if buf.tell() != len(frame):
        raise RemoteProtocolError(
            f"{len(frame) - buf.tell()} bytes after the CBOR item (one item per frame)"
        )
    return item


def _split(item: object) -> tuple[str, object, bool]:
    if isinstance(item, str):
        return item, None, False
    if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
        return item[0], item[1], True
    raise _Bad(f"expected a name or [name, payload], got {_kind(item)}")


def decode_status(frame: bytes) -> StatusMessage:
    """Decode and validate one status frame; raise RemoteProtocolError if it is not one."""
    item = _load(frame)
    name = "?"
    try:
        name, payload, has = _split(item)
        if not has:
            raise _Bad("status messages all carry a payload")
        if name == "HELLO":
            p = _array(payload, 6, "HELLO")
            return MasterHello(
                started=_datetime(p[0], "started"),
                label=_str(p[1], "label"),
                os_name=_str(p[2], "os_name"),
                os_version=_str(p[3], "os_version"),
                board_revision=_str(p[4], "board_revision"),
                board_serial=_str(p[5], "board_serial"),
            )
        if name == "STATS":
            if isinstance(payload, dict):
                return _legacy_stats(payload)
            return _master_stats(_array(payload, 19, "STATS"))
        if name == "SLAVE":
            p = _array(payload, 4, "SLAVE")
            return _slave(p)
        raise _Bad("unknown status message")
    except _Bad as exc:
        raise RemoteProtocolError(f"status {name}: {exc}") from None


_INT_FIELDS: Final = frozenset(MASTER_STATS_FIELDS) - {
    "timestamp",
    "builds_last_hour",
    "builds_time",
    "builds_pending",
    "load_average",
    "cpu_temp",
}


def _master_stats(p: list[Any]) -> MasterStats:
    ints = {n: _int(p[i], n) for i, n in enumerate(MASTER_STATS_FIELDS) if n in _INT_FIELDS}
    return MasterStats(
        timestamp=_datetime(p[0], "timestamp"),
        builds_last_hour=_abi_counts(p[2], "builds_last_hour"),
        builds_time=_timedelta(p[3], "builds_time"),
        builds_pending=_abi_counts(p[5], "builds_pending"),
        load_average=_float(p[17], "load_average"),
        cpu_temp=_float(p[18], "cpu_temp"),
        **ints,
    )


def _legacy_stats(payload: dict[Any, Any]) -> LegacyMasterStats:
    for key, value in payload.items():
        kind = LEGACY_STATS_KEYS.get(key) if isinstance(key, str) else None
        if kind is None:
            raise _Bad(f"unknown key {key!r}")
        if kind is dt.timedelta:
            payload[key] = _timedelta(value, key)
        else:
            _int(value, key)
    return LegacyMasterStats(values=payload)


def _slave(p: list[Any]) -> SlaveEvent:
    slave_id = _int(p[0], "slave_id")
    timestamp = _datetime(p[1], "timestamp")
    message = _str(p[2], "message")
    d = p[3]
    what = f"SLAVE {message}"
    data: SlaveData
    if message == "HELLO":
        if isinstance(d, list) and len(d) == 5:
            data = LegacySlaveHello(
                build_timeout=_timedelta(d[0], "build_timeout"),
                py_version=_str(d[1], "py_version"),
                abi=_str(d[2], "abi"),
                platform=_str(d[3], "platform"),
                label=_str(d[4], "label"),
            )
        else:
            h = _array(d, 10, what)
            data = SlaveHello(
                build_timeout=_timedelta(h[0], "build_timeout"),
                busy_timeout=_timedelta(h[1], "busy_timeout"),
                py_version=_str(h[2], "py_version"),
                abi=_str(h[3], "abi"),
                platform=_str(h[4], "platform"),
                label=_str(h[5], "label"),
                os_name=_str(h[6], "os_name"),
                os_version=_str(h[7], "os_version"),
                board_revision=_str(h[8], "board_revision"),
                board_serial=_str(h[9], "board_serial"),
            )
    elif message == "STATS":
        s = _array(d, 9, what)
        data = SlaveStats(
            timestamp=_datetime(s[0], "timestamp"),
            disk_size=_int(s[1], "disk_size"),
            disk_free=_int(s[2], "disk_free"),
            mem_size=_int(s[3], "mem_size"),
            mem_free=_int(s[4], "mem_free"),
            swap_size=_int(s[5], "swap_size"),
            swap_free=_int(s[6], "swap_free"),
            load_average=_float(s[7], "load_average"),
            cpu_temp=_float(s[8], "cpu_temp"),
        )
    elif message == "ACK":
        a = _array(d, 2, what)
        data = Ack(slave_id=_int(a[0], "slave_id"), index_url=_str(a[1], "index_url"))
    elif message == "SLEEP":
        data = _no_data(d, what) if isinstance(d, cbor2.CBORTag) else _bool(d, what)
    elif message == "BUILD":
        b = _array(d, 2, what)
        data = Build(package=_str(b[0], "package"), version=_str(b[1], "version"))
    elif message == "SEND":
        data = _str(d, what)
    elif message in ("DONE", "CONT"):
        data = _no_data(d, what)
    elif message == "DIE":
        data = _no_data(d, what, null_too=True)
    else:
        raise _Bad(f"unknown inner message {message!r}")
    return SlaveEvent(slave_id=slave_id, timestamp=timestamp, message=message, data=data)


def decode_control(frame: bytes) -> Control:
    """Decode and validate one control frame (what a master, or a stand-in, receives)."""
    item = _load(frame)
    name = "?"
    try:
        name, payload, has = _split(item)
        takes = CONTROL_NAMES.get(name, LEGACY_CONTROL_NAMES.get(name))
        if takes is None:
            raise _Bad("unknown control message")
        if takes != has:
            raise _Bad("a payload is required" if takes else "no payload expected")
        if not has:
            return Control(name)
        if payload is not None and not _is_int(payload):
            raise _Bad(f"expected a slave id or null, got {_kind(payload)}")
        return Control(name, payload)  # type: ignore[arg-type]
    except _Bad as exc:
        raise RemoteProtocolError(f"control {name}: {exc}") from None


# ---------------------------------------------------------------------------- encoding


def _dumps(item: object) -> bytes:
    return cbor2.dumps(item, timezone=dt.UTC)


def _td(value: dt.timedelta) -> cbor2.CBORTag:
    return cbor2.CBORTag(TAG_TIMEDELTA, [value.days, value.seconds, value.microseconds])


def _nd(value: object) -> object:
    return cbor2.CBORTag(TAG_NO_DATA, None) if value is NO_DATA else value


def _utc(value: dt.datetime) -> dt.datetime:
    if value.utcoffset() is None:
        raise LocalProtocolError("datetimes must be timezone-aware (UTC)")
    return value.astimezone(dt.UTC)


def encode_status(msg: StatusMessage) -> bytes:
    """The frame a master publishes for ``msg`` (byte for byte as piw-master's)."""
    if isinstance(msg, MasterHello):
        payload: object = [
            _utc(msg.started),
            msg.label,
            msg.os_name,
            msg.os_version,
            msg.board_revision,
            msg.board_serial,
        ]
        return _dumps(["HELLO", payload])
    if isinstance(msg, MasterStats):
        values: list[object] = []
        for name in MASTER_STATS_FIELDS:
            v = getattr(msg, name)
            values.append(
                _utc(v) if name == "timestamp" else _td(v) if name == "builds_time" else v
            )
        return _dumps(["STATS", values])
    if isinstance(msg, LegacyMasterStats):
        stats = {k: _td(v) if isinstance(v, dt.timedelta) else v for k, v in msg.values.items()}
        return _dumps(["STATS", stats])
    if isinstance(msg, SlaveEvent):
        d = msg.data
        data: object
        if isinstance(d, SlaveHello):
            data = [_td(d.build_timeout), _td(d.busy_timeout)] + [
                getattr(d, n)
                for n in (
                    "py_version",
                    "abi",
                    "platform",
                    "label",
                    "os_name",
                    "os_version",
                    "board_revision",
                    "board_serial",
                )
            ]
        elif isinstance(d, LegacySlaveHello):
            data = [_td(d.build_timeout), d.py_version, d.abi, d.platform, d.label]
        elif isinstance(d, SlaveStats):
            data = [_utc(d.timestamp)] + [getattr(d, n) for n in SLAVE_STATS_FIELDS[1:]]
        elif isinstance(d, Ack):
            data = [d.slave_id, d.index_url]
        elif isinstance(d, Build):
            data = [d.package, d.version]
        else:
            data = _nd(d)
        return _dumps(["SLAVE", [msg.slave_id, _utc(msg.timestamp), msg.message, data]])
    raise LocalProtocolError(f"not a status message: {type(msg).__name__}")


def encode_control(msg: Control) -> bytes:
    """The frame a monitor pushes for ``msg`` (as piw-monitor writes it)."""
    if not isinstance(msg, Control):
        raise LocalProtocolError(f"not a control message: {type(msg).__name__}")
    if not msg.has_payload:
        return _dumps(msg.name)
    return _dumps([msg.name, msg.slave])
