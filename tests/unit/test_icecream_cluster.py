"""The icecream cluster model: the recorded monitor sessions replayed into nodes and jobs.

Replays decode the capture (``tests/vectors/icecream-capture.jsonl``,
``CAPTURES.md`` §1) with the codec and feed the messages to :class:`Cluster`
with a recording sink and a fake clock that follows the capture's timestamps.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.model import Entity, Job, Kind, Node
from fleetwatch.sources.icecream.cluster import LANGS, Cluster, parse_number
from fleetwatch.sources.icecream.protocol import (
    Codec,
    JobLocalDone,
    Message,
    MonGetCS,
    MonJobBegin,
    MonJobDone,
    MonLocalJobBegin,
    MonStats,
    Negotiated,
    UnknownMessage,
)

CAPTURE = Path(__file__).resolve().parents[1] / "vectors" / "icecream-capture.jsonl"
SOURCE = "ice"
HOSTS = ("icelab-client", "icelab-remote1", "icelab-remote2")
COUNTERS = ("jobs_done", "jobs_failed", "local_jobs", "busy_msec", "bytes_in", "bytes_out")

# Capture lines of the v44 session (CAPTURES.md §1).
LAST_SNAPSHOT = 13
FIRST_FULL_STATS = 16
BROKEN_DONE = 123  # MON_JOB_DONE job 34, exit 1
REMOTE2_OFFLINE = 124  # blockcs icelab-remote2: State:Offline for host 3
REMOTE2_RELOGIN = 127  # the same daemon, new host id 4 (Load:1000)
REMOTE2_FULL_STATS = 128


@functools.cache
def session(name: str = "mon-v44") -> tuple[tuple[int, float, Message], ...]:
    """(capture line, wall-clock time, message) of every frame of one session."""
    assert CAPTURE.is_file(), f"the recorded capture is missing: {CAPTURE}"
    head: dict[str, Any] = {}
    raw: list[tuple[int, float, bytes]] = []
    for number, text in enumerate(CAPTURE.read_text().splitlines(), 1):
        line = json.loads(text)
        if line["session"] != name:
            continue
        if "offered_version" in line:
            head = line
        elif "frame_hex" in line:
            raw.append((number, line["t"], bytes.fromhex(line["frame_hex"])))
    version = head["negotiated_version"]
    codec = Codec(max_version=head["offered_version"])
    codec.receive_data(bytes.fromhex(head["handshake_rx_hex"]))
    assert codec.events() == [Negotiated(version)]
    out = []
    for number, t, data in raw:
        codec.receive_data(data)
        (msg,) = codec.events()
        assert not isinstance(msg, UnknownMessage | Negotiated)
        out.append((number, head["login_unix"] + t, msg))
    return tuple(out)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self, now: float = 1_795_380_084.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingSink:
    """Records every put and delete, and keeps what a fleet would hold."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Kind, str, Entity | None]] = []
        self.current: dict[tuple[Kind, str], Entity] = {}

    def put(self, entity: Entity) -> bool:
        self.log.append(("put", entity.KIND, entity.id, entity))
        changed = self.current.get((entity.KIND, entity.id)) != entity
        self.current[(entity.KIND, entity.id)] = entity
        return changed

    def delete(self, kind: Kind, id: str) -> bool:
        self.log.append(("del", kind, id, None))
        return self.current.pop((kind, id), None) is not None

    def node(self, name: str) -> Node | None:
        entity = self.current.get(("node", f"{SOURCE}/{name}"))
        assert entity is None or isinstance(entity, Node)
        return entity

    def job(self, job_id: int) -> Job:
        entity = self.current[("job", f"{SOURCE}#{job_id}")]
        assert isinstance(entity, Job)
        return entity

    def nodes(self) -> dict[str, Node]:
        return {e.name: e for (k, _), e in self.current.items() if isinstance(e, Node)}

    def jobs(self) -> dict[str, Job]:
        return {e.id: e for (k, _), e in self.current.items() if isinstance(e, Job)}

    def deleted(self) -> list[tuple[Kind, str]]:
        return [(kind, id) for op, kind, id, _ in self.log if op == "del"]

    def node_lives(self) -> list[Node]:
        """Each node's last state before every delete, and the ones still there."""
        live: dict[str, Node] = {}
        ended: list[Node] = []
        for op, kind, id, entity in self.log:
            if kind != "node":
                continue
            if op == "put":
                assert isinstance(entity, Node)
                live[id] = entity
            elif id in live:
                ended.append(live.pop(id))
        return ended + list(live.values())


