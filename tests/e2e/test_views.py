"""Overview, notifications and a phone-sized screen, against a real hub over real supervisords."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.e2e.conftest import (
    TIMEOUT_MS,
    Fleet,
    count_text,
    expect_rows,
    process_row,
    screenshot,
    start_no_wait,
    state_of,
    tid,
)


def test_overview_shows_every_source(page: Page, fleet: Fleet) -> None:
    page.goto(fleet.base)
    expect(tid(page, "view-overview")).to_be_visible()
    expect(tid(page, "tab-overview")).to_have_class(re.compile(r"\bactive\b"))
    cards = tid(page, "source-card")
    expect(cards).to_have_count(len(fleet.supervisors))
    for name in fleet.supervisors:
        expect(tid(page, "source-card", name)).to_have_attribute("data-status", "online")
    # The counter of STOPPED processes (idle and doomed on each supervisord, unless a
    # test has just started one) says what the hub says.
    counters = tid(page, "counter")
    expect(counters.first).to_be_visible()

    def shown_matches_hub() -> bool:
        shown = {
            (c.get_attribute("data-kind"), c.get_attribute("data-state")): c.inner_text()
            for c in counters.all()
        }
        stopped = [p for p in fleet.hub.processes().values() if p["state"] == "STOPPED"]
        text = shown.get(("process", "STOPPED"))
        return text is not None and text.strip() == str(len(stopped))

    wait_for(shown_matches_hub, TIMEOUT_MS / 1000, "the STOPPED process counter to be the hub's")
    screenshot(page, "overview")


def test_a_fatal_process_is_toasted_and_listed(page: Page, fleet: Fleet) -> None:
    sv = fleet.supervisors["beta"]
    pid = "beta:doomed:doomed"
    page.goto(fleet.route("processes"))
    expect(process_row(page, pid)).to_be_visible()
    start_no_wait(sv, "doomed")
    wait_for(lambda: state_of(sv, pid) == "FATAL", 20, "doomed to go FATAL")
    expect(process_row(page, pid)).to_have_attribute("data-state", "FATAL")
    toast = tid(page, "toast").filter(has_text="doomed")
    expect(toast).to_be_visible()
    screenshot(page, "toast-fatal")
    expect(tid(page, "unseen")).to_be_visible()
    tid(page, "tab-notifications").click()
    expect(tid(page, "view-notifications")).to_be_visible()
    note = tid(page, "note-row").filter(has_text="doomed")
    expect(note.first).to_be_visible()
    expect(note.first).to_contain_text("FATAL")
    expect(tid(page, "unseen")).to_have_count(0)
    expect(tid(page, "browser-notes")).to_be_visible()
    screenshot(page, "notifications")


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide on a {width[1]} px screen"


def test_a_phone_sized_screen(phone: Page, fleet: Fleet) -> None:
    page = phone
    page.goto(fleet.base)
    expect(tid(page, "view-overview")).to_be_visible()
    expect(tid(page, "source-card")).to_have_count(len(fleet.supervisors))
    no_sideways_scroll(page)
    screenshot(page, "phone-overview")

    tid(page, "tab-processes").tap()
    expect(tid(page, "view-processes")).to_be_visible()
    expect(tid(page, "row-count")).to_have_text(count_text(len(fleet.ids)))
    expect_rows(page, fleet.ids)
    no_sideways_scroll(page)
    screenshot(page, "phone-processes")

    tid(page, "filter").fill("group:workers")
    workers = {f"{s}:workers:worker_0{i}" for s in fleet.supervisors for i in (0, 1)}
    expect_rows(page, workers)
    # Every tab can be reached.
    for name in ("overview", "processes", "cluster", "notifications"):
        expect(tid(page, f"tab-{name}")).to_be_attached()
    tid(page, "tab-notifications").tap()
    expect(tid(page, "view-notifications")).to_be_visible()
    no_sideways_scroll(page)
    screenshot(page, "phone-notifications")
