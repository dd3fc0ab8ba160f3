"""The Cluster view against a real icecream cluster: Debian's icecc scheduler and daemons,
real compiles. Needs root and icecc; skipped otherwise, except under CI=true (fails)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from fleetwatch.demo.icecream import IcecreamCluster
from tests.conftest import HubServer, icecc_cluster, wait_for
from tests.e2e.conftest import (
    action_spec,
    icecream_hub,
    rows_ids,
    screenshot,
    tid,
)

# The cluster's start (up to a minute: the scheduler may take ~36 s to accept) is
# charged to the module's first test.
pytestmark = pytest.mark.timeout(300)

SOURCE = "ice"
NETNAME = "FWE2E"
ACTION_MS = 90_000
"""A block or unblock may wait ~36 s for an idle scheduler to accept on its text port."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[IcecreamCluster]:
    # Aliases 127.0.0.61+: the demo's cluster on this machine uses 127.0.0.20+.
    with icecc_cluster(netname=NETNAME, remotes=2, first_alias=60) as c:
        yield c


@pytest.fixture(scope="module")
def hub(cluster: IcecreamCluster) -> Iterator[HubServer]:
    with icecream_hub(cluster, SOURCE, NETNAME, "e2e cluster") as server:
        yield server


def nodes(hub: HubServer) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in hub.get("/api/nodes", params={"q": f"source:{SOURCE}"})}


def node_id(cluster: IcecreamCluster, daemon: str) -> str:
    return f"{SOURCE}/{cluster.host_name(daemon)}"


def open_cluster(page: Page, hub: HubServer, tab: str) -> None:
    page.goto(f"{hub.url}/#/cluster")
    expect(tid(page, "view-cluster")).to_be_visible()
    tid(page, f"cluster-tab-{tab}").click()


def test_hosts_in_the_table_and_the_graph(
    page: Page, cluster: IcecreamCluster, hub: HubServer
) -> None:
    hosts = {node_id(cluster, d) for d in cluster.daemons}
    open_cluster(page, hub, "hosts")
    for host in hosts:
        expect(tid(page, "host-row", host)).to_have_attribute("data-state", "online")
    assert rows_ids(page, "host-row") == hosts
    screenshot(page, "cluster-hosts")
    tid(page, "cluster-tab-graph").click()
    graph = tid(page, "cluster-graph")
    expect(graph).to_be_visible()
    for host in hosts:
        expect(tid(graph, "graph-node", host)).to_be_attached()
    screenshot(page, "cluster-graph")


def test_the_cluster_on_a_phone(phone: Page, cluster: IcecreamCluster, hub: HubServer) -> None:
    hosts = {node_id(cluster, d) for d in cluster.daemons}
    open_cluster(phone, hub, "hosts")
    for host in hosts:
        expect(tid(phone, "host-row", host)).to_be_attached()
    width = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide on a {width[1]} px screen"
    screenshot(phone, "phone-cluster-hosts")
    tid(phone, "cluster-tab-graph").tap()
    for host in hosts:
        expect(tid(phone, "graph-node", host)).to_be_attached()
    screenshot(phone, "phone-cluster-graph")


def test_compile_jobs_appear_and_end_done(
    page: Page, cluster: IcecreamCluster, hub: HubServer
) -> None:
    before = {j["id"] for j in hub.get("/api/jobs", params={"q": f"source:{SOURCE}"})}
    open_cluster(page, hub, "graph")
    expect(tid(page, "cluster-graph")).to_be_visible()
    # Record every job edge the graph ever draws while the compiles run.
    page.evaluate(
        """() => {
            window.__edges = new Set()
            const look = () => document.querySelectorAll('[data-testid="graph-edge"]')
                .forEach(e => window.__edges.add(e.getAttribute('data-id')))
            new MutationObserver(look).observe(document.body,
                {subtree: true, childList: true, attributes: true})
        }"""
    )
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.extend(cluster.compile(6, 2)), daemon=True)
    worker.start()
    worker.join(120)
    assert codes == [0] * 6, codes

    def finished() -> list[dict[str, Any]]:
        new = [
            j
            for j in hub.get("/api/jobs", params={"q": f"source:{SOURCE}"})
            if j["id"] not in before and j["file"].endswith(".c")
        ]
        return new if len(new) >= 6 and all(j["state"] == "done" for j in new) else []

    jobs = wait_for(finished, 60, "six compile jobs done in the hub")
    # Only running remote jobs are edges (client -> server). Which host compiles is the
    # scheduler's choice: an idle machine's jobs often stay on the submitting host. A job
    # may also begin and end between two repaints (the page paints at most 10 times a
    # second, the hub commits every 0.1 s), so not every remote job need be drawn.
    remote = {j["id"] for j in jobs if j["server"] != j["client"]}
    edges: set[str] = set(page.evaluate("Array.from(window.__edges)"))
    assert edges <= {j["id"] for j in jobs} | before, f"edges of no job: {edges}"
    if remote:
        assert remote & edges, f"none of the remote jobs {remote} was drawn as an edge"
    screenshot(page, "cluster-graph-after-jobs")

    tid(page, "cluster-tab-jobs").click()
    for j in jobs:
        expect(tid(page, "job-row", j["id"])).to_have_attribute("data-state", "done")
    screenshot(page, "cluster-jobs")

    tid(page, "cluster-tab-timeline").click()
    expect(tid(page, "gantt")).to_be_visible()
    for j in jobs:
        expect(tid(page, "gantt-bar", j["id"])).to_be_attached()
    screenshot(page, "cluster-timeline")


@pytest.mark.timeout(360)
def test_block_then_unblock_a_host_from_the_page(
    page: Page, cluster: IcecreamCluster, hub: HubServer
) -> None:
    host = node_id(cluster, "remote2")
    spec = hub.source(SOURCE)
    open_cluster(page, hub, "hosts")
    row = tid(page, "host-row", host)
    expect(row).to_have_attribute("data-state", "online")
    try:
        tid(row, "action-block").click()
        if action_spec(spec, "block")["confirm"]:
            tid(page, "confirm-ok").click()
        expect(row).to_have_attribute("data-state", "blocked", timeout=ACTION_MS)
        assert cluster.host_name("remote2") in cluster.text("listblocks")
        screenshot(page, "cluster-host-blocked")
        tid(row, "action-unblock").click()
        if action_spec(spec, "unblock")["confirm"]:
            tid(page, "confirm-ok").click()
        expect(row).to_have_attribute("data-state", "online", timeout=ACTION_MS)
        assert cluster.host_name("remote2") not in cluster.text("listblocks")
    finally:
        if nodes(hub).get(host, {}).get("state") == "blocked":
            hub.action("node", host, "unblock")
