"""The terminal UI (Textual): piw-monitor's screen and controls, for every fleet.

* :class:`~fleetwatch.tui.app.FleetApp`: the app, over a backend;
* :mod:`fleetwatch.tui.backend`: :class:`RemoteBackend` (a hub's API and stream) and
  :class:`LocalBackend` (a hub in this process);
* :mod:`fleetwatch.tui.rows`: what each row shows, as plain data;

Importing this package imports Textual: the CLI imports it only when a TUI command runs.
"""

from __future__ import annotations

from fleetwatch.tui.app import FleetApp
from fleetwatch.tui.backend import Backend, LocalBackend, RemoteBackend

__all__ = ["Backend", "FleetApp", "LocalBackend", "RemoteBackend"]
