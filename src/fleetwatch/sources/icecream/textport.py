"""The scheduler's text control port (TCP port + 1): ``listcs``, ``listblocks``, ``blockcs``...

No handshake: the scheduler greets with ``200-ICECC 1.4.0: …`` and ``200 Use 'help'…``;
each command is one line and its answer ends with ``200 done`` (``200 Good Bye!`` for
``quit``). The port has no authentication of its own: the hub's roles guard it.
Idle connections are closed after 36 s, so each use opens its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from fleetwatch.errors import RemoteProtocolError, Unreachable

__all__ = ["TextPort", "parse_listblocks", "parse_listcs"]

_DONE = ("200 done", "200 Good Bye!")
_HOST_LINE = re.compile(r"^ (\S+) \((\S+)\) \[(\S*)\] speed=(\S+) jobs=(\d+)/(-?\d+) load=(\d+)")


def parse_listblocks(reply: str) -> list[str]:
    """Host names from a ``listblocks`` answer (one indented name a line)."""
    return [
        line.strip() for line in reply.splitlines() if line.strip() and not line.startswith("200")
    ]


def parse_listcs(reply: str) -> dict[str, dict[str, str]]:
    """Hosts from a ``listcs`` answer: name -> address, platform, speed, jobs, max_jobs, load."""
    out: dict[str, dict[str, str]] = {}
    for line in reply.splitlines():
        m = _HOST_LINE.match(line)
        if m:
            name, address, platform, speed, jobs, max_jobs, load = m.groups()
            out[name] = {
                "address": address,
                "platform": platform,
                "speed": speed,
                "jobs": jobs,
                "max_jobs": max_jobs,
                "load": load,
            }
    return out


class TextPort:
    """Runs commands on a scheduler's text port at ``host:port`` (the binary port + 1)."""

    def __init__(self, host: str, port: int, *, timeout: float = 45.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout  # the scheduler may take ~36 s to accept (icecream.md §1.2)

    async def run(self, *commands: str) -> list[str]:
        """Run ``commands`` on one connection; return each one's answer without its ``200`` line."""
        for command in commands:
            if "\n" in command or "\r" in command:
                raise ValueError("a command is one line")
        try:
            return await asyncio.wait_for(self._run(commands), self.timeout)
        except TimeoutError:
            raise Unreachable(f"text port {self.host}:{self.port}: no answer") from None
        except OSError as exc:
            raise Unreachable(f"text port {self.host}:{self.port}: {exc.strerror or exc}") from None

    async def _run(self, commands: tuple[str, ...]) -> list[str]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            await self._answer(reader)  # the greeting
            answers = []
            for command in commands:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                answers.append(await self._answer(reader))
            writer.write(b"quit\n")
            await writer.drain()
            return answers
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> str:
        lines: list[str] = []
        while True:
            raw = await reader.readline()
            if not raw:
                raise RemoteProtocolError("text port closed before '200 done'")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("200 ") or line in _DONE:
                return "\n".join(lines)
            if line.startswith(("4", "5")) and line[:3].isdigit():
                raise RemoteProtocolError(f"text port refused: {line}")
            if not line.startswith("200-"):
                lines.append(line)
