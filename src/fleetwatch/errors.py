"""Every exception fleetwatch raises on purpose.

The tree::

    FleetwatchError
    ├── ConfigError            a configuration file is wrong (file, line, key)
    ├── ListenError            a listening socket cannot be bound (server.py)
    ├── ActionError            a request to the hub cannot be carried out
    │   ├── UnknownTarget      the target does not exist             (HTTP 404)
    │   ├── UnknownAction      the target does not have that action  (HTTP 409)
    │   ├── NoLogs             the target's source has no logs       (HTTP 409)
    │   └── BadParams          the action's params are wrong         (HTTP 400)
    └── SourceError            talking to a watched system failed
        ├── Unreachable        it did not answer (refused, timed out, closed)
        └── ProtocolError      it answered something we cannot read
            ├── LocalProtocolError   we misused a codec (a bug on our side)
            └── RemoteProtocolError  the peer sent garbage
"""

from __future__ import annotations

__all__ = [
    "ActionError",
    "BadParams",
    "ConfigError",
    "FleetwatchError",
    "LocalProtocolError",
    "NoLogs",
    "ProtocolError",
    "RemoteProtocolError",
    "SourceError",
    "UnknownAction",
    "UnknownTarget",
    "Unreachable",
]


class FleetwatchError(Exception):
    """Base of every error fleetwatch raises on purpose."""


class ConfigError(FleetwatchError):
    """A configuration file is wrong. ``str()`` is ``FILE:LINE: KEY: MESSAGE``."""

    def __init__(self, path: str, line: int | None, key: str | None, message: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        where = path if line is None else f"{path}:{line}"
        what = f"{key}: {message}" if key else message
        super().__init__(f"{where}: {what}")


class ActionError(FleetwatchError):
    """A request to the hub (an action, a log read) cannot be carried out; ``status`` is the
    HTTP status to answer."""

    status = 400


class UnknownTarget(ActionError):
    status = 404


class UnknownAction(ActionError):
    status = 409


class NoLogs(ActionError):
    """A log was asked of a process whose source cannot read logs (no ``LogReader``)."""

    status = 409


class BadParams(ActionError):
    status = 400


class SourceError(FleetwatchError):
    """Talking to a watched system failed."""


class Unreachable(SourceError):
    """The peer did not answer: connection refused, timed out or closed."""


class ProtocolError(SourceError):
    """The bytes exchanged do not follow the protocol."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol does not allow: a bug on our side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""
