"""The build farm view against a real hub (a ``fleetwatch serve`` subprocess) with a
piwheels source watching the stand-in master (``fleetwatch.demo.piwheels.StandInMaster``:
the recorded traffic of a real piw-master with two build slaves, replayed byte for byte
over real ZeroMQ sockets; it records what it receives).

The farm view shows the master and both slaves; a build appears in the job list and the
timeline; pressing the master's "pause" sends ``SLEEP null`` to the master.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from fleetwatch.demo.piwheels import StandInMaster
from fleetwatch.demo.supervisord import free_port
from tests.conftest import wait_for
from tests.e2e.conftest import HubProcess, screenshot, tid

SOURCE = "piw"
MASTER = f"{SOURCE}:master"
SLAVE_LABELS = {"lab-slave-1", "lab-slave-2"}
SLEEP_NULL = bytes.fromhex("8265534c454550f6")
"""``["SLEEP", null]`` as piw-monitor sends it for "pause" (piwheels.md §3)."""


@dataclass
class FarmHub:
    hub: HubProcess
    master: StandInMaster

    def route(self, path: str) -> str:
        return f"{self.hub.url}/#/{path}"

    def api(self, path: str) -> object:
        r = httpx.get(f"{self.hub.url}{path}", timeout=10)
        r.raise_for_status()
        return r.json()

    def slaves(self) -> list[dict[str, object]]:
        nodes = self.api("/api/nodes")
        assert isinstance(nodes, list)
        return [n for n in nodes if n["source"] == SOURCE and n["labels"].get("role") == "slave"]


@pytest.fixture
def farm_hub(tmp_path: Path) -> Iterator[FarmHub]:
    status = f"ipc://{tmp_path}/piw-status"
    control = f"ipc://{tmp_path}/piw-control"
    master = StandInMaster(status, control)
    master.start()
    port = free_port()
    config = tmp_path / "farm.toml"
    config.write_text(
        "\n".join(
            [
                "[hub]",
                'name = "e2e farm"',
                f'listen = "127.0.0.1:{port}"',
                "",
                f"[sources.{SOURCE}]",
                'kind = "piwheels"',
                f'status_queue = "{status}"',
                f'control_queue = "{control}"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    hub = HubProcess(config, port)
    try:
        hub.start([SOURCE])
        farm = FarmHub(hub, master)
        wait_for(lambda: len(farm.slaves()) == 2, 30, "the hub to know both build slaves")
        yield farm
    finally:
        hub.stop()
        master.stop()


def test_the_farm_view_shows_the_master_slaves_and_a_build(page: Page, farm_hub: FarmHub) -> None:
    page.goto(farm_hub.route("farm"))
    expect(tid(page, "view-farm")).to_be_visible()
    master = tid(page, "farm-master")
    expect(master).to_have_attribute("data-id", MASTER)
    expect(master).to_have_attribute("data-state", "running")
    expect(tid(master, "master-label")).to_have_text("vm")
    expect(tid(master, "farm-abi")).not_to_have_count(0)

    rows = tid(page, "slave-row")
    expect(rows).to_have_count(2)
    expect(tid(page, "slave-label")).to_have_text(sorted(SLAVE_LABELS))
    expect(tid(page, "slave-abi").first).to_have_text("cp311")

    # A build appears in the job list, on a slave and the master, and in the timeline.
    build = tid(page, "job-row").first
    expect(build).to_be_visible(timeout=60_000)
    expect(build).to_contain_text("(cp311)")
    expect(build).to_contain_text("vm")
    tid(page, "farm-tab-timeline").click()
    expect(tid(page, "gantt-bar").first).to_be_attached()
    screenshot(page, "farm-desktop")


def test_pause_sends_sleep_to_the_master(page: Page, farm_hub: FarmHub) -> None:
    page.goto(farm_hub.route("farm"))
    master = tid(page, "farm-master")
    expect(master).to_have_attribute("data-state", "running")
    before = len(farm_hub.master.received)
    tid(master, "action-pause").click()
    # "pause" does not ask first (the source's spec says so): no dialog, a toast.
    expect(tid(page, "confirm")).to_have_count(0)
    expect(tid(page, "toast").first).to_contain_text("Pause")
    wait_for(
        lambda: SLEEP_NULL in farm_hub.master.received[before:],
        15,
        "the stand-in master to receive SLEEP null",
    )


def test_the_farm_on_a_phone(phone: Page, farm_hub: FarmHub) -> None:
    page = phone
    page.goto(farm_hub.route("farm"))
    expect(tid(page, "slave-row")).to_have_count(2)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the farm view scrolls sideways on a phone ({width} px)"
    screenshot(page, "farm-phone")
