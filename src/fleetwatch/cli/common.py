"""What every client command shares: the hub client, one-line errors, JSON output.

Exit statuses: 0 success, 1 an action failed, 2 a usage error or a hub that could not
be reached or refused the request (:class:`Failure`).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from fleetwatch.client import HubClient, HubError

__all__ = ["Failure", "client", "fail", "hub_errors", "write", "write_json"]


class Failure(Exception):
    """A command ends with one line on stderr and exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 2) -> Failure:
    return Failure(message, code)


def client(url: str | None, token: str | None, timeout: float = 10.0) -> HubClient:
    try:
        return HubClient(url, token=token, timeout=timeout)
    except ValueError as exc:
        raise Failure(f"--url: {exc}") from None


@contextlib.contextmanager
def hub_errors() -> Iterator[None]:
    """A HubError becomes a Failure (exit 2) with its one line."""
    try:
        yield
    except HubError as exc:
        raise Failure(str(exc)) from None


def write(lines: list[str] | str) -> None:
    """Write text to stdout as UTF-8 whatever the locale says (a pipe under LANG=C too)."""
    text = lines if isinstance(lines, str) else "".join(f"{line}\n" for line in lines)
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None or (out.encoding or "").lower().replace("-", "") == "utf8":
        out.write(text)
        out.flush()
    else:
        out.flush()
        buffer.write(text.encode("utf-8", "replace"))
        buffer.flush()


def write_json(value: Any) -> None:
    write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