def replay(
    until: int | None = None, name: str = "mon-v44", since: int = 0, cluster: Cluster | None = None
) -> tuple[Cluster, RecordingSink, FakeClock]:
    """Feed the session's messages from line ``since`` up to and including line ``until``."""
    if cluster is None:
        sink, clock = RecordingSink(), FakeClock()
        cluster = Cluster(SOURCE, sink, clock=clock)
    sink, clock = cluster.sink, cluster.clock  # type: ignore[assignment]
    for number, when, msg in session(name):
        if number < since:
            continue
        if until is not None and number > until:
            break
        clock.now = when
        cluster.apply(msg)
    return cluster, sink, clock


def stats_of(line: int) -> dict[str, str]:
    """The ``Key:Value`` pairs of the MON_STATS at a capture line, parsed here."""
    (msg,) = [m for n, _, m in session() if n == line]
    assert isinstance(msg, MonStats)
    return dict(item.split(":", 1) for item in msg.statmsg.splitlines())


# -- hosts ----------------------------------------------------------------------------------------


def test_snapshot_hosts_appear_with_their_stats() -> None:
    cluster, sink, _ = replay(until=4)
    nodes = sink.nodes()
    assert sorted(nodes) == sorted(HOSTS)
    for hostid, name in enumerate(HOSTS, 1):
        node = nodes[name]
        assert node.id == f"{SOURCE}/{name}"
        assert (node.source, node.address, node.state) == (SOURCE, "127.0.0.1", "online")
        assert node.labels == {
            "platform": "x86_64",
            "protocol": "43",
            "features": "env_xz env_zstd",
            "no_remote": "true" if name == "icelab-client" else "false",
            "hostid": str(hostid),
        }
        assert {k: node.metrics[k] for k in ("max_jobs", "speed", "load")} == {
            "max_jobs": 2.0,
            "speed": 0.0,
            "load": 1000.0,
        }
        # a snapshot carries no load averages or free memory (icecream.md §3.2)
        assert not {"loadavg1", "loadavg5", "loadavg15", "free_mem_mib"} & set(node.metrics)
        assert node.metrics["jobs"] == node.metrics["jobs_done"] == 0
    assert cluster.ids == {1: "icelab-client", 2: "icelab-remote1", 3: "icelab-remote2"}


def test_full_stats_map_every_key() -> None:
    _, sink, _ = replay(until=FIRST_FULL_STATS)
    for line, name in zip(range(14, 17), HOSTS, strict=True):
        stats = stats_of(line)
        assert stats["Name"] == name
        assert "LoadAvg10" in stats
        node = sink.node(name)
        assert node is not None
        expected = {
            "max_jobs": stats["MaxJobs"],
            "speed": stats["Speed"],
            "load": stats["Load"],
            "loadavg1": stats["LoadAvg1"],
            "loadavg5": stats["LoadAvg5"],
            "loadavg15": stats["LoadAvg10"],  # the third loadavg is the 15-minute one
            "free_mem_mib": stats["FreeMem"],
        }
        assert {k: node.metrics[k] for k in expected} == {k: float(v) for k, v in expected.items()}
        assert node.labels["platform"] == stats["Platform"]
        assert node.labels["protocol"] == stats["Version"]
        assert node.labels["features"] == stats["Features"]
        assert node.labels["no_remote"] == stats["NoRemote"]


def test_resent_snapshots_are_idempotent() -> None:
    # every new monitor login makes the scheduler re-send its snapshot (trap 23)
    _, once, _ = replay(until=4)
    _, thrice, _ = replay(until=LAST_SNAPSHOT)
    assert thrice.nodes() == once.nodes()
    assert thrice.deleted() == []


def test_offline_host_is_deleted() -> None:
    cluster, sink, _ = replay(until=REMOTE2_OFFLINE)
    assert sink.log[-1][:3] == ("del", "node", f"{SOURCE}/icelab-remote2")
    assert sink.node("icelab-remote2") is None
    assert "icelab-remote2" not in cluster.hosts
    assert 3 not in cluster.ids
    assert sorted(sink.nodes()) == ["icelab-client", "icelab-remote1"]


