"""The icecream (icecc) scheduler's monitor protocol, sans-IO: bytes in, messages out.

Wire facts (``shared/protocols/icecream.md`` §1-§4, checked against icecc 1.4):

* **Handshake**, symmetric, little-endian: each side sends its maximum version as a
  u32 LE; on reading the peer's maximum (rejected below 21 or above 2**20) it sends
  ``min(own, peer)``; on reading the peer's second value it checks that it equals
  its own minimum. That minimum is the negotiated version. Don't pipeline the
  second value: it depends on the peer's first (trap 2).
* **Frames**, big-endian: ``u32 length`` (of type + body, at most 1 MiB), ``u32
  type``, body. A body must decode to exactly ``length - 4`` bytes (trap 5).
* **Strings**: ``u32 length`` *including* the trailing NUL, then the bytes; length 0
  is the empty string too. Only the bytes before the first NUL count, and they
  are not guaranteed to be UTF-8: they are decoded with ``surrogateescape`` so
  every byte string survives a round trip.
* **Versions that change what a monitor sees**: below 29, MON_GET_CS carries the
  whole GET_CS layout; from 39, MON_JOB_DONE has a twelfth word, ``client_count``.
* **Aliases**: master builds between Oct 2022 and PR #610 send MON_GET_CS as 71
  (GET_CS) and MON_JOB_DONE as 77 (JOB_DONE); a monitor accepts both (trap 7).
* Unknown message types are returned as :class:`UnknownMessage`, not errors.

:class:`Codec` holds one connection's state. Feed it bytes with
:meth:`Codec.receive_data`, take events with :meth:`Codec.next_event` (or all at
once with :meth:`Codec.events`), and send what :meth:`Codec.data_to_send` and
:meth:`Codec.send` return. Any malformed input raises
:class:`~fleetwatch.errors.RemoteProtocolError` naming the field and byte offset;
after that the codec is in the ERROR state. Misuse raises ``LocalProtocolError``.

Messages are immutable ``NamedTuple``\\s rather than frozen dataclasses: building
one costs a tenth as much (0.13 µs against 1.2 µs), and the decoder builds
hundreds of thousands a second. They are checked when packed.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeAlias

from fleetwatch.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "JOB_FROM_SUBMITTER",
    "JOB_UNKNOWN_ID",
    "MAX_FRAME",
    "MAX_VERSION",
    "MIN_VERSION",
    "NEED_DATA",
    "Closed",
    "Codec",
    "End",
    "Event",
    "HandshakeState",
    "JobLocalDone",
    "Message",
    "MonGetCS",
    "MonJobBegin",
    "MonJobDone",
    "MonLocalJobBegin",
    "MonLogin",
    "MonStats",
    "MsgType",
    "Negotiated",
    "UnknownMessage",
    "pack_message",
    "parse_stats",
    "unpack_message",
]

MIN_VERSION: Final = 21
"""The lowest protocol version schedulers still accept."""
MAX_VERSION: Final = 44
"""The newest protocol version (git master; release 1.4 speaks 43)."""
MAX_FRAME: Final = 1 << 20
"""Frames longer than this (type + body) are refused, as the C++ reader does."""
_VERSION_CEILING: Final = 1 << 20

# When the wire format changed for a monitor (see the module docstring).
V_SHORT_GET_CS: Final = 29
V_CLIENT_COUNT: Final = 39
V_PREFERRED_HOST: Final = 22


class MsgType(enum.IntEnum):
    """Message type ids: a C++ enum counting up from ASCII 'A'."""

    UNKNOWN = 65
    PING = 66
    END = 67
    TIMEOUT = 68
    GET_NATIVE_ENV = 69
    NATIVE_ENV = 70
    GET_CS = 71
    USE_CS = 72
    COMPILE_FILE = 73
    FILE_CHUNK = 74
    COMPILE_RESULT = 75
    JOB_BEGIN = 76
    JOB_DONE = 77
    JOB_LOCAL_BEGIN = 78
    JOB_LOCAL_DONE = 79
    LOGIN = 80
    STATS = 81
    MON_LOGIN = 82
    MON_GET_CS = 83
    MON_JOB_BEGIN = 84
    MON_JOB_DONE = 85
    MON_LOCAL_JOB_BEGIN = 86
    MON_STATS = 87
    TRANFER_ENV = 88
    TEXT = 89
    STATUS_TEXT = 90
    GET_INTERNALS = 91
    CS_CONF = 92
    VERIFY_ENV = 93
    VERIFY_ENV_RESULT = 94
    BLACKLIST_HOST_ENV = 95
    NO_CS = 96


# -- messages ------------------------------------------------------------------------------


class MonLogin(NamedTuple):
    """Monitor → scheduler: register for notifications (empty body)."""

    @property
    def msg_type(self) -> int:
        return MsgType.MON_LOGIN

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)


class End(NamedTuple):
    """Either way: end of stream (schedulers 1.4 never send it to monitors)."""

    @property
    def msg_type(self) -> int:
        return MsgType.END

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)


class MonStats(NamedTuple):
    """A compile host's state as ``Key:Value`` lines; ``State:Offline`` alone when it left."""

    @property
    def msg_type(self) -> int:
        return MsgType.MON_STATS

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)

    hostid: int
    statmsg: str

    @property
    def stats(self) -> dict[str, str]:
        return parse_stats(self.statmsg)

    # pyicemon's names
    @property
    def host_id(self) -> int:
        return self.hostid

    @property
    def data(self) -> dict[str, str]:
        return self.stats


