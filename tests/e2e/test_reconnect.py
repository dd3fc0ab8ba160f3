"""Killing and restarting the hub: the page says it lost the hub, then catches up, without
a reload."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from fleetwatch.demo.supervisord import Program, Supervisord, demo_program
from tests.conftest import wait_for
from tests.e2e.conftest import HubProcess, process_row, screenshot, state_of, tid

RECONNECT_MS = 30_000
"""The page retries with a capped back-off (5 s); the hub restarts in a second or two."""


def test_the_page_reconnects_to_a_restarted_hub(
    page: Page,
    supervisors: Callable[..., Supervisord],
    hub_process: Callable[..., HubProcess],
) -> None:
    sv = supervisors(
        "gamma",
        [
            Program("web", demo_program("service", "gamma-web")),
            Program("idle", demo_program("service", "gamma-idle"), autostart=False),
        ],
    )
    hub = hub_process(sv)
    web, idle = "gamma:web:web", "gamma:idle:idle"
    page.goto(f"{hub.url}/#/processes")
    expect(process_row(page, web)).to_have_attribute("data-state", "RUNNING")
    expect(process_row(page, idle)).to_have_attribute("data-state", "STOPPED")
    expect(tid(page, "banner")).to_have_count(0)
    page.evaluate("window.__e2eMarker = 'before the kill'")
    epoch = page.evaluate("window.__fleetwatch.fleet.epoch")

    hub.kill()
    banner = tid(page, "banner")
    expect(banner).to_be_visible(timeout=RECONNECT_MS)
    expect(banner).to_contain_text("reconnecting")
    screenshot(page, "reconnect-banner")

    # While the hub is away, the fleet changes behind its back.
    sv.call("supervisor.stopProcess", "web:web")
    sv.call("supervisor.startProcess", "idle:idle")
    wait_for(lambda: state_of(sv, web) == "STOPPED" and state_of(sv, idle) == "RUNNING")
    # The page still shows what it last knew.
    expect(process_row(page, web)).to_have_attribute("data-state", "RUNNING")

    hub.start([sv.name])
    expect(banner).to_have_count(0, timeout=RECONNECT_MS)
    expect(process_row(page, web)).to_have_attribute("data-state", "STOPPED")
    expect(process_row(page, idle)).to_have_attribute("data-state", "RUNNING")
    assert page.evaluate("window.__e2eMarker") == "before the kill", "the page was reloaded"
    # A new hub: the page took its snapshot (a new epoch) rather than resuming old seqs.
    assert page.evaluate("window.__fleetwatch.fleet.epoch") != epoch
    assert page.evaluate("window.__fleetwatch.fleet.connection.status") == "live"
