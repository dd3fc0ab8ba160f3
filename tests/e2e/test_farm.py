"""The build farm view against a real hub (a ``fleetwatch serve`` subprocess) with a
piwheels source watching the stand-in master (``fleetwatch.demo.piwheels.StandInMaster``:
the recorded traffic of a real piw-master with two build slaves, replayed byte for byte
over real ZeroMQ sockets; it records what it receives).

The farm view shows the master and both slaves; a build appears in the job list and the
timeline; pressing the master's "pause" sends ``SLEEP null`` to the master.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

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
SLOW = "piwlab-slow 0.1"
CLOCK = re.compile(r"^\d+:\d\d:\d\d$")
SLEEP_NULL = bytes.fromhex("8265534c454550f6")
"""``["SLEEP", null]`` as piw-monitor sends it for "pause" (piwheels.md §3)."""


def seconds(clock: str) -> int:
    """ "0:01:05" -> 65."""
    h, m, s = (int(x) for x in clock.strip().split(":"))
    return h * 3600 + m * 60 + s


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

    def builds(self) -> list[dict[str, object]]:
        jobs = self.api("/api/jobs")
        assert isinstance(jobs, list)
        return [j for j in jobs if j["source"] == SOURCE]

    def slaves(self) -> list[dict[str, object]]:
        nodes = self.api("/api/nodes")
        assert isinstance(nodes, list)
        return [n for n in nodes if n["source"] == SOURCE and n["labels"].get("role") == "slave"]


@pytest.fixture(scope="module")
def farm_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FarmHub]:
    """One replay for the module's tests, in file order: it goes on until the recorded
    pause, which the last test sends."""
    tmp_path = tmp_path_factory.mktemp("farm")
    status = f"ipc://{tmp_path}/piw-status"
    control = f"ipc://{tmp_path}/piw-control"
    # Gated: playback stops at the recorded SLEEP null (~31 s in) until it arrives, so
    # what follows is the real master's answer to it. Fresh: the recorded datetimes
    # moved to now (the rest byte for byte), and at the recorded pace, so the page's
    # clock and the master's agree, as they do with a real master.
    master = StandInMaster(status, control, speed=1.0, gated=True, fresh=True)
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

    # The 180 s build (recorded ~23 s in) runs on: its slave's task time ticks.
    busy = tid(page, "slave-row").filter(has=tid(page, "slave-task").get_by_text(SLOW, exact=True))
    expect(busy).to_have_count(1, timeout=60_000)
    ticking = tid(busy, "task-time")
    expect(ticking).to_have_text(CLOCK)
    first = seconds(ticking.inner_text())
    wait_for(lambda: seconds(ticking.inner_text()) > first, 10, "the task time to tick")
    expect(tid(busy, "slave-status")).to_contain_text("building")

    # Builds appear in the job list (on a slave and the master): the recorded failed one
    # (BUILD then DONE) and the good one (BUILD, SEND, DONE), both before the pause.
    failed = page.locator('[data-testid="job-row"][data-state="failed"]')
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("piwlab-broken 0.1 (cp311)")
    expect(failed).to_contain_text("vm")
    expect(tid(failed, "build-result")).to_have_text("failed")
    done = page.locator('[data-testid="job-row"][data-state="done"]')
    expect(done).to_contain_text("piwlab-demo 0.1 (cp311)")
    expect(tid(done, "build-result")).to_have_text("built")
    screenshot(page, "farm-desktop")
    # ... and in the timeline, on their slaves' rows.
    tid(page, "farm-tab-timeline").click()
    expect(tid(page, "gantt")).to_be_visible()
    ids = {r["id"] for r in farm_hub.builds()}
    expect(tid(page, "gantt-bar")).to_have_count(len(ids))
    screenshot(page, "farm-desktop-timeline")


def test_the_farm_on_a_phone(phone: Page, farm_hub: FarmHub) -> None:
    page = phone
    page.goto(farm_hub.route("farm"))
    expect(tid(page, "farm-master")).to_be_visible()
    expect(tid(page, "slave-row")).to_have_count(2)
    expect(tid(tid(page, "farm-master"), "action-pause")).to_be_visible()
    # Neither the page nor the view's scroll box is wider than the screen.
    page_w, screen_w, box_w, box_client = page.evaluate(
        """(() => { const m = document.querySelector('main.content')
                    return [document.documentElement.scrollWidth, window.innerWidth,
                            m.scrollWidth, m.clientWidth] })()"""
    )
    assert page_w <= screen_w, f"the page is {page_w} px wide on a {screen_w} px screen"
    assert box_w <= box_client, f"the farm view is {box_w} px wide in {box_client} px"
    screenshot(page, "farm-phone")


def test_pause_sends_sleep_to_the_master(page: Page, farm_hub: FarmHub) -> None:
    page.goto(farm_hub.route("farm"))
    master = tid(page, "farm-master")
    expect(master).to_have_attribute("data-state", "running")
    # The recording has reached the point where the real master was paused.
    wait_for(lambda: farm_hub.master.waiting_for == SLEEP_NULL, 30, "the replay to reach the pause")
    assert SLEEP_NULL not in farm_hub.master.received
    tid(master, "action-pause").click()
    # "pause" does not ask first (the source's spec says so): no dialog, a toast.
    expect(tid(page, "confirm")).to_have_count(0)
    expect(tid(page, "toast").first).to_contain_text("Pause")
    wait_for(
        lambda: SLEEP_NULL in farm_hub.master.received,
        15,
        "the stand-in master to receive SLEEP null",
    )
    # The master is shown paused (the source infers it: the protocol has no such field).
    expect(master).to_have_attribute("data-state", "paused")
    # ... and on its card on the Overview.
    tid(page, "tab-overview").click()
    card = tid(page, "source-card", SOURCE)
    expect(tid(card, "farm-tile-master")).to_contain_text("paused")
    expect(tid(card, "farm-tile-slaves")).to_contain_text("2")