def test_relogin_under_a_new_host_id_keeps_the_node_id() -> None:
    cluster, sink, _ = replay(until=REMOTE2_RELOGIN)
    node = sink.node("icelab-remote2")
    assert node is not None
    assert node.id == f"{SOURCE}/icelab-remote2"
    assert (node.labels["hostid"], node.metrics["load"]) == ("4", 1000.0)
    assert cluster.ids[4] == "icelab-remote2"
    assert 3 not in cluster.ids
    assert not any(name.startswith("host-") for name in sink.nodes())
    cluster, sink, _ = replay(until=REMOTE2_FULL_STATS)
    node = sink.node("icelab-remote2")
    assert node is not None
    assert node.metrics["loadavg1"] == float(stats_of(REMOTE2_FULL_STATS)["LoadAvg1"])
    # the new id is the one jobs name: job 35 begins on host 4
    replay(until=134, since=REMOTE2_FULL_STATS + 1, cluster=cluster)
    assert sink.job(35).server == "icelab-remote2"


def test_relogin_before_the_old_id_goes_offline_keeps_counters() -> None:
    sink, clock = RecordingSink(), FakeClock()
    cluster = Cluster(SOURCE, sink, clock=clock)
    cluster.apply(MonStats(3, "Name:r2\nIP:10.0.0.3\nLoad:1000\n"))
    cluster.apply(MonGetCS("a.c", 0, 1, 3))
    cluster.apply(MonJobBegin(1, 0, 3))
    cluster.apply(MonJobDone(1, 0, 100, 0, 0, 0, 10, 20, 30, 40, 0))
    clock.now += 5
    cluster.apply(MonStats(4, "Name:r2\nIP:10.0.0.3\nLoad:1000\n"))
    node = sink.node("r2")
    assert node is not None
    assert (node.labels["hostid"], node.since) == ("4", clock.now)
    assert (node.metrics["jobs_done"], node.metrics["bytes_in"]) == (1, 10)
    cluster.apply(MonStats(3, "State:Offline\n"))  # the old id, late: not this host any more
    assert sink.node("r2") is not None
    assert sink.deleted() == []
    cluster.apply(MonStats(4, "State:Offline\n"))
    assert sink.node("r2") is None


# -- jobs -----------------------------------------------------------------------------------------


def test_every_job_ends_done_or_failed() -> None:
    cluster, sink, _ = replay()
    dones = {m.job_id: m for _, _, m in session() if isinstance(m, MonJobDone)}
    locals_ = {m.job_id: m for _, _, m in session() if isinstance(m, MonLocalJobBegin)}
    assert sorted(dones.keys() | locals_.keys()) == list(range(1, 48))
    for job_id, done in dones.items():
        job = sink.job(job_id)
        assert job.metrics["exitcode"] == done.exitcode
        assert job.state == ("done" if done.exitcode == 0 else "failed"), job_id
        assert job.ended is not None
    failed = {j: d.exitcode for j, d in dones.items() if d.exitcode != 0}
    assert failed == {34: 1, 36: 118, 39: 118, 37: 255, 44: 255, 45: 255, 46: 255, 47: 255}
    assert sink.job(34).file == "work/src/broken.c"
    assert (sink.job(34).client, sink.job(34).server) == ("icelab-client", "icelab-client")
    # local jobs: the link, the icerun with no file, the local fallback of job 39's file
    assert {j: (sink.job(j).file, sink.job(j).state) for j in locals_} == {
        32: ("work/obj/prog", "done"),
        33: ("", "done"),
        40: ("work/obj/unit5.o", "done"),
    }
    assert cluster.jobs == {}
    assert {j.state for j in sink.jobs().values()} == {"done", "failed"}
    assert cluster.messages == len(session())


def test_a_remote_job_life() -> None:
    # job 1: MON_GET_CS (line 20) -> MON_JOB_BEGIN on host 3 (33) -> MON_JOB_DONE (40)
    times = {n: when for n, when, _ in session()}
    _, sink, _ = replay(until=20)
    job = sink.job(1)
    assert (job.state, job.client, job.server, job.file) == (
        "waiting",
        "icelab-client",
        "",
        "work/src/unit6.c",
    )
    assert (job.metrics["lang"], job.metrics["requested"]) == (0, times[20])
    assert LANGS[0] == "C"
    _, sink, _ = replay(until=33)
    job = sink.job(1)
    assert (job.state, job.server, job.started) == ("running", "icelab-remote2", times[33])
    assert job.metrics["queue_msec"] == pytest.approx((times[33] - times[20]) * 1000)
    assert sink.node("icelab-remote2").metrics["jobs"] == 1  # type: ignore[union-attr]
    _, sink, _ = replay(until=40)
    job = sink.job(1)
    assert (job.state, job.ended) == ("done", times[40])
    assert job.metrics["in_compressed"] == 35784
    assert job.metrics["out_uncompressed"] == 5040
    node = sink.node("icelab-remote2")
    assert node is not None
    assert (node.metrics["jobs"], node.metrics["jobs_done"]) == (0, 1)
    assert (node.metrics["busy_msec"], node.metrics["avg_msec"]) == (501, 501.0)


