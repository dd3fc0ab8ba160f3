"""Configuration: TOML (fleetwatch's own) and Multivisor's INI, read as-is.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError`
naming the file, line and key.
"""

from __future__ import annotations

import bisect
import configparser
import contextlib
import datetime
import json
import math
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetwatch.errors import ConfigError
from fleetwatch.types import Secret

__all__ = [
    "DEFAULT_LISTEN",
    "Config",
    "ConfigError",
    "HistoryConfig",
    "HubConfig",
    "IcecreamSourceConfig",
    "PiwheelsSourceConfig",
    "SourceConfig",
    "SupervisorSourceConfig",
    "UserConfig",
    "load_config",
    "parse_listen",
    "parse_root_path",
]

DEFAULT_LISTEN = "127.0.0.1:22000"


@dataclass(frozen=True, kw_only=True)
class HubConfig:
    name: str = "fleetwatch"
    """Shown in every client."""
    listen: str = DEFAULT_LISTEN
    """``HOST:PORT`` the HTTP API listens on."""
    batch_interval: float = 0.1
    """Seconds: deltas are batched and sent at most this often."""
    delta_ring: int = 10_000
    """How many deltas are kept for clients that resume with ``since``."""
    finished_jobs: int = 1_000
    """How many finished jobs are kept for timelines."""
    flap_changes: int = 5
    """State changes of one process within ``flap_window`` that make it flapping: one
    updated "flapping" note instead of a note per change (0: no flap detection)."""
    flap_window: float = 60.0
    """Seconds for ``flap_changes``; also the quiet time after which it is stable again."""
    root_path: str = ""
    """Sub-path when served behind a reverse proxy, e.g. ``/fleet``."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names (``Host`` header, port optional) accepted besides the listen address
    and loopback: the names a reverse proxy or operators use to reach the hub."""
    allowed_origins: tuple[str, ...] = ()
    """Origins (``https://fleet.example.com``) whose pages may open the stream and
    call the API, besides the hub's own."""
    multivisor_listen: str | None = None
    """``HOST:PORT`` of a second port serving Multivisor's REST API at its root (for
    ``multivisor-cli``, whose ``--url`` keeps no path)."""
    # Security (issue 11; fleetwatch.accounts, fleetwatch.web.auth, fleetwatch.audit).
    # Paths are relative to the config's directory; unset, CONFIG-STEM.SUFFIX beside it.
    token_store: str | None = None
    """SQLite file of API tokens (default ``STEM.tokens.db``)."""
    audit_log: str | None = None
    """Append-only SQLite audit trail (default ``STEM.audit.db``)."""
    secret_key_file: str | None = None
    """Session-signing key, made 0600 when missing (default ``STEM.secret``), unless
    ``FLEETWATCH_SECRET_KEY`` (or ``MULTIVISOR_SECRET_KEY``) is set."""
    session_lifetime: float = 12 * 3600.0
    """Seconds a browser session lasts."""
    tls_cert: str | None = None
    """PEM certificate (chain) to serve HTTPS with; needs ``tls_key``."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert``."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses (or CIDR networks) of reverse proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed: the client's address (audit, login rate limit)
    and scheme (Secure cookies) then come from them. Empty: none are."""


@dataclass(frozen=True, kw_only=True)
class SupervisorSourceConfig:
    name: str
    kind: Literal["supervisor"] = "supervisor"
    url: str | None = None
    """``http://host:port`` of supervisord's XML-RPC, or ``unix:///path.sock``."""
    username: str | None = None
    password: Secret | None = None
    poll_interval: float = 1.0
    timeout: float | None = None
    """Seconds per poll call; defaults to ``poll_interval`` (at least 0.5 s)."""
    action_timeout: float = 60.0
    """Seconds per action call (``startProcess`` waits for ``startsecs``)."""
    max_answer_size: int = 64 << 20
    """Bytes: a larger XML-RPC answer is refused and the source put in error. 64 MiB
    holds ``getAllProcessInfo`` of about 50,000 processes."""
    agent: str | None = None
    """``host:port`` of a fleetwatch-agent push channel, instead of polling."""
    agent_token: Secret | None = None
    """The shared token the fleetwatch-agent at ``agent`` expects."""
    agent_ca: str | None = None
    """PEM file of the CA (or the agent's own certificate) to check the agent's TLS
    certificate against; set, the agent is reached over TLS."""
    multivisor_rpc: str | None = None
    """``host:port`` of a Multivisor RPC agent (what Multivisor's INI ``url`` names)."""


