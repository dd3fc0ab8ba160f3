"""The Processes view in a real browser against a real hub over two real supervisords."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.conftest import wait_for
from tests.e2e.conftest import (
    Fleet,
    action_spec,
    count_text,
    expect_rows,
    process_row,
    screenshot,
    state_of,
    tid,
)

LOG_TIMEOUT_MS = 20_000


def open_processes(page: Page, fleet: Fleet, query: str = "") -> None:
    page.goto(fleet.route("processes" + (f"?q={query}" if query else "")))
    expect(tid(page, "view-processes")).to_be_visible()


def test_the_page_shows_every_process(page: Page, fleet: Fleet) -> None:
    open_processes(page, fleet)
    expect(tid(page, "row-count")).to_have_text(count_text(len(fleet.ids)))
    expect_rows(page, fleet.ids)
    hub = fleet.hub.processes()
    # The states shown are the hub's (a stopped program and a running service at least).
    for pid in ("alpha:idle:idle", "beta:web:web"):
        expect(process_row(page, pid)).to_have_attribute("data-state", hub[pid]["state"])
    expect(tid(page, "tab-processes")).to_have_class(re.compile(r"\bactive\b"))
    screenshot(page, "processes")


def test_filtering_narrows_the_table_and_the_url(page: Page, fleet: Fleet) -> None:
    open_processes(page, fleet)
    expect_rows(page, fleet.ids)
    tid(page, "filter").fill("talker")
    talkers = {"alpha:talker:talker", "beta:talker:talker"}
    expect_rows(page, talkers)
    expect(tid(page, "row-count")).to_have_text(count_text(len(fleet.ids), 2))
    expect(page).to_have_url(re.compile(r"#/processes\?(.*&)?q=talker(&|$)"))
    screenshot(page, "processes-filtered")

    # A shared link lands on the same filtered table.
    open_processes(page, fleet, "group:workers%20source:beta")
    expect(tid(page, "filter")).to_have_value("group:workers source:beta")
    expect_rows(page, {"beta:workers:worker_00", "beta:workers:worker_01"})

    # Emptying the filter brings every row back, and the URL forgets it.
    tid(page, "filter").fill("")
    expect_rows(page, fleet.ids)
    expect(page).not_to_have_url(re.compile(r"q=group"))


def test_stopping_a_process_from_the_page(page: Page, fleet: Fleet) -> None:
    sv = fleet.supervisors["alpha"]
    pid = "alpha:web:web"
    wait_for(lambda: state_of(sv, pid) == "RUNNING", 20, "alpha's web RUNNING")
    confirm = action_spec(fleet.hub.source("alpha"), "stop")["confirm"]
    open_processes(page, fleet)
    row = process_row(page, pid)
    expect(row).to_have_attribute("data-state", "RUNNING")
    try:
        tid(row, "action-stop").click()
        if confirm:
            dialog = tid(page, "confirm")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text(pid)
            screenshot(page, "confirm-stop")
            tid(dialog, "confirm-ok").click()
            expect(dialog).to_be_hidden()
        wait_for(lambda: state_of(sv, pid) == "STOPPED", 20, "supervisord to say STOPPED")
        expect(row).to_have_attribute("data-state", "STOPPED")
        # The outcome is toasted.
        expect(tid(page, "toast").filter(has_text="Stop")).to_be_visible()
        # Starting it again from the page (start asks no confirmation unless the spec says so).
        start_confirm = action_spec(fleet.hub.source("alpha"), "start")["confirm"]
        tid(row, "action-start").click()
        if start_confirm:
            tid(page, "confirm-ok").click()
        wait_for(lambda: state_of(sv, pid) == "RUNNING", 20, "supervisord to say RUNNING")
        expect(row).to_have_attribute("data-state", "RUNNING")
    finally:
        if state_of(sv, pid) == "STOPPED":
            sv.call("supervisor.startProcess", "web:web")


def test_bulk_action_on_selected_rows(page: Page, fleet: Fleet) -> None:
    sv = fleet.supervisors["beta"]
    workers = {"beta:workers:worker_00", "beta:workers:worker_01"}
    open_processes(page, fleet, "group:workers%20source:beta")
    expect_rows(page, workers)
    tid(page, "select-all").check()
    for pid in workers:
        expect(tid(process_row(page, pid), "row-select")).to_be_checked()
    try:
        tid(page, "bulk-stop").click()
        dialog = tid(page, "confirm")  # several targets: always asked
        expect(dialog).to_be_visible()
        tid(dialog, "confirm-ok").click()
        for pid in workers:
            wait_for(lambda p=pid: state_of(sv, p) == "STOPPED", 20, f"{pid} STOPPED")  # type: ignore[misc]
            expect(process_row(page, pid)).to_have_attribute("data-state", "STOPPED")
        # The other supervisord's workers were not touched.
        alpha = fleet.supervisors["alpha"]
        assert state_of(alpha, "alpha:workers:worker_00") == "RUNNING"
    finally:
        sv.call("supervisor.startProcessGroup", "workers")


def test_log_viewer_follows_new_lines(page: Page, fleet: Fleet) -> None:
    """talker writes a stdout line every 0.5 s (with non-ASCII text): the viewer shows
    new lines as they come and stays scrolled to the end while following."""
    pid = "alpha:talker:talker"
    open_processes(page, fleet)
    row = process_row(page, pid)
    expect(row).to_be_visible()
    open_log(page, row)
    viewer = tid(page, "log-viewer")
    expect(viewer).to_be_visible()
    text = tid(viewer, "log-text")
    expect(text).to_contain_text("line ", timeout=LOG_TIMEOUT_MS)
    expect(text).to_contain_text("température=21°C, ✓ 日本語")
    follow = tid(viewer, "log-follow")
    if follow.get_attribute("type") == "checkbox":
        expect(follow).to_be_checked()
    last = last_line_number(text.inner_text())
    page.wait_for_function(
        """([last]) => {
            const el = document.querySelector('[data-testid="log-viewer"] [data-testid="log-text"]')
            const nums = Array.from(el.textContent.matchAll(/ line (\\d+):/g), m => +m[1])
            return nums.length && Math.max(...nums) >= last + 3
        }""",
        arg=[last],
        timeout=LOG_TIMEOUT_MS,
    )
    assert at_the_end(page), "following, but the log is not scrolled to its end"
    screenshot(page, "log-viewer")


def open_log(page: Page, row: Locator) -> None:
    """The row's stdout log: its ``log-stdout`` button, or the drawer's."""
    in_row = tid(row, "log-stdout")
    if in_row.count():
        in_row.first.click()
        return
    row.locator("td, [role=cell]").nth(1).click()
    drawer = tid(page, "drawer")
    expect(drawer).to_be_visible()
    tid(drawer, "log-stdout").click()


def last_line_number(text: str) -> int:
    numbers = [int(n) for n in re.findall(r" line (\d+):", text)]
    assert numbers, f"no talker line in the log: {text[-300:]!r}"
    return max(numbers)


def at_the_end(page: Page) -> bool:
    """Whether the scrolling box around ``log-text`` shows its last line."""
    return bool(
        page.evaluate(
            """() => {
                const sel = '[data-testid="log-viewer"] [data-testid="log-text"]'
                let el = document.querySelector(sel)
                while (el && !(el.scrollHeight > el.clientHeight + 2 &&
                       /(auto|scroll)/.test(getComputedStyle(el).overflowY))) el = el.parentElement
                if (!el) return true  // everything fits: nothing to scroll
                return el.scrollHeight - el.scrollTop - el.clientHeight < 40
            }"""
        )
    )


def test_keyboard_shortcuts(page: Page, fleet: Fleet) -> None:
    open_processes(page, fleet)
    expect_rows(page, fleet.ids)
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("?")
    help_panel = tid(page, "help")
    expect(help_panel).to_be_visible()
    screenshot(page, "help")
    page.keyboard.press("Escape")
    expect(help_panel).to_be_hidden()
    page.keyboard.press("/")
    expect(tid(page, "filter")).to_be_focused()
    expect(tid(page, "filter")).to_have_value("")  # the "/" was not typed into it
    page.keyboard.type("flapper")
    expect_rows(page, {"alpha:flapper:flapper", "beta:flapper:flapper"})
    # g c: another view.
    tid(page, "view-processes").click(position={"x": 2, "y": 2})
    page.keyboard.press("g")
    page.keyboard.press("c")
    expect(tid(page, "view-cluster")).to_be_visible()


def test_light_theme(page: Page, fleet: Fleet) -> None:
    open_processes(page, fleet)
    expect_rows(page, fleet.ids)
    before = page.evaluate("document.documentElement.dataset.theme")
    tid(page, "theme").click()
    after = "light" if before == "dark" else "dark"
    expect(page.locator("html")).to_have_attribute("data-theme", after)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background not in ("", "rgba(0, 0, 0, 0)")
    screenshot(page, f"processes-{after}")