class MonGetCS(NamedTuple):
    """A job was requested (created, waiting for a compile server).

    ``client_id`` is the *host id* of the submitting daemon. The fields after it
    exist on the wire only below version 29 (the long form).
    """

    @property
    def msg_type(self) -> int:
        return MsgType.MON_GET_CS

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)

    filename: str
    lang: int
    job_id: int
    client_id: int
    envs: tuple[tuple[str, str], ...] = ()
    job_count: int = 1
    target: str = ""
    arg_flags: int = 0
    preferred_host: str = ""


class MonJobBegin(NamedTuple):
    """A compile server started a job; ``stime`` is from the server daemon's clock."""

    @property
    def msg_type(self) -> int:
        return MsgType.MON_JOB_BEGIN

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)

    job_id: int
    stime: int
    hostid: int

    @property
    def host_id(self) -> int:
        return self.hostid

    @property
    def time(self) -> int:
        return self.stime


class MonJobDone(NamedTuple):
    """A job finished, failed, or was lost (exit 255: its daemon went away).

    ``exitcode`` is signed. ``flags`` bit 0: reported by the submitter; bit 1:
    unknown job id. ``client_count`` is on the wire from version 39.
    """

    @property
    def msg_type(self) -> int:
        return MsgType.MON_JOB_DONE

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)

    job_id: int
    exitcode: int
    real_msec: int
    user_msec: int
    sys_msec: int
    pfaults: int
    in_compressed: int
    in_uncompressed: int
    out_compressed: int
    out_uncompressed: int
    flags: int
    client_count: int = 0

    # pyicemon's names
    @property
    def rc(self) -> int:
        return self.exitcode

    @property
    def real_ms(self) -> int:
        return self.real_msec

    @property
    def user_ms(self) -> int:
        return self.user_msec

    @property
    def sys_ms(self) -> int:
        return self.sys_msec


class MonLocalJobBegin(NamedTuple):
    """A local job started (link, ``icerun``, local fallback); ``file`` is empty for icerun.

    Note the wire order (hostid, job_id, stime, file) differs from MON_JOB_BEGIN's.
    """

    @property
    def msg_type(self) -> int:
        return MsgType.MON_LOCAL_JOB_BEGIN

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)

    hostid: int
    job_id: int
    stime: int
    file: str

    @property
    def client_id(self) -> int:
        return self.hostid

    @property
    def filename(self) -> str:
        return self.file

    @property
    def time(self) -> int:
        return self.stime


class JobLocalDone(NamedTuple):
    """A local job ended (no exit code, no timing). Type 79, not in the MON_ range."""

    @property
    def msg_type(self) -> int:
        return MsgType.JOB_LOCAL_DONE

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)

    job_id: int


class UnknownMessage(NamedTuple):
    """A frame of a type this codec does not decode, kept whole (not an error)."""

    type: int
    body: bytes

    @property
    def msg_type(self) -> int:
        return self.type

    def pack(self, version: int = MAX_VERSION) -> bytes:
        return pack_message(self, version)