@dataclass(frozen=True, kw_only=True)
class IcecreamSourceConfig:
    name: str
    kind: Literal["icecream"] = "icecream"
    scheduler: str = "auto"
    netname: str = "ICECREAM"


@dataclass(frozen=True, kw_only=True)
class PiwheelsSourceConfig:
    name: str
    kind: Literal["piwheels"] = "piwheels"
    status_queue: str = "ipc:///tmp/piw-status"
    """The master's PUB socket (piw-master ``--status-queue``)."""
    control_queue: str = "ipc:///tmp/piw-control"
    """The master's PULL socket (piw-master ``--control-queue``)."""
    timeout: float = 30.0
    """Seconds of silence after which the master is offline (it publishes STATS every 10 s)."""


SourceConfig = SupervisorSourceConfig | IcecreamSourceConfig | PiwheelsSourceConfig


@dataclass(frozen=True, kw_only=True)
class UserConfig:
    name: str
    password: Secret
    """An ``$argon2id$`` hash, ``{SHA}`` + hex SHA-1 (Multivisor's), or plain text."""
    role: Literal["viewer", "operator", "admin"] = "viewer"
    sources: tuple[str, ...] = ("*",)
    """Glob patterns of the source names this account may see and act on."""


@dataclass(frozen=True, kw_only=True)
class HistoryConfig:
    """``[history]``: the event store (issue 13; fleetwatch.publishers.history)."""

    enabled: bool = True
    url: str | None = None
    """``postgresql://...`` (PostgreSQL), or a SQLite file (a path, or ``sqlite:///PATH``);
    default ``STEM.history.db`` beside the config."""
    retention: float = 30.0
    """Days of history kept."""
    max_size: float | None = None
    """Megabytes the store may take; the oldest history is pruned past that."""
    snapshot_interval: float = 3600.0
    """Seconds between snapshots of the whole fleet (one is also taken at start)."""


@dataclass(frozen=True, kw_only=True)
class Config:
    path: str
    hub: HubConfig = field(default_factory=HubConfig)
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    users: tuple[UserConfig, ...] = ()
    history: HistoryConfig = field(default_factory=lambda: HistoryConfig(enabled=False))
    """Read from a file, history is on unless ``[history] enabled = false``; a Config
    built in code (tests, tools) has it off."""


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6); raise ``ValueError`` when malformed.

    The host comes back without brackets; the port is 0..65535 (0: any free port).
    """
    if not isinstance(value, str):
        raise ValueError(f"expected HOST:PORT as a string, got {_type_name(value)}")
    host, colon, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]") and ":" in host:
        host = host[1:-1]
    elif ":" in host and "/" not in host:
        raise ValueError(f"an IPv6 address needs brackets, as in [::1]:22000, not {value!r}")
    if not colon or not _LISTEN_HOST.fullmatch(host):
        raise ValueError(f"expected HOST:PORT or [IPV6]:PORT, not {value!r}")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"the port must be a number, not {port_text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"the port must be 0..65535, not {port}")
    return host, port


def parse_root_path(value: str) -> str:
    """``--root-path``: ``""`` or ``/x/y`` (``fleet/`` becomes ``/fleet``); else ``ValueError``."""
    try:
        return _root_path(value)
    except _Invalid as exc:
        raise ValueError(exc.message) from None


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` or ``[v6][:port]`` → (lower-case host without brackets or a
    trailing dot, port or None); None when it is not a host at all."""
    value = value.strip().lower()
    if not value:
        return None
    port: str | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host = value  # a name, or an unbracketed IPv6 literal (tried as one below)
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        return None
    host = host.rstrip(".")
    if not host or any(c in host for c in "/@?#\\ "):
        return None
    return host, int(port) if port is not None else None


