"""The ``fleetwatch`` command's entry point.

``fleetwatch version`` and ``fleetwatch --version`` are answered here, before Typer is
imported: Typer (with the pydantic it now uses for coercion) takes about 0.2 s to
import, ten times the rest of the command. Every other command line goes to the Typer
app in :mod:`fleetwatch.cli.commands`.
"""

from __future__ import annotations

import sys

from fleetwatch import __version__

__all__ = ["main"]

_VERSION_ARGS = (["version"], ["--version"])


def main() -> None:
    if sys.argv[1:] in _VERSION_ARGS:
        sys.stdout.write(f"{__version__}\n")
        return
    from fleetwatch.cli.commands import app

    app()
