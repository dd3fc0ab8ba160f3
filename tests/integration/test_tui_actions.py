"""fleetwatch tui's actions beyond a hot-key on a process, against a real hub on real
supervisord: a group's stop from the tree, and an action with a parameter (Send signal)
through the Enter dialog, its form and its confirmation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import DataTable, OptionList, Select, Tree

from fleetwatch.demo.supervisord import Supervisord
from fleetwatch.tui import FleetApp, RemoteBackend
from tests.conftest import HubServer, source_config, standard_programs, until, wait_for

pytestmark = [pytest.mark.real, pytest.mark.anyio]


@pytest.fixture
def one(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> tuple[HubServer, Supervisord]:
    sv = supervisors("tc", standard_programs("tc"))
    hub = hub_server(source_config(sv, poll_interval=0.5))
    wait_for(lambda: hub.source("tc")["status"] == "online", 20, "tc online")
    wait_for(
        lambda: all(
            p["state"] == "RUNNING"
            for p in hub.processes().values()
            if p["group"] in ("web", "workers")
        ),
        20,
        "web and the workers running",
    )
    return hub, sv


def state(sv: Supervisord, name: str) -> str:
    return str(sv.call("supervisor.getProcessInfo", name)["statename"])


async def test_stop_a_group_from_the_tree(one: tuple[HubServer, Supervisord]) -> None:
    hub, sv = one
    app = FleetApp(RemoteBackend(hub.url))
    async with app.run_test(size=(160, 48)) as pilot:
        tree: Tree[Any] = app.query_one("#tree", Tree)
        tree.focus()
        group = ("group", "tc:workers")
        await until(lambda: group in app._tree_nodes, what="the workers group")
        tree.move_cursor(app._tree_nodes[group])
        await until(lambda: app.selected == group, what="the group selected")
        await pilot.press("x")
        await until(lambda: app.screen.id != "_default", what="the confirmation")
        assert str(app.screen.query_one("#question").render()) == "Stop tc:workers?"
        await pilot.press("y")
        await until(
            lambda: state(sv, "workers:worker_00") == state(sv, "workers:worker_01") == "STOPPED",
            what="both workers STOPPED in supervisord",
        )
        assert state(sv, "web:web") == "RUNNING"


async def test_send_signal_through_the_dialog_and_its_form(
    one: tuple[HubServer, Supervisord],
) -> None:
    hub, sv = one
    pid = sv.call("supervisor.getProcessInfo", "web:web")["pid"]
    app = FleetApp(RemoteBackend(hub.url))
    async with app.run_test(size=(160, 48)) as pilot:
        table: DataTable[Any] = app.query_one("#list", DataTable)
        await until(lambda: "process|tc:web:web" in app._row_order, what="web listed")
        table.focus()
        table.move_cursor(row=table.get_row_index("process|tc:web:web"))
        await until(lambda: app.selected == ("process", "tc:web:web"), what="web selected")
        await pilot.press("enter")
        menu = await until(lambda: app.screen.query("#action-menu"), what="the actions dialog")
        options: OptionList = menu.first(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids[:3] == ["start", "stop", "restart"]
        options.highlighted = ids.index("signal")
        await pilot.press("enter")
        select = await until(lambda: app.screen.query("#param-signal"), what="the form")
        select.first(Select).value = "TERM"
        await pilot.click("#ok")
        await until(lambda: app.screen.query("#question"), what="the confirmation")
        await pilot.press("y")
        await until(
            lambda: "Send signal tc:web:web: done" in app.status_line, 30, "the signal's result"
        )
        # TERM ended it; supervisord started it again (autorestart) with a new pid.
        await until(
            lambda: (
                (i := sv.call("supervisor.getProcessInfo", "web:web"))["pid"] not in (0, pid)
                and i["statename"] == "RUNNING"
            ),
            30,
            "web restarted by supervisord",
        )
