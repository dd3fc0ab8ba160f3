"""``fleetwatch collect``: run a config's sources and publish them on a Redis bus."""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetwatch.config import Config
    from fleetwatch.hub import SourceFactory

__all__ = ["default_name", "run_collector"]


def default_name() -> str:
    """The host's short name, as a collector name (its Redis keys hold it)."""
    host = socket.gethostname().split(".")[0] or "collector"
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in host)


def run_collector(
    config: Config,
    url: str,
    name: str,
    *,
    factories: dict[str, SourceFactory] | None = None,
    snapshot_every: float = 60.0,
) -> None:
    """Run until SIGINT/SIGTERM (the sources are closed, the last commits published)."""
    from fleetwatch.bus.redis import Collector
    from fleetwatch.hub import Hub

    async def main() -> None:
        hub = Hub(config, factories=factories)
        collector = Collector(hub, url, name, snapshot_every=snapshot_every)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await collector.run(stop)

    asyncio.run(main())
