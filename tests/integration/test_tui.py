"""fleetwatch tui (Textual) against a real hub on real supervisord: the tree, a hot-key
that stops a process in supervisord, the status line across a hub restart, the filter,
the log pane; and one run of the real command in tmux."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Tree

from fleetwatch.demo.supervisord import Supervisord
from fleetwatch.tui import FleetApp, RemoteBackend
from fleetwatch.tui._widgets import LogPane
from tests.conftest import HubServer, require, source_config, standard_programs, wait_for

pytestmark = [pytest.mark.real, pytest.mark.anyio]

SIZE = (160, 48)


async def until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "it") -> Any:
    """Await ``condition`` becoming truthy (polled on the app's loop); fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


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


def test_tui_in_tmux_shows_source_and_process(
    two: tuple[HubServer, Any, Any], tmp_path: Path
) -> None:
    tmux = require("tmux")
    hub, _, _ = two
    exe = shutil.which("fleetwatch", path=str(Path(sys.executable).parent))
    assert exe, "the fleetwatch command is installed in the venv"
    session = f"fwtui{os.getpid()}"
    socket = str(tmp_path / "tmux.sock")
    env = {**os.environ, "FLEETWATCH_URL": hub.url, "TERM": "xterm-256color"}
    base = [tmux, "-S", socket]
    # remain-on-exit: a TUI that dies leaves its last screen (a traceback) to be read.
    subprocess.run(
        [
            *base,
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
            session,
            exe,
            "tui",
        ],
        check=True,
        env=env,
    )
    try:

        def screen() -> str:
            out = subprocess.run(
                [*base, "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=True,
            )
            return out.stdout

        def pane_dead() -> bool:
            out = subprocess.run(
                [*base, "display-message", "-p", "-t", session, "#{pane_dead}"],
                capture_output=True,
                text=True,
                check=True,
            )
            return out.stdout.strip() == "1"

        seen = {"screen": ""}

        def shows_it() -> bool:
            seen["screen"] = s = screen()
            return "▪ ta" in s and "▪ tb" in s and "workers" in s and "Connected" in s

        try:
            wait_for(shows_it, 30, "the screen to show the sources, a group and Connected")
        except BaseException:
            print(seen["screen"])
            raise
        text = seen["screen"]
        assert "tb" in text
        assert "RUNNING" in text
        assert not pane_dead()

        def display(fmt: str) -> str:
            out = subprocess.run(
                [*base, "display-message", "-p", "-t", session, fmt],
                capture_output=True,
                text=True,
                check=True,
            )
            return out.stdout.strip()

        pid = int(display("#{pane_pid}"))
        subprocess.run([*base, "send-keys", "-t", session, "q"], check=True)

        def ended() -> bool:
            # tmux sometimes leaves the exited TUI a zombie for a while before reaping it
            # (and then knows no status yet): a zombie has ended all the same.
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                return True
            return state == "Z"

        wait_for(ended, 15, "q to end the TUI")
        assert display("#{pane_dead_status}") in ("", "0")
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
