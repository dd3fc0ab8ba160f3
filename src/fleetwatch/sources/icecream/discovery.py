"""Finding icecream schedulers: the UDP query, its three reply formats, and the choice.

A client sends one byte, its protocol version, to UDP port 8765 of every IPv4
interface's broadcast address; each scheduler answers with a datagram whose first
byte is that version plus 1, 2 or 3, telling the layout (``icecream.md`` §5):

=============  ======  ======================================================
query version  length  layout
=============  ======  ======================================================
< 33           16      ``[v+1][netname, NUL-padded]``
33-37          32/268  ``[v+2][u32 LE version][u64 LE start time][netname]``
>= 38          268     ``[v+3][u32 BE version][u32 BE time hi][u32 BE time lo][netname]``
=============  ======  ======================================================

Answers whose netname matches (case-insensitively; empty means ``ICECREAM``) are
kept; the highest version wins, then the oldest start time. The TCP connection
then goes to the reply's source address and port.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetwatch.errors import RemoteProtocolError

__all__ = [
    "DEFAULT_NETNAME",
    "DEFAULT_PORT",
    "QUERY_VERSION",
    "Scheduler",
    "broadcast_addresses",
    "choose",
    "discover",
    "explicit_scheduler",
    "parse_reply",
    "query",
]

DEFAULT_PORT = 8765
DEFAULT_NETNAME = "ICECREAM"
QUERY_VERSION = 43
"""The version byte we send: >= 38 gets the network-byte-order reply."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheduler:
    host: str
    port: int
    version: int = 0
    """The scheduler's protocol version (0 when a short reply did not say)."""
    start_time: int = 0
    netname: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def query(version: int = QUERY_VERSION) -> bytes:
    if not 21 <= version < 128:
        raise ValueError("the query version must be 21..127")
    return bytes([version])


def parse_reply(data: bytes, sent: int, host: str = "", port: int = DEFAULT_PORT) -> Scheduler:
    """Decode a reply to a query of version ``sent``; raise RemoteProtocolError if it is not one."""
    if not data:
        raise RemoteProtocolError("empty discovery reply")
    mark = data[0] - sent
    if mark == 1 and len(data) >= 2:
        return Scheduler(host=host, port=port, netname=_netname(data[1:]))
    if mark == 2 and len(data) >= 14:
        version, start = struct.unpack_from("<IQ", data, 1)
        return Scheduler(
            host=host, port=port, version=version, start_time=start, netname=_netname(data[13:])
        )
    if mark == 3 and len(data) >= 14:
        version, high, low = struct.unpack_from(">III", data, 1)
        start = (high << 32) | low
        return Scheduler(
            host=host, port=port, version=version, start_time=start, netname=_netname(data[13:])
        )
    raise RemoteProtocolError(f"not a discovery reply to version {sent}: {data[:16].hex()}")


def _netname(raw: bytes) -> str:
    raw = raw[:-1] if len(raw) > 1 else raw  # the receiver forces the last byte to NUL
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def choose(found: Iterable[Scheduler], netname: str | None) -> Scheduler | None:
    """The scheduler a client would use: matching netname, highest version, oldest start."""
    wanted = (netname or DEFAULT_NETNAME).casefold()
    candidates = [
        s
        for s in found
        if (s.netname or DEFAULT_NETNAME).casefold() == wanted and 0 <= s.version < 128
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (-s.version, s.start_time))


def explicit_scheduler(value: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """``host[:port]`` from the config value, else ``ICECC_SCHEDULER``, else ``USE_SCHEDULER``.

    ``"auto"``, empty and None mean "not set". The result keeps the text as given.
    """
    if value and value != "auto":
        return value
    variables: dict[str, str] = dict(os.environ) if env is None else env
    for name in ("ICECC_SCHEDULER", "USE_SCHEDULER"):
        if variables.get(name):
            return variables[name]
    return None


def split_host_port(value: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host[:port]``, split at the last colon as icecream does (no IPv6 literals)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {value!r}")
    return host, int(port)


_SIOCGIFFLAGS = 0x8913
_SIOCGIFBRDADDR = 0x8919
_IFF_BROADCAST = 0x2
_IFF_LOOPBACK = 0x8
_IFF_POINTOPOINT = 0x10


def broadcast_addresses() -> list[str]:
    """Each IPv4 interface's broadcast address, as icecream's clients use them.

    Loopback and point-to-point links are skipped; with ``ICECC_TESTS`` set (the
    test mode of icecream itself) only 127.0.0.1 is used, so nothing leaves the host.
    """
    if os.environ.get("ICECC_TESTS"):
        return ["127.0.0.1"]
    out: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            req = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack_from("H", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req), 16)[0]
                if not flags & _IFF_BROADCAST or flags & (_IFF_LOOPBACK | _IFF_POINTOPOINT):
                    continue
                addr = fcntl.ioctl(s.fileno(), _SIOCGIFBRDADDR, req)
            except OSError:
                continue  # no IPv4 address on it
            out.append(socket.inet_ntoa(array.array("B", addr[20:24]).tobytes()))
    return out


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, sent: int) -> None:
        self.sent = sent
        self.found: list[Scheduler] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        with contextlib.suppress(RemoteProtocolError):
            self.found.append(parse_reply(data, self.sent, addr[0], addr[1]))


async def discover(
    *,
    port: int = DEFAULT_PORT,
    timeout: float = 2.0,
    addresses: Sequence[str] | None = None,
    version: int = QUERY_VERSION,
) -> list[Scheduler]:
    """Every scheduler that answers within ``timeout`` seconds (a monitor waits 2 s).

    ``addresses`` overrides where queries go (each may be a unicast address).
    """
    targets = list(addresses) if addresses is not None else broadcast_addresses()
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _Collector(version), local_addr=("0.0.0.0", 0), allow_broadcast=True
    )
    try:
        payload = query(version)
        for target in targets:
            with contextlib.suppress(OSError):
                transport.sendto(payload, (target, port))
        await asyncio.sleep(timeout)  # answers are collected for the whole window, as icecc does
    finally:
        transport.close()
    seen: dict[tuple[str, int], Scheduler] = {}
    for s in proto.found:
        seen.setdefault((s.host, s.port), s)
    return sorted(seen.values(), key=lambda s: (-s.version, s.start_time, s.host))
