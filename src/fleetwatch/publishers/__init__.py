"""Publishers: what the cluster state is handed to (WebSocket clients, notification rules, ...).

``WebsocketPublisher`` (pyicemon's) is imported on first use, so that importing a
sibling such as :mod:`fleetwatch.publishers.notifications` does not load websockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetwatch.publishers.websocket import WebsocketPublisher

__all__ = ["WebsocketPublisher"]


def __getattr__(name: str) -> Any:
    if name == "WebsocketPublisher":
        from fleetwatch.publishers.websocket import WebsocketPublisher

        return WebsocketPublisher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