JOB_FROM_SUBMITTER: Final = 1
"""MON_JOB_DONE flags bit 0: reported by the submitting daemon (else by the compile server)."""
JOB_UNKNOWN_ID: Final = 2
"""MON_JOB_DONE flags bit 1: the reporting daemon did not know the job id."""

Message: TypeAlias = (
    MonLogin
    | End
    | MonStats
    | MonGetCS
    | MonJobBegin
    | MonJobDone
    | MonLocalJobBegin
    | JobLocalDone
    | UnknownMessage
)


class Negotiated(NamedTuple):
    """The handshake is complete; every later message is coded for ``version``."""

    version: int


class Closed(NamedTuple):
    """The peer closed the connection (EOF) at a frame boundary."""


Event: TypeAlias = Message | Negotiated | Closed


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""Returned by :meth:`Codec.next_event` when more bytes are needed."""


def parse_stats(statmsg: str) -> dict[str, str]:
    """``Key:Value`` lines to a dict; each line is split at its *first* colon (trap 11)."""
    out: dict[str, str] = {}
    for line in statmsg.split("\n"):
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value
    return out


# -- decoding ------------------------------------------------------------------------------

_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">II")
_JOB_BEGIN = struct.Struct(">III")
_JOB_DONE_11 = struct.Struct(">IiIIIIIIIII")  # the exit code (2nd word) is signed
_JOB_DONE_12 = struct.Struct(">IiIIIIIIIIII")
_LOCAL_HEAD = struct.Struct(">III")
_GETCS_TAIL = struct.Struct(">III")
_u32_from = _U32.unpack_from
_new = tuple.__new__


def _fail(what: str, offset: int) -> RemoteProtocolError:
    return RemoteProtocolError(f"{what} at byte {offset} of the frame body")


def _string(buf: bytes | bytearray, pos: int, end: int, field: str, base: int) -> tuple[str, int]:
    """Read a string at ``pos``; return it and the position after it."""
    if pos + 4 > end:
        raise _fail(f"{field}: string length cut off", pos - base)
    (n,) = _u32_from(buf, pos)
    pos += 4
    stop = pos + n
    if stop > end:
        raise _fail(f"{field}: string of {n} bytes runs past the frame's end", pos - 4 - base)
    # Up to the first NUL, as C reads it. Cutting the decoded text at its first "\0" is the
    # same (a NUL byte never belongs to a UTF-8 sequence, nor to an escaped bad byte) and
    # costs half as much as finding the NUL in the bytes first.
    return buf[pos:stop].decode("utf-8", "surrogateescape").partition("\0")[0], stop


def _exact(pos: int, end: int, what: str, base: int) -> None:
    if pos != end:
        raise _fail(f"{what}: {end - pos} bytes left over after the last field", pos - base)


def _dec_stats(buf: bytes | bytearray, pos: int, end: int, v: int) -> MonStats:
    if end - pos < 8:
        raise _fail("MON_STATS: body too short", 0)
    (hostid,) = _u32_from(buf, pos)
    text, after = _string(buf, pos + 4, end, "MON_STATS statmsg", pos)
    _exact(after, end, "MON_STATS", pos)
    return _new(MonStats, (hostid, text))


def _dec_get_cs(buf: bytes | bytearray, pos: int, end: int, v: int) -> MonGetCS:
    base = pos
    if v >= V_SHORT_GET_CS:
        filename, pos = _string(buf, pos, end, "MON_GET_CS filename", base)
        if end - pos != 12:
            raise _fail(
                f"MON_GET_CS: {end - pos} bytes after the filename, expected 12", pos - base
            )
        lang, job_id, client_id = _GETCS_TAIL.unpack_from(buf, pos)
        return _new(MonGetCS, (filename, lang, job_id, client_id, (), 1, "", 0, ""))
    # The long form (v < 29): the whole GET_CS layout, then job_id and clientid.
    if end - pos < 4:
        raise _fail("MON_GET_CS: environment count cut off", 0)
    (n_envs,) = _u32_from(buf, pos)
    pos += 4
    if n_envs > (end - pos) // 8:  # each environment takes at least two length words
        raise _fail(f"MON_GET_CS: {n_envs} environments cannot fit", pos - 4 - base)
    envs = []
    for _ in range(n_envs):
        platform, pos = _string(buf, pos, end, "MON_GET_CS env platform", base)
        name, pos = _string(buf, pos, end, "MON_GET_CS env name", base)
        envs.append((platform, name))
    filename, pos = _string(buf, pos, end, "MON_GET_CS filename", base)
    if end - pos < 8:
        raise _fail("MON_GET_CS: lang/count cut off", pos - base)
    lang, count = struct.unpack_from(">II", buf, pos)
    target, pos = _string(buf, pos + 8, end, "MON_GET_CS target", base)
    if end - pos < 8:
        raise _fail("MON_GET_CS: arg_flags/client_id cut off", pos - base)
    arg_flags, _client = struct.unpack_from(">II", buf, pos)
    pos += 8
    preferred = ""
    if v >= V_PREFERRED_HOST:
        preferred, pos = _string(buf, pos, end, "MON_GET_CS preferred_host", base)
    if end - pos != 8:
        raise _fail(
            f"MON_GET_CS: {end - pos} bytes before the end, expected job_id, clientid", pos - base
        )
    job_id, client_id = struct.unpack_from(">II", buf, pos)
    return _new(
        MonGetCS,
        (filename, lang, job_id, client_id, tuple(envs), count, target, arg_flags, preferred),
    )


def _dec_job_begin(buf: bytes | bytearray, pos: int, end: int, v: int) -> MonJobBegin:
    if end - pos != 12:
        raise _fail(f"MON_JOB_BEGIN: body of {end - pos} bytes, expected 12", 0)
    return _new(MonJobBegin, _JOB_BEGIN.unpack_from(buf, pos))


def _dec_job_done(buf: bytes | bytearray, pos: int, end: int, v: int) -> MonJobDone:
    size = end - pos
    if v >= V_CLIENT_COUNT:
        if size != 48:
            raise _fail(f"MON_JOB_DONE: body of {size} bytes, expected 48 at v{v}", 0)
        return _new(MonJobDone, _JOB_DONE_12.unpack_from(buf, pos))
    if size != 44:
        raise _fail(f"MON_JOB_DONE: body of {size} bytes, expected 44 at v{v}", 0)
    return _new(MonJobDone, (*_JOB_DONE_11.unpack_from(buf, pos), 0))


def _dec_local_begin(buf: bytes | bytearray, pos: int, end: int, v: int) -> MonLocalJobBegin:
    if end - pos < 16:
        raise _fail(f"MON_LOCAL_JOB_BEGIN: body of {end - pos} bytes, too short", 0)
    hostid, job_id, stime = _LOCAL_HEAD.unpack_from(buf, pos)
    file, after = _string(buf, pos + 12, end, "MON_LOCAL_JOB_BEGIN file", pos)
    _exact(after, end, "MON_LOCAL_JOB_BEGIN", pos)
    return _new(MonLocalJobBegin, (hostid, job_id, stime, file))


def _dec_local_done(buf: bytes | bytearray, pos: int, end: int, v: int) -> JobLocalDone:
    if end - pos != 4:
        raise _fail(f"JOB_LOCAL_DONE: body of {end - pos} bytes, expected 4", 0)
    return _new(JobLocalDone, _U32.unpack_from(buf, pos))


def _dec_empty(cls: type[Any]) -> Callable[[bytes | bytearray, int, int, int], Any]:
    def decode(buf: bytes | bytearray, pos: int, end: int, v: int) -> Any:
        if end != pos:
            raise _fail(f"{cls.__name__}: {end - pos} bytes in an empty message", 0)
        return cls()

    return decode


_Decoder = Callable[[bytes | bytearray, int, int, int], Message]
_DECODERS: dict[int, _Decoder] = {
    MsgType.MON_STATS: _dec_stats,
    MsgType.MON_GET_CS: _dec_get_cs,
    MsgType.GET_CS: _dec_get_cs,  # alias (trap 7)
    MsgType.MON_JOB_BEGIN: _dec_job_begin,
    MsgType.MON_JOB_DONE: _dec_job_done,
    MsgType.JOB_DONE: _dec_job_done,  # alias (trap 7)
    MsgType.MON_LOCAL_JOB_BEGIN: _dec_local_begin,
    MsgType.JOB_LOCAL_DONE: _dec_local_done,
    MsgType.MON_LOGIN: _dec_empty(MonLogin),
    MsgType.END: _dec_empty(End),
}


def unpack_message(data: bytes, version: int = MAX_VERSION) -> Message:
    """Decode exactly one message given as its type word and body (no length word)."""
    if len(data) < 4:
        raise RemoteProtocolError(f"a message needs a 4-byte type word, got {len(data)} bytes")
    (mtype,) = _u32_from(data, 0)
    decoder = _DECODERS.get(mtype)
    if decoder is None:
        return UnknownMessage(mtype, bytes(data[4:]))
    return decoder(data, 4, len(data), version)


# -- encoding ------------------------------------------------------------------------------


def _pack_string(text: str, field: str) -> bytes:
    if not isinstance(text, str):
        raise LocalProtocolError(f"{field} must be a str, not {type(text).__name__}")
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"{field} cannot be encoded: {exc.reason}") from None
    if b"\0" in raw:
        raise LocalProtocolError(f"{field} contains a NUL byte")
    return _U32.pack(len(raw) + 1) + raw + b"\0"


def _pack_u32s(fmt: str, values: tuple[Any, ...], names: tuple[str, ...], what: str) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except struct.error:
        for name, value, code in zip(names, values, fmt[1:], strict=True):
            low, high = (-(1 << 31), (1 << 31) - 1) if code == "i" else (0, (1 << 32) - 1)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise LocalProtocolError(
                    f"{what}.{name} = {value!r} is not a {'signed ' if code == 'i' else ''}u32"
                ) from None
        raise


def _body(msg: Message, version: int) -> bytes:
    if isinstance(msg, MonLogin | End):
        return b""
    if isinstance(msg, MonStats):
        return _pack_u32s(">I", (msg.hostid,), ("hostid",), "MonStats") + _pack_string(
            msg.statmsg, "MonStats.statmsg"
        )
    if isinstance(msg, MonJobBegin):
        return _pack_u32s(">III", tuple(msg), MonJobBegin._fields, "MonJobBegin")
    if isinstance(msg, MonJobDone):
        values = tuple(msg) if version >= V_CLIENT_COUNT else tuple(msg)[:11]
        fmt = ">Ii" + "I" * (len(values) - 2)
        return _pack_u32s(fmt, values, MonJobDone._fields[: len(values)], "MonJobDone")
    if isinstance(msg, MonLocalJobBegin):
        head = _pack_u32s(">III", tuple(msg)[:3], MonLocalJobBegin._fields[:3], "MonLocalJobBegin")
        return head + _pack_string(msg.file, "MonLocalJobBegin.file")
    if isinstance(msg, JobLocalDone):
        return _pack_u32s(">I", (msg.job_id,), ("job_id",), "JobLocalDone")
    if isinstance(msg, MonGetCS):
        tail = _pack_u32s(
            ">III",
            (msg.lang, msg.job_id, msg.client_id),
            ("lang", "job_id", "client_id"),
            "MonGetCS",
        )
        if version >= V_SHORT_GET_CS:
            return _pack_string(msg.filename, "MonGetCS.filename") + tail
        parts = [_U32.pack(len(msg.envs))]
        for platform, name in msg.envs:
            parts += [_pack_string(platform, "MonGetCS.envs"), _pack_string(name, "MonGetCS.envs")]
        parts += [
            _pack_string(msg.filename, "MonGetCS.filename"),
            _pack_u32s(">II", (msg.lang, msg.job_count), ("lang", "job_count"), "MonGetCS"),
            _pack_string(msg.target, "MonGetCS.target"),
            _pack_u32s(">II", (msg.arg_flags, 0), ("arg_flags", "client_id"), "MonGetCS"),
        ]
        if version >= V_PREFERRED_HOST:
            parts.append(_pack_string(msg.preferred_host, "MonGetCS.preferred_host"))
        parts.append(
            _pack_u32s(">II", (msg.job_id, msg.client_id), ("job_id", "client_id"), "MonGetCS")
        )
        return b"".join(parts)
    if isinstance(msg, UnknownMessage):
        return bytes(msg.body)
    raise LocalProtocolError(f"not an icecream message: {msg!r:.60}")


def pack_message(msg: Message, version: int = MAX_VERSION) -> bytes:
    """The type word and body of ``msg`` at ``version``: what :func:`unpack_message` reads."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise LocalProtocolError(f"version {version} is outside {MIN_VERSION}..{MAX_VERSION}")
    body = _body(msg, version)  # first: it refuses what is not a message
    return _pack_u32s(">I", (msg.msg_type,), ("type",), type(msg).__name__) + body


