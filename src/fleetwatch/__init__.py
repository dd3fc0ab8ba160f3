"""fleetwatch: one live monitor and control hub for build clusters and process fleets."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
