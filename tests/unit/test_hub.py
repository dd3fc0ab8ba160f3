"""The hub: source status, batched deltas, slow subscribers, notifications, actions, back-off."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from fleetwatch import hub as hub_module
from fleetwatch.config import Config, HubConfig
from fleetwatch.errors import (
    BadParams,
    RemoteProtocolError,
    SourceError,
    UnknownAction,
    UnknownTarget,
    Unreachable,
)
from fleetwatch.hub import Hub, SourceHandle, Subscription, check_params
from fleetwatch.model import ActionSpec, Delta, Job, Node, ParamSpec, Process, Source
from fleetwatch.publishers.notifications import Notification
from fleetwatch.sources.base import ActionResult, Backoff, Target
from fleetwatch.sources.base import Source as SourceRunner

pytestmark = pytest.mark.anyio

DEADLINE = 5.0

SPECS: tuple[ActionSpec, ...] = (
    ActionSpec(name="start", title="Start", targets=("process", "group", "source")),
    ActionSpec(name="drain", title="Drain", targets=("node",)),
    ActionSpec(name="cancel", title="Cancel", targets=("job",)),
    ActionSpec(name="retire", title="Retire", targets=("source", "node"), roles=("worker",)),
    ActionSpec(
        name="scale",
        title="Scale",
        targets=("process",),
        params=(
            ParamSpec(name="count", type="integer"),
            ParamSpec(name="force", type="boolean", required=False, default=False),
            ParamSpec(name="note", required=False),
            ParamSpec(name="mode", required=False, default="fast"),
        ),
    ),
)


@dataclass(frozen=True)
class FakeConfig:
    name: str
    kind: str = "fake"


class FakeSource(SourceRunner):
    """A source whose sessions are scripted by the test."""

    kind = "fake"

    def __init__(self, name: str, sink: SourceHandle) -> None:
        super().__init__(name, sink, backoff=Backoff(initial=0.0, jitter=0.0))
        self.handle = sink
        self.performed: list[tuple[Target, str, dict[str, Any]]] = []
        self.result = ActionResult(True, None, {"done": 1})
        self.script: list[Callable[[], Any]] = []
        """One step per session; a session with no step left blocks forever."""
        self.on_perform: Callable[[], Any] | None = None
        """Called by perform(): what the source reports while acting."""
        self.sessions = 0
        self.closed = False
        self.downs: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"fake://{self.name}"

    def actions(self) -> tuple[ActionSpec, ...]:
        return SPECS

    async def session(self) -> None:
        self.sessions += 1
        if self.script:
            self.script.pop(0)()
            return
        await asyncio.Event().wait()

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        self.performed.append((target, name, params))
        if self.on_perform is not None:
            self.on_perform()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def close(self) -> None:
        self.closed = True

    def down(self, status: str, error: str | None) -> None:
        self.downs.append((status, error))
        super().down(status, error)


def make_hub(*names: str, **hub: Any) -> Hub:
    config = Config(
        path="t",
        hub=HubConfig(name="acme", **hub),
        sources={n: FakeConfig(n) for n in names},  # type: ignore[misc]
    )
    return Hub(config, factories={"fake": lambda cfg, handle: FakeSource(cfg.name, handle)})


def fake(hub: Hub, name: str = "f1") -> FakeSource:
    runner = hub.runner(name)
    assert isinstance(runner, FakeSource)
    return runner


@pytest.fixture
def hub() -> Hub:
    """A hub with one fake source ``f1``, built outside the loop (its source is not started)."""
    return make_hub("f1")


def proc(name: str = "p", state: str = "RUNNING", group: str = "g", **kw: Any) -> Process:
    return Process(id=f"f1:{group}:{name}", source="f1", group=group, name=name, state=state, **kw)


async def next_items(sub: Subscription) -> list[Delta | Notification]:
    with anyio.fail_after(DEADLINE):
        return await sub.next()


async def next_delta(sub: Subscription) -> Delta:
    while True:
        deltas = [i for i in await next_items(sub) if isinstance(i, Delta)]
        if deltas:
            assert len(deltas) == 1, deltas
            return deltas[0]


# -- sources and their status ----------------------------------------------------------------------


def test_a_new_hub_shows_its_sources_connecting(hub: Hub) -> None:
    hub.flush()
    snap = hub.snapshot()
    assert snap.name == "acme"
    (source,) = snap.sources
    assert source.id == "f1"
    assert source.kind == "fake"
    assert source.status == "connecting"
    assert source.url == "fake://f1"
    assert source.actions == SPECS
    assert source.since > 0
    with pytest.raises(ValueError, match="exists already"):
        hub.add_source(FakeConfig("f1"))  # type: ignore[arg-type]


def test_an_unsupported_kind_is_a_source_in_error() -> None:
    config = Config(path="t", sources={"x": FakeConfig("x", kind="martian")})  # type: ignore[dict-item]
    h = Hub(config, factories={})
    source = h.snapshot().sources[0]
    assert source.status == "error"
    assert source.error is not None
    assert "martian" in source.error
    assert h.runner("x") is None


def test_a_factory_that_refuses_makes_a_source_in_error() -> None:
    def refuse(cfg: Any, handle: SourceHandle) -> SourceRunner:
        raise SourceError("no url configured")

    config = Config(path="t", sources={"x": FakeConfig("x")})  # type: ignore[dict-item]
    h = Hub(config, factories={"fake": refuse})
    source = h.snapshot().sources[0]
    assert (source.status, source.error) == ("error", "no url configured")


def test_status_transitions_set_since_and_last_seen(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(
        hub_module, "time", types.SimpleNamespace(time=lambda: now[0], monotonic=time.monotonic)
    )
    handle = fake(hub).handle

    def source() -> Source:
        s = hub.fleet.get("source", "f1")
        assert isinstance(s, Source)
        return s

    handle.status("online", version="1.2", info={"pid": 7})
    s = source()
    assert (s.status, s.since, s.last_seen, s.version, s.error) == (
        "online",
        1000.0,
        1000.0,
        "1.2",
        None,
    )
    assert s.info == {"pid": 7}

    now[0] = 1005.0
    handle.status("online", info={"pid": 8})  # no transition: since stays
    s = source()
    assert (s.since, s.last_seen, s.info) == (1000.0, 1000.0, {"pid": 8})

    now[0] = 1010.0
    handle.status("offline", error="connection refused", last_seen=1004.0)
    s = source()
    assert (s.status, s.since, s.last_seen, s.error) == (
        "offline",
        1010.0,
        1004.0,
        "connection refused",
    )

    now[0] = 1020.0
    handle.status("online")
    s = source()
    assert (s.status, s.since, s.last_seen, s.error) == ("online", 1020.0, 1020.0, None)

    hub.fleet.delete("source", "f1")
    handle.status("online")  # removed while its task was finishing: ignored
    assert hub.fleet.get("source", "f1") is None


def test_handle_sync_is_scoped_to_its_source(hub: Hub) -> None:
    handle = fake(hub).handle
    other = Process(id="f2:g:p", source="f2", group="g", name="p", state="RUNNING")
    hub.fleet.put(other)
    assert handle.sync("process", [proc("a"), proc("b")]) == 2
    assert handle.sync("process", [proc("b", pid=3)]) == 2
    assert {p.id for p in hub.fleet.all("process")} == {"f1:g:b", "f2:g:p"}
    assert handle.get("process", "f1:g:b") == proc("b", pid=3)
    assert handle.delete("process", "f1:g:b")
    assert not handle.delete("process", "f1:g:b")


# -- batching --------------------------------------------------------------------------------------


async def test_changes_in_one_loop_iteration_make_one_delta(hub: Hub) -> None:
    sub = hub.subscribe()
    handle = fake(hub).handle
    handle.put(proc("a"))
    handle.put(proc("b"))
    handle.put(proc("a", pid=4))
    handle.put(Node(id="f1/h", source="f1", name="h"))
    delta = await next_delta(sub)
    # the source put by the hub itself (outside the loop) is part of the first commit too
    assert [(c.kind, c.id) for c in delta.changes] == [
        ("source", "f1"),
        ("process", "f1:g:b"),
        ("process", "f1:g:a"),
        ("node", "f1/h"),
    ]
    assert delta.seq == 4
    assert not hub.fleet.dirty


async def spend_the_burst(h: Hub, sub: Subscription) -> None:
    """Make COMMIT_BURST commits one after another (changes that keep coming)."""
    handle = fake(h).handle
    for i in range(hub_module.COMMIT_BURST):
        handle.put(proc("burst", pid=100 + i))
        await next_delta(sub)


async def test_later_changes_wait_for_the_batch_interval() -> None:
    """Past the burst, the timer commits what came meanwhile, as one delta."""
    h = make_hub("f1", batch_interval=0.05)
    sub = h.subscribe()
    handle = fake(h).handle
    await spend_the_burst(h, sub)
    now = asyncio.get_running_loop().time()
    h._credits, h._credited, h._last_change = 0.0, now, now  # however slow that was
    last_seq = h.fleet.seq
    handle.put(proc("a", pid=2))
    for _ in range(5):
        await asyncio.sleep(0)
    handle.put(proc("b"))
    second = await next_delta(sub)
    assert second.seq - len(second.changes) == last_seq
    assert [c.id for c in second.changes] == ["f1:g:a", "f1:g:b"]
    await h.stop()


async def test_a_long_batch_interval_holds_changes_until_flush() -> None:
    h = make_hub("f1", batch_interval=1e9)  # longer than the loop's clock has run
    sub = h.subscribe()
    handle = fake(h).handle
    await spend_the_burst(h, sub)  # the first changes after a quiet period go out at once
    handle.put(proc("a", pid=2))
    for _ in range(20):
        await asyncio.sleep(0)  # let the loop run: nothing is due yet
    assert h.fleet.dirty
    delta = h.flush()
    assert delta is not None
    assert await next_delta(sub) is delta
    await h.stop()  # cancels the pending timer


async def test_changes_a_few_ms_apart_each_go_out_at_once_issue8_batch_tick() -> None:
    """A stop's STOPPING then STOPPED, in two loop iterations: neither waits for the tick.

    Before, the second waited for the batch interval (0.1 s, the ~100 ms of issue #8);
    with an interval this long it would never have gone out without a flush().
    """
    h = make_hub("f1", batch_interval=1e9)
    sub = h.subscribe()
    handle = fake(h).handle
    handle.put(proc("a"))
    await next_delta(sub)
    handle.put(proc("a", state="STOPPING"))
    stopping = await next_delta(sub)
    handle.put(proc("a", state="STOPPED"))
    stopped = await next_delta(sub)
    assert [c.value.state for c in stopping.changes] == ["STOPPING"]  # type: ignore[union-attr]
    assert [c.value.state for c in stopped.changes] == ["STOPPED"]  # type: ignore[union-attr]
    assert stopped.seq == stopping.seq + 1
    await h.stop()


async def test_changes_that_keep_coming_are_batched_issue8_keeps_the_batching() -> None:
    """Past the burst, a change waits for a credit; everything put meanwhile is one delta."""
    h = make_hub("f1", batch_interval=1e9)
    sub = h.subscribe()
    handle = fake(h).handle
    await spend_the_burst(h, sub)
    for i in range(50):
        handle.put(proc(f"p{i}"))
        await asyncio.sleep(0)
    assert h.fleet.dirty
    delta = h.flush()
    assert delta is not None
    assert len(delta.changes) == 50  # nothing was committed while no credit was left
    await h.stop()


async def test_a_pause_refills_every_credit_issue9_agent_latency() -> None:
    """After no change for a batch_interval, the next few each go out at once, even when
    the credits were spent just before the pause (back-to-back actions)."""
    h = make_hub("f1", batch_interval=0.02)
    sub = h.subscribe()
    handle = fake(h).handle
    loop = asyncio.get_running_loop()
    await spend_the_burst(h, sub)
    h._credits, h._credited, h._last_change = 0.0, loop.time(), loop.time() - 0.02
    for i in range(hub_module.COMMIT_BURST):
        handle.put(proc("after", pid=200 + i))
        assert not isinstance(h._flush_handle, asyncio.TimerHandle)  # at once, no credit wait
        assert len((await next_delta(sub)).changes) == 1
    assert not h.fleet.dirty
    await h.stop()


def test_commit_credits_refill_one_per_batch_interval_issue8() -> None:
    h = make_hub("f1", batch_interval=0.1)
    h._credits, h._credited = 0.0, 100.0
    assert h._refill(100.05) == pytest.approx(0.5)
    assert h._refill(100.25) == pytest.approx(2.5)
    assert h._refill(1000.0) == hub_module.COMMIT_BURST  # capped: a quiet hour is no bigger burst


async def test_an_action_answers_after_its_delta_is_pushed_issue8_post_before_delta() -> None:
    """What perform() reported is committed and pushed before run_action returns."""
    h = make_hub("f1", batch_interval=1e9)
    await h.start()
    sub = h.subscribe()
    src = fake(h)
    await spend_the_burst(h, sub)
    src.on_perform = lambda: src.handle.put(proc("burst", state="STOPPED"))
    result = await h.run_action(Target("process", "f1:g:burst"), "start")
    assert result.ok
    assert not h.fleet.dirty
    delta = await asyncio.wait_for(sub.next(), DEADLINE)
    assert [c.value.state for c in delta[0].changes] == ["STOPPED"]  # type: ignore[union-attr]
    await h.stop()


def test_without_a_loop_changes_wait_for_flush(hub: Hub) -> None:
    sub = hub.subscribe()
    fake(hub).handle.put(proc("a"))
    assert hub.fleet.dirty
    delta = hub.flush()
    assert delta is not None
    assert hub.flush() is None
    assert list(sub._items) == [delta]


# -- subscribers -----------------------------------------------------------------------------------


async def test_a_slow_subscriber_is_resynced_and_a_fast_one_gets_every_delta(hub: Hub) -> None:
    fast = hub.subscribe()
    slow = hub.subscribe(max_backlog=2)
    assert hub.subscribers == 2
    handle = fake(hub).handle
    sent: list[Delta] = []
    for i in range(5):
        handle.put(proc("a", pid=i + 1))
        d = hub.flush()
        assert d is not None
        sent.append(d)

    got = await next_items(fast)
    assert got == sent
    for prev, item in itertools.pairwise(got):
        assert isinstance(prev, Delta)
        assert isinstance(item, Delta)
        assert item.seq - len(item.changes) == prev.seq
    assert not fast.resync

    assert slow.resync
    assert slow.dropped == 1
    assert await next_items(slow) == []  # nothing to replay: start again from a snapshot
    handle.put(proc("b"))  # pending: take_resync commits it first
    snap = slow.take_resync()
    assert not slow.resync
    assert snap == hub.fleet.snapshot()
    assert snap.seq == hub.fleet.seq
    assert proc("b") in snap.processes
    assert proc("a", pid=5) in snap.processes

    # after the resync it follows again, from the snapshot on
    handle.put(proc("b", pid=9))
    d = hub.flush()
    assert d is not None
    assert d.seq - len(d.changes) == snap.seq
    assert await next_items(slow) == [d]
    slow.close()
    fast.close()
    assert hub.subscribers == 0


def test_backlog_of_exactly_max_is_not_a_resync(hub: Hub) -> None:
    sub = hub.subscribe(max_backlog=3)
    for i in range(3):
        fake(hub).handle.put(proc("a", pid=i + 1))
        hub.flush()
    assert not sub.resync
    fake(hub).handle.put(proc("a", pid=10))
    hub.flush()
    assert sub.resync


# -- notifications ---------------------------------------------------------------------------------


async def test_notifications_reach_subscribers_and_the_hub(hub: Hub) -> None:
    handle = fake(hub).handle
    handle.status("online")
    handle.put(proc("a", state="RUNNING"))
    handle.put(proc("b", state="RUNNING"))
    handle.put(proc("c", state="RUNNING"))
    hub.flush()
    assert list(hub.notes) == []  # coming online for the first time is no news
    sub = hub.subscribe()

    handle.put(proc("a", state="EXITED", exitstatus=3))
    handle.put(proc("b", state="FATAL", spawnerr="can't find command"))
    handle.put(proc("c", state="STOPPING"))  # an operator's stop ...
    handle.put(proc("c", state="STOPPED"))  # ... is no news
    handle.status("offline", error="connection refused")

    items = await next_items(sub)
    notes = [i for i in items if isinstance(i, Notification)]
    assert notes == list(hub.notes)
    assert [(n.severity, n.subject, n.title) for n in notes] == [
        ("warning", {"kind": "process", "id": "f1:g:a"}, "a exited"),
        ("error", {"kind": "process", "id": "f1:g:b"}, "b failed"),
        ("error", {"kind": "source", "id": "f1"}, "f1 offline"),
    ]
    assert "exit status 3" in notes[0].text
    assert "can't find command" in notes[1].text
    assert "connection refused" in notes[2].text
    assert all(n.source == "f1" for n in notes)
    assert len({n.id for n in notes}) == 3
    frame = notes[0].frame()
    assert frame["t"] == "note"
    assert set(frame) == {"t", "id", "ts", "severity", "source", "subject", "title", "text"}

    handle.status("online")
    handle.put(proc("a", state="RUNNING"))
    items = await next_items(sub)
    back = [i.title for i in items if isinstance(i, Notification)]
    assert back == ["f1 online", "a running"]


def test_a_node_going_offline_is_noted(hub: Hub) -> None:
    handle = fake(hub).handle
    handle.put(Node(id="f1/h", source="f1", name="h"))
    handle.put(Node(id="f1/h", source="f1", name="h", state="offline"))
    assert [n.title for n in hub.notes] == ["h offline"]


# -- actions ---------------------------------------------------------------------------------------


@pytest.fixture
def acting(hub: Hub) -> Hub:
    handle = fake(hub).handle
    handle.put(proc("a"))
    handle.put(proc("b", group="web"))
    handle.put(Node(id="f1/h", source="f1", name="h"))
    handle.put(Job(id="f1#7", source="f1"))
    hub.flush()
    return hub


@pytest.mark.parametrize(
    ("kind", "id"),
    [
        ("source", "nope"),
        ("process", "f1:g:nope"),
        ("process", "f1"),
        ("node", "f1/nope"),
        ("job", "f1#8"),
        ("group", "f1:nope"),
        ("group", "f1"),  # not SOURCE:GROUP
        ("group", "nope:g"),
        ("galaxy", "f1"),
    ],
)
async def test_unknown_targets(acting: Hub, kind: str, id: str) -> None:
    with pytest.raises(UnknownTarget) as info:
        await acting.run_action(Target(kind, id), "start")
    assert info.value.status == 404
    assert fake(acting).performed == []


@pytest.mark.parametrize(
    ("kind", "id", "name"),
    [
        ("process", "f1:g:a", "explode"),
        ("process", "f1:g:a", "drain"),  # a node action
        ("node", "f1/h", "start"),
        ("group", "f1:web", "scale"),  # a process-only action
        ("job", "f1#7", "start"),
        ("source", "f1", "cancel"),
    ],
)
async def test_unknown_actions(acting: Hub, kind: str, id: str, name: str) -> None:
    with pytest.raises(UnknownAction) as info:
        await acting.run_action(Target(kind, id), name)
    assert info.value.status == 409
    assert fake(acting).performed == []


@pytest.mark.parametrize(
    ("id", "labels"),
    [("f1/boss", {"role": "boss"}), ("f1/plain", {})],
)
async def test_an_action_for_other_node_roles_is_refused(
    acting: Hub, id: str, labels: dict[str, str]
) -> None:
    """``roles`` limits a node action to nodes of those roles: any other is a 409."""
    fake(acting).handle.put(Node(id=id, source="f1", name=id, labels=labels))
    acting.flush()
    with pytest.raises(UnknownAction) as info:
        await acting.run_action(Target("node", id), "retire")
    assert info.value.status == 409
    assert "worker" in str(info.value)
    assert (labels.get("role") or "none") in str(info.value)
    assert fake(acting).performed == []


async def test_an_action_for_a_node_role_runs_on_it_and_on_the_source(acting: Hub) -> None:
    """A node of a listed role takes the action; ``roles`` says nothing of other kinds."""
    fake(acting).handle.put(Node(id="f1/w", source="f1", name="w", labels={"role": "worker"}))
    acting.flush()
    await acting.run_action(Target("node", "f1/w"), "retire")
    await acting.run_action(Target("source", "f1"), "retire")
    assert [(t.kind, n) for t, n, _ in fake(acting).performed] == [
        ("node", "retire"),
        ("source", "retire"),
    ]


async def test_a_source_without_a_runner_has_no_actions() -> None:
    config = Config(path="t", sources={"x": FakeConfig("x", kind="martian")})  # type: ignore[dict-item]
    h = Hub(config, factories={})
    with pytest.raises(UnknownAction):
        await h.run_action(Target("source", "x"), "start")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, ["needs parameter 'count'"]),
        ({"count": 1, "speed": 2}, ["no parameter speed"]),
        ({"count": 1, "a": 1, "b": 2}, ["no parameter a, b"]),
        ({"count": "1"}, ["'count'", "integer"]),
        ({"count": 1.0}, ["'count'", "integer"]),
        ({"count": True}, ["'count'", "integer"]),  # a bool is not an integer
        ({"count": 1, "force": 1}, ["'force'", "boolean"]),
        ({"count": 1, "force": "yes"}, ["'force'", "boolean"]),
        ({"count": 1, "note": 5}, ["'note'", "string"]),
        ({"count": 1, "note": None}, ["'note'", "string"]),
    ],
)
async def test_bad_params(acting: Hub, params: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(BadParams) as info:
        await acting.run_action(Target("process", "f1:g:a"), "scale", params)
    assert info.value.status == 400
    for word in words:
        assert word in str(info.value)
    assert fake(acting).performed == []


@pytest.mark.parametrize(
    ("kind", "id", "name"),
    [
        ("process", "f1:g:a", "start"),
        ("group", "f1:web", "start"),
        ("group", "f1:g", "start"),
        ("source", "f1", "start"),
        ("node", "f1/h", "drain"),
        ("job", "f1#7", "cancel"),
    ],
)
async def test_good_actions_reach_the_source(acting: Hub, kind: str, id: str, name: str) -> None:
    runner = fake(acting)
    runner.result = ActionResult(True, None, {"id": id})
    result = await acting.run_action(Target(kind, id), name, None, user="alice")
    assert result is runner.result
    assert runner.performed == [(Target(kind, id), name, {})]


async def test_params_are_checked_and_defaults_filled_in(acting: Hub) -> None:
    runner = fake(acting)
    given = {"count": 3}
    await acting.run_action(Target("process", "f1:g:a"), "scale", given)
    assert runner.performed[-1][2] == {"count": 3, "force": False, "mode": "fast"}
    assert given == {"count": 3}  # the caller's dict is not changed
    await acting.run_action(
        Target("process", "f1:g:a"), "scale", {"count": 0, "force": True, "note": "x"}
    )
    assert runner.performed[-1][2] == {"count": 0, "force": True, "note": "x", "mode": "fast"}


async def test_a_source_error_becomes_a_failed_result(acting: Hub) -> None:
    runner = fake(acting)
    runner.result = Unreachable("no answer within 5s")  # type: ignore[assignment]
    result = await acting.run_action(Target("source", "f1"), "start")
    assert result == ActionResult(False, "no answer within 5s", None)
    runner.result = SourceError()  # type: ignore[assignment]
    result = await acting.run_action(Target("source", "f1"), "start")
    assert result.ok is False
    assert result.error == "SourceError"


def test_check_params_of_an_action_without_params() -> None:
    check_params(SPECS[0], {})
    with pytest.raises(BadParams):
        check_params(SPECS[0], {"x": 1})


def test_sources_matching() -> None:
    h = make_hub("lid1", "lid2", "web")
    assert h.sources_matching("lid*") == ["lid1", "lid2"]
    assert h.sources_matching("nope") == []


# -- running sources -------------------------------------------------------------------------------


async def test_run_reports_failures_and_reconnects(hub: Hub) -> None:
    runner = fake(hub)
    sub = hub.subscribe()

    def fail_unreachable() -> None:
        raise Unreachable("connection refused")

    def fail_garbage() -> None:
        raise RemoteProtocolError("not XML")

    def fail_bug() -> None:
        raise KeyError("oops")

    def connect_and_close() -> None:
        runner.last_ok = 42.0
        runner.online(version="9")
        runner.handle.put(proc("a"))

    runner.script = [fail_unreachable, fail_garbage, fail_bug, connect_and_close]
    await hub.start()
    with anyio.fail_after(DEADLINE):
        while runner.sessions < 5 or hub.fleet.dirty:
            await sub.next()
    # the fifth session blocks: every earlier outcome was reported, in order
    assert runner.downs == [
        ("offline", "connection refused"),
        ("error", "not XML"),
        ("error", "internal error: KeyError: 'oops'"),
        ("offline", "connection closed"),
    ]
    source = hub.fleet.get("source", "f1")
    assert isinstance(source, Source)
    assert (source.status, source.error) == ("offline", "connection closed")
    assert source.last_seen == 42.0  # the last time it answered
    assert source.version == "9"
    notes = [n.title for n in hub.notes]
    assert notes == ["f1 offline", "f1 error", "f1 online", "f1 offline"]
    await hub.stop()
    assert runner.closed
    assert hub.fleet.get("process", "f1:g:a") is not None


# -- back-off --------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_quick_cap_then_to_the_slow_cap() -> None:
    clock = Clock()
    b = Backoff(initial=0.1, quick_cap=1.0, quick_window=60, slow_cap=30, jitter=0, clock=clock)
    assert b.outage == 0.0
    quick = [b.next_delay() for _ in range(7)]
    assert quick == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    clock.now += 59.9
    assert b.outage == pytest.approx(59.9)
    assert b.next_delay() == pytest.approx(1.0)
    clock.now += 0.1  # the quick window is over
    slow = [b.next_delay() for _ in range(7)]
    assert slow == pytest.approx([2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0])

    b.reset()
    assert b.outage == 0.0
    clock.now += 1000
    assert [b.next_delay() for _ in range(3)] == pytest.approx([0.1, 0.2, 0.4])
    clock.now += 10
    assert b.outage == pytest.approx(10)


def test_backoff_jitter_stays_in_bounds() -> None:
    clock = Clock()
    jitter = 0.25
    rng = random.Random(1234)
    b = Backoff(
        initial=0.1, quick_cap=1.0, quick_window=5, slow_cap=8, jitter=jitter, clock=clock, rng=rng
    )
    plain = Backoff(initial=0.1, quick_cap=1.0, quick_window=5, slow_cap=8, jitter=0, clock=clock)
    delays = []
    for _ in range(40):
        expected = plain.next_delay()
        got = b.next_delay()
        assert expected * (1 - jitter) <= got <= expected * (1 + jitter)
        delays.append(got / expected)
        clock.now += 0.5
    assert len({round(d, 6) for d in delays}) > 30, "jitter must actually vary"
    assert min(delays) < 0.95
    assert max(delays) > 1.05

    again = Backoff(
        initial=0.1, quick_cap=1.0, quick_window=5, slow_cap=8, jitter=jitter,
        clock=Clock(), rng=random.Random(1234),
    )  # fmt: skip
    first = [again.next_delay() for _ in range(3)]
    replay = Backoff(
        initial=0.1, quick_cap=1.0, quick_window=5, slow_cap=8, jitter=jitter,
        clock=Clock(), rng=random.Random(1234),
    )  # fmt: skip
    assert [replay.next_delay() for _ in range(3)] == first


def test_backoff_defaults_are_quick_for_short_outages() -> None:
    b = Backoff(jitter=0, clock=Clock())
    delays = [b.next_delay() for _ in range(20)]
    assert delays[0] == pytest.approx(0.1)
    assert max(delays) == pytest.approx(1.0)
    assert sum(delays) < 20


def test_action_result_shape() -> None:
    assert ActionResult(True).as_dict() == {"ok": True, "error": None, "detail": None}
    failed = ActionResult.failed("nope", {"x": 1})
    assert dataclasses.astuple(failed) == (False, "nope", {"x": 1})


async def test_a_hub_built_while_a_loop_runs_starts_its_sources_only_on_start() -> None:
    """Guards against sources started on whatever loop runs where the hub is built (such
    as Playwright's in the main thread): they start with start(), on start()'s loop."""
    hub = make_hub("f1")  # built inside this test's running loop
    hub.add_source(FakeConfig("f2"))  # type: ignore[arg-type]
    assert not hub._tasks
    await hub.start()
    try:
        assert set(hub._tasks) == {"f1", "f2"}
        hub.add_source(FakeConfig("f3"))  # type: ignore[arg-type]
        assert "f3" in hub._tasks  # a started hub starts a new source at once
    finally:
        await hub.stop()
    assert not hub._tasks


def test_the_hubs_own_followers_are_not_counted_as_subscribers_issue13() -> None:
    """Metrics, the history and a collector follow the hub too; /api/health's
    ``subscribers`` (and the stream tests that wait for it to drop) count clients only."""
    hub = Hub(Config(path="test", hub=HubConfig(), sources={}))
    internal = hub.subscribe(client=False)
    assert hub.subscribers == 0
    client = hub.subscribe()
    assert hub.subscribers == 1
    client.close()
    assert hub.subscribers == 0
    hub._put(Process(id="s:g:p", source="s", group="g", name="p", state="RUNNING"))
    hub.flush()
    assert internal.backlog == 1  # it still receives every delta
    internal.close()
