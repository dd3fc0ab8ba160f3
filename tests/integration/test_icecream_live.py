"""The hub against a real icecream cluster: Debian's icecc scheduler and daemons, real compiles.

Needs root and ``apt-get install icecc`` (CI installs it); skipped otherwise, except
under CI=true, where a missing part fails the test.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleetwatch.config import IcecreamSourceConfig
from fleetwatch.demo.icecream import IcecreamCluster
from fleetwatch.sources.icecream import discovery
from tests.conftest import HubServer, icecc_cluster, wait_for


@pytest.fixture(scope="module")
def cluster() -> Iterator[IcecreamCluster]:
    with icecc_cluster(remotes=2) as c:
        yield c


@pytest.fixture
def hub(cluster: IcecreamCluster, hub_server: Callable[..., HubServer]) -> HubServer:
    server = hub_server(
        IcecreamSourceConfig(name="ice", scheduler=f"127.0.0.1:{cluster.port}", netname="FWTEST")
    )
    wait_for(lambda: server.source("ice")["status"] == "online", 90, "scheduler online")
    return server


def nodes(hub: HubServer) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in hub.get("/api/nodes", params={"q": "source:ice"})}


def jobs(hub: HubServer) -> list[dict[str, Any]]:
    return list(hub.get("/api/jobs", params={"q": "source:ice"}))


def test_hosts_appear_with_every_stats_key(cluster: IcecreamCluster, hub: HubServer) -> None:
    names = {cluster.host_name(d) for d in cluster.daemons}
    seen = wait_for(lambda: (n := nodes(hub)).keys() >= names and n, 60, "all hosts")
    client = seen[cluster.host_name("client")]
    assert client["labels"]["no_remote"] == "true"
    assert client["labels"]["platform"]
    assert client["labels"]["protocol"] == "43"
    assert client["metrics"]["max_jobs"] == cluster.max_jobs
    assert {"speed", "load"} <= client["metrics"].keys()
    source = hub.source("ice")
    assert source["version"] == "43"
    assert source["info"]["protocol"] == 43


def test_real_compile_jobs_end_done_or_failed(cluster: IcecreamCluster, hub: HubServer) -> None:
    wait_for(lambda: len(nodes(hub)) == len(cluster.daemons), 60, "all hosts")
    before = {j["id"] for j in jobs(hub)}
    codes = cluster.compile(4, 2, fail=True)
    assert codes[:4] == [0, 0, 0, 0]
    assert codes[4] != 0

    def finished() -> list[dict[str, Any]] | None:
        new = [j for j in jobs(hub) if j["id"] not in before and j["file"].endswith(".c")]
        return new if len(new) >= 5 and all(j["state"] in ("done", "failed") for j in new) else None

    new = wait_for(finished, 60, "five finished compile jobs")
    by_file = {j["file"].rsplit("/", 1)[-1]: j for j in new}
    assert by_file["broken.c"]["state"] == "failed"
    assert by_file["broken.c"]["metrics"]["exitcode"] != 0
    good = [j for name, j in by_file.items() if name != "broken.c"]
    assert len(good) >= 4
    assert all(j["state"] == "done" and j["metrics"]["exitcode"] == 0 for j in good)
    for j in good:
        assert j["client"] == cluster.host_name("client")
        assert j["server"] in {cluster.host_name(d) for d in cluster.daemons}
        assert j["started"] <= j["ended"]
    done_on_hosts = sum(n["metrics"]["jobs_done"] for n in nodes(hub).values())
    assert done_on_hosts >= 4


def test_a_link_is_a_local_job(cluster: IcecreamCluster, hub: HubServer) -> None:
    wait_for(lambda: len(nodes(hub)) == len(cluster.daemons), 60, "all hosts")
    assert cluster.link() == 0
    local = wait_for(
        lambda: [j for j in jobs(hub) if j["file"].endswith("obj/prog") and j["state"] == "done"],
        60,
        "the link job done",
    )
    assert local[0]["client"] == local[0]["server"] == cluster.host_name("client")


def test_block_unblock_shows_in_listblocks(cluster: IcecreamCluster, hub: HubServer) -> None:
    remote = cluster.host_name("remote2")
    wait_for(lambda: remote in nodes(hub), 60, "remote2 listed")
    try:
        r = hub.action("node", f"ice/{remote}", "block").json()
        assert r["ok"] is True, r
        assert remote in cluster.text("listblocks")
        wait_for(lambda: nodes(hub).get(remote, {}).get("state") == "blocked", 60, "blocked")
    finally:
        r = hub.action("node", f"ice/{remote}", "unblock").json()
    assert r["ok"] is True, r
    assert remote not in cluster.text("listblocks")
    # The daemon logs in again (a new host id, the same node).
    wait_for(lambda: nodes(hub).get(remote, {}).get("state") == "online", 60, "online again")


def test_stopping_a_daemon_removes_its_host(cluster: IcecreamCluster, hub: HubServer) -> None:
    remote = cluster.host_name("remote1")
    wait_for(lambda: remote in nodes(hub), 60, "remote1 listed")
    cluster.stop_process("remote1")
    try:
        wait_for(lambda: remote not in nodes(hub), 30, "remote1 removed")
    finally:
        cluster.start_daemon("remote1")
    wait_for(lambda: remote in nodes(hub), 60, "remote1 back")


def test_scheduler_restart_resets_and_refills(cluster: IcecreamCluster, hub: HubServer) -> None:
    wait_for(lambda: len(nodes(hub)) == len(cluster.daemons), 60, "all hosts")
    cluster.stop_process("scheduler")
    try:
        wait_for(lambda: hub.source("ice")["status"] == "offline", 60, "offline")
    finally:
        cluster.start_scheduler()  # whatever happens, the next tests need it
    wait_for(lambda: hub.source("ice")["status"] == "online", 90, "online again")
    wait_for(lambda: len(nodes(hub)) == len(cluster.daemons), 90, "hosts back")
    assert jobs(hub) == []  # job ids belong to the old run


def test_discovery_finds_the_scheduler(cluster: IcecreamCluster) -> None:
    found = asyncio.run(discovery.discover(port=cluster.port, addresses=["127.0.0.1"], timeout=1.0))
    chosen = discovery.choose(found, "fwtest")
    assert chosen is not None
    assert (chosen.host, chosen.port, chosen.netname, chosen.version) == (
        "127.0.0.1",
        cluster.port,
        "FWTEST",
        43,
    )


def test_the_demo_config_finds_it_by_netname(
    cluster: IcecreamCluster, hub_server: Callable[..., HubServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """scheduler = "auto": discovery (loopback only, as icecream's ICECC_TESTS mode does)."""
    monkeypatch.setenv("ICECC_TESTS", "1")
    hub = hub_server(
        IcecreamSourceConfig(name="auto", scheduler=f":{cluster.port}", netname="fwtest")
    )
    src = wait_for(lambda: (s := hub.source("auto"))["status"] == "online" and s, 90, "online")
    assert src["info"]["scheduler"] == f"127.0.0.1:{cluster.port}"


def test_cli_discover_lists_the_scheduler(cluster: IcecreamCluster) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetwatch.cli",
            "discover",
            "-a",
            "127.0.0.1",
            "-p",
            str(cluster.port),
            "-n",
            "fwtest",
            "--timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["scheduler", "netname", "protocol", "started", "(UTC)"]
    row = lines[1].split()
    assert row[:3] == [f"127.0.0.1:{cluster.port}", "FWTEST", "43"]
    assert row[-1] == "chosen"


def test_pyicemon_documented_usage_against_the_real_scheduler(cluster: IcecreamCluster) -> None:
    """pyicemon's README, with the package path changed: Connection, messages, Monitor."""
    from fleetwatch.icecream import Connection, Monitor, messages

    conn = Connection("127.0.0.1", cluster.port)
    assert conn.version == 43  # real negotiation: we offer 44, icecc 1.4 speaks 43
    conn.send_message(messages.LoginMessage())
    first = conn.get_message()
    assert isinstance(first, messages.StatsMessage)
    assert messages.unpack(first.pack(43), 43) == first
    conn.close()

    mon = Monitor("127.0.0.1", cluster.port)
    published: list[int] = []

    class Recorder:
        def publish(self, monitor: Monitor) -> None:
            published.append(len(monitor.cs))
            if len(monitor.cs) >= len(cluster.daemons):
                monitor.close()  # enough: run() returns

    mon.addPublisher(Recorder())
    mon.run()
    names = {cs.name for cs in mon.cs.values()}
    assert names == {cluster.host_name(d) for d in cluster.daemons}
    assert published[-1] == len(cluster.daemons)
