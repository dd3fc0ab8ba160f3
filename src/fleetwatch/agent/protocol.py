"""Sans-IO codecs of fleetwatch-agent: supervisord's event-listener protocol and the hub wire.

Standard library only, Python 3.8+ (the hub imports this module too). Nothing here
reads or writes a stream: the callers feed text in and send what comes out.

* :class:`ListenerCodec` speaks supervisord's event-listener protocol (§4.3 of the
  protocol notes). ``len`` in an event header counts **characters** of the decoded
  payload, not bytes (trap T18), so the codec works on ``str``: the caller decodes
  stdin as UTF-8 without newline translation and feeds what it reads.
* The hub wire is newline-delimited JSON, one object per line (UTF-8, at most
  :data:`MAX_LINE` bytes). :func:`client_proof` / :func:`agent_proof` are the
  HMAC-SHA256 challenge-response of the handshake; :func:`apply_event` and
  :func:`merge_info` are the rules that keep the agent's model equal to supervisord's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_LINE",
    "PROTOCOL",
    "STATE_CODES",
    "Event",
    "ListenerCodec",
    "ProtocolError",
    "agent_proof",
    "apply_event",
    "client_proof",
    "decode_frame",
    "encode_frame",
    "merge_info",
    "parse_header",
    "parse_tokens",
]

PROTOCOL = 1
"""The wire protocol's version, sent in the agent's ``hello``."""

MAX_LINE = 16 << 20
"""Bytes of one wire line at most (a snapshot of ~50,000 processes)."""

STATE_CODES = {
    "STOPPED": 0,
    "STARTING": 10,
    "RUNNING": 20,
    "BACKOFF": 30,
    "STOPPING": 40,
    "EXITED": 100,
    "FATAL": 200,
    "UNKNOWN": 1000,
}
"""supervisord's process states (``supervisor.states.ProcessStates``)."""

_HEADER_KEYS = ("ver", "server", "serial", "pool", "poolserial", "eventname", "len")


class ProtocolError(ValueError):
    """The peer sent something this protocol does not allow."""


def parse_tokens(text: str) -> dict[str, str]:
    """``key:value key:value`` (an event header, or a payload's first line) as a dict."""
    out: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition(":")
        if not sep:
            raise ProtocolError(f"not a key:value token: {token!r:.60}")
        out[key] = value
    return out


@dataclass(frozen=True)
class Event:
    """One event as supervisord sent it: its header and its payload text."""

    name: str
    serial: int
    pool: str
    poolserial: int
    server: str
    payload: str
    header: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> dict[str, str]:
        """The payload's ``key:value`` tokens (its first line, for log events)."""
        first = self.payload.split("\n", 1)[0]
        try:
            return parse_tokens(first)
        except ProtocolError:
            return {}

    @property
    def data(self) -> str:
        """The payload after its first line (REMOTE_COMMUNICATION's data, log text)."""
        return self.payload.split("\n", 1)[1] if "\n" in self.payload else ""


def parse_header(line: str) -> tuple[dict[str, str], int]:
    """An event header line: its tokens and the payload length (in characters)."""
    tokens = parse_tokens(line)
    missing = [key for key in _HEADER_KEYS if key not in tokens]
    if missing:
        raise ProtocolError(f"event header lacks {', '.join(missing)}: {line!r:.120}")
    try:
        length = int(tokens["len"])
        int(tokens["serial"]), int(tokens["poolserial"])
    except ValueError:
        raise ProtocolError(f"event header has a non-numeric field: {line!r:.120}") from None
    if length < 0:
        raise ProtocolError(f"negative payload length in {line!r:.120}")
    return tokens, length


class ListenerCodec:
    """supervisord's event-listener protocol, sans-IO, on text.

    Driving it: write :meth:`ready`; then, until :meth:`next_event` gives an event,
    read ``codec.wanted()`` characters (``0``: a line) and :meth:`feed` them; handle
    the event; write :meth:`ok`; repeat. Everything fed is kept, so feeding more
    than wanted (several events at once) is fine too.
    """

    READY = "READY\n"

    def __init__(self) -> None:
        self._buffer = ""
        self._header: dict[str, str] | None = None
        self._length = 0

    def ready(self) -> str:
        return self.READY

    @staticmethod
    def ok() -> str:
        return "RESULT 2\nOK"

    @staticmethod
    def fail() -> str:
        return "RESULT 4\nFAIL"

    def feed(self, text: str) -> None:
        if text == "" and self._buffer == "":
            raise EOFError("supervisord closed the listener's stdin")
        self._buffer += text

    def wanted(self) -> int:
        """Characters still needed for the next event; 0 when a header line is awaited."""
        if self._header is None:
            return 0
        return max(1, self._length - len(self._buffer))

    def next_event(self) -> Event | None:
        """The next complete event, or None until more text is fed."""
        if self._header is None:
            line, sep, rest = self._buffer.partition("\n")
            if not sep:
                return None
            if not line.strip():
                raise ProtocolError("empty event header line")
            self._header, self._length = parse_header(line)
            self._buffer = rest
        if len(self._buffer) < self._length:
            return None
        header = self._header
        payload, self._buffer = self._buffer[: self._length], self._buffer[self._length :]
        self._header = None
        return Event(
            name=header["eventname"],
            serial=int(header["serial"]),
            pool=header["pool"],
            poolserial=int(header["poolserial"]),
            server=header["server"],
            payload=payload,
            header=header,
        )


