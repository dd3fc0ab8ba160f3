"""The scheduler's text control port (TCP port + 1): ``listcs``, ``listblocks``, ``blockcs``...

No handshake: the scheduler greets with ``200-ICECC 1.4.0: …`` and ``200 Use 'help'…``;
each command is one line and its answer ends with ``200 done`` (``200 Good Bye!`` for
``quit``). The port has no authentication of its own: the hub's roles guard it.

:class:`TextPort` opens a connection per :meth:`~TextPort.run`. An idle scheduler may take
up to ~36 s to accept one (trap 3), so :class:`KeptTextPort`, which the source uses, keeps
its connection open: commands on it are answered at once. The scheduler closes
connections idle for 36 s; the source's ``listblocks`` every 10 s keeps it busy, and a
connection found closed is opened again once, transparently.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from fleetwatch.errors import RemoteProtocolError, Unreachable

__all__ = ["KeptTextPort", "TextPort", "parse_listblocks", "parse_listcs"]

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
                raise _Closed("text port closed before '200 done'")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("200 ") or line in _DONE:
                return "\n".join(lines)
            if line.startswith(("4", "5")) and line[:3].isdigit():
                raise RemoteProtocolError(f"text port refused: {line}")
            if not line.startswith("200-"):
                lines.append(line)


class _Closed(RemoteProtocolError):
    """The scheduler closed the text connection (it does so after 36 s idle)."""


class KeptTextPort(TextPort):
    """A :class:`TextPort` that keeps one connection open across :meth:`run` calls.

    Commands are serialised on it. When a kept connection turns out to be closed (the
    scheduler's idle cut-off, a restart), it is opened again once and the commands are
    sent there; a connection that fails when fresh is an error as usual. :meth:`close`
    says ``quit`` and closes it.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 45.0) -> None:
        super().__init__(host, port, timeout=timeout)
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def run(self, *commands: str) -> list[str]:
        async with self._lock:
            try:
                return await super().run(*commands)
            except BaseException:
                self._drop()
                raise

    async def _run(self, commands: tuple[str, ...]) -> list[str]:
        if self._conn is not None:
            try:
                return await self._commands(self._conn, commands)
            except (_Closed, ConnectionError):
                self._drop()  # closed while idle: once more on a fresh connection
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._conn = (reader, writer)
        await self._answer(reader)  # the greeting
        return await self._commands(self._conn, commands)

    async def _commands(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], commands: tuple[str, ...]
    ) -> list[str]:
        reader, writer = conn
        answers = []
        for command in commands:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            answers.append(await self._answer(reader))
        return answers

    async def close(self) -> None:
        async with self._lock:
            if self._conn is None:
                return
            reader, writer = self._conn
            with contextlib.suppress(OSError, RemoteProtocolError, TimeoutError):
                writer.write(b"quit\n")
                await asyncio.wait_for(writer.drain(), 1.0)
                await asyncio.wait_for(reader.read(), 1.0)  # until the peer closes
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None
