"""Time travel in the web app (issue 13), in Debian's chromium, on a real supervisord and a
hub that keeps its history in SQLite: the fleet as it was when a process was stopped is
shown read-only, one click goes back to live, the URL keeps the past view, and the
process drawer's state strip shows the stop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from fleetwatch.config import Config, HistoryConfig, HubConfig
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port
from tests.conftest import HubServer, source_config, wait_for
from tests.e2e.conftest import process_row, screenshot, state_of, tid

WEB = "hist:web:web"


@pytest.fixture
def hub(
    tmp_path: Path, supervisors: Callable[..., Supervisord]
) -> Iterator[tuple[HubServer, Supervisord]]:
    sv = supervisors("hist", [Program("web", demo_program("service", "hist-web"))])
    config = Config(
        path=str(tmp_path / "hist.toml"),
        hub=HubConfig(name="e2e history", listen=f"127.0.0.1:{free_port()}"),
        sources={"hist": source_config(sv, poll_interval=0.3)},
        history=HistoryConfig(enabled=True, url=str(tmp_path / "hist.history.db")),
    )
    server = HubServer(config)
    try:
        wait_for(
            lambda: server.processes().get(WEB, {}).get("state") == "RUNNING", 30, "web running"
        )
        yield server, sv
    finally:
        server.close()


def state_in_history(server: HubServer, at: float) -> str | None:
    r = server.http.get("/api/history/fleet", params={"at": f"{at:.3f}"})
    if r.status_code != 200:
        return None
    return next((p["state"] for p in r.json()["processes"] if p["id"] == WEB), None)


def test_the_past_read_only_then_back_to_live(
    page: Page, hub: tuple[HubServer, Supervisord]
) -> None:
    server, sv = hub
    assert server.action("process", WEB, "stop").json()["ok"]
    wait_for(lambda: server.processes()[WEB]["state"] == "STOPPED", 30, "web stopped in the hub")

    # A moment the history knows web was stopped (the writer works in batches).
    def stop_recorded() -> int | None:
        t = int(time.time())  # the app's links carry whole seconds
        return t if state_in_history(server, t) == "STOPPED" else None

    stopped_at = wait_for(stop_recorded, 30, "the stop in the history")
    assert server.action("process", WEB, "start").json()["ok"]
    wait_for(lambda: state_of(sv, WEB) == "RUNNING", 30, "web running again")
    wait_for(lambda: server.processes()[WEB]["state"] == "RUNNING", 30, "web running in the hub")

    page.goto(f"{server.url}/#/processes")
    row = process_row(page, WEB)
    expect(row.locator(".st")).to_have_text("RUNNING")
    expect(tid(row, "action-stop")).to_be_visible()

    page.goto(f"{server.url}/#/processes?at={int(stopped_at)}")
    banner = tid(page, "past-banner")
    expect(banner).to_be_visible()
    expect(row.locator(".st")).to_have_text("STOPPED")
    expect(row.locator('[data-testid^="action-"]')).to_have_count(0)  # read-only
    screenshot(page, "history-past")

    page.reload()  # the URL keeps the past view
    expect(tid(page, "past-banner")).to_be_visible()
    expect(process_row(page, WEB).locator(".st")).to_have_text("STOPPED")

    tid(page, "back-to-live").click()
    expect(tid(page, "past-banner")).to_have_count(0)
    expect(process_row(page, WEB).locator(".st")).to_have_text("RUNNING")
    expect(tid(process_row(page, WEB), "action-stop")).to_be_visible()
    assert "at=" not in page.url

    process_row(page, WEB).locator(".pname").click()
    strip = tid(page, "state-strip")
    expect(strip).to_be_visible()
    expect(strip.locator('[data-testid="state-segment"][data-state="STOPPED"]')).to_have_count(1)
    expect(
        strip.locator('[data-testid="state-segment"][data-state="RUNNING"]').last
    ).to_be_visible()
    screenshot(page, "history-strip")
