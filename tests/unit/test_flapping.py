"""Flap detection (issue 12): one updated "flapping" note, then one "stable again".

The rules run on a synthetic sequence of Process puts with an injected clock; the
hub's part (one note in its history, the periodic check, the config keys) on a hub
with a fake clock too.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from fleetwatch.config import Config, HubConfig, load_config
from fleetwatch.errors import ConfigError
from fleetwatch.hub import STALE_COMPACT, Hub, Subscription
from fleetwatch.model import Process
from fleetwatch.publishers.notifications import Notification, NotificationRules

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def proc(state: str, name: str = "p", **kw: Any) -> Process:
    return Process(id=f"s:g:{name}", source="s", group="g", name=name, state=state, **kw)


CYCLE = ("STARTING", "RUNNING", "EXITED")


def flap(rules: NotificationRules, clock: Clock, changes: int, step: float = 1.0, name: str = "p"):
    """``changes`` state changes of one process, ``step`` seconds apart; the notes."""
    notes: list[Notification] = []
    old = proc("EXITED", name)
    for i in range(changes):
        clock.now += step
        new = proc(CYCLE[i % 3], name, exitstatus=1)
        notes += rules.derive(old, new)
        old = new
    return notes


def test_below_the_threshold_every_change_is_told() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    notes = flap(rules, clock, 4)
    # EXITED > STARTING > RUNNING > EXITED > STARTING: only the exit is news.
    assert [(n.kind, n.title) for n in notes] == [(None, "p exited")]
    assert rules.flapping == {}


def test_one_flapping_note_updated_in_place() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    notes = flap(rules, clock, 12)
    plain = [n for n in notes if n.kind is None]
    flapping = [n for n in notes if n.kind == "flapping"]
    assert len(plain) == 1  # the exit told before it flapped (change 3); none after
    assert all(n.ts < flapping[0].ts for n in plain)
    assert len(flapping) == 8  # the 5th change and each one after
    assert {n.id for n in flapping} == {flapping[0].id}
    assert [n.count for n in flapping] == list(range(5, 13))
    assert [n.updated for n in flapping] == [False] + [True] * 7
    assert [n.ts for n in flapping] == sorted({n.ts for n in flapping})  # a new ts each time
    assert flapping[-1].since == flapping[0].since == 1_000_001.0
    assert flapping[0].severity == "warning"
    assert flapping[-1].subject == {"kind": "process", "id": "s:g:p"}
    assert "12 times" in flapping[-1].text
    frame = flapping[-1].frame()
    assert frame["kind"] == "flapping"
    assert frame["count"] == 12
    assert frame["updated"] is True
    for key in ("t", "id", "ts", "severity", "source", "subject", "title", "text"):
        assert key in frame
    assert "kind" not in plain[0].frame()
    assert "updated" not in plain[0].frame()


def test_changes_spread_wider_than_the_window_do_not_flap() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    notes = flap(rules, clock, 30, step=16.0)  # at most 4 in any 60 s
    assert all(n.kind is None for n in notes)
    assert len(notes) == 10  # every exit


def test_stable_again_once_quiet_for_the_window() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    notes = flap(rules, clock, 7)
    last = notes[-1]
    clock.now += 59
    assert rules.tick() == []
    assert set(rules.flapping) == {"s:g:p"}
    clock.now += 1
    stable = rules.tick()
    assert len(stable) == 1
    assert stable[0].kind == "stable"
    assert stable[0].count == 7
    assert stable[0].id != last.id
    assert "stable again" in stable[0].title
    assert stable[0].severity == "warning"  # it is STARTING (CYCLE[6 % 3]), not RUNNING
    assert rules.tick() == []
    assert rules.flapping == {}
    # Watched afresh: the next change is told as a plain note again.
    again = flap(rules, clock, 3)
    assert [n.kind for n in again] == [None]


def test_stable_note_is_info_when_it_settled_running() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=3, flap_window=10, clock=clock)
    flap(rules, clock, 5)  # ends RUNNING (CYCLE[4 % 3])
    clock.now += 10
    (stable,) = rules.tick()
    assert stable.severity == "info"
    assert "RUNNING" in stable.text


def test_other_processes_are_told_as_before() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    flap(rules, clock, 8, name="a")
    notes = list(rules.derive(proc("RUNNING", "b"), proc("FATAL", "b")))
    assert [(n.kind, n.title) for n in notes] == [(None, "b failed")]


def test_off_with_zero_changes_and_forget() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=0, flap_window=60, clock=clock)
    assert all(n.kind is None for n in flap(rules, clock, 20))
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    flap(rules, clock, 6)
    rules.forget("s:g:p")
    clock.now += 100
    assert rules.tick() == []


def test_tick_prunes_counts_of_quiet_processes() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    for i in range(100):
        flap(rules, clock, 2, name=f"p{i}")
    clock.now += 61
    rules.tick()
    assert rules._changes == {}


# -- the hub ----------------------------------------------------------------------


def make_hub(**hub: Any) -> Hub:
    return Hub(Config(path="t", hub=HubConfig(name="acme", **hub), sources={}), factories={})


async def test_hub_history_holds_the_flapping_note_once() -> None:
    hub = make_hub(flap_changes=3, flap_window=0.5)
    clock = Clock()
    hub.rules.clock = clock
    sub: Subscription = hub.subscribe()
    await hub.start()
    try:
        states = ["RUNNING", "EXITED"] * 5
        for state in states:
            clock.now += 0.01
            hub._put(proc(state))
        flapping = [n for n in hub.notes if n.kind == "flapping"]
        assert len(flapping) == 1
        assert flapping[0].count == 9  # every change but the first put (no old state)
        assert hub.notes[-1] is flapping[0]
        pushed = [i for i in await sub.next() if isinstance(i, Notification)]
        # Not read meanwhile: the subscriber gets the newest copy once.
        assert [n.count for n in pushed if n.kind == "flapping"] == [9]
        # The periodic check tells "stable again" once quiet for flap_window.
        clock.now += 0.6
        with anyio.fail_after(15):
            told: list[Notification] = []
            while not any(n.kind == "stable" for n in told):
                told += [i for i in await sub.next() if isinstance(i, Notification)]
        assert [n.kind for n in hub.notes][-2:] == ["flapping", "stable"]
    finally:
        await hub.stop()
    assert hub._flap_task is None


def test_config_keys(tmp_path: Any) -> None:
    path = tmp_path / "f.toml"
    src = '[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9001"\n'
    path.write_text("[hub]\nflap_changes = 8\nflap_window = 120\n" + src)
    hub = load_config(str(path)).hub
    assert (hub.flap_changes, hub.flap_window) == (8, 120.0)
    assert (HubConfig().flap_changes, HubConfig().flap_window) == (5, 60.0)
    for bad, key in (
        ("flap_changes = 1", "flap_changes"),
        ("flap_changes = -2", "flap_changes"),
        ('flap_changes = "5"', "flap_changes"),
        ("flap_window = 0", "flap_window"),
    ):
        path.write_text(f"[hub]\n{bad}\n" + src)
        with pytest.raises(ConfigError) as err:
            load_config(str(path))
        assert err.value.key is not None
        assert key in err.value.key
        assert err.value.line == 2


# -- the shell prints a flapping note's updates at most once a minute ----------------


def test_shell_prints_a_flapping_note_with_its_count_not_every_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleetwatch.cli import shell

    note = {"id": "n1", "ts": 0.0, "severity": "warning", "title": "p flapping", "text": "t"}
    flapping = {**note, "kind": "flapping", "count": 7}
    assert "p flapping \u00d77 [warning]" in shell.note_text(flapping)
    assert "\u00d7" not in shell.note_text(note)

    now = [100.0]
    monkeypatch.setattr(shell.time, "monotonic", lambda: now[0])
    sh = shell.Shell.__new__(shell.Shell)  # only the printing rule: no mirror, no prompt
    sh._told = {}
    assert sh._worth_printing(flapping)
    now[0] += 1
    assert not sh._worth_printing({**flapping, "count": 8, "updated": True})
    assert sh._worth_printing(note)  # other notes are always printed
    now[0] += shell.FLAP_REPRINT
    assert sh._worth_printing({**flapping, "count": 30, "updated": True})


def test_an_operators_restarts_count_once_each() -> None:
    clock = Clock()
    rules = NotificationRules(flap_changes=5, flap_window=60, clock=clock)
    notes: list[Notification] = []
    old = proc("RUNNING")
    for _ in range(4):  # four restarts in a few seconds: STOPPING, STOPPED, STARTING, RUNNING
        for state in ("STOPPING", "STOPPED", "STARTING", "RUNNING"):
            clock.now += 0.5
            new = proc(state)
            notes += rules.derive(old, new)
            old = new
    assert notes == []
    assert rules.flapping == {}
    # a fifth within the window makes five counted changes: that is flapping
    for state in ("STOPPING", "STOPPED", "STARTING", "RUNNING"):
        clock.now += 0.5
        new = proc(state)
        notes += rules.derive(old, new)
        old = new
    assert [n.kind for n in notes] == ["flapping"]


def test_a_subscriber_behind_gets_the_newest_copy_once() -> None:
    hub = make_hub(flap_changes=3, flap_window=60)
    clock = Clock()
    hub.rules.clock = clock
    sub = hub.subscribe()
    for state in ["RUNNING", "EXITED"] * 6:
        clock.now += 0.01
        hub._put(proc(state))
    queued = [i for i in sub.drain() if isinstance(i, Notification)]
    flapping = [n for n in queued if n.kind == "flapping"]
    assert len(flapping) == 1
    assert flapping[0].count == 11
    assert queued[-1] is flapping[0]  # at the end, where the newest copy came
    assert hub.notes[-1] is flapping[0]  # the hub's history holds it once too
    assert [n.kind for n in hub.notes].count("flapping") == 1


def test_a_subscriber_that_never_reads_holds_each_flapping_note_once() -> None:
    """Regression: replaced copies were searched for in the queue on every push (quadratic
    with thousands of flapping processes); now they are left out when read, and the
    queue of a subscriber that never reads is compacted so they do not pile up."""
    hub = make_hub(flap_changes=3, flap_window=600)
    clock = Clock()
    hub.rules.clock = clock
    sub = hub.subscribe(max_backlog=10**9)
    for k in range(3_000):
        clock.now += 0.01
        hub._put(proc(("RUNNING", "EXITED")[k % 2]))
    assert len(sub._items) <= STALE_COMPACT + 10  # no loop, no commit: notes alone
    notes = [i for i in sub.drain() if isinstance(i, Notification)]
    assert [n.kind for n in notes] == [None, None, "flapping"]  # two exits, then it flaps
    assert notes[-1].count == 2_999  # every change after the first put
