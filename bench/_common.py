"""Helpers the benchmark scripts share (imported from the script's own folder)."""

from __future__ import annotations

import contextlib
import json
import signal
import urllib.request
from collections.abc import Iterator
from typing import Any

__all__ = ["get_json", "no_interrupts", "opener"]

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""A URL opener that never goes through a proxy: every benchmark talks to loopback."""


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C while cleaning up: a second one would leave processes behind."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def get_json(url: str, timeout: float = 5.0) -> Any:
    with opener.open(url, timeout=timeout) as response:
        return json.loads(response.read())
