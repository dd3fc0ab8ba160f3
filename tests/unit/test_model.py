"""The fleet model: changes, coalescing, the gap-free sequence, the delta ring, finished jobs.

The key property: a client holding snapshot A that replays every later delta (as JSON,
the way the stream sends them) ends up with exactly the later snapshot B.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fleetwatch.model import (
    KINDS,
    ActionSpec,
    Change,
    Delta,
    Entity,
    Fleet,
    Job,
    Node,
    ParamSpec,
    Process,
    Snapshot,
    Source,
    dumps,
    entity_from_dict,
    plural,
    positional,
)

# -- helpers ---------------------------------------------------------------------------------------


def src(id: str = "s", **kw: Any) -> Source:
    return Source(id=id, kind="supervisor", name=id, **kw)


def node(id: str = "s/h", source: str = "s", **kw: Any) -> Node:
    return Node(id=id, source=source, name=id.partition("/")[2], **kw)


def proc(id: str = "s:g:p", state: str = "RUNNING", **kw: Any) -> Process:
    source, group, name = id.split(":")
    return Process(id=id, source=source, group=group, name=name, state=state, **kw)


def job(id: str = "s#1", state: str = "running", **kw: Any) -> Job:
    return Job(id=id, source=id.partition("#")[0], state=state, **kw)


def ops(delta: Delta) -> list[tuple[str, str, str]]:
    return [(c.op, c.kind, c.id) for c in delta.changes]


def snapshot_json(snap: Snapshot) -> bytes:
    return dumps(snap.as_dict())


def fleet_from_snapshot(data: dict[str, Any]) -> Fleet:
    """A replica built from a snapshot's JSON, at the snapshot's seq.

    Fleet has no public way to start at a given seq, so this sets ``_seq``. The
    replica keeps every finished job: evicting them is the origin's call, and its
    ``del`` changes arrive in the deltas.
    """
    fleet = Fleet(data["name"], finished_jobs=1 << 30)
    for kind in KINDS:
        for item in data[plural(kind)]:
            fleet.put(entity_from_dict(kind, item))
    fleet.commit()
    fleet._seq = data["seq"]
    fleet.epoch = data["epoch"]
    return fleet


def replay_frame(fleet: Fleet, frame: bytes) -> None:
    """Apply one ``{"t": "delta", ...}`` frame as a client would, checking the gap-free rule."""
    data = orjson.loads(frame)
    assert data["t"] == "delta"
    assert data["seq"] - len(data["changes"]) == fleet.seq, "gap or doubled delta"
    for c in data["changes"]:
        value = None if c["value"] is None else entity_from_dict(c["kind"], c["value"])
        fleet.apply(Change(c["op"], c["kind"], c["id"], value))
    fleet.commit()
    fleet._seq = data["seq"]


# -- put / delete / sync / commit ------------------------------------------------------------------


def test_each_fleet_has_its_own_epoch() -> None:
    a, b = Fleet(), Fleet()
    assert len(a.epoch) == 16
    assert a.epoch != b.epoch


def test_new_fleet_is_empty_at_seq_zero() -> None:
    fleet = Fleet("acme")
    assert fleet.seq == 0
    assert not fleet.dirty
    assert fleet.commit() is None
    snap = fleet.snapshot()
    assert snap.as_dict() == {
        "seq": 0,
        "name": "acme",
        "epoch": fleet.epoch,
        "sources": (),
        "nodes": (),
        "processes": (),
        "jobs": (),
    }


@pytest.mark.parametrize(("ring", "finished"), [(0, 10), (1, -1)])
def test_bad_limits_are_refused(ring: int, finished: int) -> None:
    with pytest.raises(ValueError, match="ring"):
        Fleet(ring=ring, finished_jobs=finished)


def test_put_commit_and_get() -> None:
    fleet = Fleet()
    assert fleet.put(src())
    assert fleet.put(node())
    assert fleet.put(proc())
    assert fleet.dirty
    delta = fleet.commit()
    assert delta is not None
    assert delta.seq == 3
    assert delta.first_seq == 1
    assert ops(delta) == [
        ("put", "source", "s"),
        ("put", "node", "s/h"),
        ("put", "process", "s:g:p"),
    ]
    assert delta.changes[2].value == proc()
    assert fleet.seq == 3
    assert not fleet.dirty
    assert fleet.get("process", "s:g:p") == proc()
    assert fleet.get("process", "nope") is None
    assert fleet.count("node") == 1
    assert fleet.ids_of_source("process", "s") == {"s:g:p"}
    assert repr(delta) == "Delta(seq=3, changes=3)"


def test_unchanged_put_is_not_a_change() -> None:
    fleet = Fleet()
    fleet.put(proc(pid=7))
    fleet.commit()
    assert not fleet.put(proc(pid=7))
    assert not fleet.dirty
    assert fleet.commit() is None
    assert fleet.seq == 1


def test_delete_of_unknown_is_not_a_change() -> None:
    fleet = Fleet()
    assert not fleet.delete("process", "s:g:p")
    assert fleet.commit() is None


def test_seq_is_gap_free_across_commits() -> None:
    fleet = Fleet()
    previous = 0
    for i in range(1, 6):
        for j in range(i):
            fleet.put(proc(f"s:g:p{j}", pid=i))
        delta = fleet.commit()
        assert delta is not None
        assert len(delta.changes) == i
        assert delta.seq - len(delta.changes) == previous
        previous = delta.seq
    assert fleet.seq == 1 + 2 + 3 + 4 + 5


def test_several_puts_coalesce_and_the_last_wins() -> None:
    fleet = Fleet()
    fleet.put(src())
    fleet.commit()
    for pid in (1, 2, 3):
        fleet.put(proc(pid=pid))
    delta = fleet.commit()
    assert delta is not None
    assert ops(delta) == [("put", "process", "s:g:p")]
    assert delta.changes[0].value == proc(pid=3)
    assert delta.seq == 2


def test_put_then_delete_coalesces_to_delete() -> None:
    fleet = Fleet()
    fleet.put(proc(pid=1))
    fleet.commit()
    fleet.put(proc(pid=2))
    fleet.delete("process", "s:g:p")
    delta = fleet.commit()
    assert delta is not None
    assert ops(delta) == [("del", "process", "s:g:p")]
    assert delta.changes[0].value is None
    assert fleet.get("process", "s:g:p") is None


def test_delete_then_put_coalesces_to_put() -> None:
    fleet = Fleet()
    fleet.put(proc(pid=1))
    fleet.commit()
    fleet.delete("process", "s:g:p")
    fleet.put(proc(pid=2))
    delta = fleet.commit()
    assert delta is not None
    assert ops(delta) == [("put", "process", "s:g:p")]
    assert delta.changes[0].value == proc(pid=2)


def test_coalesced_change_moves_to_the_end() -> None:
    # Replaying in order must give the final state: the last touch decides the position.
    fleet = Fleet()
    fleet.put(proc("s:g:a"))
    fleet.put(proc("s:g:b"))
    fleet.put(proc("s:g:a", pid=5))
    delta = fleet.commit()
    assert delta is not None
    assert ops(delta) == [("put", "process", "s:g:b"), ("put", "process", "s:g:a")]


def test_deleting_a_source_deletes_what_it_owns() -> None:
    fleet = Fleet()
    for e in (src("s"), node("s/h"), proc("s:g:p"), proc("s:g:q"), job("s#1"), src("t")):
        fleet.put(e)
    fleet.put(node("t/h", source="t"))
    fleet.commit()
    assert fleet.delete("source", "s")
    delta = fleet.commit()
    assert delta is not None
    assert sorted(ops(delta)) == sorted(
        [
            ("del", "source", "s"),
            ("del", "node", "s/h"),
            ("del", "process", "s:g:p"),
            ("del", "process", "s:g:q"),
            ("del", "job", "s#1"),
        ]
    )
    assert ops(delta)[0] == ("del", "source", "s")
    assert fleet.count("process") == 0
    assert fleet.count("job") == 0
    assert [n.id for n in fleet.all("node")] == ["t/h"]
    assert fleet.ids_of_source("process", "s") == frozenset()


def test_moving_an_entity_to_another_source_reindexes_it() -> None:
    fleet = Fleet()
    fleet.put(node("x/h", source="s"))
    fleet.put(node("x/h", source="t"))
    assert fleet.ids_of_source("node", "s") == frozenset()
    assert fleet.ids_of_source("node", "t") == {"x/h"}
    fleet.delete("source", "s")  # not there: nothing cascades
    fleet.put(src("t"))
    fleet.delete("source", "t")
    assert fleet.get("node", "x/h") is None


def test_sync_makes_a_source_kind_exact() -> None:
    fleet = Fleet()
    fleet.sync("process", "s", [proc("s:g:a"), proc("s:g:b")])
    fleet.put(proc("t:g:a"))
    fleet.commit()
    changed = fleet.sync("process", "s", [proc("s:g:b"), proc("s:g:c")])
    assert changed == 2
    delta = fleet.commit()
    assert delta is not None
    assert sorted(ops(delta)) == [("del", "process", "s:g:a"), ("put", "process", "s:g:c")]
    assert fleet.get("process", "t:g:a") is not None  # other sources are untouched
    assert fleet.sync("process", "s", [proc("s:g:b"), proc("s:g:c")]) == 0
    assert not fleet.dirty


def test_apply_replays_changes() -> None:
    fleet = Fleet()
    assert fleet.apply(Change("put", "process", "s:g:p", proc()))
    assert fleet.apply(Change("del", "process", "s:g:p"))
    assert not fleet.apply(Change("del", "process", "s:g:p"))
    with pytest.raises(ValueError, match="without a value"):
        fleet.apply(Change("put", "process", "s:g:p"))


def test_snapshot_refuses_pending_changes() -> None:
    fleet = Fleet()
    fleet.put(src())
    with pytest.raises(RuntimeError, match="commit"):
        fleet.snapshot()
    fleet.commit()
    assert fleet.snapshot().sources == (src(),)


def test_snapshot_is_sorted_by_id() -> None:
    fleet = Fleet()
    for id in ("s:g:c", "s:g:a", "s:g:b"):
        fleet.put(proc(id))
    fleet.commit()
    snap = fleet.snapshot()
    assert [p.id for p in snap.processes] == ["s:g:a", "s:g:b", "s:g:c"]
    assert [e.id for e in snap.entities()] == ["s:g:a", "s:g:b", "s:g:c"]


def test_delta_frame_shape() -> None:
    fleet = Fleet()
    fleet.put(proc(pid=3))
    fleet.put(proc("s:g:q"))
    fleet.commit()
    fleet.delete("process", "s:g:q")
    delta = fleet.commit()
    assert delta is not None
    frame = orjson.loads(delta.frame())
    assert frame == {
        "t": "delta",
        "seq": 3,
        "changes": [{"op": "del", "kind": "process", "id": "s:g:q", "value": None}],
    }
    assert delta.frame() is delta.frame()  # encoded once
    assert delta.as_dict()["seq"] == 3


# -- the finished-job ring -------------------------------------------------------------------------


def test_finished_jobs_beyond_the_limit_are_evicted_oldest_first() -> None:
    fleet = Fleet(finished_jobs=2)
    fleet.put(job("s#run", "running"))
    for i in range(1, 5):
        fleet.put(job(f"s#{i}", "running"))
    fleet.commit()
    fleet.put(job("s#1", "done"))
    fleet.put(job("s#2", "failed"))
    fleet.commit()
    assert {j.id for j in fleet.all("job")} == {"s#run", "s#1", "s#2", "s#3", "s#4"}
    fleet.put(job("s#3", "done"))
    delta = fleet.commit()
    assert delta is not None
    assert ops(delta) == [("put", "job", "s#3"), ("del", "job", "s#1")]
    fleet.put(job("s#4", "done"))
    fleet.commit()
    # running jobs are never evicted, however many finish
    assert {j.id for j in fleet.all("job")} == {"s#run", "s#3", "s#4"}


def test_a_job_finished_twice_counts_as_newly_finished() -> None:
    fleet = Fleet(finished_jobs=3)
    for id in ("s#a", "s#b", "s#c"):
        fleet.put(job(id, "done"))
    fleet.put(job("s#a", "running"))  # restarted ...
    fleet.put(job("s#a", "done"))  # ... and finished again: now the newest
    fleet.commit()
    assert {j.id for j in fleet.all("job")} == {"s#a", "s#b", "s#c"}
    fleet.put(job("s#d", "done"))
    fleet.commit()
    assert {j.id for j in fleet.all("job")} == {"s#a", "s#c", "s#d"}


def test_a_job_that_runs_again_no_longer_counts_as_finished() -> None:
    fleet = Fleet(finished_jobs=2)
    fleet.put(job("s#b", "done"))
    fleet.put(job("s#a", "done"))
    fleet.put(job("s#a", "running"))
    fleet.put(job("s#c", "done"))
    fleet.commit()
    # two finished jobs (b, c) is not beyond the limit: nothing is evicted
    assert {j.id for j in fleet.all("job")} == {"s#a", "s#b", "s#c"}


def test_zero_finished_jobs_drops_them_at_once() -> None:
    fleet = Fleet(finished_jobs=0)
    fleet.put(job("s#1", "running"))
    fleet.commit()
    fleet.put(job("s#1", "done"))
    delta = fleet.commit()
    assert delta is not None
    assert ops(delta) == [("del", "job", "s#1")]
    assert fleet.count("job") == 0


JOB_IDS = [f"s#{i}" for i in range(6)]


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(0, 4),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["put", "put", "put", "del", "del_source"]),
            st.sampled_from(JOB_IDS),
            st.sampled_from(["waiting", "running", "local", "done", "failed"]),
        ),
        max_size=60,
    ),
)
def test_finished_job_ring_matches_a_reference(
    limit: int, steps: list[tuple[str, str, str]]
) -> None:
    """Kept: every unfinished job, and the ``limit`` most recently finished ones."""
    fleet = Fleet(finished_jobs=limit)
    fleet.put(src("s"))
    jobs: dict[str, str] = {}  # id -> state
    finished_order: list[str] = []  # oldest first
    for op, id, state in steps:
        if op == "put":
            fleet.put(job(id, state))
            was_finished = jobs.get(id) in ("done", "failed")
            jobs[id] = state
            if state in ("done", "failed"):
                if not was_finished:
                    finished_order.append(id)
            elif was_finished:
                finished_order.remove(id)
            while len(finished_order) > limit:
                del jobs[finished_order.pop(0)]
        elif op == "del":
            fleet.delete("job", id)
            if jobs.pop(id, None) in ("done", "failed"):
                finished_order.remove(id)
        else:
            fleet.delete("source", "s")
            fleet.put(src("s"))
            jobs.clear()
            finished_order.clear()
        assert {j.id: j.state for j in fleet.all("job")} == jobs  # type: ignore[union-attr]
    fleet.commit()


# -- deltas_since ----------------------------------------------------------------------------------


def make_history(ring: int = 100) -> tuple[Fleet, list[Delta]]:
    fleet = Fleet(ring=ring)
    deltas = []
    for i in range(5):
        for j in range(i + 1):  # deltas of 1, 2, 3, 4, 5 changes
            fleet.put(proc(f"s:g:p{j}", pid=i))
        d = fleet.commit()
        assert d is not None
        deltas.append(d)
    return fleet, deltas


def test_deltas_since_current_seq_is_empty() -> None:
    fleet, _ = make_history()
    assert fleet.deltas_since(fleet.seq) == []
    assert Fleet().deltas_since(0) == []


def test_deltas_since_inside_the_ring_are_exactly_the_missed_ones() -> None:
    fleet, deltas = make_history()
    boundaries = [0] + [d.seq for d in deltas]
    assert boundaries == [0, 1, 3, 6, 10, 15]
    for i, seq in enumerate(boundaries):
        assert fleet.deltas_since(seq) == deltas[i:]


def test_deltas_since_older_than_the_ring_is_none() -> None:
    fleet, deltas = make_history(ring=2)
    assert fleet.deltas_since(6) == deltas[3:]  # the oldest one kept starts after 6
    assert fleet.deltas_since(3) is None
    assert fleet.deltas_since(0) is None


@pytest.mark.parametrize("seq", [2, 4, 5, 7, 14, 16, 1000, -1])
def test_deltas_since_a_non_boundary_or_future_seq_is_none(seq: int) -> None:
    fleet, _ = make_history()
    assert fleet.deltas_since(seq) is None


def test_deltas_since_with_an_empty_ring() -> None:
    assert Fleet().deltas_since(3) is None


# -- the key property: snapshot + later deltas == later snapshot -----------------------------------

SOURCES = ["a", "b"]
_floats = st.floats(-1e6, 1e12, allow_nan=False, allow_infinity=False)
_small = st.sampled_from(["", "x", "ü ✓", "web"])

ACTION = ActionSpec(
    name="signal",
    title="Send signal",
    targets=("process", "group"),
    confirm=True,
    params=(
        ParamSpec(name="signal", choices=("HUP", "TERM")),
        ParamSpec(name="n", type="integer", required=False, default=3),
        ParamSpec(name="b", type="boolean", required=False, default=False, title="B"),
    ),
    hotkey="g",
)


def _sources() -> st.SearchStrategy[Entity]:
    return st.builds(
        Source,
        id=st.sampled_from(SOURCES),
        kind=st.just("supervisor"),
        name=_small,
        url=_small,
        status=st.sampled_from(["connecting", "online", "offline", "error"]),
        since=_floats,
        error=st.none() | _small,
        version=st.none() | st.just("4.3.0"),
        actions=st.sampled_from([(), (ACTION,)]),
        info=st.dictionaries(
            st.sampled_from(["pid", "state", "ids"]),
            st.integers(-5, 5) | _small | st.lists(st.integers(0, 3), max_size=2),
            max_size=3,
        ),
        last_seen=st.none() | _floats,
    )


def _nodes() -> st.SearchStrategy[Entity]:
    return st.builds(
        lambda s, h, **kw: Node(id=f"{s}/{h}", source=s, name=h, **kw),
        st.sampled_from(SOURCES),
        st.sampled_from(["h1", "h2"]),
        state=st.sampled_from(["online", "offline"]),
        since=_floats,
        labels=st.dictionaries(st.sampled_from(["z", "a", "m"]), _small, max_size=3),
        metrics=st.dictionaries(st.sampled_from(["load", "jobs"]), _floats, max_size=2),
    )


def _processes() -> st.SearchStrategy[Entity]:
    return st.builds(
        lambda s, g, n, **kw: Process(id=f"{s}:{g}:{n}", source=s, group=g, name=n, **kw),
        st.sampled_from(SOURCES),
        st.sampled_from(["g", "web"]),
        st.sampled_from(["p", "q"]),
        state=st.sampled_from(["RUNNING", "STOPPED", "EXITED", "FATAL"]),
        pid=st.none() | st.integers(1, 1 << 22),
        started=st.none() | _floats,
        exitstatus=st.none() | st.integers(0, 255),
        description=_small,
    )


def _jobs() -> st.SearchStrategy[Entity]:
    return st.builds(
        lambda s, n, **kw: Job(id=f"{s}#{n}", source=s, **kw),
        st.sampled_from(SOURCES),
        st.integers(1, 4),
        state=st.sampled_from(["waiting", "running", "local", "done", "failed"]),
        started=st.none() | _floats,
        metrics=st.dictionaries(st.just("cpu"), _floats, max_size=1),
    )


_entities = st.one_of(_sources(), _nodes(), _processes(), _jobs())

_op = st.one_of(
    st.tuples(st.just("put"), _entities),
    st.tuples(st.just("put"), _entities),
    st.tuples(st.just("put"), _entities),
    st.tuples(st.just("del"), _entities),
    st.tuples(st.just("del"), _sources()),
    st.tuples(
        st.just("sync"),
        st.sampled_from(["node", "process", "job"]),
        st.sampled_from(SOURCES),
        st.lists(st.one_of(_nodes(), _processes(), _jobs()), max_size=3),
    ),
    st.tuples(st.just("commit")),
    st.tuples(st.just("commit")),
)


def run_op(fleet: Fleet, op: tuple[Any, ...]) -> Delta | None:
    if op[0] == "put":
        fleet.put(op[1])
    elif op[0] == "del":
        fleet.delete(op[1].KIND, op[1].id)
    elif op[0] == "sync":
        _, kind, source, entities = op
        fleet.sync(kind, source, [e for e in entities if kind == e.KIND and e.source == source])
    else:
        return fleet.commit()
    return None


def run_ops(fleet: Fleet, steps: Iterable[tuple[Any, ...]]) -> list[Delta]:
    out = []
    for op in steps:
        delta = run_op(fleet, op)
        if delta is not None:
            out.append(delta)
    delta = fleet.commit()
    if delta is not None:
        out.append(delta)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(_op, min_size=5, max_size=30),
    after=st.lists(_op, min_size=1, max_size=40),
    finished_jobs=st.sampled_from([0, 1, 2, 1000]),
)
@example(  # re-put after its source's deletion: the put must come after the source's del
    before=[("put", src("a"))],
    after=[("put", node("a/h1", "a")), ("del", src("a")), ("put", node("a/h1", "a"))],
    finished_jobs=1000,
)
@example(  # a finished job evicted in the same delta as the one that finished
    before=[("put", src("a")), ("put", job("a#1", "done")), ("put", job("a#2"))],
    after=[("put", job("a#2", "failed")), ("commit",), ("put", job("a#1", "running"))],
    finished_jobs=1,
)
def test_snapshot_plus_later_deltas_rebuilds_the_later_snapshot(
    before: list[tuple[Any, ...]], after: list[tuple[Any, ...]], finished_jobs: int
) -> None:
    fleet = Fleet("acme", finished_jobs=finished_jobs)
    run_ops(fleet, before)
    a = fleet.snapshot()
    a_json = snapshot_json(a)
    later = run_ops(fleet, after)
    b_json = snapshot_json(fleet.snapshot())

    assert fleet.deltas_since(a.seq) == later
    replica = fleet_from_snapshot(orjson.loads(a_json))
    assert snapshot_json(replica.snapshot()) == a_json  # the snapshot round-trips as JSON
    for delta in later:
        replay_frame(replica, delta.frame())
    assert snapshot_json(replica.snapshot()) == b_json


def test_entity_from_dict_round_trips_every_kind() -> None:
    entities: list[Entity] = [
        src("s", actions=(ACTION,), info={"pid": 3, "state": "RUNNING"}, last_seen=1.5),
        node(labels={"b": "2", "a": "1"}, metrics={"load": 0.5}),
        proc(pid=4, started=10.0, exitstatus=0, description="pid 4, uptime 0:00:01"),
        job(metrics={"cpu": 1.0}, started=3.0),
    ]
    for e in entities:
        back = entity_from_dict(e.KIND, orjson.loads(dumps(e)))
        assert back == e
        assert dumps(back) == dumps(e)


def test_the_delta_ring_is_bounded_by_changes_too() -> None:
    """Regression (bench/hub.py): a ring of 10,000 huge deltas held gigabytes."""
    fleet = Fleet(ring=1_000, ring_changes=250)
    for batch in range(10):
        for i in range(100):
            fleet.put(
                Process(id=f"s:g:p{i}", source="s", group="g", name=f"p{i}", state=str(batch))
            )
        fleet.commit()
    kept = fleet.deltas_since(fleet.seq - 200)
    assert kept is not None
    assert [len(d.changes) for d in kept] == [100, 100]
    assert fleet.deltas_since(fleet.seq - 300) is None  # beyond the 250 changes kept


@pytest.mark.parametrize("cls", [Source, Node, Process, Job, Change])
def test_positional_builds_what_the_keyword_constructor_builds(cls: type[Any]) -> None:
    """Guards the hot-path constructors against a field added, removed or reordered."""
    sample = {
        Source: Source(id="s", kind="supervisor", name="s", status="online", info={"a": 1}),
        Node: Node(id="s/h", source="s", name="h", labels={"x": "y"}, metrics={"load": 1.0}),
        Process: Process(id="s:g:p", source="s", group="g", name="p", state="RUNNING", pid=7),
        Job: Job(id="s#1", source="s", client="a", server="b", state="done", metrics={"m": 1}),
        Change: Change("del", "job", "s#1"),
    }[cls]
    built = positional(cls)(*(getattr(sample, f.name) for f in dataclasses.fields(cls)))
    assert type(built) is cls
    assert built == sample
    with pytest.raises(AttributeError):
        built.id = "other"  # still frozen
