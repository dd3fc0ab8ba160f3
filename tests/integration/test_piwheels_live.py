"""A real hub with a piwheels source against the stand-in master over real ZeroMQ sockets.

A real piw-master cannot run here (PostgreSQL, pinned dependencies, the internet); the
stand-in (``fleetwatch.demo.piwheels.StandInMaster``) replays the traffic recorded from
a real one byte for byte, and waits at each command the recorder sent until the hub
sends the same bytes, so every step below is the real master's answer to it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.config import PiwheelsSourceConfig
from fleetwatch.demo.piwheels import StandInMaster, Step, describe, load_capture
from fleetwatch.demo.supervisord import free_port
from fleetwatch.sources.piwheels.protocol import (
    LegacyMasterStats,
    LegacySlaveHello,
    SlaveEvent,
    encode_status,
)
from tests.conftest import HubServer, Stream, wait_for

CAPTURE = Path(__file__).parents[1] / "vectors" / "piwheels-capture.jsonl"
RECORDED_COMMANDS = [s.frame for s in load_capture(CAPTURE) if s.direction == "control"]


@pytest.fixture(params=["ipc", "tcp"])
def queues(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    if request.param == "tcp":
        yield f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        return
    with tempfile.TemporaryDirectory(prefix="fw-piw-") as d:
        yield f"ipc://{d}/piw-status", f"ipc://{d}/piw-control"


@pytest.fixture
def standin() -> Iterator[Callable[..., StandInMaster]]:
    started: list[StandInMaster] = []

    def make(status: str, control: str, **kw: Any) -> StandInMaster:
        kw.setdefault("steps", load_capture(CAPTURE))
        master = StandInMaster(status, control, **kw).start()
        started.append(master)
        return master

    yield make
    for m in started:
        m.stop()


def nodes(hub: HubServer) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in hub.get("/api/nodes", params={"q": "source:piw"})}


def jobs(hub: HubServer) -> dict[str, dict[str, Any]]:
    return {j["id"]: j for j in hub.get("/api/jobs", params={"q": "source:piw"})}


def act(hub: HubServer, kind: str, id: str, name: str) -> dict[str, Any]:
    r = hub.action(kind, id, name)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def at_gate(master: StandInMaster, frame: bytes) -> None:
    wait_for(lambda: master.waiting_for == frame, 30, f"the stand-in to wait for {frame.hex()}")


def test_the_model_fills_and_each_action_sends_the_recorded_bytes(
    queues: tuple[str, str],
    standin: Callable[..., StandInMaster],
    hub_server: Callable[..., HubServer],
) -> None:
    status, control = queues
    master = standin(status, control, speed=25)
    hub = hub_server(PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control))
    sleep_null, wake_null, skip_2, kill_1, quit_ = (
        f for f in RECORDED_COMMANDS if f != b"\x65HELLO"
    )

    # Lines 2-45: registration, three builds (one done, one failed, one running).
    at_gate(master, sleep_null)
    source = wait_for(
        lambda: (s := hub.source("piw"))["status"] == "online" and s, 15, "piw online"
    )
    assert source["kind"] == "piwheels"
    assert source["info"]["dialect"] == "modern"
    assert source["info"]["status_queue"] == status
    assert source["info"]["control_queue"] == control
    assert {a["name"] for a in source["actions"]} >= {"pause", "stop_master", "skip", "kill"}
    n = wait_for(lambda: len(ns := nodes(hub)) == 3 and ns, 15, "master and two slaves")
    master_node = n["piw:master"]
    assert master_node["name"] == "vm"
    assert master_node["labels"]["role"] == "master"
    assert master_node["metrics"]["disk_size"] == 270553174016
    assert n["piw:slave:2"]["state"] == "building"
    assert n["piw:slave:2"]["labels"]["task"] == "piwlab-slow 0.1"
    assert n["piw:slave:1"]["name"] == "lab-slave-2"
    j = jobs(hub)
    assert j["piw:build:1"]["state"] == "done"
    assert j["piw:build:2"]["state"] == "failed"
    assert j["piw:build:3"]["state"] == "running"
    assert j["piw:build:3"]["client"] == "piw:slave:2"

    # Pause: SLEEP null, then the idle slave gets SLEEP true.
    result = act(hub, "node", "piw:master", "pause")
    assert result["ok"] is True
    assert result["detail"]["sent"] == ["SLEEP null"]
    at_gate(master, wake_null)
    wait_for(lambda: nodes(hub)["piw:slave:1"]["state"] == "sleeping", 15, "slave 1 told to sleep")
    assert nodes(hub)["piw:master"]["labels"]["paused"] == "true"

    assert act(hub, "source", "piw", "resume")["ok"] is True
    at_gate(master, skip_2)
    assert nodes(hub)["piw:master"]["labels"]["paused"] == "false"

    assert act(hub, "node", "piw:slave:2", "skip")["detail"]["sent"] == ["SKIP 2"]
    at_gate(master, kill_1)
    wait_for(lambda: jobs(hub)["piw:build:3"]["state"] == "failed", 15, "the slow build skipped")
    assert jobs(hub)["piw:build:3"]["metrics"]["reason"] == 2

    assert act(hub, "node", "piw:slave:1", "stop")["detail"]["sent"] == ["KILL 1"]
    at_gate(master, quit_)
    wait_for(lambda: "piw:slave:1" not in nodes(hub), 20, "the killed slave gone")

    assert act(hub, "node", "piw:master", "stop_master")["detail"]["sent"] == ["QUIT"]
    assert master.finished.wait(15), "the stand-in did not take QUIT"

    # Exactly the recorded commands, byte for byte (HELLOs aside: the hub asks when it must).
    got = [f for f in master.received if f != b"\x65HELLO"]
    assert got == [sleep_null, wake_null, skip_2, kill_1, quit_]
    assert b"\x65HELLO" in master.received

    # The master is gone: an action is an honest failure, nothing is queued for later.
    def refused() -> dict[str, Any] | None:
        body = act(hub, "node", "piw:master", "pause")
        return body if body["ok"] is False else None

    body = wait_for(refused, 15, "an action on the gone master to fail")
    assert "nothing sent" in body["error"]


@pytest.mark.parametrize(
    ("target", "name", "sent"),
    [
        (("source", "piw"), "halt", ["SLEEP null", "SKIP null"]),
        (("node", "piw:master"), "stop_slaves", ["KILL null"]),
        (("node", "piw:master"), "kill_slaves", ["KILL null", "SKIP null"]),
        (("node", "piw:slave:2"), "kill", ["KILL 2", "SKIP 2"]),
        (("node", "piw:slave:1"), "resume", ["WAKE 1"]),
    ],
)
def test_composite_actions_send_both_messages(
    target: tuple[str, str],
    name: str,
    sent: list[str],
    standin: Callable[..., StandInMaster],
    hub_server: Callable[..., HubServer],
    tmp_path: Path,
) -> None:
    status, control = f"ipc://{tmp_path}/s", f"ipc://{tmp_path}/c"
    master = standin(status, control, speed=50, gated=False)
    hub = hub_server(PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control))
    wait_for(lambda: {"piw:slave:1", "piw:slave:2"} <= nodes(hub).keys(), 15, "two slaves")
    before = len(master.received)
    body = act(hub, *target, name)
    assert body["ok"] is True, body
    assert body["detail"]["sent"] == sent
    wait_for(
        lambda: [c for c in describe(master.controls()[before:]) if c != "HELLO"] == sent,
        10,
        f"the stand-in to receive {sent}",
    )


def test_per_slave_pause_is_refused(
    standin: Callable[..., StandInMaster], hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    status, control = f"ipc://{tmp_path}/s", f"ipc://{tmp_path}/c"
    master = standin(status, control, speed=50, gated=False)
    hub = hub_server(PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control))
    wait_for(lambda: "piw:slave:2" in nodes(hub), 15, "slave 2")
    before = len(master.received)
    # pause is for the master's role only (ActionSpec.roles): the hub refuses it on a
    # slave as an action the target does not have, before the source is asked.
    r = hub.action("node", "piw:slave:2", "pause")
    assert r.status_code == 409, r.text
    assert r.json()["ok"] is False
    assert "master nodes" in r.json()["error"]
    assert "role is slave" in r.json()["error"]
    assert [f for f in master.received_since(before) if f != b"\x65HELLO"] == []


def test_an_absent_master_is_an_honest_failure(
    hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    status, control = f"ipc://{tmp_path}/none-s", f"ipc://{tmp_path}/none-c"
    hub = hub_server(
        PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control, timeout=1.0)
    )
    body = act(hub, "source", "piw", "stop_master")
    assert body["ok"] is False
    assert "nothing sent" in body["error"]
    wait_for(lambda: hub.source("piw")["status"] == "offline", 15, "the source offline")
    assert "no status message" in hub.source("piw")["error"]
    # A master that binds later gets no stale command (ZMQ_IMMEDIATE): nothing was queued.
    master = StandInMaster(status, control, gated=False, speed=50).start()
    try:
        wait_for(lambda: hub.source("piw")["status"] == "online", 20, "online once it binds")
        assert all(f == b"\x65HELLO" for f in master.received)
    finally:
        master.stop()


def source_error(stream: Stream) -> str | None:
    for frame in stream.frames:
        for c in frame.get("changes", ()):
            value = c.get("value") or {}
            if c["kind"] == "source" and c["id"] == "piw" and value.get("status") == "error":
                return str(value.get("error"))
    return None


def test_garbage_puts_the_source_in_error_and_it_recovers(
    standin: Callable[..., StandInMaster], hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    status, control = f"ipc://{tmp_path}/s", f"ipc://{tmp_path}/c"
    master = standin(status, control, speed=25)
    hub = hub_server(PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control))
    at_gate(master, RECORDED_COMMANDS[2])  # SLEEP null: the model is full, nothing plays
    wait_for(lambda: hub.source("piw")["status"] == "online", 15, "online")
    hellos = master.received.count(b"\x65HELLO")
    stream = hub.ws()
    try:
        stream.hello()
        stream.receive()  # the snapshot
        master.inject(b"\xff\x00 not CBOR")
        # The error is short-lived (the reconnect is quick): the stream shows it.
        stream.until(lambda st: source_error(st) is not None, 20)
        assert "not CBOR" in (source_error(stream) or "")
    finally:
        stream.close()
    wait_for(lambda: hub.source("piw")["status"] == "online", 20, "online again")
    assert master.received.count(b"\x65HELLO") > hellos  # a fresh connection asked again
    assert hub.get("/api/health")
    assert len(nodes(hub)) == 3  # the model survived
    wait_for(
        lambda: all(n["state"] != "offline" for n in nodes(hub).values()),
        15,
        "the nodes online again",
    )


def test_silence_is_offline_and_the_return_is_online(
    standin: Callable[..., StandInMaster], hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    status, control = f"ipc://{tmp_path}/s", f"ipc://{tmp_path}/c"
    master = standin(status, control, speed=25, gated=False, loop=True)
    hub = hub_server(
        PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control, timeout=1.5)
    )
    wait_for(lambda: hub.source("piw")["status"] == "online", 15, "online")
    wait_for(lambda: len(nodes(hub)) >= 2, 15, "nodes")
    master.hold()
    wait_for(lambda: hub.source("piw")["status"] == "offline", 15, "offline after the silence")
    assert nodes(hub)["piw:master"]["state"] == "offline"
    assert all(n["state"] == "offline" for n in nodes(hub).values())
    before = len(master.received)
    master.release()
    wait_for(lambda: hub.source("piw")["status"] == "online", 15, "online again")
    wait_for(lambda: nodes(hub)["piw:master"]["state"] == "online", 15, "the master node online")
    wait_for(lambda: b"\x65HELLO" in master.received_since(before), 15, "a HELLO after the return")


def test_a_legacy_master_is_spoken_to_in_its_dialect(
    standin: Callable[..., StandInMaster], hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    """A 0.14-0.16 master: map-shaped STATS, PAUSE/RESUME instead of SLEEP/WAKE null."""
    when = dt.datetime(2020, 3, 1, 12, 0, tzinfo=dt.UTC)
    frames = [
        encode_status(
            LegacyMasterStats(values={"builds_count": 3, "builds_time": dt.timedelta(hours=1)})
        ),
        encode_status(
            SlaveEvent(
                slave_id=4,
                timestamp=when,
                message="HELLO",
                data=LegacySlaveHello(
                    build_timeout=dt.timedelta(hours=3),
                    py_version="35",
                    abi="cp35m",
                    platform="linux_armv7l",
                    label="pi3",
                ),
            )
        ),
    ]
    steps = [Step(0.0, "control", b"\x65HELLO")] + [
        Step(0.01 * i, "status", f) for i, f in enumerate(frames, 1)
    ]
    status, control = f"ipc://{tmp_path}/s", f"ipc://{tmp_path}/c"
    master = standin(status, control, steps=steps, gated=False)
    hub = hub_server(PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control))
    wait_for(lambda: "piw:slave:4" in nodes(hub), 15, "the legacy slave")
    assert hub.source("piw")["info"]["dialect"] == "legacy"
    assert nodes(hub)["piw:master"]["metrics"]["builds_count"] == 3
    assert nodes(hub)["piw:slave:4"]["labels"]["abi"] == "cp35m"
    before = len(master.received)
    assert act(hub, "source", "piw", "pause")["detail"]["sent"] == ["PAUSE"]
    assert act(hub, "source", "piw", "resume")["detail"]["sent"] == ["RESUME"]
    assert act(hub, "node", "piw:slave:4", "stop")["detail"]["sent"] == ["KILL 4"]
    body = act(hub, "node", "piw:slave:4", "skip")
    assert body["ok"] is False
    assert "0.14-0.16" in body["error"]
    wait_for(
        lambda: (
            [f for f in master.received_since(before) if f != b"\x65HELLO"]
            == [b"\x65PAUSE", b"\x66RESUME", b"\x82\x64KILL\x04"]
        ),
        10,
        "PAUSE, RESUME, KILL 4 at the master",
    )


def test_a_restarted_master_is_asked_again_and_resets_its_slaves(
    hub_server: Callable[..., HubServer], tmp_path: Path
) -> None:
    """Trap 13: a new master binds the same queues; ZeroMQ reconnects, the hub HELLOs it,
    its HELLO has a new ``started``, and the old master's slaves are gone."""
    status, control = f"ipc://{tmp_path}/s", f"ipc://{tmp_path}/c"
    first = StandInMaster(status, control, steps=load_capture(CAPTURE), speed=50, gated=False)
    first.start()
    try:
        hub = hub_server(
            PiwheelsSourceConfig(name="piw", status_queue=status, control_queue=control)
        )
        wait_for(lambda: "piw:build:3" in jobs(hub), 15, "the first master's builds")
        started = nodes(hub)["piw:master"]["labels"]["started"]
    finally:
        first.stop()
    # The same recording with its datetimes moved to now: another master start.
    second = StandInMaster(
        status, control, steps=load_capture(CAPTURE), speed=50, gated=False, fresh=True
    )
    second.start()
    try:
        wait_for(
            lambda: nodes(hub)["piw:master"]["labels"]["started"] != started,
            20,
            "the new master's HELLO",
        )
        assert b"\x65HELLO" in second.received  # asked for its state on reconnect
        wait_for(lambda: "piw:build:4" in jobs(hub), 20, "the new master's first build")
        assert jobs(hub)["piw:build:4"]["file"] == "piwlab-demo 0.1 (cp311)"
        assert hub.source("piw")["status"] == "online"
    finally:
        second.stop()