def load_config(path: str) -> Config:
    """Read a TOML or Multivisor INI file; raise :class:`ConfigError` when it is wrong.

    ``.ini``, ``.conf`` and ``.cfg`` files are Multivisor INI, ``.toml`` files TOML; any
    other file is TOML unless it fails to parse as TOML and has a ``[global]`` or
    ``[supervisor:NAME]`` section header.
    """
    text = _read_text(path)
    extension = os.path.splitext(path)[1].lower()
    if extension in _INI_EXTENSIONS:
        return _load_ini(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if extension != ".toml" and _INI_HEADER.search(text):
            return _load_ini(path, text)
        raise _toml_syntax_error(path, text, exc) from None
    return _load_toml(path, text, data)


# --------------------------------------------------------------------------- internals

_Path = tuple[str | int, ...]
"""Where a value sits: ``("sources", "sv1", "url")``, ``("users", 0, "role")``."""

_Conv = Callable[[object], Any]
"""Checks and converts one value; raises :class:`_Invalid`."""

_INI_EXTENSIONS = frozenset({".ini", ".conf", ".cfg"})
_INI_HEADER = re.compile(r"^[ \t]*\[(?:global|supervisor:[^\]\n]*)\]", re.MULTILINE)
_NO_DEFAULT_SECTION = "\x00no default section"
"""configparser's ``[DEFAULT]`` would leak its keys into every section: make it a plain one."""

_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LISTEN_HOST = re.compile(r"[^\s\[\]/]+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)\s*$")
_ZMQ_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
_MULTIVISOR_ADDRESS = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)?(?::(?P<port>[0-9]+))?"
)
_MULTIVISOR_PORT = 9002
_ROLES = ("viewer", "operator", "admin")
_SUPERVISOR_URL_SCHEMES = ("http://", "https://", "unix://")
_SUPERVISOR_ENDPOINTS = ("url", "agent", "multivisor_rpc")
_NO_SOURCES = "no sources: nothing to watch (add a [sources.NAME] table)"
_NO_INI_SOURCES = "no [supervisor:NAME] section: nothing to watch"


