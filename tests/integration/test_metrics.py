"""``GET /metrics`` against real peers (issue 13): a real supervisord and a real icecream
cluster, scraped over HTTP and parsed with prometheus_client's own parser; the values must
match the hub's model (``/api/fleet``) and what was done to the peers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetwatch.config import IcecreamSourceConfig, PiwheelsSourceConfig
from fleetwatch.demo.icecream import IcecreamCluster
from fleetwatch.demo.piwheels import StandInMaster, load_capture
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program
from tests.conftest import HubServer, icecc_cluster, source_config, wait_for

CAPTURE = Path(__file__).parents[1] / "vectors" / "piwheels-capture.jsonl"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(hub: HubServer) -> Samples:
    r = hub.http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_supervisor_series_match_the_model_and_count_a_restart(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    sv = supervisors(
        "m1",
        [
            Program("web", demo_program("service", "m1-web")),
            Program("idle", demo_program("service", "m1-idle"), autostart=False),
        ],
    )
    hub = hub_server(source_config(sv, poll_interval=0.2))
    wait_for(lambda: len(hub.processes("state:running")) == 1, 30, "web running")
    first = scrape(hub)
    assert get(first, "fleetwatch_source_up", source="m1", kind="supervisor") == 1
    model = hub.get("/api/fleet")
    for state in ("RUNNING", "STOPPED"):
        in_model = sum(p["state"] == state for p in model["processes"])
        assert get(first, "fleetwatch_processes", source="m1", state=state) == in_model

    assert hub.action("process", "m1:web:web", "restart").json()["ok"]
    wait_for(
        lambda: (
            get(scrape(hub), "fleetwatch_process_restarts_total", source="m1", process="m1:web:web")
            == 1
        ),
        30,
        "one restart counted",
    )
    assert hub.action("process", "m1:idle:idle", "start").json()["ok"]

    def both_running() -> Samples | None:
        s = scrape(hub)
        return s if get(s, "fleetwatch_processes", source="m1", state="RUNNING") == 2 else None

    after = wait_for(both_running, 30, "two running in the metrics")
    assert get(after, "fleetwatch_process_restarts_total", source="m1", process="m1:idle:idle") == 1
    assert get(after, "fleetwatch_hub_seq") >= model["seq"]
    assert get(after, "fleetwatch_hub_changes_total") > 0
    assert get(after, "fleetwatch_hub_entities", kind="process") == 2

    sv.stop()
    wait_for(
        lambda: get(scrape(hub), "fleetwatch_source_up", source="m1", kind="supervisor") == 0,
        30,
        "the source down in the metrics",
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[IcecreamCluster]:
    with icecc_cluster(remotes=2) as c:
        yield c


def test_compile_jobs_are_counted_per_host_with_durations(
    cluster: IcecreamCluster, hub_server: Callable[..., HubServer]
) -> None:
    hub = hub_server(
        IcecreamSourceConfig(name="ice", scheduler=f"127.0.0.1:{cluster.port}", netname="FWTEST")
    )
    wait_for(lambda: hub.source("ice")["status"] == "online", 90, "scheduler online")
    wait_for(lambda: len(hub.get("/api/nodes")) == len(cluster.daemons), 60, "all hosts")
    codes = cluster.compile(4, 2, fail=True)
    assert codes[:4] == [0, 0, 0, 0]
    assert codes[4] != 0

    def finished() -> list[dict[str, object]] | None:
        jobs = list(hub.get("/api/jobs"))
        compiles = [j for j in jobs if str(j["file"]).endswith(".c")]
        if len(compiles) < 5 or any(j["state"] not in ("done", "failed") for j in jobs):
            return None
        return jobs

    jobs = wait_for(finished, 60, "five finished compile jobs")

    def counted() -> Samples | None:
        s = scrape(hub)
        total = sum(v for (n, _), v in s.items() if n == "fleetwatch_jobs_finished_total")
        return s if total >= len(jobs) else None

    s = wait_for(counted, 30, "the jobs counted")
    for host in {str(j["server"]) for j in jobs}:
        on_host = [j for j in jobs if j["server"] == host]
        for result in ("done", "failed"):
            expected = sum(j["state"] == result for j in on_host)
            got = get(s, "fleetwatch_jobs_finished_total", source="ice", host=host, result=result)
            assert got == expected, (host, result, got, expected)
        durations = get(s, "fleetwatch_job_duration_seconds_count", source="ice", host=host)
        assert durations == len(on_host)
        total = sum(float(j["ended"]) - float(j["started"]) for j in on_host)  # type: ignore[arg-type]
        assert get(
            s, "fleetwatch_job_duration_seconds_sum", source="ice", host=host
        ) == pytest.approx(total, abs=1e-6)
    remote = [j for j in jobs if j["server"] != j["client"]]
    waits = sum(v for (n, _), v in s.items() if n == "fleetwatch_job_queue_wait_seconds_count")
    assert waits >= len(remote)
    for node in hub.get("/api/nodes"):
        assert (
            get(s, "fleetwatch_node_jobs", source="ice", node=node["name"], what="slots")
            == node["metrics"]["max_jobs"]
        )


def test_metrics_answer_without_a_trailing_api_prefix_and_head(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    sv = supervisors("m2", [Program("web", demo_program("service", "m2-web"))])
    hub = hub_server(source_config(sv))
    r = httpx.get(f"{hub.url}/metrics", timeout=30)
    assert r.status_code == 200
    assert "# TYPE fleetwatch_processes gauge" in r.text
    assert "# HELP fleetwatch_process_restarts_total" in r.text


def test_a_build_farm_queue_per_abi_and_its_builds(
    hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    """The piwheels stand-in master (a real piw-master cannot run here; the stand-in replays
    the recorded traffic byte for byte over real ZeroMQ)."""
    status, control = f"ipc://{tmp_path}/piw-status", f"ipc://{tmp_path}/piw-control"
    master = StandInMaster(status, control, steps=load_capture(CAPTURE), speed=25).start()
    try:
        hub = hub_server(
            PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control)
        )
        first_command = next(
            s.frame
            for s in load_capture(CAPTURE)
            if s.direction == "control" and s.frame != b"\x65HELLO"
        )
        wait_for(lambda: master.waiting_for == first_command, 30, "the stand-in at its first gate")
        node = wait_for(
            lambda: next((n for n in hub.get("/api/nodes") if n["id"] == "piw:master"), None),
            15,
            "the master node",
        )
        queues = {
            k.removeprefix("queue."): v
            for k, v in node["metrics"].items()
            if k.startswith("queue.")
        }
        assert queues, node["metrics"]
        s = scrape(hub)
        for abi, n in queues.items():
            assert get(s, "fleetwatch_farm_queue", source="piw", abi=abi) == n
        assert get(s, "fleetwatch_source_up", source="piw", kind="piwheels") == 1
        jobs = {j["id"]: j for j in hub.get("/api/jobs")}
        for result in ("done", "failed"):
            expected = sum(j["state"] == result for j in jobs.values())
            got = sum(
                v
                for (name, labels), v in s.items()
                if name == "fleetwatch_jobs_finished_total" and ("result", result) in labels
            )
            assert got == expected, (result, got, expected)
        assert get(s, "fleetwatch_jobs", source="piw", state="running") == sum(
            j["state"] == "running" for j in jobs.values()
        )
    finally:
        master.stop()
