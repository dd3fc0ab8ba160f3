"""A client of a running hub's public API: what the CLI, the shell and the TUI speak.

Two halves, each importing only what it needs (the CLI's start-up time counts):

* :class:`HubClient` (this module): blocking HTTP on the standard library's
  ``http.client``, one keep-alive connection, JSON in and out. Every failure is a
  :class:`HubError` with a one-line message; ``status`` is the HTTP status (0 when the
  hub could not be reached at all).
* :class:`fleetwatch.client.mirror.Mirror`: the stream (``WS /api/stream``) kept as a
  local copy of the model, reconnecting and resuming with ``since``/``epoch``.

The hub is named by a base URL (``--url``, env ``FLEETWATCH_URL``, default
``http://127.0.0.1:22000``); a path in it is the hub's root path behind a proxy
(``http://gw/fleet`` reaches ``http://gw/fleet/api/...``). A token (``--token``, env
``FLEETWATCH_TOKEN``) is sent as ``Authorization: Bearer TOKEN`` on every request and on
the stream; it never appears in a repr, an error message or a log line.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_URL",
    "HubClient",
    "HubError",
    "hub_token",
    "hub_url",
]

DEFAULT_URL = "http://127.0.0.1:22000"
URL_ENV = "FLEETWATCH_URL"
TOKEN_ENV = "FLEETWATCH_TOKEN"


class HubError(Exception):
    """A request the hub did not answer as asked: ``str()`` is one line for the user.

    ``status`` is the HTTP status (0: not reached); ``body`` the decoded JSON error
    body when there was one (an action's ``{"ok": false, "error", "detail"}`` on 404/409/400).
    """

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def hub_url(url: str | None = None) -> str:
    """The hub's base URL: ``url``, else ``$FLEETWATCH_URL``, else the default."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def hub_token(token: str | None = None) -> str | None:
    """The bearer token: ``token``, else ``$FLEETWATCH_TOKEN``, else none."""
    return token or os.environ.get(TOKEN_ENV) or None


class _Base:
    """A parsed base URL: scheme, host, port, root path; ``ValueError`` when it is not one."""

    def __init__(self, url: str) -> None:
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"{url!r} has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{url!r} has a bad port") from None
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        self.root = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = (self.scheme, self.port) in (("http", 80), ("https", 443))
        self.netloc = host if default else f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """The URL as shown to the user (never with credentials)."""
        return f"{self.scheme}://{self.netloc}{self.root}"

    def ws(self, path: str) -> str:
        scheme = "wss" if self.scheme == "https" else "ws"
        return f"{scheme}://{self.netloc}{self.root}{path}"


class HubClient:
    """Blocking JSON over HTTP to one hub (see the module docstring).

    >>> hub = HubClient("http://127.0.0.1:22000")
    >>> hub.get("/api/processes", q="state:running")  # doctest: +SKIP
    """

    def __init__(
        self, url: str | None = None, *, token: str | None = None, timeout: float = 10.0
    ) -> None:
        self._base = _Base(hub_url(url))
        self._token = hub_token(token)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:
        auth = ", token=***" if self._token else ""
        return f"HubClient({self.url!r}{auth})"

    @property
    def url(self) -> str:
        return self._base.display

    @property
    def stream_url(self) -> str:
        """The ``ws://``/``wss://`` URL of the hub's stream."""
        return self._base.ws("/api/stream")

    @property
    def headers(self) -> dict[str, str]:
        """The headers every request carries (the token's, when there is one)."""
        headers = {"Accept": "application/json", "User-Agent": "fleetwatch-cli"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    # -- the API's routes ------------------------------------------------------------

    def fleet(self) -> dict[str, Any]:
        """``GET /api/fleet``: ``{seq, name, sources, nodes, processes, jobs}``."""
        result: dict[str, Any] = self.get("/api/fleet")
        return result

    def rows(self, plural: str, q: str = "") -> list[dict[str, Any]]:
        """``GET /api/{sources|nodes|processes|jobs}?q=FILTER``."""
        result: list[dict[str, Any]] = (
            self.get(f"/api/{plural}", q=q) if q else self.get(f"/api/{plural}")
        )
        return result

    def notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/notifications", limit=limit)
        return result

    def action(
        self, kind: str, id: str, name: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``POST /api/actions``: the result ``{ok, error, detail}``, also when the hub
        refused it (404 unknown target, 409 no such action, 400 bad params: ``ok`` false)."""
        body = {"target": {"kind": kind, "id": id}, "name": name, "params": dict(params or {})}
        status, answer = self.request("POST", "/api/actions", body=body)
        if isinstance(answer, dict) and "ok" in answer:
            return answer
        raise HubError(_error_text(status, answer, "POST /api/actions"), status, answer)

    def log(
        self, id: str, channel: str = "stdout", offset: int | None = None, length: int = 65536
    ) -> dict[str, Any]:
        """A window of a process's log: ``{text, offset, end, reset, ...}``."""
        params: dict[str, Any] = {"channel": channel, "length": length}
        if offset is not None:
            params["offset"] = offset
        path = f"/api/processes/{urllib.parse.quote(id, safe='')}/log"
        result: dict[str, Any] = self.get(path, **params)
        return result

    # -- plumbing --------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        """``GET path?params``: the decoded JSON; HubError for any status but 200."""
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        status, answer = self.request("GET", path)
        if status != 200:
            raise HubError(_error_text(status, answer, f"GET {path}"), status, answer)
        return answer

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request: ``(status, decoded JSON or None)``; HubError when not reached.

        A keep-alive connection the hub has closed meanwhile is reopened once.
        """
        payload = None if body is None else json.dumps(body).encode()
        headers = self.headers
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, self._base.root + path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise HubError(f"the hub at {self.url} closed the connection") from None
                continue
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise HubError(f"cannot reach the hub at {self.url}: {_reason(exc)}") from None
            if response.will_close:
                self.close()
            return response.status, _decode(data)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._base.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self._base.host,
                    self._base.port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._base.host, self._base.port, timeout=self.timeout
                )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _error_text(status: int, answer: Any, what: str) -> str:
    text = answer.get("error") if isinstance(answer, dict) else None
    if not text:
        text = {401: "login required", 403: "forbidden"}.get(status, f"HTTP {status}")
    return f"{what}: {text}" if status not in (401, 403) else f"{text} ({what}; see --token)"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is it running?)"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