def frame(msg: Message, version: int = MAX_VERSION) -> bytes:
    """``msg`` as a whole frame: length word, type word, body."""
    data = pack_message(msg, version)
    if len(data) > MAX_FRAME:
        raise LocalProtocolError(f"a frame of {len(data)} bytes is over {MAX_FRAME}")
    return _U32.pack(len(data)) + data


# -- the connection state machine ------------------------------------------------------------


class HandshakeState(enum.Enum):
    AWAIT_PEER_MAX = "await peer max"
    """Our maximum is sent; waiting for the peer's."""
    AWAIT_PEER_MIN = "await peer min"
    """Our minimum is sent; waiting for the peer's, which must be the same."""
    READY = "ready"
    CLOSED = "closed"
    ERROR = "error"


class Codec:
    """One connection's protocol state (see the module docstring). No I/O.

    Args:
        max_version: the version this side offers (44 by default).
        role: ``"monitor"`` or ``"scheduler"``: what this side may send.
    """

    def __init__(self, *, max_version: int = MAX_VERSION, role: str = "monitor") -> None:
        if not MIN_VERSION <= max_version <= MAX_VERSION:
            raise LocalProtocolError(
                f"max_version {max_version} outside {MIN_VERSION}..{MAX_VERSION}"
            )
        if role not in ("monitor", "scheduler"):
            raise LocalProtocolError(f"role must be monitor or scheduler, not {role!r}")
        self.role = role
        self.max_version = max_version
        self.version: int | None = None
        self.state = HandshakeState.AWAIT_PEER_MAX
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._out = bytearray(_U32L.pack(max_version))
        self._proposed = 0
        self.frames = 0
        """Frames decoded so far."""

    def data_to_send(self) -> bytes:
        """Bytes the protocol itself wants sent (the handshake); empty when none."""
        out, self._out = bytes(self._out), bytearray()
        return out

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed the connection."""
        if self.state is HandshakeState.ERROR:
            raise LocalProtocolError("receive_data() after a protocol error")
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > 65536:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | _NeedData:
        """The next event, or :data:`NEED_DATA`. Raises RemoteProtocolError on garbage."""
        try:
            return self._next()
        except RemoteProtocolError:
            self.state = HandshakeState.ERROR
            raise

    def events(self) -> list[Event]:
        """Every event the buffered bytes hold (the fast path for a busy scheduler)."""
        if self.state is not HandshakeState.READY:
            out: list[Event] = []
            while True:
                event = self.next_event()
                if event is NEED_DATA:
                    return out
                out.append(event)  # type: ignore[arg-type]
                if isinstance(event, Closed):
                    return out  # EOF: next_event() would return Closed forever
                if isinstance(event, Negotiated):
                    break
            return out + self.events()
        try:
            return self._frames()
        except RemoteProtocolError:
            self.state = HandshakeState.ERROR
            raise

    def send(self, msg: Message) -> bytes:
        """The bytes of ``msg`` as a frame at the negotiated version."""
        if self.state is not HandshakeState.READY or self.version is None:
            raise LocalProtocolError(f"send() in state {self.state.value}: finish the handshake")
        if self.role == "monitor" and not isinstance(msg, MonLogin | End):
            raise LocalProtocolError(
                f"a monitor only sends MON_LOGIN or END, not {type(msg).__name__}"
            )
        return frame(msg, self.version)

    # -- internals --

    def _next(self) -> Event | _NeedData:
        state = self.state
        if state is HandshakeState.READY:
            return self._frame()
        if state is HandshakeState.ERROR:
            raise LocalProtocolError("next_event() after a protocol error")
        if state is HandshakeState.CLOSED:
            return Closed()
        if len(self._buf) - self._pos < 4:
            if self._eof:
                self.state = HandshakeState.CLOSED
                return Closed()
            return NEED_DATA
        (value,) = _U32L.unpack_from(self._buf, self._pos)
        self._pos += 4
        if state is HandshakeState.AWAIT_PEER_MAX:
            if not MIN_VERSION <= value <= _VERSION_CEILING:
                raise RemoteProtocolError(
                    f"handshake: the peer offers protocol {value}, "
                    f"outside {MIN_VERSION}..{_VERSION_CEILING}"
                )
            self._proposed = min(self.max_version, value)
            self._out += _U32L.pack(self._proposed)
            self.state = HandshakeState.AWAIT_PEER_MIN
            return self._next()
        if value != self._proposed:
            raise RemoteProtocolError(
                f"handshake: the peer settled on {value}, we on {self._proposed}"
            )
        self.version = value
        self.state = HandshakeState.READY
        return Negotiated(value)

    def _frame(self) -> Event | _NeedData:
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        if have < 8:
            return self._short(have)
        length, mtype = _HEADER.unpack_from(buf, pos)
        if length > MAX_FRAME or length < 4:
            raise RemoteProtocolError(f"frame length {length} outside 4..{MAX_FRAME}")
        end = pos + 4 + length
        if end > len(buf):
            return self._short(have)
        decoder = _DECODERS.get(mtype)
        msg = (
            decoder(buf, pos + 8, end, self.version)  # type: ignore[arg-type]
            if decoder is not None
            else UnknownMessage(mtype, bytes(buf[pos + 8 : end]))
        )
        self._pos = end
        self.frames += 1
        return msg

    def _frames(self) -> list[Event]:
        # The hot loop of a busy cluster: the frequent fixed-layout messages are decoded
        # inline (no call per message); the rest go through the same decoders as
        # next_event(). Each inline branch checks the exact body size, as they do.
        buf, pos, size, version = self._buf, self._pos, len(self._buf), self.version
        assert version is not None
        decoders, header, new = _DECODERS, _HEADER.unpack_from, _new
        begin, done = (
            _JOB_BEGIN.unpack_from,
            (_JOB_DONE_12 if version >= V_CLIENT_COUNT else _JOB_DONE_11).unpack_from,
        )
        done_size = 48 if version >= V_CLIENT_COUNT else 44
        short_get_cs = version >= V_SHORT_GET_CS
        tail, u32 = _GETCS_TAIL.unpack_from, _u32_from
        out: list[Event] = []
        append = out.append
        try:
            while size - pos >= 8:
                length, mtype = header(buf, pos)
                if length > MAX_FRAME or length < 4:
                    raise RemoteProtocolError(f"frame length {length} outside 4..{MAX_FRAME}")
                end = pos + 4 + length
                if end > size:
                    break
                body = pos + 8
                if mtype == 84 and length == 16:  # MON_JOB_BEGIN
                    append(new(MonJobBegin, begin(buf, body)))
                elif (mtype == 85 or mtype == 77) and length == done_size + 4:  # MON_JOB_DONE
                    values = done(buf, body)
                    append(new(MonJobDone, values if done_size == 48 else (*values, 0)))
                elif (mtype == 83 or mtype == 71) and short_get_cs and length >= 20:  # MON_GET_CS
                    (n,) = u32(buf, body)
                    start = body + 4
                    stop = start + n
                    if stop + 12 != end:
                        append(decoders[mtype](buf, body, end, version))  # raises the right error
                    else:
                        name = buf[start:stop].decode("utf-8", "surrogateescape").partition("\0")[0]
                        append(new(MonGetCS, (name, *tail(buf, stop), (), 1, "", 0, "")))
                elif mtype == 79 and length == 8:  # JOB_LOCAL_DONE
                    append(new(JobLocalDone, u32(buf, body)))
                else:
                    decoder = decoders.get(mtype)
                    if decoder is None:
                        append(UnknownMessage(mtype, bytes(buf[body:end])))
                    else:
                        append(decoder(buf, body, end, version))
                pos = end
        finally:
            self.frames += len(out)
            self._pos = pos
        if self._eof:
            out.append(self._short(size - pos))  # type: ignore[arg-type]
        return out

    def _short(self, have: int) -> Event | _NeedData:
        if not self._eof:
            return NEED_DATA
        if have:
            raise RemoteProtocolError(f"connection closed in the middle of a frame ({have} bytes)")
        self.state = HandshakeState.CLOSED
        return Closed()


_U32L = struct.Struct("<I")
