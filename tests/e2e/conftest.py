"""End-to-end fixtures: Debian's chromium driven by Playwright, against real hubs watching
real supervisord instances (and, for the cluster view, a real icecc cluster).

* One browser per session (``browser``); a fresh context and page per test (``page``),
  whose uncaught page errors fail the test and whose last screen is saved when it fails.
* One fleet per session (``fleet``): two real supervisords and a real hub (in a thread).
* ``hub_process``: a real ``fleetwatch serve`` subprocess, for the tests that kill it.
* Screenshots go to ``test-artifacts/e2e/`` at the repository root (git-ignored).

Nothing here sleeps to synchronise: Playwright's ``expect`` and ``wait_for_*`` or
:func:`tests.conftest.wait_for` wait for a condition with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import xmlrpc.client
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from fleetwatch.config import Config, HubConfig, IcecreamSourceConfig
from fleetwatch.demo.icecream import IcecreamCluster
from fleetwatch.demo.supervisord import Program, Supervisord, free_port, stop_all
from fleetwatch.web.app import static_dir
from tests.conftest import IN_CI, HubServer, require, source_config, standard_programs, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
"""Playwright's default deadline for a condition in the page."""

expect.set_options(timeout=TIMEOUT_MS)


# ------------------------------------------------------------------------------ browser


