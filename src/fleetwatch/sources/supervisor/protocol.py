"""supervisord's XML-RPC interface, sans-IO: bytes in, typed values out.

No sockets here: :func:`encode_call` gives the body of an HTTP POST to ``/RPC2``,
:func:`decode_response` reads the body of the answer. The transport lives in
``client.py``. State names and fault codes are supervisord's own (supervisor
4.3.0, ``states.py`` and ``xmlrpc.py``), kept verbatim.

Wire facts worth knowing (see ``shared/protocols/supervisor.md`` §4-§5):

* a fault comes back as an XML-RPC ``<fault>`` with HTTP 200; a window of a log
  read that splits a UTF-8 character comes back as HTTP **500** (T15);
* ``system.multicall`` never raises: each fault is a ``{faultCode, faultString}``
  struct in the result array;
* timestamps are ints capped at 2**31 and ``description`` is pre-formatted in the
  daemon's local time (T23): never parse it.
"""

from __future__ import annotations

import enum
import hashlib
import re
import xmlrpc.client
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetwatch.errors import RemoteProtocolError, SourceError

__all__ = [
    "RUNNING_STATES",
    "STRUCT_CLOSE",
    "STRUCT_OPEN",
    "Fault",
    "Faults",
    "GroupResult",
    "ProcessInfo",
    "ProcessStates",
    "ResponseDecoder",
    "Signature",
    "SupervisorStates",
    "decode_multicall",
    "decode_response",
    "decode_struct",
    "encode_call",
    "encode_multicall",
    "member_pieces",
    "struct_key",
    "without_volatile",
]


class Faults(enum.IntEnum):
    UNKNOWN_METHOD = 1
    INCORRECT_PARAMETERS = 2
    BAD_ARGUMENTS = 3
    SIGNATURE_UNSUPPORTED = 4
    SHUTDOWN_STATE = 6
    BAD_NAME = 10
    BAD_SIGNAL = 11
    NO_FILE = 20
    NOT_EXECUTABLE = 21
    FAILED = 30
    ABNORMAL_TERMINATION = 40
    SPAWN_ERROR = 50
    ALREADY_STARTED = 60
    NOT_RUNNING = 70
    SUCCESS = 80
    ALREADY_ADDED = 90
    STILL_RUNNING = 91
    CANT_REREAD = 92


class ProcessStates(enum.IntEnum):
    STOPPED = 0
    STARTING = 10
    RUNNING = 20
    BACKOFF = 30
    STOPPING = 40
    EXITED = 100
    FATAL = 200
    UNKNOWN = 1000


class SupervisorStates(enum.IntEnum):
    FATAL = 2
    RUNNING = 1
    RESTARTING = 0
    SHUTDOWN = -1


RUNNING_STATES = frozenset(
    {
        ProcessStates.STARTING,
        ProcessStates.RUNNING,
        ProcessStates.BACKOFF,
        ProcessStates.STOPPING,
    }
)


