"""Who may talk to the hub: the ``Host`` check (DNS rebinding) and the ``Origin`` check
(cross-site WebSocket hijacking and cross-site actions), as one ASGI middleware.

The rules, checked before any route runs:

* **Host.** Every HTTP request and WebSocket handshake must name the hub by a ``Host``
  that DNS rebinding cannot forge: an IP literal (``127.0.0.1:8000``, ``[::1]``, any
  port — rebinding needs a domain name), ``localhost`` or ``*.localhost`` (browsers keep
  these on loopback), the listen address's host, the machine's own host name or FQDN
  when the hub listens beyond loopback, or an entry of ``[hub] allowed_hosts`` (glob
  patterns such as ``*.example.com``, with an optional ``:PORT``; ``*`` allows any). An
  ``X-Forwarded-Host`` (set by reverse proxies) must pass the same rule. Refused: 421
  with ``{"error", "refused", "setting"}`` (a WebSocket handshake: 403, see below).
* **No Host at all** (HTTP/1.0) is accepted: browsers always send one, and rebinding
  needs a browser.
* **Origin.** A WebSocket handshake, and a ``POST``/``PUT``/``PATCH``/``DELETE``, whose
  ``Origin`` is present must come from the hub's own page: the origin's host and port
  equal the request's ``Host`` (or ``X-Forwarded-Host``), the scheme ignored (a TLS
  proxy serves ``https://`` pages of a hub that speaks ``http``), or it matches an entry
  of ``[hub] allowed_origins`` (globs allowed). Refused: 403. Clients that send no
  ``Origin`` (the CLI, the TUI, scripts) are not browsers and are let through.
* A refused WebSocket is closed before it is accepted: the server answers the handshake
  with a bare 403, whichever rule refused it.

On ``/api/actions`` a refusal has the action result shape ``{"ok": false, "error",
"detail"}`` (``detail`` holds ``refused`` and ``setting``). Each refusal logs one line.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetwatch.config import split_host

__all__ = ["Guard", "GuardMiddleware", "Refusal", "split_host"]

log = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HOSTS_SETTING = "[hub] allowed_hosts"
ORIGINS_SETTING = "[hub] allowed_origins"
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def _own_names() -> frozenset[str]:
    """This machine's host name and FQDN (looked up once, before serving)."""
    names = {socket.gethostname()}
    with contextlib.suppress(OSError):  # a resolver failure leaves the bare name
        names.add(socket.getfqdn())
    return frozenset(n.lower().rstrip(".") for n in names if n)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error: str
    refused: str
    setting: str

    def body(self, action_shape: bool) -> dict[str, Any]:
        detail = {"refused": self.refused, "setting": self.setting}
        if action_shape:
            return {"ok": False, "error": self.error, "detail": detail}
        return {"error": self.error, **detail}


class Guard:
    """The rules, with the hub's listen address and its two settings."""

    def __init__(
        self, listen_host: str, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]
    ) -> None:
        self.listen_host = listen_host.strip("[]").lower().rstrip(".")
        self.beyond_loopback = not _is_loopback(self.listen_host)
        self.own_names = _own_names() if self.beyond_loopback else frozenset()
        """Looked up now: a resolver's delay must not fall on a request."""
        self.allowed_hosts: list[tuple[str, int | None]] = []
        for pattern in allowed_hosts:
            parsed = split_host(pattern)
            if parsed is None and pattern.strip() == "*":
                parsed = ("*", None)
            if parsed is None:
                raise ValueError(f"{HOSTS_SETTING}: not a host name: {pattern!r}")
            self.allowed_hosts.append(parsed)
        self.allowed_origins = [_normal_origin(o) or o.lower() for o in allowed_origins]

    def host_allowed(self, host: str, port: int | None) -> bool:
        if _is_ip(host) or _is_loopback(host) or host == self.listen_host:
            return True
        for pattern, pattern_port in self.allowed_hosts:
            if fnmatch.fnmatchcase(host, pattern) and pattern_port in (None, port):
                return True
        return host in self.own_names

    def check_host(self, value: str) -> Refusal | None:
        parsed = split_host(value)
        if parsed is not None and self.host_allowed(*parsed):
            return None
        return Refusal(
            421,
            f"host {value!r} is not one this hub answers to (DNS rebinding?): "
            f"add it to {HOSTS_SETTING} in the config",
            value,
            HOSTS_SETTING,
        )

    def check_origin(self, origin: str, hosts: list[str]) -> Refusal | None:
        normal = _normal_origin(origin)
        if normal is not None:
            _, host, port = _origin_parts(normal)
            for value in hosts:
                parsed = split_host(value)
                if parsed is not None and parsed[0] == host and _same_port(parsed[1], port):
                    return None
        key = normal or origin.lower()
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in self.allowed_origins):
            return None
        return Refusal(
            403,
            f"origin {origin!r} is not this hub's page: add it to {ORIGINS_SETTING} "
            "in the config to let its pages use the hub",
            origin,
            ORIGINS_SETTING,
        )

    def check(self, scope: Scope) -> Refusal | None:
        headers = _headers(scope)
        hosts = [  # every Host: a server that lets two through must not check only one
            v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"host"
        ]
        forwarded = headers.get(b"x-forwarded-host")
        if forwarded:
            hosts.append(forwarded.split(",")[0].strip())
        for value in hosts:
            refusal = self.check_host(value)
            if refusal is not None:
                return refusal
        origin = headers.get(b"origin")
        if origin is None:
            return None
        if scope["type"] == "websocket" or scope.get("method") in STATE_CHANGING:
            return self.check_origin(origin, hosts)
        return None


def _headers(scope: Scope) -> dict[bytes, str]:
    out: dict[bytes, str] = {}
    for key, value in scope.get("headers", ()):
        out.setdefault(key.lower(), value.decode("latin-1"))
    return out


def _origin_parts(origin: str) -> tuple[str, str, int | None]:
    parts = urlsplit(origin)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port
    if port is not None and _DEFAULT_PORTS.get(parts.scheme) == port:
        port = None
    return parts.scheme, host, port


def _normal_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port; None when
    ``origin`` is no such thing (``null``, garbage)."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.rstrip(".")
    shown = f"[{host}]" if ":" in host else host
    if port is not None and _DEFAULT_PORTS[parts.scheme] != port:
        shown += f":{port}"
    return f"{parts.scheme}://{shown}"


def _same_port(host_port: int | None, origin_port: int | None) -> bool:
    # Both None: each is its scheme's default (80 or 443), and schemes are ignored.
    return host_port == origin_port or (host_port in (80, 443) and origin_port is None)


class GuardMiddleware:
    """Runs :class:`Guard` on every HTTP request and WebSocket handshake."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.guard.check(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        client = scope.get("client") or ("?", 0)
        log.warning(
            "refused %s %s from %s: %s",
            scope.get("method", "WebSocket"),
            path,
            client[0],
            refusal.error,
        )
        if scope["type"] == "http":
            body = orjson.dumps(refusal.body(path.endswith("/api/actions")))
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send(
                {"type": "http.response.start", "status": refusal.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
            return
        # A WebSocket is refused before it is accepted: a close, which servers answer with
        # a bare 403. (uvicorn's websockets-sansio takes a JSON "websocket.http.response"
        # too, but then logs an error line of its own; a browser never shows that body.)
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008})
