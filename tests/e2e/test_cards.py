"""Multivisor's cards (issue 12): the processes view as a card per supervisor (with its menu)
or per program group across supervisors, on the package's two real supervisords."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.e2e.conftest import Fleet, screenshot, state_of, tid


def test_cards_by_supervisor_act_on_supervisord(page: Page, fleet: Fleet) -> None:
    page.goto(fleet.route("processes?layout=cards"))
    cards = tid(page, "process-cards")
    expect(cards).to_be_visible()
    expect(tid(cards, "process-card")).to_have_count(2)
    alpha = page.locator('[data-testid="process-card"][data-key="alpha"]')
    expect(alpha.locator('[data-testid="card-process"]')).to_have_count(
        len([i for i in fleet.ids if i.startswith("alpha:")])
    )
    idle = alpha.locator('[data-testid="card-process"][data-id="alpha:idle:idle"]')
    assert state_of(fleet.supervisors["alpha"], "alpha:idle:idle") == "STOPPED"
    tid(idle, "card-action-start").click()
    wait_for(
        lambda: state_of(fleet.supervisors["alpha"], "alpha:idle:idle") == "RUNNING",
        30,
        "alpha's idle started from its card",
    )
    expect(idle.locator(".st")).to_have_text("RUNNING")
    tid(idle, "card-action-stop").click()
    confirm = tid(page, "confirm")
    expect(confirm).to_be_visible()
    tid(confirm, "confirm-ok").click()
    wait_for(
        lambda: state_of(fleet.supervisors["alpha"], "alpha:idle:idle") == "STOPPED",
        30,
        "alpha's idle stopped again",
    )
    # The supervisor's menu has Multivisor's update and restart.
    tid(alpha, "source-actions").click()
    expect(tid(alpha, "source-action-update")).to_be_visible()
    expect(tid(alpha, "source-action-reload")).to_be_visible()
    screenshot(page, "cards-by-supervisor")
    page.keyboard.press("Escape")
    page.reload()
    expect(tid(page, "process-cards")).to_be_visible()  # the layout is in the URL


def test_cards_by_group_span_supervisors(page: Page, fleet: Fleet) -> None:
    page.goto(fleet.route("processes?layout=cards"))
    tid(page, "group-by").select_option("group")
    web = page.locator('[data-testid="process-card"][data-key="web"]')
    expect(web.locator('[data-testid="card-process"]')).to_have_count(2)
    ids = {
        web.locator('[data-testid="card-process"]').nth(i).get_attribute("data-id")
        for i in range(2)
    }
    assert ids == {"alpha:web:web", "beta:web:web"}
    tid(page, "filter").fill("source:beta")
    expect(web.locator('[data-testid="card-process"]')).to_have_count(1)
    screenshot(page, "cards-by-group")
    tid(page, "filter").fill("")
    tid(page, "group-by").select_option("source")
    tid(page, "layout").select_option("table")
    expect(tid(page, "process-cards")).to_have_count(0)
