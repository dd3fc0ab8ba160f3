"""The Overview and the cluster page say the same numbers (issue 12), against a real icecream
cluster (Debian's icecc scheduler and daemons) with real compiles, a failed one and a link
(a local job, whose result icecream does not report). Needs root and icecc; skipped
otherwise, except under CI=true (fails)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from fleetwatch.demo.icecream import IcecreamCluster
from tests.conftest import HubServer, icecc_cluster, wait_for
from tests.e2e.conftest import icecream_hub, screenshot, tid

pytestmark = pytest.mark.timeout(300)

SOURCE = "ice"
NETNAME = "FWCOUNT"


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[HubServer, IcecreamCluster]]:
    # Aliases 127.0.0.81+: other cluster tests use 40+, 60+ and 160+.
    with (
        icecc_cluster(netname=NETNAME, remotes=2, first_alias=80) as cluster,
        icecream_hub(cluster, SOURCE, NETNAME, "e2e counters") as server,
    ):
        yield server, cluster


def totals(server: HubServer) -> dict[str, Any]:
    t: dict[str, Any] = server.source(SOURCE)["info"]["totals"]
    return t


def test_overview_card_and_cluster_page_agree_and_a_local_job_is_not_done(
    page: Page, hub: tuple[HubServer, IcecreamCluster]
) -> None:
    server, cluster = hub
    codes = cluster.compile(4, 2, fail=True)
    assert codes[:4] == [0, 0, 0, 0]
    assert codes[4] != 0
    assert cluster.link() == 0
    t = wait_for(
        lambda: (
            (t := totals(server))["jobs_done"] >= 4
            and t["local_done"] >= 1
            and not t["active_jobs"]
            and t
        ),
        60,
        "the jobs finished in the hub",
    )
    done, failed = str(int(t["jobs_done"])), str(int(t["jobs_failed"]))

    page.goto(f"{server.url}/#/")
    overview_done = page.locator('[data-testid="counter"][data-kind="job"][data-state="done"]')
    expect(overview_done).to_have_text(done)
    expect(
        page.locator('[data-testid="counter"][data-kind="job"][data-state="failed"]')
    ).to_have_text(failed)
    unknown = page.locator('[data-testid="counter"][data-kind="job"][data-state="unknown"]')
    expect(unknown).to_have_text(str(int(t["local_done"])))
    expect(tid(page, "cluster-tile-done").locator("strong")).to_have_text(done)
    expect(tid(page, "cluster-tile-failed").locator("strong")).to_have_text(failed)
    screenshot(page, "counters-overview")

    page.goto(f"{server.url}/#/cluster")
    expect(tid(page, "summary-done")).to_have_text(done)
    expect(tid(page, "summary-failed")).to_have_text(failed)
    tid(page, "cluster-tab-jobs").click()
    expect(tid(page, "job-state-done").locator(".n")).to_have_text(done)
    link = page.locator('[data-testid="job-row"]', has_text="obj/prog").first
    expect(link.locator(".c-state .st")).to_have_text("unknown")
    expect(link.locator(".c-state .st")).to_have_attribute(
        "title", "finished (local, result unknown)"
    )
    screenshot(page, "counters-jobs")


def test_a_job_opens_its_details_and_a_host_its_recent_jobs(
    page: Page, hub: tuple[HubServer, IcecreamCluster]
) -> None:
    server, cluster = hub
    codes = cluster.compile(2, 2, fail=True)
    assert codes[-1] != 0
    broken = wait_for(
        lambda: next(
            (
                j
                for j in server.get("/api/jobs")
                if j["file"].endswith("broken.c") and j["state"] == "failed"
            ),
            None,
        ),
        60,
        "the failed compile in the hub",
    )
    page.goto(f"{server.url}/#/cluster?tab=jobs")
    row = page.locator(f'[data-testid="job-row"][data-id="{broken["id"]}"]')
    row.locator(".c-file").click()
    details = tid(page, "job-details")
    expect(details).to_be_visible()
    expect(tid(details, "job-detail-file")).to_have_text(broken["file"])
    expect(tid(details, "job-detail-server")).to_have_text(broken["server"])
    code = int(broken["metrics"]["exitcode"])
    expect(tid(details, "job-detail-exit")).to_contain_text(f"{code} · ")
    expect(tid(details, "job-detail-in")).to_contain_text("compressed /")
    assert f"job={broken['id'].replace('#', '%23')}" in page.url
    screenshot(page, "job-details")
    page.keyboard.press("Escape")
    expect(details).to_have_count(0)

    host = broken["server"]
    page.goto(f"{server.url}/#/cluster?tab=hosts&host={SOURCE}/{host}")
    summary = tid(page, "host-history")
    node = server.get(f"/api/nodes/{SOURCE}/{host}")
    failed_here = sum(
        j["server"] == host and j["state"] == "failed" for j in server.get("/api/jobs")
    )
    assert node["metrics"]["jobs_failed"] >= failed_here >= 1
    expect(summary).to_contain_text(f"{failed_here} failed")


def test_the_star_view_has_the_scheduler_in_the_centre_and_a_legend_for_every_mark(
    page: Page, hub: tuple[HubServer, IcecreamCluster]
) -> None:
    """icemon's star view (issue 12): hosts around their scheduler, coloured by slot use."""
    server, cluster = hub
    page.goto(f"{server.url}/#/cluster?tab=graph")
    graph = tid(page, "cluster-graph")
    expect(graph).to_be_visible()
    scheduler = page.locator(f'[data-testid="graph-scheduler"][data-id="{SOURCE}"]')
    expect(scheduler).to_have_count(1)
    hosts = {f"{SOURCE}/{cluster.host_name(d)}" for d in cluster.daemons}
    for host in hosts:
        expect(page.locator(f'[data-testid="graph-spoke"][data-id="{host}"]')).to_have_count(1)
    # At rest, the scheduler sits amid its hosts (their centroid is near it), and the view
    # ends on the fit: every host and its name inside the canvas.
    expect(graph).to_have_attribute("data-settled", "true", timeout=60_000)
    spread: dict[str, float] = page.evaluate(SPREAD, SOURCE)
    assert spread["off"] < spread["nearest"], spread
    assert spread["nearest"] > 40, spread
    outside = page.evaluate(OUTSIDE)
    assert outside == [], outside
    legend = tid(page, "graph-legend")
    marks = set(legend.locator("[data-mark]").evaluate_all("els => els.map(e => e.dataset.mark)"))
    assert {"scheduler", "fill", "ring", "job", "no-remote", "blocked", "local"} <= marks
    # Idle hosts are coloured by their (empty) slots, whatever the machine's load.
    fills = set(
        page.locator('[data-testid="graph-node"] .body').evaluate_all(
            "els => els.map(e => e.dataset.fill)"
        )
    )
    assert fills == {"hsl(205 45% 62%)"}, fills
    tid(page, "graph-colour").click()
    expect(legend).to_contain_text("fill: load")
    screenshot(page, "star-view")
    tid(page, "graph-colour").click()