def test_local_job_times_come_from_the_clock() -> None:
    times = {n: when for n, when, _ in session()}
    _, sink, _ = replay(until=118)
    job = sink.job(32)
    assert (job.started, job.ended) == (times[117], times[118])
    assert job.metrics["real_msec"] == pytest.approx((times[118] - times[117]) * 1000)


def test_counters_add_up_while_every_host_is_there() -> None:
    cluster, sink, _ = replay(until=BROKEN_DONE)
    assert sink.deleted() == []
    nodes = sink.nodes()
    for counter in COUNTERS:
        assert sum(n.metrics[counter] for n in nodes.values()) == cluster.totals[counter], counter
    requests = sum(1 for n, _, m in session() if n <= BROKEN_DONE and isinstance(m, MonGetCS))
    assert nodes["icelab-client"].metrics["requested"] == requests == 32
    assert nodes["icelab-client"].metrics["jobs_failed"] == 1  # broken.c
    assert nodes["icelab-client"].metrics["local_jobs"] == 2  # the link and the icerun
    assert sum(n.metrics["jobs"] for n in nodes.values()) == 0
    assert cluster.totals["jobs_done"] + cluster.totals["jobs_failed"] == 32
    # the node entities match the cluster's own counters
    for name, host in cluster.hosts.items():
        assert {c: nodes[name].metrics[c] for c in COUNTERS} == {
            c: host.counters[c] for c in COUNTERS
        }


def test_counters_add_up_over_the_whole_session() -> None:
    cluster, sink, _ = replay()
    lives = sink.node_lives()
    # remote2 had two lives (host 3, then host 4); every other node one
    assert sorted(n.name for n in lives) == sorted([*HOSTS, "icelab-remote2"])
    # Four failed jobs belong to no host: job 39 never began (line 139); job 37's server
    # (host 2) had left before its exit 255 (lines 141-142); jobs 46/47 ran on the client,
    # which had left before theirs (lines 166-170). They carry no time and no bytes.
    orphans = [
        m for _, _, m in session() if isinstance(m, MonJobDone) and m.job_id in {37, 39, 46, 47}
    ]
    assert len(orphans) == 4
    assert all(
        m.exitcode and not (m.real_msec or m.in_compressed or m.out_compressed) for m in orphans
    )
    unattributed = dict.fromkeys(COUNTERS, 0)
    unattributed["jobs_failed"] = len(orphans)
    # Counters carry over a re-login: each node's last life holds its whole history.
    final = {n.name: n for n in lives}
    for counter in COUNTERS:
        total = sum(n.metrics[counter] for n in final.values()) + unattributed[counter]
        assert total == cluster.totals[counter], counter
    first, second = [n for n in lives if n.name == "icelab-remote2"]
    assert second.metrics["jobs_done"] >= first.metrics["jobs_done"] > 0
    assert cluster.totals["jobs_done"] + cluster.totals["jobs_failed"] == 44
    assert cluster.totals["local_jobs"] == 3
    requests = sum(1 for _, _, m in session() if isinstance(m, MonGetCS))
    assert sum(n.metrics["requested"] for n in lives) == requests == 44
    assert cluster.totals["queued"] == sum(1 for _, _, m in session() if isinstance(m, MonJobBegin))


def test_the_four_sessions_tell_the_same_story() -> None:
    # from lines 14/183/349/512 on the sessions carry the same events, each in its own version
    outcomes = []
    for name in ("mon-v44", "mon-v38", "mon-v28", "mon-v21"):
        cluster, sink, _ = replay(name=name)
        outcomes.append(
            (
                {(j.id, j.state, j.file, j.client, j.server) for j in sink.jobs().values()},
                {k: v for k, v in cluster.totals.items() if k != "queue_msec"},
            )
        )
    assert outcomes[1:] == outcomes[:1] * 3


