"""Running the hub and its HTTP API in one process (``fleetwatch serve``)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Iterator

import uvicorn

from fleetwatch.config import Config, parse_listen
from fleetwatch.errors import FleetwatchError
from fleetwatch.hub import Hub
from fleetwatch.web.app import create_app

__all__ = [
    "ListenError",
    "Server",
    "bound_listen",
    "build_server",
    "is_loopback",
    "listen_socket",
    "url_host",
]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ListenError(FleetwatchError):
    """The listening socket cannot be bound; ``str()`` is the one line the CLI prints."""


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def listen_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (port 0: any free port).

    Bound before anything else starts, so a busy port fails at once and nothing is
    left to stop; uvicorn serves on it with ``Server.run(sockets=[sock])``. Raises
    :class:`ListenError`: ``cannot listen on HOST:PORT: address in use``.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(_listen_failure(host, port, exc)) from None
    try:
        # As uvicorn does: a restarted hub can bind while old connections are in TIME_WAIT
        # (on Linux this does not let two live listeners share the port).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(_listen_failure(host, port, exc)) from None
    return sock


def bound_listen(listen: str, sock: socket.socket) -> str:
    """``listen`` (``HOST:PORT``) with the port ``sock`` got (port 0 asks for any free one)."""
    host, _ = parse_listen(listen)
    return f"{url_host(host)}:{sock.getsockname()[1]}"


def _listen_failure(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        reason = "address in use"
    else:
        text = exc.strerror or str(exc) or type(exc).__name__
        reason = text[:1].lower() + text[1:]
    return f"cannot listen on {url_host(host)}:{port}: {reason}"


class Server(uvicorn.Server):
    """uvicorn's server, but SIGINT/SIGTERM only ask it to stop.

    uvicorn re-raises the signal after a graceful shutdown, which kills the
    process before callers' ``finally`` blocks run (the demo must still stop its
    supervisords). Here the signal is consumed: ``run()`` simply returns.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals can only be handled on the main thread
            return
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def build_server(
    config: Config, *, listen: str | None = None, root_path: str | None = None
) -> tuple[Server, Hub]:
    """A uvicorn server with the hub inside (the app starts and stops the hub)."""
    host, port = parse_listen(listen or config.hub.listen)
    if not is_loopback(host) and not config.users:
        log.warning(
            "listening on %s without any [[users]]: anyone who can reach it can act on the fleet",
            host,
        )
    hub = Hub(config)
    app = create_app(hub, root_path=root_path if root_path is not None else config.hub.root_path)
    server = Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            ws="websockets-sansio",
            # permessage-deflate compresses every frame once per subscriber: with 100
            # clients it took 80 % of the hub's CPU (bench/hub.py). Deltas go uncompressed.
            ws_per_message_deflate=False,
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,
        )
    )
    return server, hub
