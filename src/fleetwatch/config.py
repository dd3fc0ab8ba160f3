"""Configuration: TOML (fleetwatch's own) and Multivisor's INI, read as-is.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError`
naming the file, line and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fleetwatch.errors import ConfigError
from fleetwatch.types import Secret

__all__ = [
    "DEFAULT_LISTEN",
    "Config",
    "ConfigError",
    "HubConfig",
    "IcecreamSourceConfig",
    "PiwheelsSourceConfig",
    "SourceConfig",
    "SupervisorSourceConfig",
    "UserConfig",
    "load_config",
    "parse_listen",
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
    root_path: str = ""
    """Sub-path when served behind a reverse proxy, e.g. ``/fleet``."""


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
    agent: str | None = None
    """``host:port`` of a fleetwatch-agent push channel, instead of polling."""
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
    control_queue: str = "ipc:///tmp/piw-control"


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
class Config:
    path: str
    hub: HubConfig = field(default_factory=HubConfig)
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    users: tuple[UserConfig, ...] = ()


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6); raise ``ValueError`` when malformed."""
    raise NotImplementedError


def load_config(path: str) -> Config:
    """Read a TOML or Multivisor INI file; raise :class:`ConfigError` when it is wrong."""
    raise NotImplementedError
