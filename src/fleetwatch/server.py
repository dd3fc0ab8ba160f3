"""Running the hub and its HTTP API in one process (``fleetwatch serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from fleetwatch.config import Config, parse_listen
from fleetwatch.hub import Hub
from fleetwatch.web.app import create_app
from fleetwatch.web.guard import Guard, GuardMiddleware

__all__ = ["MultivisorServer", "Server", "build_server", "is_loopback", "multivisor_server"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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

    companion: MultivisorServer | None = None
    """A second server that runs and stops with this one (``[hub] multivisor_listen``)."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if self.companion is None:
            await super().serve(sockets)
            return
        task = asyncio.get_running_loop().create_task(self.companion.serve())
        try:
            await super().serve(sockets)
        finally:
            self.companion.should_exit = True
            await task


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
    app = create_app(
        hub,
        root_path=root_path if root_path is not None else config.hub.root_path,
        listen=listen or config.hub.listen,  # the Host check accepts its host
    )
    companion = multivisor_server(config, app.state.multivisor)
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
    server.companion = companion
    return server, hub


class MultivisorServer(uvicorn.Server):
    """Multivisor's API at the root of a port of its own, on a socket bound beforehand.

    ``multivisor-cli --url`` keeps only scheme, host and port, so it cannot reach the API
    under ``/multivisor`` of the main port. It runs inside the main server's loop (the main
    app starts and stops the hub) and leaves the signals to it.
    """

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.sock = sock

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        await super().serve([self.sock])

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def multivisor_server(config: Config, app: ASGIApp) -> MultivisorServer | None:
    """The server of ``[hub] multivisor_listen``, its socket bound now (OSError if taken)."""
    if not config.hub.multivisor_listen:
        return None
    host, port = parse_listen(config.hub.multivisor_listen)
    if not is_loopback(host) and not config.users:
        log.warning("Multivisor's API listens on %s: anyone who can reach it can act", host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    # The same Host and Origin rules as the main port (web/guard.py), for this port's host.
    guard = Guard(host, config.hub.allowed_hosts, config.hub.allowed_origins)
    guarded = GuardMiddleware(app, guard)
    uv = uvicorn.Config(guarded, log_level="warning", access_log=False, lifespan="off")
    return MultivisorServer(uv, sock)
