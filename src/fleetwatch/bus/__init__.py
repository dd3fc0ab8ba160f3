"""Scale-out: collectors publish their sources' changes to Redis, hubs build on them.

``fleetwatch collect --bus redis://HOST:PORT`` runs a config's sources (a :class:`Hub`
with no web server) and publishes every delta it commits to a Redis Stream of its own;
``fleetwatch serve --bus redis://...`` (or ``[hub] bus``) builds its model from every
collector registered in Redis and routes actions on their sources back to them. The
machinery is in :mod:`fleetwatch.bus.redis`, imported only when a bus is configured:
without one nothing here is loaded and redis-py need not be installed.

Keys (``P`` is ``fleetwatch``)::

    P:collectors             set     the registered collectors' names
    P:collector:NAME         hash    heartbeat: beat (a counter), epoch, pid, host
    P:NAME:changes           stream  one entry per commit, plus periodic snapshots
    P:NAME:snapshot          string  the stream ID of NAME's newest snapshot entry
    P:NAME:actions           stream  requests to NAME (consumer group "collector")
    P:hub:EPOCH:replies      stream  answers to one hub's requests (expires unused)
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["COLLECTOR_NAME", "check_bus_url", "redacted"]

COLLECTOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""A collector's name: part of its Redis keys."""

_SCHEMES = ("redis", "rediss", "unix")


def check_bus_url(url: str) -> str:
    """``url`` if it is a Redis URL (``redis://HOST:PORT[/DB]``, ``rediss://``,
    ``unix:///PATH``); ValueError saying what is wrong (never echoing a password)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a Redis URL: {redacted(url)!r}") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            f"expected redis://HOST:PORT[/DB] (or rediss://, unix:///PATH), not {redacted(url)!r}"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs a socket path, e.g. unix:///run/redis.sock")
        return url
    if not parts.hostname:
        raise ValueError(f"no host in {redacted(url)!r}")
    if port == 0:
        raise ValueError(f"the port must be 1..65535 in {redacted(url)!r}")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"the database must be a number, not {db!r}")
    return url


def redacted(url: str) -> str:
    """``url`` without its password (for logs and error messages)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return urlunsplit(parts._replace(netloc=user + host))
    except ValueError:
        return "<a malformed URL>"
