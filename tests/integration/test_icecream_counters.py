"""The counters of one snapshot agree with each other and with its job list (issue 12),
against a real icecream cluster (Debian's icecc scheduler and daemons) running real
compiles and links while the snapshot is read again and again."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleetwatch.config import IcecreamSourceConfig
from fleetwatch.demo.icecream import IcecreamCluster
from tests.conftest import HubServer, icecc_cluster, wait_for


@pytest.fixture(scope="module")
def cluster() -> Iterator[IcecreamCluster]:
    with icecc_cluster(remotes=2) as c:
        yield c


def check(snapshot: dict[str, Any]) -> dict[str, float]:
    """Assert what one snapshot must say of itself; return its totals."""
    (source,) = [s for s in snapshot["sources"] if s["id"] == "ice"]
    totals: dict[str, float] = source["info"]["totals"]
    jobs = [j for j in snapshot["jobs"] if j["source"] == "ice"]
    now = {s: sum(j["state"] == s for j in jobs) for s in ("waiting", "running", "local")}
    assert totals["waiting_jobs"] == now["waiting"], (totals, now)
    assert totals["running_jobs"] == now["running"], (totals, now)
    assert totals["local_now"] == now["local"], (totals, now)
    assert totals["active_jobs"] == now["running"] + now["local"], (totals, now)
    hosts = [n for n in snapshot["nodes"] if n["source"] == "ice"]
    for counter in ("jobs_done", "jobs_failed", "local_jobs", "local_done"):
        on_hosts = sum(n["metrics"].get(counter, 0) for n in hosts)
        assert on_hosts <= totals[counter], (counter, on_hosts, totals)
    assert sum(n["metrics"].get("jobs", 0) for n in hosts) == now["running"]
    finished = [j for j in jobs if j["state"] in ("done", "failed")]
    unknown = [j for j in finished if j["metrics"].get("result_unknown")]
    assert len(unknown) == totals["local_done"]  # the ring holds every job of this test
    assert all(j["client"] == j["server"] and j["state"] == "done" for j in unknown)
    remote = [j for j in finished if not j["metrics"].get("result_unknown")]
    assert sum(j["state"] == "done" for j in remote) == totals["jobs_done"]
    assert sum(j["state"] == "failed" for j in remote) == totals["jobs_failed"]
    return totals


def test_every_snapshot_agrees_with_itself_while_jobs_run(
    cluster: IcecreamCluster, hub_server: Callable[..., HubServer]
) -> None:
    hub = hub_server(
        IcecreamSourceConfig(name="ice", scheduler=f"127.0.0.1:{cluster.port}", netname="FWTEST")
    )
    wait_for(lambda: hub.source("ice")["status"] == "online", 90, "scheduler online")
    wait_for(lambda: len(hub.get("/api/nodes")) == len(cluster.daemons), 60, "all hosts")
    codes: list[int] = []

    def build() -> None:
        codes.extend(cluster.compile(6, 3, fail=True))
        codes.append(cluster.link())

    worker = threading.Thread(target=build, name="compiles")
    worker.start()
    snapshots = 0
    busy = 0
    while worker.is_alive() or snapshots < 5:
        totals = check(hub.get("/api/fleet"))
        snapshots += 1
        busy += totals["active_jobs"] > 0 or totals["waiting_jobs"] > 0
    worker.join()
    assert codes[:6] == [0] * 6
    assert codes[6] != 0  # broken.c
    assert codes[7] == 0  # the link

    def settled() -> dict[str, float] | None:
        t = check(hub.get("/api/fleet"))
        return t if t["jobs_done"] >= 6 and t["local_done"] >= 1 and not t["active_jobs"] else None

    final = wait_for(settled, 60, "every job finished in the hub")
    assert final["jobs_failed"] >= 1
    assert snapshots >= 5
    assert busy >= 1, "no snapshot was taken while a job ran"
