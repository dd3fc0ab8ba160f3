"""Notifications that calm down (issue 12), in Debian's chromium on a real supervisord.

A flapper (exits 0.3 s after it starts; supervisord restarts it at once) gives one toast
whose count grows, not a toast per change; muting from the toast holds across a page
reload; past three toasts the rest collapse into "+N more", which opens Notifications;
the toasts cover no header, neither at 1400 px nor at 390 px.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from fleetwatch.demo.supervisord import Program, Supervisord
from tests.conftest import HubServer, source_config, wait_for
from tests.e2e.conftest import process_row, screenshot, start_no_wait, state_of, tid

Supervisors = Callable[..., Supervisord]
HubServers = Callable[..., HubServer]

FLAPPER = Program(
    "flapper", "sh -c 'sleep 0.3; exit 3'", autostart=False, startsecs=0, autorestart=True
)


def doomed(name: str) -> Program:
    """Exits at once and is never retried: starting it makes it FATAL."""
    return Program(
        name, "/bin/false", autostart=False, autorestart=False, extra={"startretries": "0"}
    )


def route(hub: HubServer, path: str) -> str:
    return f"{hub.url}/#/{path}"


def toast_count(page: Page) -> int:
    text = tid(page, "toast-count").first.inner_text()
    match = re.fullmatch(r"\u00d7(\d+)", text.strip())
    assert match, f"toast count {text!r}"
    return int(match.group(1))


def boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def assert_toasts_cover_no_header(page: Page) -> None:
    """The toast stack overlaps no page header, view header or table column header."""
    stack = tid(page, "toasts").bounding_box()
    assert stack is not None
    assert stack["height"] > 0
    headers: list[dict[str, Any]] = page.eval_on_selector_all(
        "header, .page-head, .thead, [role=columnheader], .cluster-head, .summary",
        """els => els.map(e => { const r = e.getBoundingClientRect();
            return {x: r.x, y: r.y, width: r.width, height: r.height, what: e.className} })
            .filter(r => r.width > 0 && r.height > 0)""",
    )
    assert headers, "no header found to check against"
    covered = [h["what"] for h in headers if boxes_overlap(stack, h)]
    assert not covered, f"the toasts cover {covered}"


def test_a_flapper_gives_one_updating_toast_and_a_mute_holds_across_reload(
    page: Page, supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("flap", [FLAPPER, doomed("doomed")])
    hub = hub_server(source_config(sv, poll_interval=0.2), flap_changes=4, flap_window=30)
    page.goto(route(hub, "processes"))
    expect(process_row(page, "flap:flapper:flapper")).to_be_visible()
    expect(process_row(page, "flap:flapper:flapper")).to_have_attribute("data-state", "STOPPED")

    start_no_wait(sv, "flapper")
    toast = tid(page, "toast").filter(has_text="flapper")
    expect(toast.and_(page.locator('[data-kind="flapping"]'))).to_be_visible(timeout=30_000)
    expect(toast).to_contain_text("flapping")
    first = toast_count(page)
    assert first >= 4
    page.wait_for_function(
        """n => { const c = document.querySelector('[data-testid="toast-count"]');
                  return c && Number(c.textContent.trim().slice(1)) > n }""",
        arg=first,
        timeout=20_000,
    )
    assert toast_count(page) > first
    expect(tid(page, "toast")).to_have_count(1)  # one toast, updated: not one per change
    screenshot(page, "toast-flapping")

    # The hub's history holds the flapping note once, and the page lists it once.
    flapping = [n for n in hub.get("/api/notifications") if n.get("kind") == "flapping"]
    assert len(flapping) == 1

    # Mute the whole source from the toast: its toasts go, and stay gone after a reload.
    tid(toast, "mute-open").click()
    tid(toast, "mute-source-forever").click()
    expect(tid(page, "toast")).to_have_count(0)
    page.reload()
    expect(process_row(page, "flap:doomed:doomed")).to_have_attribute("data-state", "STOPPED")
    start_no_wait(sv, "doomed")
    wait_for(lambda: state_of(sv, "flap:doomed:doomed") == "FATAL", 20, "doomed to go FATAL")
    expect(process_row(page, "flap:doomed:doomed")).to_have_attribute("data-state", "FATAL")
    tid(page, "tab-notifications").click()
    doomed_row = tid(page, "note-row").filter(has_text="doomed failed")
    expect(doomed_row).to_be_visible()  # still listed, dimmed
    expect(doomed_row).to_have_attribute("data-muted", "yes")
    expect(tid(page, "note-row").and_(page.locator('[data-kind="flapping"]'))).to_have_count(1)
    expect(tid(page, "toast")).to_have_count(0)  # the FATAL came through the stream: no toast
    expect(tid(page, "unseen")).to_have_count(0)
    item = tid(page, "mute-item", "source:flap")
    expect(item).to_be_visible()
    screenshot(page, "notifications-muted")

    # "Show muted" off hides them; unmute brings the mute list and the dimming back to none.
    tid(page, "notes-show-muted").uncheck()
    expect(doomed_row).to_have_count(0)
    tid(page, "notes-show-muted").check()
    tid(item, "unmute").click()
    expect(tid(page, "mute-list")).to_have_count(0)
    expect(doomed_row).to_have_attribute("data-muted", "no")


def collapse_past_three(page: Page, supervisors: Supervisors, hub_server: HubServers) -> None:
    names = [f"doomed{i}" for i in range(1, 7)]
    sv = supervisors("many", [doomed(n) for n in names])
    hub = hub_server(source_config(sv, poll_interval=0.2))
    page.goto(route(hub, "processes"))
    for n in names:
        expect(process_row(page, f"many:{n}:{n}")).to_have_attribute("data-state", "STOPPED")
    for n in names:
        start_no_wait(sv, n)
    for n in names:
        wait_for(lambda n=n: state_of(sv, f"many:{n}:{n}") == "FATAL", 20, f"{n} FATAL")
    more = tid(page, "toast-more")
    expect(more).to_have_text(re.compile(r"^\s*\+3 more\s*$"))
    expect(tid(page, "toast")).to_have_count(3)
    assert_toasts_cover_no_header(page)
    width = page.viewport_size["width"] if page.viewport_size else 0
    screenshot(page, f"toasts-collapsed-{width}")
    more.click()
    expect(tid(page, "view-notifications")).to_be_visible()
    expect(tid(page, "note-row").filter(has_text="failed")).to_have_count(6)
    expect(tid(page, "toast")).to_have_count(0)
    # A row's mute menu fits the screen, and nothing scrolls sideways.
    row = tid(page, "note-row").first
    tid(row, "mute-open").click()
    menu = tid(row, "mute-menu")
    expect(menu).to_be_visible()
    box = menu.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    sideways = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert sideways <= 0
    screenshot(page, f"notifications-mute-menu-{width}")
    page.keyboard.press("Escape")
    expect(menu).to_have_count(0)
    tid(row, "mute-open").click()
    tid(menu, "mute-group-1h").click()
    expect(tid(page, "mute-item")).to_have_count(1)
    expect(tid(page, "note-row").and_(page.locator('[data-muted="yes"]'))).to_have_count(1)


def test_past_three_toasts_collapse_into_more(
    page: Page, supervisors: Supervisors, hub_server: HubServers
) -> None:
    collapse_past_three(page, supervisors, hub_server)


def test_past_three_toasts_collapse_on_a_phone(
    phone: Page, supervisors: Supervisors, hub_server: HubServers
) -> None:
    collapse_past_three(phone, supervisors, hub_server)