def test_begin_and_done_for_never_seen_ids() -> None:
    sink, clock = RecordingSink(), FakeClock()
    cluster = Cluster(SOURCE, sink, clock=clock)
    cluster.apply(MonStats(1, "Name:a\nIP:10.0.0.1\n"))
    cluster.apply(MonJobDone(98, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0))  # DONE, never seen: ignored
    cluster.apply(JobLocalDone(97))
    cluster.apply(MonStats(42, "State:Offline\n"))  # an unknown host leaving
    assert sink.jobs() == {}
    assert sink.deleted() == []
    assert cluster.totals["jobs_done"] == 0
    cluster.apply(MonJobBegin(99, 0, 1))  # joined mid-build: BEGIN without GET_CS
    job = sink.job(99)
    assert (job.state, job.server, job.client) == ("running", "a", "")
    assert "queue_msec" not in job.metrics
    cluster.apply(MonJobBegin(100, 0, 7))  # on a host never seen
    assert sink.job(100).server == "host-7"
    cluster.apply(MonJobDone(99, 2, 5, 0, 0, 0, 1, 0, 2, 0, 0))
    assert sink.job(99).state == "failed"
    node = sink.node("a")
    assert node is not None
    assert (node.metrics["jobs"], node.metrics["jobs_failed"]) == (0, 1)
    cluster.apply(MonJobDone(100, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0))
    assert sink.job(100).state == "done"
    cluster.apply(MonLocalJobBegin(9, 101, 0, "x"))  # a local job on an unknown host
    cluster.apply(JobLocalDone(101))
    assert (sink.job(101).server, sink.job(101).state) == ("host-9", "done")
    cluster.apply(UnknownMessage(96, b""))  # not a monitor message: ignored
    assert cluster.jobs == {}


def test_stats_without_a_name_use_the_known_name() -> None:
    sink, clock = RecordingSink(), FakeClock()
    cluster = Cluster(SOURCE, sink, clock=clock)
    cluster.apply(MonStats(1, "Name:a\nLoad:10\nFeatures:--\nNewKey:x:y\n"))
    cluster.apply(MonStats(1, "Load:20\nMaxJobs:-1\nSpeed:nan\n"))
    node = sink.node("a")
    assert node is not None
    assert (node.metrics["load"], node.metrics["max_jobs"]) == (20.0, -1.0)
    assert "speed" not in node.metrics  # NaN is no number
    assert node.labels["features"] == "--"
    assert node.labels["newkey"] == "x:y"  # keys icecream may add later are kept
    cluster.apply(MonStats(5, "Load:1\n"))
    assert sink.node("host-5") is not None
    assert parse_number("12.5") == 12.5
    assert parse_number("x") is None


# -- blocked hosts --------------------------------------------------------------------------------


def test_a_blocked_host_dropped_by_the_scheduler_stays_blocked_then_goes() -> None:
    cluster, sink, clock = replay(until=BROKEN_DONE)
    clock.now += 1
    cluster.set_blocked({"icelab-remote2"})
    node = sink.node("icelab-remote2")
    assert node is not None
    assert (node.state, node.since) == ("blocked", clock.now)
    replay(until=REMOTE2_OFFLINE, since=REMOTE2_OFFLINE, cluster=cluster)
    node = sink.node("icelab-remote2")
    assert node is not None  # dropped by the scheduler, but shown as blocked
    assert node.state == "blocked"
    assert sink.deleted() == []
    cluster.set_blocked({"icelab-remote2"})  # the same answer again changes nothing
    assert sink.node("icelab-remote2") == node
    cluster.set_blocked(set())  # unblocked, and it has not logged in again
    assert sink.node("icelab-remote2") is None
    assert sink.deleted() == [("node", f"{SOURCE}/icelab-remote2")]
    assert "icelab-remote2" not in cluster.hosts


def test_a_blocked_host_that_logs_in_again_comes_back_online() -> None:
    cluster, sink, _ = replay(until=BROKEN_DONE)
    cluster.set_blocked({"icelab-remote2"})
    done_before = sink.node("icelab-remote2").metrics["jobs_done"]  # type: ignore[union-attr]
    replay(until=REMOTE2_RELOGIN, since=REMOTE2_OFFLINE, cluster=cluster)
    node = sink.node("icelab-remote2")
    assert node is not None
    assert (node.state, node.labels["hostid"]) == ("blocked", "4")
    assert node.metrics["jobs_done"] == done_before  # kept while it was away
    cluster.set_blocked(set())
    node = sink.node("icelab-remote2")
    assert node is not None
    assert node.state == "online"
    assert sink.deleted() == []


