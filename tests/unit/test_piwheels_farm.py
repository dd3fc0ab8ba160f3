"""The piwheels model mapping (farm.py): the capture of a real master → nodes and jobs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from fleetwatch.model import Fleet, Job, Node, dumps
from fleetwatch.sources.piwheels.farm import (
    ACTIONS,
    MASTER_ACTIONS,
    SLAVE_ACTIONS,
    Farm,
    NotPossible,
    plan,
)
from fleetwatch.sources.piwheels.protocol import (
    MASTER_STATS_FIELDS,
    Control,
    LegacyMasterStats,
    MasterHello,
    MasterStats,
    SlaveEvent,
    decode_control,
    decode_status,
)

CAPTURE = Path(__file__).parents[1] / "vectors" / "piwheels-capture.jsonl"
LINES = [json.loads(line) for line in CAPTURE.read_text().splitlines()]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def play(farm: Farm, first: int = 1, last: int = len(LINES)) -> None:
    """Apply capture lines ``first..last`` (1-based); control lines are noted as sent."""
    for d in LINES[first - 1 : last]:
        data = bytes.fromhex(d["frame_hex"])
        if d["dir"] == "status":
            farm.apply(decode_status(data))
        else:
            farm.sent(decode_control(data))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fleet() -> Fleet:
    return Fleet("t")


@pytest.fixture
def farm(fleet: Fleet, clock: Clock) -> Farm:
    return Farm("piw", fleet, clock=clock)


def node(fleet: Fleet, id: str) -> Node:
    n = fleet.get("node", id)
    assert isinstance(n, Node), id
    return n


def job(fleet: Fleet, id: str) -> Job:
    j = fleet.get("job", id)
    assert isinstance(j, Job), id
    return j


def test_master_node_has_every_stats_field(farm: Farm, fleet: Fleet) -> None:
    play(farm, 1, 16)
    m = node(fleet, "piw:master")
    assert m.name == "vm"
    assert m.state == "online"
    assert m.labels["role"] == "master"
    assert m.labels["paused"] == "false"
    assert m.labels["dialect"] == "modern"
    assert m.labels["os_name"] == "Debian GNU/Linux"
    assert m.labels["os_version"] == "12 (bookworm)"
    assert m.labels["board_revision"] == m.labels["board_serial"] == "unknown"
    assert m.labels["started"] == "2026-11-22T20:44:11.094867Z"
    for name in MASTER_STATS_FIELDS[1:]:
        assert name in m.metrics, name
    assert (
        m.metrics["stats_timestamp"]
        == dt.datetime(2026, 11, 22, 20, 44, 42, 653090, tzinfo=dt.UTC).timestamp()
    )
    assert m.metrics["queue.cp311"] == 1  # line 16: one build pending
    assert m.metrics["builds_pending"] == 1
    assert m.metrics["builds.cp311"] == 0
    assert m.metrics["disk_size"] == 270553174016
    assert m.metrics["mem_size"] == 25276510208
    assert m.metrics["builds_time"] == 0.0
    assert m.metrics["new_last_hour"] == 7
    assert m.metrics["slaves"] == 2
    assert farm.source_info()["dialect"] == "modern"
    assert farm.source_info()["master_version"] == "0.17+"


def test_first_stats_with_zero_disk_raises_no_alert(farm: Farm, fleet: Fleet) -> None:
    """Trap 8: the first STATS after start has disk_size = disk_free = 0."""
    play(farm, 2, 3)
    m = node(fleet, "piw:master")
    assert m.metrics["disk_size"] == 0
    assert m.labels["alert"] == ""
    assert "queue.cp311" not in m.metrics  # builds_pending {} then


def test_slaves_and_builds_through_the_whole_capture(farm: Farm, fleet: Fleet) -> None:
    play(farm)
    s2 = node(fleet, "piw:slave:2")
    assert s2.name == "lab-slave-1"  # slave id 2 is the process labelled lab-slave-1
    assert s2.state == "idle"
    assert s2.labels["role"] == "slave"
    assert s2.labels["abi"] == "cp311"
    assert s2.labels["platform"] == "linux_x86_64"
    assert s2.labels["label"] == "lab-slave-1"
    assert s2.labels["index_url"] == "http://127.0.0.1:8099/simple"
    assert s2.labels["task"] == ""
    assert s2.labels["status"] == "Waiting for jobs"
    assert s2.metrics["busy_timeout"] == 300.0
    assert s2.metrics["build_timeout"] == 600.0
    assert "task_started" not in s2.metrics
    assert 0 < s2.metrics["clock_skew"] < 0.01
    for name in ("disk_size", "disk_free", "mem_size", "mem_free", "swap_size", "swap_free"):
        assert name in s2.metrics
    assert {"load_average", "cpu_temp"} <= s2.metrics.keys()
    s1 = node(fleet, "piw:slave:1")  # killed at line 73: DIE, DIE
    assert s1.state == "terminating"
    assert s1.labels["status"] == "Terminating"

    demo, broken, slow = (job(fleet, f"piw:build:{n}") for n in (1, 2, 3))
    assert demo.file == "piwlab-demo 0.1 (cp311)"
    assert demo.client == "piw:slave:1"
    assert demo.server == "piw:master"
    assert demo.state == "done"  # BUILD → SEND → DONE
    assert demo.metrics["reason"] == 0
    assert demo.metrics["files"] == 1
    assert broken.file == "piwlab-broken 0.1 (cp311)"
    assert broken.state == "failed"  # BUILD → DONE
    assert broken.metrics["reason"] == 1
    assert slow.state == "failed"  # skipped by SKIP 2 (line 63)
    assert slow.metrics["reason"] == 2
    assert slow.started is not None
    assert slow.ended is not None
    assert slow.ended - slow.started == pytest.approx(48.013, abs=0.01)
    assert fleet.get("job", "piw:build:4") is None  # replayed BUILDs were not new builds


def test_building_slave_has_task_and_task_started(farm: Farm, fleet: Fleet) -> None:
    play(farm, 1, 39)
    s2 = node(fleet, "piw:slave:2")
    assert s2.state == "building"
    assert s2.labels["task"] == "piwlab-slow 0.1"
    assert s2.labels["status"] == "Building piwlab-slow 0.1"
    assert s2.metrics["task_started"] == job(fleet, "piw:build:3").started
    assert job(fleet, "piw:build:3").state == "running"
    play(farm, 40, 40)
    s1 = node(fleet, "piw:slave:1")
    assert s1.state == "sending"
    assert s1.labels["status"] == "Transferring file"
    play(farm, 41, 41)
    assert node(fleet, "piw:slave:1").state == "cleaning"
    assert node(fleet, "piw:slave:1").labels["status"] == "Cleaning up after build"


def test_replays_change_nothing(farm: Farm, fleet: Fleet) -> None:
    """Trap 2: HELLO replays go to every monitor; applying one again must be a no-op."""
    play(farm, 1, 16)
    fleet.commit()
    play(farm, 17, 30)  # replay #2: HELLO, old STATS, slaves' HELLO, STATS, last BUILD
    assert not fleet.dirty
    play(farm)
    fleet.commit()
    play(farm, 81, 106)  # replay #3 again
    assert not fleet.dirty


def test_finished_builds_enter_the_ring(clock: Clock) -> None:
    fleet = Fleet("t", finished_jobs=2)
    play(Farm("piw", fleet, clock=clock))  # three finished builds, ring of two
    assert fleet.get("job", "piw:build:2") is None  # the first to finish (line 36)
    assert {j.id for j in fleet.all("job")} == {"piw:build:1", "piw:build:3"}


def test_paused_is_inferred(farm: Farm, fleet: Fleet) -> None:
    """Trap 7: no status field says "paused"."""
    play(farm, 1, 45)
    assert node(fleet, "piw:master").labels["paused"] == "false"
    play(farm, 46, 46)  # we sent SLEEP null
    assert node(fleet, "piw:master").labels["paused"] == "true"
    play(farm, 47, 57)
    assert node(fleet, "piw:master").labels["paused"] == "true"
    assert node(fleet, "piw:slave:1").state == "sleeping"
    play(farm, 58, 58)  # WAKE null
    assert node(fleet, "piw:master").labels["paused"] == "false"
    assert node(fleet, "piw:slave:1").state == "idle"


def test_paused_from_sleep_true_alone(fleet: Fleet, clock: Clock) -> None:
    """Another monitor paused the master: its SLEEP true replies say so."""
    farm = Farm("piw", fleet, clock=clock)
    play(farm, 2, 45)
    play(farm, 47, 48)  # SLEEP true, without our SLEEP null
    assert node(fleet, "piw:master").labels["paused"] == "true"
    play(farm, 49, 57)
    play(farm, 59, 62)  # STATS again, SLEEP false: resumed by someone
    assert node(fleet, "piw:master").labels["paused"] == "false"


def test_die_removes_the_slave_after_five_seconds(farm: Farm, fleet: Fleet, clock: Clock) -> None:
    play(farm)
    clock.now += 4.9
    farm.tick()
    assert fleet.get("node", "piw:slave:1") is not None
    clock.now += 0.2
    farm.tick()
    assert fleet.get("node", "piw:slave:1") is None
    assert node(fleet, "piw:master").metrics["slaves"] == 1


def test_die_during_a_build_is_killed(farm: Farm, fleet: Fleet) -> None:
    play(farm, 1, 39)
    t = dt.datetime(2026, 11, 22, 20, 45, 0, tzinfo=dt.UTC)
    farm.apply(SlaveEvent(slave_id=2, timestamp=t, message="DIE", data=None))
    j = job(fleet, "piw:build:3")
    assert j.state == "failed"
    assert j.metrics["reason"] == 3


def test_a_new_started_resets_the_slaves(farm: Farm, fleet: Fleet) -> None:
    play(farm, 1, 39)  # slave 2 is building piwlab-slow
    hello = decode_status(bytes.fromhex(LINES[1]["frame_hex"]))
    assert isinstance(hello, MasterHello)
    restarted = dataclasses.replace(hello, started=hello.started + dt.timedelta(hours=1))
    assert farm.apply(restarted) is True
    assert fleet.get("node", "piw:slave:1") is None
    assert fleet.get("node", "piw:slave:2") is None
    assert job(fleet, "piw:build:3").state == "failed"
    assert job(fleet, "piw:build:3").metrics["reason"] == 4  # lost
    assert node(fleet, "piw:master").labels["started"].startswith("2026-11-22T21:44:11")
    play(farm, 6, 11)  # the slaves register again; build numbers go on
    assert job(fleet, "piw:build:4").file == "piwlab-demo 0.1 (cp311)"


def test_silence_marks_nodes_offline(farm: Farm, fleet: Fleet) -> None:
    play(farm, 1, 45)
    farm.set_offline(True)
    assert node(fleet, "piw:master").state == "offline"
    assert "silent" in node(fleet, "piw:master").labels["alert"]
    assert node(fleet, "piw:slave:2").state == "offline"
    farm.set_offline(False)
    assert node(fleet, "piw:master").state == "online"
    assert node(fleet, "piw:slave:2").state == "building"


def test_a_slave_silent_for_its_busy_timeout_is_dead(farm: Farm, fleet: Fleet) -> None:
    play(farm, 1, 16)
    stats = decode_status(bytes.fromhex(LINES[15]["frame_hex"]))
    assert isinstance(stats, MasterStats)
    later = dataclasses.replace(stats, timestamp=stats.timestamp + dt.timedelta(seconds=200))
    farm.apply(later)
    farm.tick()
    assert "silent" in node(fleet, "piw:slave:1").labels["alert"]
    assert node(fleet, "piw:slave:1").state == "building"
    farm.apply(dataclasses.replace(stats, timestamp=stats.timestamp + dt.timedelta(seconds=400)))
    farm.tick()
    assert node(fleet, "piw:slave:1").state == "dead"


def test_alerts_follow_piw_monitor_thresholds(farm: Farm, fleet: Fleet) -> None:
    play(farm, 2, 5)
    stats = decode_status(bytes.fromhex(LINES[4]["frame_hex"]))
    assert isinstance(stats, MasterStats)
    hot = dataclasses.replace(
        stats,
        timestamp=stats.timestamp + dt.timedelta(seconds=10),
        disk_free=stats.disk_size // 20,
        load_average=4.5,
        cpu_temp=71.0,
    )
    farm.apply(hot)
    assert node(fleet, "piw:master").labels["alert"] == "disk,load,temperature"


def test_legacy_map_stats_become_metrics(farm: Farm, fleet: Fleet) -> None:
    farm.apply(
        LegacyMasterStats(
            values={"builds_count": 12, "builds_time": dt.timedelta(hours=1), "disk_free": 5}
        )
    )
    m = node(fleet, "piw:master")
    assert m.labels["dialect"] == "legacy"
    assert m.metrics["builds_count"] == 12
    assert m.metrics["builds_time"] == 3600.0
    assert farm.source_info()["master_version"] == "0.14-0.16"


# -- actions -------------------------------------------------------------------------------


def frames(controls: list[Control]) -> list[str]:
    return [str(c) for c in controls]


def test_master_actions_send_what_piw_monitor_sends() -> None:
    """piwheels.md §4.1, the Master Control dialog."""
    assert frames(plan("pause", None, "modern")) == ["SLEEP null"]
    assert frames(plan("halt", None, "modern")) == ["SLEEP null", "SKIP null"]
    assert frames(plan("resume", None, "modern")) == ["WAKE null"]
    assert frames(plan("stop_slaves", None, "modern")) == ["KILL null"]
    assert frames(plan("kill_slaves", None, "modern")) == ["KILL null", "SKIP null"]
    assert frames(plan("stop_master", None, "modern")) == ["QUIT"]
    assert frames(plan("pause", None, None)) == ["SLEEP null"]  # dialect unknown yet


def test_slave_actions_send_what_piw_monitor_sends() -> None:
    assert frames(plan("skip", 2, "modern")) == ["SKIP 2"]
    assert frames(plan("stop", 2, "modern")) == ["KILL 2"]
    assert frames(plan("kill", 2, "modern")) == ["KILL 2", "SKIP 2"]
    assert frames(plan("resume", 2, "modern")) == ["WAKE 2"]


def test_per_slave_pause_is_not_offered() -> None:
    """SLEEP id sets a flag nothing reads on a real master (verified live)."""
    assert "pause" not in SLAVE_ACTIONS
    with pytest.raises(NotPossible, match="cannot pause one slave"):
        plan("pause", 1, "modern")
    with pytest.raises(NotPossible):
        plan("skip", None, "modern")


def test_legacy_masters_get_their_dialect() -> None:
    assert frames(plan("pause", None, "legacy")) == ["PAUSE"]
    assert frames(plan("resume", None, "legacy")) == ["RESUME"]
    assert frames(plan("stop_master", None, "legacy")) == ["QUIT"]
    assert frames(plan("stop_slaves", None, "legacy", (1, 3))) == ["KILL 1", "KILL 3"]
    assert frames(plan("stop", 3, "legacy")) == ["KILL 3"]
    for name, slave in (("halt", None), ("kill_slaves", None), ("skip", 1), ("kill", 1)):
        with pytest.raises(NotPossible, match=r"0\.14-0\.16"):
            plan(name, slave, "legacy")


def test_every_action_has_its_semantics_in_its_title() -> None:
    names = {a.name for a in ACTIONS}
    assert names == MASTER_ACTIONS | SLAVE_ACTIONS
    titles = {a.name: a.title for a in ACTIONS}
    assert "SLEEP null" in titles["pause"]
    assert "QUIT" in titles["stop_master"]
    assert "KILL id" in titles["stop"]
    assert all(a.confirm for a in ACTIONS if a.name in ("stop_master", "kill", "kill_slaves"))
    assert {a.hotkey for a in ACTIONS} >= {"p", "r", "k", "t"}  # piw-monitor's keys


def test_every_action_says_which_node_roles_it_is_for() -> None:
    """Clients route master and slave actions by ``roles``, not by titles."""
    roles = {a.name: a.roles for a in ACTIONS}
    assert roles == {
        "pause": ("master",),
        "halt": ("master",),
        "resume": ("master", "slave"),
        "stop_slaves": ("master",),
        "kill_slaves": ("master",),
        "stop_master": ("master",),
        "skip": ("slave",),
        "stop": ("slave",),
        "kill": ("slave",),
    }
    assert {n for n, r in roles.items() if "master" in r} == MASTER_ACTIONS
    assert {n for n, r in roles.items() if "slave" in r} == SLAVE_ACTIONS
    serialised = json.loads(dumps({"actions": list(ACTIONS)}))["actions"]
    assert [a["roles"] for a in serialised] == [list(a.roles) for a in ACTIONS]


def test_no_master_node_before_the_master_is_heard(farm: Farm, fleet: Fleet) -> None:
    farm.set_offline(True)
    farm.sent(Control("SLEEP", None))
    assert fleet.get("node", "piw:master") is None
    play(farm, 2, 2)
    assert node(fleet, "piw:master").state == "offline"