OUTSIDE = """() => {
    const box = document.querySelector('[data-testid="cluster-graph"]').getBoundingClientRect()
    return [...document.querySelectorAll('[data-testid="graph-node"] text')]
        .filter((t) => {
            const r = t.getBoundingClientRect()
            return r.left < box.left || r.right > box.right
                || r.top < box.top || r.bottom > box.bottom
        })
        .map((t) => t.textContent)
}"""

SPREAD = """(source) => {
    const at = (el) => {
        const r = el.getBoundingClientRect()
        return [r.x + r.width / 2, r.y + r.height / 2]
    }
    const sel = `[data-testid="graph-scheduler"][data-id="${source}"] rect`
    const s = at(document.querySelector(sel))
    const hs = [...document.querySelectorAll('[data-testid="graph-node"] .body')].map(at)
    const cx = hs.reduce((a, h) => a + h[0], 0) / hs.length
    const cy = hs.reduce((a, h) => a + h[1], 0) / hs.length
    const r = Math.min(...hs.map((h) => Math.hypot(h[0] - s[0], h[1] - s[1])))
    return { off: Math.hypot(cx - s[0], cy - s[1]), nearest: r }
}"""


def test_the_timeline_pauses_and_tells_its_hosts_apart(
    page: Page, hub: tuple[HubServer, IcecreamCluster]
) -> None:
    """icemon's Gantt view (issue 12): pause freezes the bars; host names stay distinct."""
    server, cluster = hub
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/#/cluster?tab=timeline")
    names = tid(page, "gantt-host")
    expect(names).to_have_count(len(cluster.daemons))
    labels = names.all_inner_texts()
    assert len(set(labels)) == len(labels), labels
    page.set_viewport_size({"width": 1400, "height": 900})
    tid(page, "gantt-pause").click()
    expect(tid(page, "gantt-paused")).to_contain_text("paused at")
    before = set(
        page.locator('[data-testid="gantt-bar"]').evaluate_all("els => els.map(e => e.dataset.id)")
    )
    known = {j["id"] for j in server.get("/api/jobs")}
    assert cluster.compile(2, 2) == [0, 0]
    wait_for(
        lambda: len([j for j in server.get("/api/jobs") if j["id"] not in known]) >= 2,
        60,
        "the new jobs in the hub",
    )
    during = set(
        page.locator('[data-testid="gantt-bar"]').evaluate_all("els => els.map(e => e.dataset.id)")
    )
    assert during == before, "a paused timeline drew new bars"
    screenshot(page, "timeline-paused")
    page.keyboard.press("z")  # resume
    expect(tid(page, "gantt-paused")).to_have_count(0)
    wait_for(
        lambda: (
            len(
                set(
                    page.locator('[data-testid="gantt-bar"]').evaluate_all(
                        "els => els.map(e => e.dataset.id)"
                    )
                )
                - before
            )
            >= 2
        ),
        20,
        "the new bars once resumed",
    )
