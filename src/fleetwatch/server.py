"""Running the hub and its HTTP API in one process (``fleetwatch serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from fleetwatch.config import Config, parse_listen
from fleetwatch.errors import FleetwatchError
from fleetwatch.hub import Hub
from fleetwatch.web.app import create_app
from fleetwatch.web.guard import Guard, GuardMiddleware

__all__ = [
    "ListenError",
    "MultivisorServer",
    "Server",
    "bound_listen",
    "build_server",
    "is_loopback",
    "listen_socket",
    "multivisor_server",
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


def check_exposure(
    config: Config, listen: str | None, *, insecure_no_login: bool, warn: bool = True
) -> None:
    """Refuse (ListenError) to listen beyond loopback with no ``[[users]]``, unless told to
    (then, with ``warn``, say so in the log)."""
    for what, address in (
        ("", listen or config.hub.listen),
        ("multivisor_listen ", config.hub.multivisor_listen),
    ):
        if address is None or config.users:
            continue
        host = parse_listen(address)[0]
        if is_loopback(host):
            continue
        if insecure_no_login:
            if not warn:
                continue
            log.warning(
                "listening on %s without any [[users]] (--insecure-no-login): anyone who "
                "can reach it can act on the fleet",
                host,
            )
            continue
        raise ListenError(
            f"refusing to {what}listen on {url_host(host)} with no [[users]] in the config: "
            "anyone who can reach it could stop every process; add [[users]] (passwords "
            "from `fleetwatch hash-password`) or pass --insecure-no-login"
        )


def build_server(
    config: Config,
    *,
    listen: str | None = None,
    root_path: str | None = None,
    insecure_no_login: bool = True,
) -> tuple[Server, Hub]:
    """A uvicorn server with the hub inside (the app starts and stops the hub).

    ``insecure_no_login`` False: ListenError for a non-loopback listen without
    ``[[users]]`` (``serve`` checks that before it binds)."""
    check_exposure(config, listen, insecure_no_login=insecure_no_login)
    host, port = parse_listen(listen or config.hub.listen)
    tls = tls_options(config)
    hub = Hub(config)
    if config.hub.bus:  # collectors' sources too (fleetwatch.bus; redis-py only then)
        from fleetwatch.bus.redis import HubLink

        hub.links.append(HubLink(hub, config.hub.bus))
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
            # Forwarded headers only from [hub] trusted_proxies (issue 11).
            proxy_headers=bool(config.hub.trusted_proxies),
            forwarded_allow_ips=list(config.hub.trusted_proxies) or None,
            ssl_certfile=tls.get("ssl_certfile"),
            ssl_keyfile=tls.get("ssl_keyfile"),
        )
    )
    server.companion = companion
    return server, hub


def tls_options(config: Config) -> dict[str, str]:
    """uvicorn's ``ssl_certfile``/``ssl_keyfile`` from ``[hub] tls_cert``/``tls_key``
    (relative to the config's directory); ListenError when only one is set."""
    from pathlib import Path

    cert, key = config.hub.tls_cert, config.hub.tls_key
    if not cert and not key:
        return {}
    if not cert or not key:
        raise ListenError("[hub] tls_cert and tls_key go together: set both or neither")
    base = Path(config.path).resolve().parent
    paths = {
        n: base / Path(p).expanduser() for n, p in (("ssl_certfile", cert), ("ssl_keyfile", key))
    }
    for name, path in paths.items():
        if not path.is_file():
            setting = "tls_cert" if name == "ssl_certfile" else "tls_key"
            raise ListenError(f"[hub] {setting}: {path}: no such file")
    return {n: str(p) for n, p in paths.items()}


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
    """The server of ``[hub] multivisor_listen``, its socket bound now (ListenError if taken)."""
    if not config.hub.multivisor_listen:
        return None
    host, port = parse_listen(config.hub.multivisor_listen)
    sock = listen_socket(host, port)
    # The same Host and Origin rules as the main port (web/guard.py), for this port's host.
    guard = Guard(host, config.hub.allowed_hosts, config.hub.allowed_origins)
    guarded = GuardMiddleware(app, guard)
    tls = tls_options(config)  # the same certificate as the main port
    uv = uvicorn.Config(
        guarded,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ssl_certfile=tls.get("ssl_certfile"),
        ssl_keyfile=tls.get("ssl_keyfile"),
        proxy_headers=bool(config.hub.trusted_proxies),
        forwarded_allow_ips=list(config.hub.trusted_proxies) or None,
    )
    return MultivisorServer(uv, sock)