class _Invalid(Exception):
    """A value is wrong; the caller adds file, line and key (``sub`` goes below the key)."""

    def __init__(self, message: str, sub: _Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.sub = sub


class _ScanError(Exception):
    """The position scanner met something it does not follow; it keeps what it found."""


def _one_of(names: Iterable[str]) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return type(value).__name__


class _Where:
    """Turns a value's path into a :class:`ConfigError` with the file's line and key."""

    def __init__(self, path: str, lines: dict[_Path, int], *, ini: bool) -> None:
        self.path = path
        self.lines = lines
        self.ini = ini

    def line(self, key: _Path) -> int | None:
        """The line of ``key``, else of the nearest enclosing table that has one."""
        for length in range(len(key), 0, -1):
            found = self.lines.get(key[:length])
            if found is not None:
                return found
        return None

    def display(self, key: _Path) -> str:
        if self.ini:
            return ".".join(str(part) for part in key)
        text = ""
        for part in key:
            if isinstance(part, int):
                text += f"[{part}]"
            else:
                bare = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
                text += f".{bare}" if text else bare
        return text

    def error(self, key: _Path, message: str) -> ConfigError:
        return ConfigError(self.path, self.line(key), self.display(key), message)


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(path, None, None, reason[:1].lower() + reason[1:]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(path, line, None, "the file is not UTF-8 text") from None
    return text.removeprefix("\ufeff")


def _read_keys(
    where: _Where,
    path: _Path,
    table: Mapping[str, object],
    spec: Mapping[str, _Conv],
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check every key of ``table`` against ``spec``; return the converted values."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        conv = spec.get(key)
        if conv is None:
            raise where.error((*path, key), f"unknown key (expected {_one_of(spec)})")
        try:
            values[key] = conv(value)
        except _Invalid as exc:
            raise where.error((*path, key, *exc.sub), exc.message) from None
    for key in required:
        if key not in values:
            raise where.error((*path, key), "required key is missing")
    return values


# ---------------------------------------------------------------------- value checks


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_type_name(value)}")
    return value


def _nonempty(value: object) -> str:
    text = _string(value)
    if not text.strip():
        raise _Invalid("must not be empty")
    return text


def _secret(value: object) -> Secret:
    return Secret(_string(value))


def _nonempty_secret(value: object) -> Secret:
    return Secret(_nonempty(value))


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"expected a number of seconds, got {_type_name(value)}")
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise _Invalid(f"must be a positive number of seconds, not {value!r}")
    return seconds


def _count(minimum: int) -> _Conv:
    def conv(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {_type_name(value)}")
        if value < minimum:
            raise _Invalid(f"must be at least {minimum}, not {value}")
        return value

    return conv


def _flap_changes(value: object) -> int:
    count = int(_count(0)(value))
    if count == 1:
        raise _Invalid("must be 0 (off) or at least 2, not 1")
    return count


def _listen(value: object) -> str:
    text = _string(value)
    try:
        parse_listen(text)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    return text


def _address(value: object) -> str:
    """``HOST:PORT`` to connect to: the port is 1..65535."""
    text = _string(value)
    port_text = text.rpartition(":")[2]
    if port_text.isascii() and port_text.isdigit() and not 1 <= int(port_text) <= 65535:
        raise _Invalid(f"the port must be 1..65535, not {int(port_text)} in {text!r}")
    return _listen(text)


def _root_path(value: object) -> str:
    """``""`` or ``/x/y``: a leading slash and no trailing one."""
    text = _string(value)
    parts = [part for part in text.split("/") if part]
    if any(char.isspace() or char in "?#" for char in text) or any(
        part in (".", "..") for part in parts
    ):
        raise _Invalid(f"expected a URL path such as /fleet, not {text!r}")
    return "".join(f"/{part}" for part in parts)


def _role(value: object) -> str:
    role = _string(value)
    if role not in _ROLES:
        raise _Invalid(f"must be {_one_of(_ROLES)}, not {role!r}")
    return role


def _globs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected an array of source name patterns, got {_type_name(value)}")
    patterns: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            got = "an empty string" if item == "" else _type_name(item)
            raise _Invalid(f"expected a source name pattern, got {got}", (index,))
        patterns.append(item)
    return tuple(patterns)


def _strings(what: str) -> _Conv:
    def conv(value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected an array of {what}s, got {_type_name(value)}")
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                got = "an empty string" if item == "" else _type_name(item)
                raise _Invalid(f"expected a {what}, got {got}", (index,))
            items.append(item.strip())
        return tuple(items)

    return conv


def _host_patterns(value: object) -> tuple[str, ...]:
    """``[hub] allowed_hosts``: host names or globs (``*.example.com``), port optional."""
    patterns: tuple[str, ...] = _strings("host name")(value)
    for index, pattern in enumerate(patterns):
        if pattern != "*" and split_host(pattern) is None:
            message = f"expected a host name such as fleet.example.com, not {pattern!r}"
            raise _Invalid(message, (index,))
    return patterns


def _supervisor_url(value: object) -> str:
    """``http[s]://HOST[:PORT][/PATH]`` (user:password@ allowed) or ``unix://PATH``."""
    # The URL is never echoed: it may carry credentials.
    url = _nonempty(value)
    scheme = next((s for s in _SUPERVISOR_URL_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise _Invalid(f"must start with {_one_of(_SUPERVISOR_URL_SCHEMES)}")
    if len(url) == len(scheme):
        raise _Invalid(f"has nothing after {scheme}")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise _Invalid("must not contain spaces or control characters")
    if scheme == "unix://":
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unbalanced [ or ] around an IPv6 address
        raise _Invalid("has a malformed host (an IPv6 address goes in [brackets])") from None
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise _Invalid("must not have a ?query or #fragment (supervisord ignores them)")
    if not parts.hostname:
        raise _Invalid(f"has no host after {scheme}")
    host_and_port = parts.netloc.rpartition("@")[2]
    port_text = host_and_port.rpartition("]")[2] if "]" in host_and_port else host_and_port
    if ":" in port_text:
        port = port_text.rpartition(":")[2]
        if not (port.isascii() and port.isdigit()):
            raise _Invalid("the port must be a number")
        if not 1 <= int(port) <= 65535:
            raise _Invalid(f"the port must be 1..65535, not {int(port)}")
    return url


def _scheduler(value: object) -> str:
    """``auto`` (discovery), ``HOST`` or ``HOST:PORT``."""
    text = _nonempty(value)
    if text == "auto":
        return text
    if any(char.isspace() for char in text):
        raise _Invalid(f"expected auto, HOST or HOST:PORT, not {text!r}")
    if ":" in text and not text.endswith("]"):
        return _address(text)
    return text


def _zmq_address(value: object) -> str:
    text = _string(value)
    if not _ZMQ_ADDRESS.fullmatch(text):
        raise _Invalid(f"expected a ZeroMQ address such as ipc:///tmp/piw-status, not {text!r}")
    if text.startswith("tcp://"):  # connected to: a host and a port 1..65535
        try:
            _address(text.removeprefix("tcp://"))
        except _Invalid as exc:
            raise _Invalid(f"expected tcp://HOST:PORT: {exc.message}") from None
    return text


_HUB_KEYS: dict[str, _Conv] = {
    "name": _nonempty,
    "listen": _listen,
    "batch_interval": _seconds,
    "delta_ring": _count(1),
    "finished_jobs": _count(0),
    "root_path": _root_path,
    "allowed_hosts": _host_patterns,
    "allowed_origins": _strings("origin"),
    "multivisor_listen": _listen,
    "token_store": _nonempty,
    "audit_log": _nonempty,
    "secret_key_file": _nonempty,
    "session_lifetime": _seconds,
    "tls_cert": _nonempty,
    "tls_key": _nonempty,
    "trusted_proxies": _strings("proxy address"),
    "flap_changes": _flap_changes,
    "flap_window": _seconds,
}


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_type_name(value)}")
    return value


def _positive(unit: str) -> _Conv:
    def conv(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"expected a number of {unit}, got {_type_name(value)}")
        number = float(value)
        if not (math.isfinite(number) and number > 0):
            raise _Invalid(f"must be a positive number of {unit}, not {value!r}")
        return number

    return conv


def _history_url(value: object) -> str:
    # Never echoed: a PostgreSQL URL may carry a password.
    text = _nonempty(value)
    if "://" in text and not text.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise _Invalid("expected postgresql://..., sqlite:///PATH or a file path")
    return text


_HISTORY_KEYS: dict[str, _Conv] = {
    "enabled": _boolean,
    "url": _history_url,
    "retention": _positive("days"),
    "max_size": _positive("megabytes"),
    "snapshot_interval": _seconds,
}
_SUPERVISOR_KEYS: dict[str, _Conv] = {
    "kind": _string,
    "url": _supervisor_url,
    "username": _nonempty,
    "password": _secret,
    "poll_interval": _seconds,
    "timeout": _seconds,
    "action_timeout": _seconds,
    "max_answer_size": _count(1024),
    "agent": _address,
    "agent_token": _nonempty_secret,
    "agent_ca": _nonempty,
    "multivisor_rpc": _address,
}
_ICECREAM_KEYS: dict[str, _Conv] = {
    "kind": _string,
    "scheduler": _scheduler,
    "netname": _nonempty,
}
_PIWHEELS_KEYS: dict[str, _Conv] = {
    "kind": _string,
    "status_queue": _zmq_address,
    "control_queue": _zmq_address,
    "timeout": _seconds,
}
_USER_KEYS: dict[str, _Conv] = {
    "name": _nonempty,
    "password": _nonempty_secret,
    "role": _role,
    "sources": _globs,
}
_KINDS: dict[str, dict[str, _Conv]] = {
    "supervisor": _SUPERVISOR_KEYS,
    "icecream": _ICECREAM_KEYS,
    "piwheels": _PIWHEELS_KEYS,
}


# ------------------------------------------------------------------------------ TOML


def _toml_syntax_error(path: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    message = str(exc)
    line: int | None = getattr(exc, "lineno", None)
    match = _TOML_POSITION.search(message)
    if match:
        message = message[: match.start()]
        if match.group(1):
            line = int(match.group(1))
        else:  # at end of document
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return ConfigError(path, line, None, f"invalid TOML: {message}")


def _load_toml(path: str, text: str, data: dict[str, Any]) -> Config:
    where = _Where(path, _TomlScanner(text).scan(), ini=False)
    hub = HubConfig()
    sources: dict[str, SourceConfig] = {}
    users: tuple[UserConfig, ...] = ()
    history = HistoryConfig()
    for key, value in data.items():
        if key == "hub":
            if not isinstance(value, dict):
                raise where.error((key,), f"expected a table, got {_type_name(value)}")
            hub = HubConfig(**_read_keys(where, (key,), value, _HUB_KEYS))
        elif key == "sources":
            if not isinstance(value, dict):
                raise where.error((key,), f"expected a table, got {_type_name(value)}")
            for name, table in value.items():
                sources[name] = _toml_source(where, name, table)
        elif key == "users":
            users = _toml_users(where, value)
        elif key == "history":
            if not isinstance(value, dict):
                raise where.error((key,), f"expected a table, got {_type_name(value)}")
            history = HistoryConfig(**_read_keys(where, (key,), value, _HISTORY_KEYS))
        else:
            what = "table" if isinstance(value, dict) else "key"
            hint = " (a Multivisor INI file? name it *.ini)" if key == "global" else ""
            raise where.error(
                (key,), f"unknown {what} (expected hub, sources, users or history){hint}"
            )
    if not sources:
        if "sources" in data:
            raise where.error(("sources",), "no source in it: nothing to watch")
        raise ConfigError(path, None, None, _NO_SOURCES)
    return Config(path=path, hub=hub, sources=sources, users=users, history=history)


def _toml_source(where: _Where, name: str, table: object) -> SourceConfig:
    path: _Path = ("sources", name)
    if not isinstance(table, dict):
        raise where.error(path, f"expected a table, got {_type_name(table)}")
    if not _SOURCE_NAME.fullmatch(name):
        raise where.error(
            path, "a source name must match [A-Za-z0-9][A-Za-z0-9_.-]* (it is an id in URLs)"
        )
    if "kind" not in table:
        raise where.error((*path, "kind"), f"required key is missing ({_one_of(_KINDS)})")
    kind = table["kind"]
    if not isinstance(kind, str) or kind not in _KINDS:
        got = repr(kind) if isinstance(kind, str) else _type_name(kind)
        raise where.error((*path, "kind"), f"must be {_one_of(_KINDS)}, not {got}")
    values = _read_keys(where, path, table, _KINDS[kind])
    if kind == "icecream":
        return IcecreamSourceConfig(name=name, **values)
    if kind == "piwheels":
        return PiwheelsSourceConfig(name=name, **values)
    endpoints = [key for key in values if key in _SUPERVISOR_ENDPOINTS]
    if not endpoints:
        raise where.error(path, f"a supervisor source needs {_one_of(_SUPERVISOR_ENDPOINTS)}")
    # url and agent go together: url is polled while the agent is unreachable
    if len(endpoints) > 1 and set(endpoints) != {"url", "agent"}:
        raise where.error(
            (*path, endpoints[1]),
            f"{endpoints[0]} is set too: a supervisor source takes one of "
            f"{_one_of(_SUPERVISOR_ENDPOINTS)} (url may go with agent)",
        )
    if "username" in values and "@" in urllib.parse.urlsplit(values.get("url", "")).netloc:
        raise where.error(
            (*path, "username"), "the url carries a user name already: give it in one place"
        )
    if ("username" in values) != ("password" in values):
        given, missing = (
            ("username", "password") if "username" in values else ("password", "username")
        )
        raise where.error((*path, given), f"needs {missing} as well")
    return SupervisorSourceConfig(name=name, **values)


def _toml_users(where: _Where, value: object) -> tuple[UserConfig, ...]:
    if not isinstance(value, list):
        raise where.error(("users",), f"expected [[users]] tables, got {_type_name(value)}")
    users: list[UserConfig] = []
    first: dict[str, int] = {}
    for index, entry in enumerate(value):
        path: _Path = ("users", index)
        if not isinstance(entry, dict):
            raise where.error(path, f"expected a table, got {_type_name(entry)}")
        values = _read_keys(where, path, entry, _USER_KEYS, required=("name", "password"))
        name = values["name"]
        if name in first:
            raise where.error((*path, "name"), f"duplicate user name (users[{first[name]}])")
        first[name] = index
        users.append(UserConfig(**values))
    return tuple(users)


class _TomlScanner:
    """Finds the line of every table, key and array item of a TOML document.

    tomllib gives no positions, so this re-reads the text (which tomllib has already
    accepted) and maps each value's path to the line where it starts. Array-of-tables
    headers get their index. On anything unexpected it stops and keeps what it found.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.newlines = [index for index, char in enumerate(text) if char == "\n"]
        self.lines: dict[_Path, int] = {}
        self.arrays: dict[tuple[str, ...], int] = {}

    def scan(self) -> dict[_Path, int]:
        with contextlib.suppress(_ScanError, IndexError):
            self._document()
        return self.lines

    def _line(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1

    def _mark(self, path: _Path, line: int) -> None:
        for length in range(1, len(path)):
            self.lines.setdefault(path[:length], line)
        self.lines[path] = line

    def _skip_space(self, *, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif newlines and char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip_space(newlines=False)
        if not self.text.startswith(token, self.pos):
            raise _ScanError(token)
        self.pos += len(token)

    def _document(self) -> None:
        text = self.text
        table: _Path = ()
        while True:
            self._skip_space(newlines=True)
            if self.pos >= len(text):
                return
            line = self._line()
            if text.startswith("[[", self.pos):
                self.pos += 2
                table = self._resolve(self._key(), new_item=True)
                self._expect("]]")
                self._mark(table, line)
            elif text.startswith("[", self.pos):
                self.pos += 1
                table = self._resolve(self._key(), new_item=False)
                self._expect("]")
                self._mark(table, line)
            else:
                full = table + self._key()
                self._expect("=")
                self._mark(full, line)
                self._value(full)
            end = text.find("\n", self.pos)  # the rest of the line is a comment
            self.pos = len(text) if end < 0 else end

    def _resolve(self, names: tuple[str, ...], *, new_item: bool) -> _Path:
        """A header's path, with the current index after each array of tables."""
        path: list[str | int] = []
        for length in range(1, len(names) + 1):
            prefix = names[:length]
            path.append(prefix[-1])
            if new_item and length == len(names):
                index = self.arrays.get(prefix, -1) + 1
                for nested in [key for key in self.arrays if key[: len(prefix)] == prefix]:
                    del self.arrays[nested]
                self.arrays[prefix] = index
                path.append(index)
            elif prefix in self.arrays:
                path.append(self.arrays[prefix])
        return tuple(path)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip_space(newlines=False)
            if self.text.startswith(('"', "'"), self.pos):
                parts.append(self._string())
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if match is None:
                    raise _ScanError("key")
                parts.append(match.group())
                self.pos = match.end()
            self._skip_space(newlines=False)
            if not self.text.startswith(".", self.pos):
                return tuple(parts)
            self.pos += 1

    def _string(self) -> str:
        text, start = self.text, self.pos
        quote = text[start]
        escapes = quote == '"'
        if text.startswith(quote * 3, start):
            index = start + 3
            while True:
                if index >= len(text):
                    raise _ScanError("string")
                if escapes and text[index] == "\\":
                    index += 2
                elif text.startswith(quote * 3, index):
                    index += 3
                    for _ in range(2):  # up to two more quotes belong to the content
                        if text.startswith(quote, index):
                            index += 1
                    self.pos = index
                    return text[start + 3 : index - 3]
                else:
                    index += 1
        index = start + 1
        while True:
            if index >= len(text) or text[index] == "\n":
                raise _ScanError("string")
            if escapes and text[index] == "\\":
                index += 2
            elif text[index] == quote:
                self.pos = index + 1
                raw = text[start + 1 : index]
                if escapes and "\\" in raw:
                    try:
                        decoded = json.loads(f'"{raw}"')
                    except ValueError:
                        return raw
                    return decoded if isinstance(decoded, str) else raw
                return raw
            else:
                index += 1

    def _value(self, path: _Path) -> None:
        self._skip_space(newlines=False)
        text = self.text
        if text.startswith("{", self.pos):
            self.pos += 1
            while True:
                self._skip_space(newlines=True)
                if text.startswith("}", self.pos):
                    self.pos += 1
                    return
                line = self._line()
                full = path + self._key()
                self._expect("=")
                self._mark(full, line)
                self._value(full)
                self._skip_space(newlines=True)
                if text.startswith(",", self.pos):
                    self.pos += 1
        elif text.startswith("[", self.pos):
            self.pos += 1
            index = 0
            while True:
                self._skip_space(newlines=True)
                if text.startswith("]", self.pos):
                    self.pos += 1
                    return
                self._mark((*path, index), self._line())
                self._value((*path, index))
                index += 1
                self._skip_space(newlines=True)
                if text.startswith(",", self.pos):
                    self.pos += 1
        elif text.startswith(('"', "'"), self.pos):
            self._string()
        else:
            match = _TOML_ATOM.match(text, self.pos)
            if match is None:
                raise _ScanError("value")
            self.pos = match.end()


_TOML_ATOM = re.compile(r"[^,\]}#\r\n]+")


# ------------------------------------------------------------------------------- INI


def _load_ini(path: str, text: str) -> Config:
    """Multivisor's file: ``[global]`` (name, username, password) and ``[supervisor:NAME]``."""
    lines, bad_header = _scan_ini(text)
    if bad_header is not None:
        number, problem = bad_header
        raise ConfigError(path, number, None, problem)
    where = _Where(path, lines, ini=True)
    parser = configparser.ConfigParser(
        interpolation=None,
        inline_comment_prefixes=("#", ";"),
        default_section=_NO_DEFAULT_SECTION,
        strict=True,
    )
    # configparser's own messages quote whole lines, passwords included: never reuse them.
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(path, exc.lineno, exc.section, "duplicate section") from None
    except configparser.DuplicateOptionError as exc:
        key = f"{exc.section}.{exc.option}"
        raise ConfigError(path, exc.lineno, key, "duplicate key") from None
    except configparser.MissingSectionHeaderError as exc:
        message = "a key before any section header such as [global]"
        raise ConfigError(path, exc.lineno, None, message) from None
    except configparser.ParsingError as exc:
        line = exc.errors[0][0] if exc.errors else None
        message = "cannot parse this line: expected KEY = VALUE or a [section] header"
        raise ConfigError(path, line, None, message) from None
    except configparser.Error:
        raise ConfigError(path, None, None, "cannot parse the INI file") from None

    name = "multivisor"
    users: tuple[UserConfig, ...] = ()
    sources: dict[str, SourceConfig] = {}
    for section in parser.sections():
        values = dict(parser.items(section))
        if section == "global":
            _ini_known_keys(where, section, values, ("name", "username", "password"))
            if "name" in values:
                if not values["name"].strip():
                    raise where.error((section, "name"), "must not be empty")
                name = values["name"]
            username = values.get("username", "")
            password = values.get("password", "")
            if username and password:  # Multivisor: login is on only when both are set
                user = UserConfig(
                    name=username, password=Secret(password), role="admin", sources=("*",)
                )
                users = (user,)
        elif section.startswith("supervisor:"):
            source = section.removeprefix("supervisor:")
            if not _SOURCE_NAME.fullmatch(source):
                raise where.error(
                    (section,),
                    "a supervisor name must match [A-Za-z0-9][A-Za-z0-9_.-]* (it is an id in URLs)",
                )
            _ini_known_keys(where, section, values, ("url",))
            if "url" in values and not values["url"].strip():
                raise where.error(
                    (section, "url"),
                    f"must not be empty (leave url out for Multivisor's default {source}:"
                    f"{_MULTIVISOR_PORT})",
                )
            try:
                address = _multivisor_address(values.get("url", ""), source)
            except _Invalid as exc:
                raise where.error((section, "url"), exc.message) from None
            sources[source] = SupervisorSourceConfig(name=source, multivisor_rpc=address)
        else:
            raise where.error(
                (section,), "unknown section (expected [global] or [supervisor:NAME])"
            )
    if not sources:
        raise ConfigError(path, None, None, _NO_INI_SOURCES)
    return Config(
        path=path, hub=HubConfig(name=name), sources=sources, users=users, history=HistoryConfig()
    )


def _ini_known_keys(
    where: _Where, section: str, values: Mapping[str, str], known: tuple[str, ...]
) -> None:
    for key in values:
        if key not in known:
            raise where.error((section, key), f"unknown key (expected {_one_of(known)})")


def _multivisor_address(url: str, default_host: str) -> str:
    """Multivisor's ``[tcp://][HOST][:PORT]`` → ``HOST:PORT`` (host: the name; port: 9002)."""
    rest = url.strip()
    scheme, separator, after = rest.partition("://")
    if separator:
        if scheme.lower() != "tcp":
            raise _Invalid(f"expected [tcp://][HOST][:PORT], not {scheme}://")
        rest = after
    match = _MULTIVISOR_ADDRESS.fullmatch(rest)
    if match is None:
        raise _Invalid(f"expected [tcp://][HOST][:PORT], not {url!r}")
    host = match["host"] or default_host
    port = int(match["port"]) if match["port"] else _MULTIVISOR_PORT
    if not 1 <= port <= 65535:
        raise _Invalid(f"the port must be 1..65535, not {port}")
    return f"{host}:{port}"


_INI_SECTION = re.compile(r"\[(?P<header>.+)\]")
_INI_OPTION = re.compile(r"(?P<option>.*?)\s*[=:]")
_INI_INLINE_COMMENT = re.compile(r"\s[#;]")


def _scan_ini(text: str) -> tuple[dict[_Path, int], tuple[int, str] | None]:
    """The line of every ``[section]`` and ``(section, key)``, read the way configparser does.

    Also the first broken section header, with what is wrong with it: configparser
    reads ``[supervisor:a`` (no ``]``) as a key ``[supervisor`` of the section above,
    and ignores whatever follows a header's ``]``.
    """
    lines: dict[_Path, int] = {}
    bad: tuple[int, str] | None = None
    section: str | None = None
    option_indent: int | None = None  # a more indented line continues that option's value
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        comment = _INI_INLINE_COMMENT.search(raw)
        content = "" if stripped[0] in "#;" else (raw[: comment.start()] if comment else raw)
        if not content.strip():
            option_indent = None
            continue
        indent = len(raw) - len(raw.lstrip())
        if option_indent is not None and indent > option_indent:
            continue
        header = _INI_SECTION.match(content.strip())
        if bad is None and content.strip().startswith("["):
            if header is None:
                bad = (number, "a section header without its closing ]")
            elif header.end() != len(content.strip()):
                bad = (number, "text after the section header's closing ]")
        if header:
            section = header["header"]
            option_indent = None
            lines.setdefault((section,), number)
        elif section is not None:
            option = _INI_OPTION.match(content.strip())
            if option and option["option"]:
                option_indent = indent
                lines.setdefault((section, option["option"].strip().lower()), number)
    return lines, bad
