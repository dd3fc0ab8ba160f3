"""``fleetwatch piw-monitor``: piw-monitor's command line, config files, screen and keys.

Synopsis, as piw-monitor's own::

    fleetwatch piw-monitor [-h] [--version] [-c FILE] [--status-queue ADDR]
                           [--control-queue ADDR]

It runs a hub in this process with one piwheels source on the two queues (no port is
opened) and shows piw-monitor's screen on it: the master first, its build slaves under
it sorted by (ABI, label), a stats box that follows the selection, and the controls. The
keys are the source's hot-keys (``p`` pause, ``r`` resume, ``k`` kill the selected slave,
``t`` terminate the master; ``h`` halt, ``i`` skip, ``s`` stop a slave), Enter opens the
Master Control or Slave Control dialog, Tab moves between the list and the controls, and
``q`` quits the monitor (the master is unaffected).

Configuration files are read as piwheels' tools read them (configargparse's default
format): the files in :data:`DEFAULT_FILES` that exist, in that order, then ``-c FILE``;
a later file overrides an earlier one and the command line overrides them all. A line
is ``key = value`` (or ``key: value``, ``key value``), the key being the long option
without its dashes (``status-queue``; ``status_queue`` is not recognised); ``#`` and
``;`` start comments, ``[section]`` headers are ignored (one file with a ``[master]``
section serves every piw-* tool) and so are unknown keys. An unreadable file or a line
that is none of these is an error naming the file and line (exit 2).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleetwatch import __version__

if TYPE_CHECKING:
    from fleetwatch.tui.app import FleetApp

__all__ = [
    "DEFAULT_CONTROL",
    "DEFAULT_FILES",
    "DEFAULT_STATUS",
    "PiwConfigError",
    "Queues",
    "build_app",
    "main",
    "parse_args",
    "read_config_file",
]

DEFAULT_STATUS = "ipc:///tmp/piw-status"
DEFAULT_CONTROL = "ipc:///tmp/piw-control"
DEFAULT_FILES: tuple[str, ...] = (
    "/etc/piwheels.conf",
    "/usr/local/etc/piwheels.conf",
    "~/.config/piwheels/piwheels.conf",
)
"""piwheels' default configuration files, read in this order when they exist."""

SOURCE = "piw"
"""The one source's name (so the master is node ``piw:master``)."""

_KEYS = ("status-queue", "control-queue")

# configargparse's DefaultConfigFileParser: a key, a separator, a value, a comment.
_KEY = r"(?P<key>[^:=;#\s]+?)"
_VALUE = r"\s*[:=\s]\s*(?P<value>.+?)"
_COMMENT = r"(?P<comment>\s+[;#].*)?"
_KEY_ONLY = re.compile(f"^{_KEY}{_COMMENT}$")
_KEY_VALUE = re.compile(f"^{_KEY}{_VALUE}{_COMMENT}$")


class PiwConfigError(Exception):
    """A configuration file that cannot be used: ``str()`` names the file and line."""


@dataclass(frozen=True, slots=True)
class Queues:
    status_queue: str
    control_queue: str


def read_config_file(path: str) -> dict[str, tuple[str, int]]:
    """The known keys of one file: key → (value, line number)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PiwConfigError(f"File not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PiwConfigError(f"{path}: cannot read it: {reason}") from None
    found: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;[" or line == "---":
            continue
        match = _KEY_VALUE.match(line)
        if match is None:
            only = _KEY_ONLY.match(line)
            if only is None:
                raise PiwConfigError(f"{path}:{number}: unexpected line: {line}")
            if only["key"] in _KEYS:
                raise PiwConfigError(f"{path}:{number}: {only['key']}: a value is needed")
            continue
        key, value = match["key"], match["value"].strip()
        if key in _KEYS:
            found[key] = (value, number)
    return found


def parse_args(
    argv: Sequence[str],
    *,
    default_files: Sequence[str] = DEFAULT_FILES,
    prog: str = "fleetwatch piw-monitor",
) -> Queues:
    """piw-monitor's options from ``argv`` and the configuration files (module docstring);
    exits 2 (argparse's way) on a bad option or file, 0 after ``-h``/``--version``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Watch a piwheels master and its build slaves, and control them: pause and "
            "resume the master, skip, stop or kill a slave's build, or stop the master. "
            "It asks the master for its state at start-up and follows every build from "
            "then on."
        ),
        epilog=(
            "Configuration files: "
            + ", ".join(default_files)
            + " (those that exist, in this order), then -c FILE; lines are "
            "'key = value' with the long option's name as the key."
        ),
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-c",
        "--configuration",
        metavar="FILE",
        default=None,
        help="Specify a configuration file to load",
    )
    parser.add_argument(
        "--status-queue",
        metavar="ADDR",
        default=None,
        help=f"The address of the queue used to report status to monitors (default: "
        f"{DEFAULT_STATUS})",
    )
    parser.add_argument(
        "--control-queue",
        metavar="ADDR",
        default=None,
        help=f"The address of the queue a monitor can use to control the master "
        f"(default: {DEFAULT_CONTROL})",
    )
    args = parser.parse_args(list(argv))
    files = [os.path.expanduser(f) for f in default_files]
    files = [f for f in files if os.path.isfile(f)]
    if args.configuration is not None:
        files.append(args.configuration)
    values = {"status-queue": DEFAULT_STATUS, "control-queue": DEFAULT_CONTROL}
    for path in files:
        try:
            for key, (value, _) in read_config_file(path).items():
                values[key] = value
        except PiwConfigError as exc:
            parser.error(str(exc))
    if args.status_queue is not None:
        values["status-queue"] = args.status_queue
    if args.control_queue is not None:
        values["control-queue"] = args.control_queue
    for key, value in values.items():
        if not re.match(r"^(ipc|tcp|inproc|pgm|epgm|vmci)://.+", value):
            parser.error(f"{key} {value!r} is not a ZeroMQ address (ipc://PATH, tcp://HOST:PORT)")
    return Queues(values["status-queue"], values["control-queue"])


def build_app(queues: Queues) -> FleetApp:
    """piw-monitor's screen on a hub in this process watching the master at ``queues``."""
    from fleetwatch.config import Config, HubConfig, PiwheelsSourceConfig
    from fleetwatch.hub import Hub
    from fleetwatch.tui.app import FleetApp
    from fleetwatch.tui.backend import LocalBackend

    config = Config(
        path="piw-monitor",
        hub=HubConfig(name="piw-monitor"),
        sources={
            SOURCE: PiwheelsSourceConfig(
                name=SOURCE,
                status_queue=queues.status_queue,
                control_queue=queues.control_queue,
            )
        },
    )
    backend = LocalBackend(
        Hub(config),
        connected_text="Connected to master",
        where=f"{queues.status_queue} {queues.control_queue}",
    )
    return FleetApp(backend, single=True, title="piw-monitor")


def main(argv: Sequence[str]) -> int:
    """Run piw-monitor; its exit status."""
    queues = parse_args(argv)
    build_app(queues).run()
    return 0
