"""fleetwatch piw-monitor against the stand-in master over real ZeroMQ: its hot-keys,
Tab, the mouse and the confirmation send exactly the control frames piw-monitor sends,
``q`` leaves the master alone, and the options and config files pick the queues.

A real piw-master cannot run here (PostgreSQL, pinned dependencies, the internet); the
stand-in (``fleetwatch.demo.piwheels.StandInMaster``) replays the traffic recorded from
a real one byte for byte, records what it receives, and waits at each command the
recorder sent until those bytes arrive.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, DataTable

from fleetwatch.demo.piwheels import StandInMaster, load_capture
from fleetwatch.tui.app import FleetApp
from fleetwatch.tui.piw_monitor import Queues, build_app, parse_args
from tests.conftest import until

pytestmark = [pytest.mark.real, pytest.mark.anyio]

CAPTURE = Path(__file__).parents[1] / "vectors" / "piwheels-capture.jsonl"
RECORDED = [s.frame for s in load_capture(CAPTURE) if s.direction == "control"]
HELLO = b"\x65HELLO"
SLEEP_NULL, WAKE_NULL, SKIP_2, KILL_1, QUIT = (f for f in RECORDED if f != HELLO)
SIZE = (150, 40)


@pytest.fixture
def queues() -> Iterator[Queues]:
    with tempfile.TemporaryDirectory(prefix="fw-piwmon-") as d:
        yield Queues(f"ipc://{d}/piw-status", f"ipc://{d}/piw-control")


@pytest.fixture
def master(queues: Queues) -> Iterator[StandInMaster]:
    m = StandInMaster(
        queues.status_queue, queues.control_queue, steps=load_capture(CAPTURE), speed=25
    )
    m.start()
    yield m
    m.stop()


def sent(master: StandInMaster) -> list[bytes]:
    """The control frames received, HELLOs aside (the source asks when it must)."""
    return [f for f in master.received if f != HELLO]


async def at_gate(master: StandInMaster, frame: bytes) -> None:
    await until(lambda: master.waiting_for == frame, 40, f"the stand-in to wait for {frame!r}")


async def farm_shown(app: FleetApp) -> None:
    await until(lambda: app.status_line.startswith("Connected to master"), what="Connected")
    await until(
        lambda: app._row_order == ["node|piw:master", "node|piw:slave:2", "node|piw:slave:1"],
        what="the master, then slaves 2 (lab-slave-1) and 1 (lab-slave-2) by label",
    )


async def select_row(app: FleetApp, key: str) -> None:
    table: DataTable[Any] = app.query_one("#list", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    kind, id = key.split("|", 1)
    await until(lambda: app.selected == (kind, id), what=f"{key} selected")


async def test_hotkeys_and_confirmation_send_what_piw_monitor_sends(
    queues: Queues, master: StandInMaster
) -> None:
    app = build_app(queues)
    async with app.run_test(size=SIZE) as pilot:
        # The status line is there from the start (piw-monitor's words).
        assert app.status_line.startswith(("Waiting for connection", "Connected to master"))
        await farm_shown(app)
        screen = [str(c) for c in app._row_cells["node|piw:master"]]
        assert screen[2] == "vm"
        assert screen[6] == "Doing whatever the master does"
        await at_gate(master, SLEEP_NULL)

        # p on the master row: pause = SLEEP null.
        await select_row(app, "node|piw:master")
        await pilot.press("p")
        await until(lambda: sent(master) == [SLEEP_NULL], what="SLEEP null")
        await until(
            lambda: "Pause piw:master: done (sent SLEEP null)" in app.status_line, what="result"
        )

        # r on a slave row resumes the master (piw-monitor's r): WAKE null.
        await at_gate(master, WAKE_NULL)
        await select_row(app, "node|piw:slave:1")
        await pilot.press("r")
        await until(lambda: sent(master)[1:] == [WAKE_NULL], what="WAKE null")

        # i (skip) on slave 2 asks first: n sends nothing, y sends SKIP 2.
        await at_gate(master, SKIP_2)
        await select_row(app, "node|piw:slave:2")
        await pilot.press("i")
        await until(lambda: app.screen.id != "_default", what="the confirmation")
        await pilot.press("n")
        await until(lambda: "Skip build piw:slave:2: cancelled" in app.status_line, what="no")
        assert sent(master) == [SLEEP_NULL, WAKE_NULL]
        await pilot.press("i")
        await until(lambda: app.screen.id != "_default", what="the confirmation again")
        await pilot.press("y")
        await until(lambda: sent(master)[2:] == [SKIP_2], what="SKIP 2")

        # Enter on slave 1: Slave Control; its Stop slave (s) is KILL 1.
        await at_gate(master, KILL_1)
        await select_row(app, "node|piw:slave:1")
        await pilot.press("enter")
        await until(lambda: app.screen.id != "_default", what="the Slave Control dialog")
        title = str(app.screen.query_one("#menu-title").render())
        assert title == "Slave Control: lab-slave-2"
        await pilot.press("s")
        await until(lambda: "KILL id" in str(app.screen.query_one("#question").render()) or True)
        await pilot.press("y")
        await until(lambda: sent(master)[3:] == [KILL_1], what="KILL 1")
        await until(lambda: "node|piw:slave:1" not in app._row_order, 30, "the stopped slave gone")

        # t terminates the master after a confirmation: QUIT, the recording's last command.
        await at_gate(master, QUIT)
        await pilot.press("t")
        await until(lambda: app.screen.id != "_default", what="the confirmation")
        await pilot.press("y")
        await until(lambda: master.finished.is_set(), what="the stand-in to take QUIT")
        assert sent(master) == [SLEEP_NULL, WAKE_NULL, SKIP_2, KILL_1, QUIT]


async def test_tab_reaches_the_controls_and_the_mouse_presses_them(
    queues: Queues, master: StandInMaster
) -> None:
    app = build_app(queues)
    async with app.run_test(size=SIZE) as pilot:
        await farm_shown(app)
        await at_gate(master, SLEEP_NULL)
        await select_row(app, "node|piw:slave:2")
        # A slave-only action is greyed out on the master's row, and offered on a slave's.
        await until(lambda: not app.query_one("#act-kill", Button).disabled, what="kill usable")
        await select_row(app, "node|piw:master")
        await until(lambda: app.query_one("#act-kill", Button).disabled, what="kill greyed out")
        await pilot.press("tab")
        assert isinstance(app.focused, Button)
        assert app.focused.id == "act-pause"
        await pilot.press("shift+tab")
        assert app.focused is app.query_one("#list")
        await pilot.click("#act-pause")
        await until(lambda: sent(master) == [SLEEP_NULL], what="SLEEP null from the click")
        # Quit leaves the master alone: nothing more is sent.
        await pilot.press("q")
    assert sent(master) == [SLEEP_NULL]
    assert not master.finished.is_set()


def test_options_and_config_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    etc = tmp_path / "piwheels.conf"
    home = tmp_path / "home.conf"
    etc.write_text(
        "[master]\n"
        "status-queue = ipc:///etc/status\n"
        "control-queue = ipc:///etc/control\n"
        "status_queue = ipc:///ignored\n"  # underscores are not the option's name
        "pypi-xmlrpc = https://pypi.org/pypi  # a master key: ignored here\n"
    )
    home.write_text("# mine\n[monitor]\ncontrol-queue: ipc:///home/control ; comment\n")
    missing = str(tmp_path / "nope.conf")
    files = [str(etc), missing, str(home)]

    assert parse_args([], default_files=[]) == Queues(
        "ipc:///tmp/piw-status", "ipc:///tmp/piw-control"
    )
    # Default files in order (a later one wins, a missing one is skipped).
    assert parse_args([], default_files=files) == Queues("ipc:///etc/status", "ipc:///home/control")
    # -c FILE after them, and the flags over everything.
    extra = tmp_path / "extra.conf"
    extra.write_text("status-queue tcp://127.0.0.1:5557\n")
    assert parse_args(["-c", str(extra)], default_files=files) == Queues(
        "tcp://127.0.0.1:5557", "ipc:///home/control"
    )
    assert parse_args(
        ["--configuration", str(extra), "--status-queue", "ipc:///flag"], default_files=files
    ) == Queues("ipc:///flag", "ipc:///home/control")

    bad = tmp_path / "bad.conf"
    bad.write_text("status-queue = ipc:///x\n= nothing\n")
    for argv, message in [
        (["-c", str(bad)], f"{bad}:2: unexpected line: = nothing"),
        (["-c", missing], f"File not found: {missing}"),
        (["--status-queue", "/tmp/piw-status"], "status-queue '/tmp/piw-status' is not a"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ]:
        with pytest.raises(SystemExit) as exit:
            parse_args(argv, default_files=[])
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("usage: fleetwatch piw-monitor [-h] [--version] [-c FILE]")
        assert message in err, err
    with pytest.raises(SystemExit) as exit:
        parse_args(["--version"], default_files=[])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip()


async def test_config_file_names_the_master_to_watch(
    queues: Queues, master: StandInMaster, tmp_path: Path
) -> None:
    conf = tmp_path / "piwheels.conf"
    conf.write_text(
        f"[master]\nstatus-queue = {queues.status_queue}\ncontrol-queue = {queues.control_queue}\n"
    )
    app = build_app(parse_args(["-c", str(conf)], default_files=[]))
    async with app.run_test(size=SIZE):
        await farm_shown(app)
        assert queues.status_queue in app.status_line