def test_a_host_blocked_after_the_scheduler_dropped_it_keeps_what_was_known() -> None:
    """Guards the usual order of ``blockcs``: the scheduler drops the host (State:Offline)
    before ``listblocks`` says it is blocked; the blocked node must not lose its address,
    labels, slots and counters."""
    cluster, sink, _ = replay(until=BROKEN_DONE)
    before = sink.node("icelab-remote2")
    assert before is not None
    replay(until=REMOTE2_OFFLINE, since=REMOTE2_OFFLINE, cluster=cluster)
    assert sink.node("icelab-remote2") is None  # not known to be blocked yet: gone
    cluster.set_blocked({"icelab-remote2"})
    node = sink.node("icelab-remote2")
    assert node is not None
    assert node.state == "blocked"
    assert node.address == before.address
    assert node.labels["platform"] == before.labels["platform"]
    assert node.metrics["max_jobs"] == before.metrics["max_jobs"]
    assert node.metrics["jobs_done"] == before.metrics["jobs_done"]
    assert node.metrics["jobs"] == 0
    replay(until=REMOTE2_FULL_STATS, since=REMOTE2_RELOGIN, cluster=cluster)
    cluster.set_blocked(set())
    node = sink.node("icelab-remote2")
    assert node is not None
    assert node.state == "online"
    assert node.metrics["jobs_done"] == before.metrics["jobs_done"]  # carried over


def test_blocking_unknown_and_online_hosts() -> None:
    cluster, sink, _ = replay(until=4)
    cluster.set_blocked({"somewhere-else", "icelab-remote1"})
    ghost = sink.node("somewhere-else")
    assert ghost is not None
    assert (ghost.state, ghost.address) == ("blocked", "")
    assert "hostid" not in ghost.labels
    assert sink.node("icelab-remote1").state == "blocked"  # type: ignore[union-attr]
    cluster.set_blocked({"icelab-remote1"})
    assert sink.node("somewhere-else") is None
    cluster.set_blocked(set())
    remote1 = sink.node("icelab-remote1")
    assert remote1 is not None
    assert remote1.state == "online"
    assert sorted(sink.nodes()) == sorted(HOSTS)


def test_capture_frames_are_what_the_tables_say() -> None:
    # guards the line numbers this file relies on (CAPTURES.md §1)
    by_line = {n: m for n, _, m in session()}
    assert by_line[BROKEN_DONE] == MonJobDone(34, 1, 9, 6, 1, 1127, 0, 0, 0, 0, 1, 1)
    assert by_line[REMOTE2_OFFLINE] == MonStats(3, "State:Offline\n")
    assert isinstance(by_line[REMOTE2_RELOGIN], MonStats)
    assert by_line[REMOTE2_RELOGIN].hostid == 4
    assert stats_of(REMOTE2_RELOGIN)["Load"] == "1000"


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_deferred_publishing_ends_in_the_same_state(batch: int) -> None:
    """Guards ``deferred=True`` (what the source uses): holding host and job changes until
    :meth:`Cluster.publish` must not change what the model ends with."""
    _, direct, _ = replay()
    sink, clock = RecordingSink(), FakeClock()
    cluster = Cluster(SOURCE, sink, clock=clock, deferred=True)
    for i, (_, when, msg) in enumerate(session(), 1):
        clock.now = when
        cluster.apply(msg)
        if i % batch == 0:
            cluster.publish()
    cluster.publish()
    assert sink.current == direct.current
    assert len(sink.log) <= len(direct.log)


def test_a_job_that_runs_its_life_within_one_batch_is_put_once_in_its_last_state() -> None:
    sink = RecordingSink()
    cluster = Cluster(SOURCE, sink, clock=FakeClock(), deferred=True)
    cluster.apply(MonStats(1, "Name:h1\nIP:10.0.0.1\nMaxJobs:4\n"))
    cluster.apply(MonGetCS("a.c", 0, 7, 1))
    cluster.apply(MonJobBegin(7, 0, 1))
    cluster.apply(MonJobDone(7, 0, 1500, 450, 20, 6500, 100, 200, 300, 400, 0, 4))
    assert sink.log == []  # nothing before publish
    cluster.publish()
    puts = [(kind, id) for op, kind, id, _ in sink.log if op == "put"]
    assert sorted(puts) == [("job", f"{SOURCE}#7"), ("node", f"{SOURCE}/h1")]
    job = sink.job(7)
    assert job.state == "done"
    assert job.server == job.client == "h1"
    assert job.metrics["real_msec"] == 1500
    cluster.publish()
    assert len(sink.log) == 2  # published once