# -- the hub wire -------------------------------------------------------------------


def encode_frame(obj: dict[str, Any]) -> bytes:
    """One wire line: compact JSON, UTF-8, ``\\n``-terminated."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode_frame(line: bytes) -> dict[str, Any]:
    """One wire line as a JSON object; ProtocolError for anything else."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line of {len(line)} bytes (at most {MAX_LINE})")
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _mac(token: str, role: bytes, agent_nonce: str, client_nonce: str) -> str:
    message = role + b"\0" + agent_nonce.encode() + b"\0" + client_nonce.encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def client_proof(token: str, agent_nonce: str, client_nonce: str) -> str:
    """What the hub sends to prove it knows the token (the token never crosses the wire)."""
    return _mac(token, b"fleetwatch-hub", agent_nonce, client_nonce)


def agent_proof(token: str, agent_nonce: str, client_nonce: str) -> str:
    """What the agent answers to prove it knows the token too (the hub checks it)."""
    return _mac(token, b"fleetwatch-agent", agent_nonce, client_nonce)


def proof_matches(expected: str, given: object) -> bool:
    """Constant-time comparison of two proofs (``hmac.compare_digest``)."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


# -- the model rules ----------------------------------------------------------------

_PID_STATES = ("RUNNING", "STOPPING")
"""States in which getProcessInfo's ``pid`` is the event's pid."""
_DEAD_STATES = ("STOPPED", "EXITED", "FATAL", "BACKOFF")


def apply_event(
    old: dict[str, Any] | None, group: str, name: str, state: str, fields: dict[str, str]
) -> dict[str, Any]:
    """A process record (getProcessInfo's shape) after a PROCESS_STATE event.

    The event's own state is applied at once (Multivisor's trap T5: a re-read may
    already have moved on); the details the event does not carry (exit status,
    description, times) come with :func:`merge_info` right after.
    """
    now = int(time.time())
    rec: dict[str, Any] = (
        dict(old)
        if old
        else {
            "name": name,
            "group": group,
            "start": 0,
            "stop": 0,
            "now": now,
            "state": 0,
            "statename": "STOPPED",
            "spawnerr": "",
            "exitstatus": 0,
            "logfile": "",
            "stdout_logfile": "",
            "stderr_logfile": "",
            "pid": 0,
            "description": "",
        }
    )
    rec["statename"] = state
    rec["state"] = STATE_CODES.get(state, 1000)
    rec["now"] = now
    if state in _PID_STATES and fields.get("pid", "").isdigit():
        rec["pid"] = int(fields["pid"])
    elif state in _DEAD_STATES:
        rec["pid"] = 0
    if state == "STARTING":
        rec["start"] = now
    elif state in ("STOPPED", "EXITED"):
        rec["stop"] = now
    if state == "EXITED" and "expected" in fields:
        rec["expected"] = fields["expected"] == "1"
    rec.pop("_event_pid", None)
    if fields.get("pid", "").isdigit() and state in _PID_STATES:
        rec["_event_pid"] = int(fields["pid"])
    return rec


def merge_info(current: dict[str, Any] | None, info: dict[str, Any]) -> dict[str, Any] | None:
    """The record to keep after re-reading a process, or None to keep ``current``.

    A re-read taken after a later, not yet delivered, transition shows another state
    than the model: it is dropped (the later transition's own re-read will come).
    A re-read in the same state, and for RUNNING/STOPPING with the same pid, is the
    truth and replaces the record whole.
    """
    if current is None:
        return dict(info)
    if info.get("statename") != current.get("statename"):
        return None
    event_pid = current.get("_event_pid")
    if event_pid is not None and info.get("pid") != event_pid:
        return None
    return dict(info)


def public_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A model record without the agent's private bookkeeping keys."""
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def namespec(group: str, name: str) -> str:
    return f"{group}:{name}"


def record_key(rec: dict[str, Any]) -> str:
    return namespec(str(rec.get("group", "")), str(rec.get("name", "")))


def split_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record_key(r): r for r in records}
