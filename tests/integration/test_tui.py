"""fleetwatch tui (Textual) against a real hub on real supervisord: the tree, a hot-key
that stops a process in supervisord, the status line across a hub restart, the filter,
the log pane; and the real commands in tmux (``fleetwatch tui`` on supervisord and the
stand-in piwheels master, ``fleetwatch piw-monitor`` on the stand-in)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Tree

from fleetwatch.config import PiwheelsSourceConfig
from fleetwatch.demo.piwheels import StandInMaster
from fleetwatch.demo.supervisord import Supervisord
from fleetwatch.sources.piwheels.protocol import Control
from fleetwatch.tui import FleetApp, RemoteBackend
from fleetwatch.tui._widgets import LogPane
from tests.conftest import HubServer, require, source_config, standard_programs, until, wait_for

pytestmark = [pytest.mark.real, pytest.mark.anyio]

SIZE = (160, 48)
HELLO_CONTROL = Control("HELLO")


@pytest.fixture
def two(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> tuple[HubServer, Supervisord, Supervisord]:
    a = supervisors("ta", standard_programs("ta"))
    b = supervisors("tb", standard_programs("tb"))
    hub = hub_server(source_config(a, poll_interval=0.5), source_config(b, poll_interval=0.5))
    for name in ("ta", "tb"):
        wait_for(lambda n=name: hub.source(n)["status"] == "online", 20, f"{name} online")
    wait_for(lambda: hub.processes()["ta:web:web"]["state"] == "RUNNING", 20, "ta's web running")
    return hub, a, b


def tree_refs(app: FleetApp) -> set[tuple[str, str]]:
    return set(app._tree_nodes)


async def select_in_tree(app: FleetApp, ref: tuple[str, str]) -> None:
    tree: Tree[Any] = app.query_one("#tree", Tree)
    tree.focus()
    await until(lambda: ref in app._tree_nodes, what=f"{ref} in the tree")
    tree.move_cursor(app._tree_nodes[ref])
    await until(lambda: app.selected == ref, what=f"{ref} selected")


def rows(app: FleetApp) -> list[str]:
    return list(app._row_order)


async def test_tree_shows_sources_and_processes(two: tuple[HubServer, Any, Any]) -> None:
    hub, _, _ = two
    app = FleetApp(RemoteBackend(hub.url))
    async with app.run_test(size=SIZE):
        await until(
            lambda: (
                {("source", "ta"), ("source", "tb"), ("process", "ta:web:web")} <= tree_refs(app)
            ),
            what="both sources and ta's web in the tree",
        )
        assert ("group", "ta:workers") in tree_refs(app)
        assert ("process", "tb:workers:worker_01") in tree_refs(app)
        labels = {str(n.label) for n in app._tree_nodes.values()}
        assert any(label.startswith("▪ ta") and "online" in label for label in labels)
        # The list has every process, with piw-monitor's columns.
        table: DataTable[Any] = app.query_one("#list", DataTable)
        headers = [str(c.label) for c in table.columns.values()]
        assert headers == ["S", "#", "Label^", "ABI^", "Up Time", "Task Time", "Task"]
        await until(lambda: "process|ta:web:web" in rows(app), what="ta:web:web listed")
        assert "process|tb:talker:talker" in rows(app)


async def test_stop_hotkey_stops_the_process_in_supervisord(
    two: tuple[HubServer, Supervisord, Any],
) -> None:
    hub, a, _ = two
    app = FleetApp(RemoteBackend(hub.url))
    async with app.run_test(size=SIZE) as pilot:
        await select_in_tree(app, ("process", "ta:web:web"))
        # The control bar comes from source.actions: stop is there with its hot-key.
        await until(lambda: app.query("#act-stop"), what="the stop button")
        stop = app.query_one("#act-stop")
        assert "(x)" in str(stop.label)  # type: ignore[attr-defined]
        assert not stop.disabled
        await pilot.press("x")
        await until(lambda: app.screen.id != "_default", what="the confirmation")
        assert "ta:web:web" in str(app.screen.query_one("#question").render())
        await pilot.press("y")
        await until(
            lambda: a.call("supervisor.getProcessInfo", "web:web")["statename"] == "STOPPED",
            what="supervisord to say web is STOPPED",
        )
        await until(lambda: "Stop ta:web:web: done" in app.status_line, what="the result")
        await until(
            lambda: "STOPPED" in str(app._tree_nodes[("process", "ta:web:web")].label),
            what="the tree to show it stopped",
        )


async def test_status_line_follows_the_hub(two: tuple[HubServer, Any, Any]) -> None:
    hub, _, _ = two
    app = FleetApp(RemoteBackend(hub.url))
    async with app.run_test(size=SIZE):
        await until(lambda: app.status_line.startswith("Connected"), what="Connected")
        await asyncio.to_thread(hub.stop)
        await until(lambda: app.status_line.startswith("Reconnecting"), what="Reconnecting")
        await asyncio.to_thread(hub.start)
        await until(lambda: app.status_line.startswith("Connected"), 30, "Connected again")
        await until(lambda: ("source", "ta") in tree_refs(app), what="the tree after it")


async def test_filter_narrows_the_list(two: tuple[HubServer, Any, Any]) -> None:
    hub, _, _ = two
    app = FleetApp(RemoteBackend(hub.url))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(rows(app)) >= 12, what="both sources' processes listed")
        await pilot.press("slash")
        await pilot.press(*"name:web")
        await until(
            lambda: rows(app) == ["process|ta:web:web", "process|tb:web:web"],
            what="only the two web processes",
        )
        assert "filter: name:web" in app.status_line
        await pilot.press("space", *"source:tb")
        await until(lambda: rows(app) == ["process|tb:web:web"], what="only tb's web")
        await pilot.press("escape")
        await until(lambda: len(rows(app)) >= 12, what="everything again")


async def test_log_pane_shows_the_log(two: tuple[HubServer, Any, Any]) -> None:
    hub, _, _ = two
    app = FleetApp(RemoteBackend(hub.url))
    async with app.run_test(size=SIZE) as pilot:
        await select_in_tree(app, ("process", "ta:talker:talker"))
        pane = app.query_one("#log-pane", LogPane)
        await until(lambda: pane.display, what="the log pane")
        await until(lambda: "ta-talker line" in pane.text, what="the talker's stdout")
        first = pane.text.count("\n")
        await until(lambda: pane.text.count("\n") > first + 1, what="the log to follow")
        await pilot.press("l")  # stderr
        await until(lambda: "warning" in pane.text, what="the talker's stderr")
        assert "line" not in pane.text.replace("warning", "")
        await pilot.press("l")  # hidden
        await until(lambda: not pane.display, what="the log pane hidden")


class Tmux:
    """One detached tmux session on a private server, running ``command``."""

    def __init__(self, tmp_path: Path, command: list[str], env: dict[str, str]) -> None:
        self.base = [require("tmux"), "-S", str(tmp_path / "tmux.sock")]
        self.session = f"fw{os.getpid()}"
        self.last = ""
        # remain-on-exit: a TUI that dies leaves its last screen (a traceback) to be read.
        self.run(
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "48",
            "-s",
            self.session,
            *command,
            env={**os.environ, "TERM": "xterm-256color", **env},
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, check=True, env=env
        )
        return out.stdout

    def display(self, fmt: str) -> str:
        return self.run("display-message", "-p", "-t", self.session, fmt).strip()

    def screen(self) -> str:
        self.last = self.run("capture-pane", "-p", "-t", self.session)
        return self.last

    def wait_screen(self, *words: str, timeout: float = 30) -> str:
        try:
            wait_for(lambda: all(w in self.screen() for w in words), timeout, f"{words} on screen")
        except BaseException:
            print(self.last)
            raise
        return self.last

    def quit(self, key: str = "q") -> None:
        """Press ``key`` and wait until the program has ended, with status 0."""
        assert self.display("#{pane_dead}") == "0", self.screen()
        pid = int(self.display("#{pane_pid}"))
        self.run("send-keys", "-t", self.session, key)

        def ended() -> bool:
            # tmux sometimes leaves the exited TUI a zombie for a while before reaping it
            # (and then knows no status yet): a zombie has ended all the same.
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                return True
            return state == "Z"

        wait_for(ended, 15, f"{key} to end the program")
        assert self.display("#{pane_dead_status}") in ("", "0")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def fleetwatch_exe() -> str:
    exe = shutil.which("fleetwatch", path=str(Path(sys.executable).parent))
    assert exe, "the fleetwatch command is installed in the venv"
    return exe


@pytest.fixture
def farm() -> Iterator[StandInMaster]:
    """The stand-in piwheels master, replaying the capture in a loop (as the demo does)."""
    with tempfile.TemporaryDirectory(prefix="fw-tui-piw-") as d:
        master = StandInMaster(
            f"ipc://{d}/piw-status", f"ipc://{d}/piw-control", gated=False, loop=True, speed=5
        )
        master.start()
        yield master
        master.stop()


def test_tui_in_tmux_shows_sources_and_processes(
    supervisors: Callable[..., Supervisord],
    hub_server: Callable[..., HubServer],
    farm: StandInMaster,
    tmp_path: Path,
) -> None:
    a = supervisors("ta", standard_programs("ta"))
    piw = PiwheelsSourceConfig(
        name="piw", status_queue=farm.status_queue, control_queue=farm.control_queue
    )
    hub = hub_server(source_config(a, poll_interval=0.5), piw)
    tmux = Tmux(tmp_path, [fleetwatch_exe(), "tui"], {"FLEETWATCH_URL": hub.url})
    try:
        text = tmux.wait_screen("▪ ta", "workers", "RUNNING", "▪ piw", "lab-slave-1", "Connected")
        assert "supervisor online" in text
        tmux.quit()
    finally:
        tmux.close()


def test_piw_monitor_in_tmux(farm: StandInMaster, tmp_path: Path) -> None:
    command = [
        fleetwatch_exe(),
        "piw-monitor",
        "--status-queue",
        farm.status_queue,
        "--control-queue",
        farm.control_queue,
    ]
    tmux = Tmux(tmp_path, command, {})
    try:
        text = tmux.wait_screen(
            "Label^", "Doing whatever the master does", "lab-slave-1", "Connected to master"
        )
        assert "├─" in text
        assert "Pause (p)" in text
        tmux.quit()
        # q quits the monitor; the master is unaffected: it was only ever asked HELLO.
        assert farm.controls()
        assert all(c == HELLO_CONTROL for c in farm.controls())
    finally:
        tmux.close()