def test_host_stats_wait_for_hosts_every_but_counters_go_with_their_jobs_issue12() -> None:
    """Guards the source's rate limit on host *stats* (a busy cluster sends many) and that a
    host's *counters* go out in the same publish as the jobs they count, with the totals
    (issue 12: one snapshot's numbers agree)."""
    sink, clock = RecordingSink(), FakeClock()
    cluster = Cluster(SOURCE, sink, clock=clock, deferred=True, hosts_every=0.1)
    totals: list[dict[str, float]] = []
    cluster.on_totals = totals.append
    cluster.apply(MonStats(1, "Name:h1\nIP:10.0.0.1\nMaxJobs:4\n"))
    cluster.publish()
    assert sink.node("h1") is not None  # the first publish is due
    cluster.apply(MonGetCS("a.c", 0, 1, 1))
    clock.now += 0.05
    cluster.publish()
    assert sink.job(1).state == "waiting"  # the job at once, and its host's counter
    assert sink.node("h1").metrics["requested"] == 1  # type: ignore[union-attr]
    assert totals[-1]["waiting_jobs"] == 1
    assert not cluster.hosts_pending
    cluster.apply(MonStats(1, "Load:300\n"))  # stats only: when due
    cluster.publish()
    assert cluster.hosts_pending
    assert sink.node("h1").metrics.get("load") != 300  # type: ignore[union-attr]
    clock.now += 0.06
    cluster.publish()
    assert not cluster.hosts_pending
    assert sink.node("h1").metrics["load"] == 300  # type: ignore[union-attr]
    cluster.apply(MonJobBegin(1, 0, 1))
    cluster.publish()
    assert sink.node("h1").metrics["jobs"] == 1  # type: ignore[union-attr]
    assert totals[-1]["active_jobs"] == totals[-1]["running_jobs"] == 1
    assert totals[-1]["waiting_jobs"] == 0


@pytest.mark.parametrize("hosts_every", [0.0, 0.1, 10.0])
def test_every_published_state_agrees_with_itself_issue12(hosts_every: float) -> None:
    """After each publish (what the source does after each read, so one commit of the hub),
    the totals agree with the job list and the hosts' counters of the same moment: the
    issue saw active_jobs wrong in 18 of 60 snapshots, and the hosts' "done" above the
    cluster's."""
    sink, clock = RecordingSink(), FakeClock()
    cluster = Cluster(SOURCE, sink, clock=clock, deferred=True, hosts_every=hosts_every)
    published: list[dict[str, float]] = [cluster.summary()]
    cluster.on_totals = published.append
    checked = 0
    for _, when, msg in session():
        clock.now = when
        cluster.apply(msg)
        cluster.publish()
        totals = published[-1]
        jobs = sink.jobs().values()
        live = {s: sum(j.state == s for j in jobs) for s in ("waiting", "running", "local")}
        assert totals["waiting_jobs"] == live["waiting"]
        assert totals["running_jobs"] == live["running"]
        assert totals["local_now"] == live["local"]
        assert totals["active_jobs"] == live["running"] + live["local"]
        nodes = sink.nodes().values()
        for counter in ("jobs_done", "jobs_failed", "local_jobs", "local_done"):
            # Hosts that left take their counts with them; none counts more than the total.
            assert sum(n.metrics[counter] for n in nodes) <= totals[counter], counter
        assert sum(n.metrics["jobs"] for n in nodes) <= live["running"]
        finished = [j for j in jobs if j.state in ("done", "failed")]
        unknown = [j for j in finished if j.metrics.get("result_unknown")]
        assert all(j.state == "done" and j.client == j.server for j in unknown)
        assert len(unknown) == totals["local_done"]  # no job left the ring here
        assert sum(j.state == "failed" for j in finished) <= totals["jobs_failed"]
        checked += 1
    assert checked > 100
    assert published[-1]["local_done"] == 3