class Fault(SourceError):
    """supervisord answered a call with an XML-RPC fault."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        try:
            self.name = Faults(code).name
        except ValueError:
            self.name = f"FAULT_{code}"
        # supervisord's fault strings already start with the name ("BAD_NAME: foo")
        super().__init__(
            text if text.startswith(self.name) else f"{self.name}: {text}".rstrip(": ")
        )


def encode_call(method: str, *params: Any) -> bytes:
    """The body of one XML-RPC call."""
    return xmlrpc.client.dumps(params, method, encoding="utf-8", allow_none=False).encode("utf-8")


def encode_multicall(calls: Sequence[tuple[str, Sequence[Any]]]) -> bytes:
    """The body of a ``system.multicall`` of ``(method, params)`` pairs."""
    return encode_call("system.multicall", [{"methodName": m, "params": list(p)} for m, p in calls])


def decode_response(body: bytes) -> Any:
    """The value of an XML-RPC response; raise :class:`Fault` or RemoteProtocolError."""
    decoder = ResponseDecoder()
    decoder.feed(body)
    return decoder.close()


class ResponseDecoder:
    """Decodes an XML-RPC response fed in pieces of any size, in order.

    The stdlib's own parser and unmarshaller, fed incrementally: the same values and
    errors as :func:`decode_response`, but a caller can decode a 20 MB answer a slice
    at a time and let other work run in between (issue #8: 4 s in one go).
    """

    def __init__(self) -> None:
        self._parser, self._unmarshaller = xmlrpc.client.getparser(use_builtin_types=True)
        self._head = b""
        self._failed: RemoteProtocolError | None = None

    def feed(self, data: bytes | memoryview) -> None:
        if self._failed is not None:
            return  # garbage already: close() says so
        if len(self._head) < 60:
            self._head += bytes(data[: 60 - len(self._head)])
        try:
            self._parser.feed(bytes(data))
        except Exception as exc:
            self._failed = self._garbage(exc)

    def close(self) -> Any:
        """The response's value; raise :class:`Fault` or RemoteProtocolError."""
        if self._failed is not None:
            raise self._failed
        try:
            self._parser.close()
            values = self._unmarshaller.close()
        except xmlrpc.client.Fault as f:
            raise _fault(f.faultCode, f.faultString) from None
        except Exception as exc:
            raise self._garbage(exc) from None
        if len(values) != 1:
            raise RemoteProtocolError(f"XML-RPC response with {len(values)} values, expected 1")
        return values[0]

    def _garbage(self, exc: Exception) -> RemoteProtocolError:
        # Not only ExpatError and ResponseError: on garbage the stdlib's unmarshaller
        # also raises IndexError, LookupError, decimal.InvalidOperation, TypeError...
        head = self._head.decode("utf-8", "replace")
        return RemoteProtocolError(f"not an XML-RPC response ({exc}): {head!r}")


_VOLATILE = re.compile(rb"<name>(?:now|description)</name>\s*<value>.*?</value>", re.S)


def without_volatile(body: bytes) -> bytes:
    """A response body without the members that change on every poll (``now``, ``description``).

    Two ``getAllProcessInfo`` answers equal after this say the same thing: the
    description is derived from state, pid, start/stop times and spawn error, and
    ``now`` is only the daemon's clock. Comparing these bytes lets a poller skip
    decoding an unchanged answer, which is most of its cost.
    """
    return _VOLATILE.sub(b"", body)


def member_pieces(body: bytes, size: int) -> Iterator[memoryview]:
    """``body`` in pieces of about ``size`` bytes, each cut just after a ``</member>``.

    A volatile member never straddles a cut (``<`` in a value is always escaped), so
    :class:`Signature` can strip each piece on its own.
    """
    view = memoryview(body)
    start = 0
    while start < len(body):
        cut = body.find(b"</member>", start + size)
        end = len(body) if cut < 0 else cut + len(b"</member>")
        yield view[start:end]
        start = end


class Signature:
    """A digest of an answer without its volatile members, built piece by piece.

    Equal digests: equal :func:`without_volatile` bytes (to a 128-bit hash), without
    keeping a copy of a 20 MB answer between polls. Feed it :func:`member_pieces`.
    """

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def update(self, piece: bytes | memoryview) -> None:
        self._hash.update(_VOLATILE.sub(b"", piece))

    def digest(self) -> bytes:
        return self._hash.digest()


#: A struct as the stdlib's ``dumps`` writes it (and so supervisord): its members are
#: between these two. A struct with no ``<struct>`` among its members has none inside.
STRUCT_OPEN = b"<value><struct>\n"
STRUCT_CLOSE = b"</struct></value>\n"
_ONE_HEAD = b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n" + STRUCT_OPEN
_ONE_TAIL = STRUCT_CLOSE + b"</param>\n</params>\n</methodResponse>\n"


def decode_struct(members: bytes) -> Any:
    """The value of one struct given its members' bytes (between the two ``STRUCT_*``)."""
    return decode_response(_ONE_HEAD + members + _ONE_TAIL)


def struct_key(members: bytes) -> bytes:
    """A digest of a struct's members without the volatile ones (``now``, ``description``).

    Two process structs with the same key describe the same process in the same state,
    so a poller may reuse what it made of the first (decoding 20,000 processes is most
    of a big poll's cost, and few of them change between two polls). The members hold
    no struct (see :data:`STRUCT_OPEN`), so a member ends at the first ``</member>``.
    """
    digest = hashlib.blake2b(digest_size=16)
    at = 0
    for name in (b"<name>now</name>", b"<name>description</name>"):
        start = members.find(name, at)
        end = members.find(b"</member>", start) if start >= 0 else -1
        if end >= 0:
            digest.update(members[at:start])
            at = end
    digest.update(members[at:])
    return digest.digest()


def decode_multicall(value: Any, expected: int) -> list[Any]:
    """Split a multicall result: each item is a value or a :class:`Fault` instance.

    supervisord puts each value in the array as it is (not wrapped in a
    one-element array as the multicall convention of other servers has it), and
    each fault as a ``{faultCode, faultString}`` struct.
    """
    if not isinstance(value, list) or len(value) != expected:
        raise RemoteProtocolError(f"multicall answered {value!r:.80}, expected {expected} results")
    out: list[Any] = []
    for item in value:
        if isinstance(item, dict) and "faultCode" in item:
            out.append(_fault(item["faultCode"], item.get("faultString", "")))
        else:
            out.append(item)
    return out


def _fault(code: Any, text: Any) -> Fault:
    if not isinstance(code, int) or isinstance(code, bool):
        raise RemoteProtocolError(f"fault with code {code!r:.40}, not an int") from None
    return Fault(code, str(text))


def _field(d: Mapping[str, Any], key: str, kind: type) -> Any:
    value = d.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RemoteProtocolError(
            f"process info field {key!r} is {value!r:.40}, not {kind.__name__}"
        )
    return value


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One struct of ``getProcessInfo`` / ``getAllProcessInfo``, validated."""

    name: str
    group: str
    start: int
    stop: int
    now: int
    state: int
    statename: str
    spawnerr: str
    exitstatus: int
    stdout_logfile: str
    stderr_logfile: str
    pid: int
    description: str

    @property
    def namespec(self) -> str:
        return f"{self.group}:{self.name}"

    @classmethod
    def from_struct(cls, d: Any) -> ProcessInfo:
        if not isinstance(d, dict):
            raise RemoteProtocolError(f"process info is {d!r:.60}, not a struct")
        return cls(
            name=_field(d, "name", str),
            group=_field(d, "group", str),
            start=_field(d, "start", int),
            stop=_field(d, "stop", int),
            now=_field(d, "now", int),
            state=_field(d, "state", int),
            statename=_field(d, "statename", str),
            spawnerr=_field(d, "spawnerr", str),
            exitstatus=_field(d, "exitstatus", int),
            stdout_logfile=str(d.get("stdout_logfile", d.get("logfile", ""))),
            stderr_logfile=str(d.get("stderr_logfile", "")),
            pid=_field(d, "pid", int),
            description=_field(d, "description", str),
        )

    @classmethod
    def list_from(cls, value: Any) -> list[ProcessInfo]:
        if not isinstance(value, list):
            raise RemoteProtocolError(f"getAllProcessInfo answered {value!r:.60}, not an array")
        return [cls.from_struct(d) for d in value]


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One item of the array a ``*ProcessGroup`` / ``*AllProcesses`` call returns."""

    name: str
    group: str
    status: int
    description: str

    @property
    def ok(self) -> bool:
        return self.status == Faults.SUCCESS

    @classmethod
    def list_from(cls, value: Any) -> list[GroupResult]:
        if not isinstance(value, list):
            raise RemoteProtocolError(f"group call answered {value!r:.60}, not an array")
        out = []
        for d in value:
            if not isinstance(d, dict):
                raise RemoteProtocolError(f"group result {d!r:.60} is not a struct")
            status = d.get("status", 0)
            if not isinstance(status, int) or isinstance(status, bool):
                raise RemoteProtocolError(f"group result status {status!r:.40} is not an int")
            out.append(
                cls(
                    name=str(d.get("name", "")),
                    group=str(d.get("group", "")),
                    status=status,
                    description=str(d.get("description", "")),
                )
            )
        return out
