"""Login in a real browser (Debian's chromium) against a real hub with ``[[users]]`` over a
real supervisord: the login page, one error text, the rate limit, the operator's stop
(checked in supervisord over XML-RPC), what each role is offered, the admin's audit page,
logout and a session ended elsewhere (the stream closes, no reconnect loop).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, expect

from fleetwatch.accounts import hash_password
from fleetwatch.config import load_config
from fleetwatch.demo.supervisord import Supervisord, free_port, stop_all
from tests.conftest import HubServer, standard_programs, wait_for
from tests.e2e.conftest import (
    TIMEOUT_MS,
    expect_rows,
    new_page,
    process_ids,
    process_row,
    screenshot,
    state_of,
    tid,
)

PASSWORDS = {
    "root": "root-Secret-1",
    "oper": "oper-Secret-2",
    "view": "view-Secret-3",
    "locked": "locked-Secret-4",
}
ROLES = {"root": "admin", "oper": "operator", "view": "viewer", "locked": "operator"}
SOURCE = "gamma"
WEB = f"{SOURCE}:web:web"
ACTIONS = (
    '[data-testid^="action-"], [data-testid^="bulk-"], [data-testid^="group-action-"], '
    '[data-testid="source-actions"], [data-testid^="source-action-"]'
)
"""Every action button, menu and menu item of the app."""


class Secured:
    """A hub with ``[[users]]`` watching one real supervisord."""

    def __init__(self, hub: HubServer, sv: Supervisord) -> None:
        self.hub = hub
        self.sv = sv
        self.base = f"{hub.url}/"

    def route(self, path: str) -> str:
        return f"{self.base}#/{path}"

    def session(self, user: str) -> httpx.Client:
        """An httpx client logged in as ``user`` (with its CSRF header)."""
        c = httpx.Client(base_url=self.hub.url, timeout=30)
        r = c.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf"]
        return c


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    sv = Supervisord(root, SOURCE, standard_programs(SOURCE))
    hub: HubServer | None = None
    try:
        sv.start()
        users = "".join(
            f'[[users]]\nname = "{u}"\npassword = "{hash_password(p)}"\nrole = "{ROLES[u]}"\n'
            for u, p in PASSWORDS.items()
        )
        path = root / "fleet.toml"
        path.write_text(
            f'[hub]\nname = "secured fleet"\nlisten = "127.0.0.1:{free_port()}"\n'
            f'[sources.{SOURCE}]\nkind = "supervisor"\nurl = "{sv.url}"\npoll_interval = 0.5\n'
            + users,
            encoding="utf-8",
        )
        hub = HubServer(load_config(str(path)))
        result = Secured(hub, sv)
        with closing(result.session("root")) as c:
            wait_for(
                lambda: (
                    {p["id"] for p in c.get("/api/processes").json()} == process_ids(sv)
                    and c.get(f"/api/processes/{WEB}").json()["state"] == "RUNNING"
                ),
                30,
                "the hub to see every process of the supervisord",
            )
        yield result
    finally:
        if hub is not None:
            hub.close()
        stop_all([sv])


def log_in(page: Page, user: str, password: str | None = None) -> None:
    expect(tid(page, "view-login")).to_be_visible()
    tid(page, "login-username").fill(user)
    tid(page, "login-password").fill(PASSWORDS[user] if password is None else password)
    tid(page, "login-submit").click()


def logged_in(page: Page, secured: Secured, user: str, route: str = "") -> None:
    page.goto(secured.route(route))
    log_in(page, user)
    expect(tid(page, "view-login")).to_have_count(0)
    expect(tid(page, "user-menu")).to_contain_text(user)


def ensure_running(secured: Secured) -> None:
    if state_of(secured.sv, WEB) != "RUNNING":
        secured.sv.call("supervisor.startProcess", "web:web", True)
    wait_for(lambda: state_of(secured.sv, WEB) == "RUNNING", 30, f"{WEB} running")


# ------------------------------------------------------------------------------ tests


def test_the_login_page_and_one_error_for_any_wrong_part(page: Page, secured: Secured) -> None:
    page.goto(secured.base)
    expect(tid(page, "view-login")).to_be_visible()
    expect(tid(page, "tab-overview")).to_have_count(0)  # no app before login
    log_in(page, "oper", "not-the-password")
    error = tid(page, "login-error")
    expect(error).to_have_text("Wrong username or password.")
    expect(tid(page, "login-password")).to_have_value("")  # the wrong password is gone
    log_in(page, "nobody-here", "whatever")  # an unknown account: the very same text
    expect(error).to_have_text("Wrong username or password.")
    expect(tid(page, "view-login")).to_be_visible()


def test_the_rate_limit_shows_its_wait(page: Page, secured: Secured) -> None:
    with httpx.Client(base_url=secured.hub.url, timeout=30) as c:
        for _ in range(5):  # the per-account limit
            r = c.post("/api/login", json={"username": "locked", "password": "x"})
            assert r.status_code == 401
    page.goto(secured.base)
    log_in(page, "locked")  # the right password, but too late
    expect(tid(page, "login-error")).to_have_text(
        re.compile(r"Too many failed logins\. Try again in \d")
    )
    expect(tid(page, "login-submit")).to_be_disabled()  # until Retry-After has passed
    expect(tid(page, "view-login")).to_be_visible()


def test_the_operator_stops_a_process_but_gets_no_supervisord_actions(
    page: Page, secured: Secured
) -> None:
    ensure_running(secured)
    logged_in(page, secured, "oper", "processes")
    expect_rows(page, process_ids(secured.sv))
    tid(page, "user-menu").click()
    expect(tid(page, "user-role")).to_have_text("operator")
    expect(tid(page, "user-name")).to_have_text("oper")
    tid(page, "user-menu").click()

    row = process_row(page, WEB)
    expect(row).to_have_attribute("data-state", "RUNNING")
    tid(row, "action-stop").click()
    tid(page, "confirm-ok").click()  # the supervisor source's stop asks first
    wait_for(lambda: state_of(secured.sv, WEB) == "STOPPED", 30, f"supervisord to stop {WEB}")
    expect(row).to_have_attribute("data-state", "STOPPED")
    expect(tid(page, "toast").filter(has_text=re.compile(r"\b1 ok\b")).first).to_be_visible()

    # The supervisor's own menu has the operator's actions only: no update / shutdown.
    tid(page, "tab-overview").click()
    card = tid(page, "source-card", SOURCE)
    tid(card, "source-actions").click()
    expect(tid(page, "source-action-clear_log")).to_be_visible()
    for admin_only in ("update", "reload", "shutdown", "reread"):
        expect(tid(page, f"source-action-{admin_only}")).to_have_count(0)
    expect(tid(page, "tab-audit")).to_have_count(0)
    ensure_running(secured)


def test_the_viewer_gets_no_action_button_anywhere(page: Page, secured: Secured) -> None:
    logged_in(page, secured, "view", "processes")
    expect_rows(page, process_ids(secured.sv))
    expect(page.locator(ACTIONS)).to_have_count(0)
    tid(page, "group-by").select_option("source")
    expect(tid(page, "group-header").first).to_be_visible()
    expect(page.locator(ACTIONS)).to_have_count(0)
    tid(page, "tab-overview").click()
    expect(tid(page, "source-card", SOURCE)).to_be_visible()
    expect(page.locator(ACTIONS)).to_have_count(0)
    expect(tid(page, "tab-audit")).to_have_count(0)
    tid(page, "user-menu").click()
    expect(tid(page, "user-role")).to_have_text("viewer")


def test_the_admin_sees_the_operators_stop_on_the_audit_page(page: Page, secured: Secured) -> None:
    ensure_running(secured)
    with closing(secured.session("oper")) as oper:  # the operator's stop, through the API
        body = {"target": {"kind": "process", "id": WEB}, "name": "stop", "params": {}}
        r = oper.post("/api/actions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["ok"], r.text
    wait_for(lambda: state_of(secured.sv, WEB) == "STOPPED", 30, f"supervisord to stop {WEB}")
    ensure_running(secured)

    logged_in(page, secured, "root")
    tid(page, "source-card", SOURCE).locator('[data-testid="source-actions"]').click()
    expect(tid(page, "source-action-shutdown")).to_be_visible()  # admin: every action
    page.keyboard.press("Escape")
    tid(page, "tab-audit").click()
    expect(tid(page, "view-audit")).to_be_visible()
    stop = page.locator(
        f'[data-testid="audit-row"][data-user="oper"][data-what="stop"]'
        f'[data-target="process:{WEB}"][data-result="ok"]'
    )
    expect(stop.first).to_be_visible()
    expect(stop.first).to_contain_text("127.0.0.1")
    expect(page.locator('[data-testid="audit-row"][data-what="login"]').first).to_be_visible()
    screenshot(page, "login-audit")


def _websockets(page: Page) -> list[WebSocket]:
    sockets: list[WebSocket] = []

    def opened(ws: WebSocket) -> None:
        sockets.append(ws)

    page.on("websocket", opened)
    return sockets


def expect_closed(ws: WebSocket) -> None:
    """Wait for ``ws`` to close (Playwright's sync API hears events only inside its calls,
    so polling ``is_closed`` alone would never see it change)."""
    if not ws.is_closed():
        ws.wait_for_event("close", timeout=TIMEOUT_MS)
    assert ws.is_closed()


def test_logout_returns_to_the_login_page_and_closes_the_stream(
    page: Page, secured: Secured
) -> None:
    sockets = _websockets(page)
    page.goto(secured.base)
    expect(tid(page, "view-login")).to_be_visible()
    assert sockets == []  # no stream before login
    log_in(page, "oper")
    expect(tid(page, "source-card", SOURCE)).to_have_attribute("data-status", "online")
    assert len(sockets) == 1
    tid(page, "user-menu").click()
    tid(page, "logout").click()
    expect(tid(page, "view-login")).to_be_visible()
    expect_closed(sockets[0])
    page.reload()  # the cookie is gone: the login page again
    expect(tid(page, "view-login")).to_be_visible()
    assert len(sockets) == 1


def test_a_session_ended_elsewhere_returns_to_the_login_page_without_a_loop(
    page: Page, context: BrowserContext, secured: Secured
) -> None:
    sockets = _websockets(page)
    logged_in(page, secured, "oper")
    expect(tid(page, "source-card", SOURCE)).to_have_attribute("data-status", "online")
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    with httpx.Client(base_url=secured.hub.url, timeout=30, cookies=cookies) as other:
        r = other.post("/api/logout", headers={"X-CSRF-Token": cookies["fleetwatch_csrf"]})
        assert r.status_code == 200, r.text
    # The hub closes the stream (4401) at its next frame: the page shows the login page.
    expect(tid(page, "view-login")).to_be_visible(timeout=TIMEOUT_MS * 2)
    expect(tid(page, "login-reason")).to_contain_text("session has ended")
    expect_closed(sockets[0])
    log_in(page, "oper", "wrong")  # a round trip to the hub later: still no new stream
    expect(tid(page, "login-error")).to_be_visible()
    assert len(sockets) == 1, [s.url for s in sockets]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_the_login_page_and_the_user_menu(
    browser: Browser, secured: Secured, scheme: Any
) -> None:
    for size, label in (
        ({"width": 1440, "height": 900}, "desktop"),
        ({"width": 390, "height": 844}, "phone"),
    ):
        ctx = browser.new_context(viewport=size, color_scheme=scheme)  # type: ignore[arg-type]
        try:
            pg, errors = new_page(ctx)
            pg.goto(secured.base)
            expect(tid(pg, "view-login")).to_be_visible()
            expect(pg.locator("html")).to_have_attribute("data-theme", scheme)
            log_in(pg, "oper", "wrong-password")
            expect(tid(pg, "login-error")).to_be_visible()
            shot = screenshot(pg, f"login-{label}-{scheme}")
            assert Path(shot).stat().st_size > 0
            log_in(pg, "root")
            expect(tid(pg, "source-card", SOURCE)).to_be_visible()
            tid(pg, "user-menu").click()
            expect(tid(pg, "user-menu-panel")).to_be_visible()
            expect(tid(pg, "user-role")).to_have_text("admin")
            screenshot(pg, f"user-menu-{label}-{scheme}")
            assert not errors, errors
        finally:
            ctx.close()
