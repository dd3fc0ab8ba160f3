"""pyicemon's blocking ``Connection`` to an icecream scheduler, on fleetwatch's codec.

::

    from fleetwatch.icecream import Connection, messages

    with Connection("scheduler.example", 8765) as conn:  # connects and negotiates
        conn.send_message(messages.LoginMessage())
        while True:
            print(conn.get_message())  # raises ConnectionClosed when the scheduler leaves

Unlike pyicemon's, the handshake is the real one (``icecream.md`` §1.2): we offer
``version`` (44), the scheduler offers its maximum, both settle on the smaller,
and any version from 21 up is accepted; :attr:`Connection.version` is the result.
An idle scheduler can take ~36 s to answer a new connection, so the connect and
the handshake together may take up to ``timeout`` (60 s) seconds. After that
:meth:`Connection.get_message` waits as long as it takes: a quiet cluster sends
nothing for long stretches. TCP keepalive is on, so a scheduler that vanished
without closing the connection is noticed within about a minute.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import time
from types import TracebackType

from fleetwatch.sources.icecream.protocol import (
    MAX_VERSION,
    Closed,
    Codec,
    Event,
    Message,
    Negotiated,
)

__all__ = ["DEFAULT_PORT", "Connection", "ConnectionClosed"]

DEFAULT_PORT = 8765
_CHUNK = 65536


class ConnectionClosed(ConnectionError):
    """The scheduler closed the connection (or :meth:`Connection.close` was called)."""


class Connection:
    """A monitor's connection to an icecream scheduler, blocking, one message at a time.

    Args:
        host: the scheduler's host name or IPv4 address.
        port: its TCP port (8765).
        version: the highest protocol version to offer (21..44).
        timeout: seconds allowed for the TCP connect and the version handshake.

    Raises:
        OSError: the connection failed (``ConnectionRefusedError``, ...).
        TimeoutError: no complete handshake within ``timeout``.
        ConnectionClosed: the scheduler closed the connection during the handshake.
        RemoteProtocolError: the scheduler's handshake was wrong (e.g. a version < 21).
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        version: int = MAX_VERSION,
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        self.version: int = 0
        """The negotiated protocol version; every message is coded for it."""
        self._codec = Codec(max_version=version, role="monitor")
        self._pending: collections.deque[Event] = collections.deque()
        self._closed = False
        deadline = time.monotonic() + timeout
        self.socket: socket.socket = socket.create_connection((host, port), timeout=timeout)
        """The TCP socket (keepalive on; blocking once the handshake is done)."""
        try:
            _keepalive(self.socket)
            self.version = self._handshake(deadline)
            self.socket.settimeout(None)
        except BaseException:
            self.socket.close()
            raise

    def _handshake(self, deadline: float) -> int:
        while True:
            event = self._codec.next_event()
            out = self._codec.data_to_send()
            if out:
                self.socket.sendall(out)
            if isinstance(event, Negotiated):
                return event.version
            if isinstance(event, Closed):
                raise ConnectionClosed(f"{self.address} closed the connection during the handshake")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.address}: no protocol version handshake in time")
            self.socket.settimeout(left)
            try:
                data = self.socket.recv(_CHUNK)
            except TimeoutError:
                raise TimeoutError(
                    f"{self.address}: no protocol version handshake in time"
                ) from None
            self._codec.receive_data(data)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def send_message(self, msg: Message) -> None:
        """Send one message as a frame. A monitor may only send MON_LOGIN (and END).

        Raises :class:`~fleetwatch.errors.LocalProtocolError` for any other message:
        the scheduler never reads from a monitor after its MON_LOGIN.
        """
        self.socket.sendall(self._codec.send(msg))

    def get_message(self, timeout: float | None = None) -> Message:
        """The next message, waiting until one has arrived whole.

        Raises :class:`ConnectionClosed` once the scheduler has closed the
        connection; ``TimeoutError`` when ``timeout`` seconds pass without a whole
        message (nothing is lost: call again); and
        :class:`~fleetwatch.errors.RemoteProtocolError` on bytes that don't decode.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._pending:
                self._fill(deadline)
            event = self._pending.popleft()
            if isinstance(event, Closed):
                self._closed = True
                raise ConnectionClosed(f"{self.address} closed the connection")
            if not isinstance(event, Negotiated):  # that one only ends the handshake
                return event

    def _fill(self, deadline: float | None) -> None:
        """Read until the codec has at least one event."""
        while not self._pending:
            if self._closed:
                raise ConnectionClosed(f"{self.address}: the connection is closed")
            self._pending.extend(self._codec.events())
            if self._pending:
                return
            try:
                wait = None
                if deadline is not None:
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        raise TimeoutError(f"{self.address}: no whole message in time")
                self.socket.settimeout(wait)
                data = self.socket.recv(_CHUNK)
            except TimeoutError:
                raise TimeoutError(f"{self.address}: no whole message in time") from None
            except OSError:
                if self._closed:  # close() from another thread
                    raise ConnectionClosed(f"{self.address}: the connection is closed") from None
                raise
            self._codec.receive_data(data)

    def close(self) -> None:
        """Close the connection; a :meth:`get_message` blocked in another thread ends
        with :class:`ConnectionClosed`. Idempotent."""
        if self._closed and self.socket.fileno() < 0:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"v{self.version}"
        return f"<Connection {self.address} {state}>"


def _keepalive(sock: socket.socket) -> None:
    """Probe an idle connection after 30 s, every 10 s, and give up after 3 misses."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