def require_web() -> Path:
    """The built web app's index.html; fail (CI) or skip when ``make web`` was not run."""
    index = static_dir() / "index.html"
    if not index.is_file():
        message = f"the web app is not built ({index} is missing): run `make web`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return index


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's chromium (never a downloaded one), shared by the end-to-end tests.

    Package scope, not session: Playwright's sync API keeps an asyncio loop running in
    the main thread while it is open, which would break every async test after these.
    """
    require_web()
    executable = require("chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


def new_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """A page of ``context`` and the list its uncaught errors are appended to."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{exc.name}: {exc.message}"))
    return page, errors


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh desktop-sized page; uncaught page errors fail the test."""
    pg, errors = new_page(context)
    yield pg
    if _failed(request):
        screenshot(pg, f"FAILED-{request.node.name}")
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def phone(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page on a phone-sized touch screen (390 x 844, as an iPhone 12-15)."""
    ctx = browser.new_context(
        viewport=PHONE,  # type: ignore[arg-type]
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        pg, errors = new_page(ctx)
        yield pg
        if _failed(request):
            screenshot(pg, f"FAILED-{request.node.name}")
        assert not errors, f"uncaught errors in the page: {errors}"
    finally:
        ctx.close()


def screenshot(page: Page, name: str) -> Path:
    """Save what the page shows as ``test-artifacts/e2e/NAME.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    try:
        page.screenshot(path=str(path), animations="disabled", timeout=10_000)
    except Exception as exc:  # a screenshot of a failed test must not hide the failure
        if not name.startswith("FAILED-"):
            raise
        print(f"could not save {path}: {exc}")
    return path


# ------------------------------------------------------------------------------ page helpers


def tid(scope: Page | Locator, test_id: str, data_id: str | None = None) -> Locator:
    """Elements with ``data-testid=test_id`` (and ``data-id=data_id``) under ``scope``."""
    selector = f'[data-testid="{test_id}"]'
    if data_id is not None:
        selector += f'[data-id="{data_id}"]'
    return scope.locator(selector)


def process_row(page: Page, process_id: str) -> Locator:
    return tid(page, "process-row", process_id)


def rows_ids(page: Page, test_id: str = "process-row") -> set[str]:
    """The ``data-id`` of every element with ``test_id`` in the page now."""
    ids: list[str] = page.eval_on_selector_all(
        f'[data-testid="{test_id}"]', "els => els.map(e => e.getAttribute('data-id'))"
    )
    return set(ids)


def expect_rows(page: Page, ids: set[str], test_id: str = "process-row") -> None:
    """Wait until the rows shown are exactly ``ids``."""
    wanted = sorted(ids)
    try:
        page.wait_for_function(
            """([testId, wanted]) => {
                const got = Array.from(document.querySelectorAll(`[data-testid="${testId}"]`),
                                       e => e.getAttribute('data-id')).sort()
                return got.length === wanted.length && got.every((g, i) => g === wanted[i])
            }""",
            arg=[test_id, wanted],
            timeout=TIMEOUT_MS,
        )
    except Exception:
        got = sorted(rows_ids(page, test_id))
        pytest.fail(f"the {test_id}s shown are {got}, expected {wanted}")


def count_text(total: int, shown: int | None = None) -> re.Pattern[str]:
    """``row-count``'s text: "N of M" (thousands separators allowed)."""

    def num(n: int) -> str:
        return f"{n:,}".replace(",", "[,.\u202f\u00a0 ]?")

    return re.compile(rf"^\s*{num(total if shown is None else shown)}\s+of\s+{num(total)}\b")


def run_action(scope: Page | Locator, page: Page, name: str, *, confirm: bool) -> None:
    """Click ``action-NAME`` in ``scope``; answer the confirmation when the spec asks one."""
    tid(scope, f"action-{name}").first.click()
    if confirm:
        dialog = tid(page, "confirm")
        expect(dialog).to_be_visible()
        tid(dialog, "confirm-ok").click()
        expect(dialog).to_be_hidden()
    else:
        expect(tid(page, "confirm")).to_have_count(0)


def action_spec(source: dict[str, Any], name: str) -> dict[str, Any]:
    for spec in source["actions"]:
        if spec["name"] == name:
            return spec  # type: ignore[no-any-return]
    raise AssertionError(f"source {source['id']} has no action {name!r}")


# ------------------------------------------------------------------------------ fleets


SPAWN_ERROR = 50
"""supervisord's fault code (``xmlrpc.Faults.SPAWN_ERROR``)."""


def start_no_wait(sv: Supervisord, program: str) -> None:
    """Start ``program`` (a one-process group of that name) without waiting. A program that
    dies at once may answer SPAWN_ERROR (supervisord saw it exit before answering): it was
    started, and the caller waits for the state it wants from supervisord itself."""
    try:
        sv.call("supervisor.startProcess", f"{program}:{program}", False)
    except xmlrpc.client.Fault as fault:
        if fault.faultCode != SPAWN_ERROR:
            raise


def doomed_program() -> Program:
    """Exits at once and is never retried: starting it makes it FATAL."""
    return Program(
        "doomed",
        "/bin/false",
        autostart=False,
        autorestart=False,
        extra={"startretries": "0"},  # the last value of a key wins in supervisord's parser
    )


def process_ids(sv: Supervisord) -> set[str]:
    """The hub's ids of ``sv``'s processes (``SOURCE:GROUP:NAME``), from supervisord itself."""
    infos = sv.call("supervisor.getAllProcessInfo")
    return {f"{sv.name}:{i['group']}:{i['name']}" for i in infos}


def state_of(sv: Supervisord, process_id: str) -> str:
    """supervisord's own state name for a process id of the hub."""
    _, group, name = process_id.split(":", 2)
    return str(sv.call("supervisor.getProcessInfo", f"{group}:{name}")["statename"])


@dataclass
class Fleet:
    """The session's real supervisords and the real hub that watches them."""

    hub: HubServer
    supervisors: dict[str, Supervisord]

    @property
    def base(self) -> str:
        return f"{self.hub.url}/"

    def route(self, path: str) -> str:
        """The page's URL for a hash route, e.g. ``processes?q=state:running``."""
        return f"{self.base}#/{path}"

    @property
    def ids(self) -> set[str]:
        """Every process id, from the supervisords themselves."""
        return set().union(*(process_ids(sv) for sv in self.supervisors.values()))

    def wait_settled(self) -> None:
        wait_for(
            lambda: (
                all(self.hub.source(n)["status"] == "online" for n in self.supervisors)
                and self.hub.processes().keys() == self.ids
            ),
            30,
            "every source online with every process",
        )


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two real supervisords (the demo's programs plus one that goes FATAL when started)
    and a real hub watching them, shared by the session's tests (each test leaves the
    processes it touched as it found them)."""
    root = tmp_path_factory.mktemp("fleet")
    svs: list[Supervisord] = []
    hub: HubServer | None = None
    try:
        for name in ("alpha", "beta"):
            sv = Supervisord(root, name, [*standard_programs(name), doomed_program()])
            svs.append(sv)
            sv.start()
        config = Config(
            path="e2e",
            hub=HubConfig(name="e2e fleet", listen=f"127.0.0.1:{free_port()}"),
            sources={sv.name: source_config(sv, poll_interval=0.5) for sv in svs},
        )
        hub = HubServer(config)
        result = Fleet(hub, {sv.name: sv for sv in svs})
        result.wait_settled()
        yield result
    finally:
        if hub is not None:
            hub.close()
        stop_all(svs)


# ------------------------------------------------------------------------------ hub process


class HubProcess:
    """``fleetwatch serve -c CONFIG --listen 127.0.0.1:PORT`` as a real subprocess."""

    def __init__(self, config: Path, port: int, root_path: str | None = None) -> None:
        self.config = config
        self.port = port
        self.root_path = root_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.with_suffix(".log")

    def command(self) -> list[str]:
        exe = Path(sys.executable).with_name("fleetwatch")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "fleetwatch.cli"]
        cmd += ["serve", "-c", str(self.config), "--listen", f"127.0.0.1:{self.port}"]
        if self.root_path is not None:
            cmd += ["--root-path", self.root_path]
        return cmd

    def start(self, sources: list[str]) -> None:
        """Start it and wait until every source in ``sources`` is online."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def online() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"the hub exited ({self.proc.returncode}): {self.log.read_text()}")
            r = httpx.get(f"{self.url}/api/sources", timeout=2)
            return (
                r.status_code == 200
                and all(s["status"] == "online" for s in r.json() if s["id"] in sources)
                and {s["id"] for s in r.json()} >= set(sources)
            )

        wait_for(online, 30, "the hub subprocess to serve with every source online")

    def kill(self) -> None:
        """``kill -9``: no goodbye to the page."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def write_config(path: Path, name: str, svs: list[Supervisord], port: int) -> Path:
    """A TOML config of the hub over ``svs`` (the README's keys)."""
    lines = ["[hub]", f'name = "{name}"', f'listen = "127.0.0.1:{port}"', ""]
    for sv in svs:
        lines += [
            f"[sources.{sv.name}]",
            'kind = "supervisor"',
            f'url = "{sv.http_url}"',
            "poll_interval = 0.5",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """A factory of ``fleetwatch serve`` subprocesses over the given supervisords."""
    made: list[HubProcess] = []

    def make(*svs: Supervisord, root_path: str | None = None, name: str = "e2e") -> HubProcess:
        port = free_port()
        config = write_config(tmp_path / f"hub{len(made)}.toml", name, list(svs), port)
        hub = HubProcess(config, port, root_path)
        made.append(hub)
        hub.start([sv.name for sv in svs])
        return hub

    yield make
    for hub in made:
        hub.stop()


@contextmanager
def icecream_hub(
    cluster: IcecreamCluster, source: str, netname: str, name: str
) -> Iterator[HubServer]:
    """A real hub watching ``cluster`` as source ``source``, online with every host."""
    config = Config(
        path="e2e",
        hub=HubConfig(name=name, listen=f"127.0.0.1:{free_port()}"),
        sources={
            source: IcecreamSourceConfig(
                name=source, scheduler=f"127.0.0.1:{cluster.port}", netname=netname
            )
        },
    )
    server = HubServer(config)
    try:
        wait_for(lambda: server.source(source)["status"] == "online", 90, "scheduler online")
        wait_for(
            lambda: (
                len(server.get("/api/nodes", params={"q": f"source:{source}"}))
                == len(cluster.daemons)
            ),
            90,
            "every host in the hub",
        )
        yield server
    finally:
        server.close()
