"""The CLI's verb table, target resolution (ids, Multivisor's globs, bare names, --filter),
human ages and its plain parameter conversion (issue 9)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from fleetwatch.cli import render
from fleetwatch.cli.actions import parse_params
from fleetwatch.cli.common import Failure
from fleetwatch.cli.targets import VERBS, resolve, verb
from fleetwatch.sources.icecream.source import ACTIONS as ICECREAM_ACTIONS
from fleetwatch.sources.supervisor.source import ACTIONS as SUPERVISOR_ACTIONS


def _spec(a: Any) -> dict[str, Any]:
    return {"name": a.name, "targets": list(a.targets), "confirm": a.confirm}


SV = [_spec(a) for a in SUPERVISOR_ACTIONS]
ICE = [_spec(a) for a in ICECREAM_ACTIONS]
SOURCES = [
    {"id": "sv1", "kind": "supervisor", "actions": SV},
    {"id": "sv2", "kind": "supervisor", "actions": SV},
    {"id": "build", "kind": "icecream", "actions": ICE},
]


def _p(source: str, group: str, name: str) -> dict[str, Any]:
    return {"id": f"{source}:{group}:{name}", "source": source, "group": group, "name": name}


PROCESSES = [
    _p("sv1", "web", "web"),
    _p("sv1", "web", "api"),
    _p("sv1", "sleeper", "sleeper"),
    _p("sv2", "sleeper", "sleeper"),
    _p("sv2", "workers", "worker_00"),
    _p("sv2", "workers", "worker_01"),
]
NODES = [
    {"id": "build/host1", "source": "build", "name": "host1"},
    {"id": "build/host2", "source": "build", "name": "host2"},
    {"id": "sv1/127.0.0.1", "source": "sv1", "name": "127.0.0.1"},
]


def targets(words: list[str], kind: str = "process", action: str = "stop", **kw: Any) -> Any:
    return resolve(words, kind, action, sources=SOURCES, processes=PROCESSES, nodes=NODES, **kw)


def test_exact_ids_pick_the_most_specific_kind() -> None:
    r = targets(["sv1:web:web", "sv2:workers", "sv1"])
    assert r.targets == [("process", "sv1:web:web"), ("group", "sv2:workers"), ("source", "sv1")]
    assert r.unmatched == []
    assert r.sources() == {"sv1", "sv2"}


def test_a_bare_name_is_that_program_on_every_supervisor() -> None:
    assert targets(["sleeper"]).targets == [
        ("process", "sv1:sleeper:sleeper"),
        ("process", "sv2:sleeper:sleeper"),
    ]


def test_globs_over_ids_as_in_multivisor() -> None:
    assert targets(["sv1:web:*"]).targets == [
        ("process", "sv1:web:web"),
        ("process", "sv1:web:api"),
    ]
    assert targets(["*:worker_0?"]).targets == [
        ("process", "sv2:workers:worker_00"),
        ("process", "sv2:workers:worker_01"),
    ]
    # Each target once, in the order first named.
    assert targets(["sv1:web:api", "sv1:web:*"]).targets == [
        ("process", "sv1:web:api"),
        ("process", "sv1:web:web"),
    ]


def test_what_matches_nothing_is_reported() -> None:
    r = targets(["nope", "sv1:web:web", "sv9:*"])
    assert r.targets == [("process", "sv1:web:web")]
    assert r.unmatched == ["nope", "sv9:*"]


def test_only_sources_with_the_action_are_reached() -> None:
    # icecream has no "stop"; supervisord has no "block".
    assert targets(["build"]).unmatched == ["build"]
    assert targets(["*"], kind="node", action="block").targets == [
        ("node", "build/host1"),
        ("node", "build/host2"),
    ]
    assert targets(["*"], kind="source", action="update").targets == [
        ("source", "sv1"),
        ("source", "sv2"),
    ]


def test_node_targets_by_id_name_or_glob() -> None:
    assert targets(["host2"], kind="node", action="block").targets == [("node", "build/host2")]
    assert targets(["build/host1"], kind="node", action="unblock").targets == [
        ("node", "build/host1")
    ]
    assert targets(["host*"], kind="node", action="remove").targets == [
        ("node", "build/host1"),
        ("node", "build/host2"),
    ]


def test_filter_results_join_the_targets() -> None:
    r = targets(
        ["sv1:web:web"], filtered=[("process", "sv2:sleeper:sleeper"), ("node", "build/host1")]
    )
    # A node cannot be stopped: only what has the action is kept.
    assert r.targets == [("process", "sv1:web:web"), ("process", "sv2:sleeper:sleeper")]


def test_do_takes_any_kind_the_action_has() -> None:
    assert targets(["host1"], kind="any", action="block").targets == [("node", "build/host1")]
    assert targets(["sv2"], kind="any", action="reread").targets == [("source", "sv2")]
    assert targets(["sv1:web"], kind="any", action="start").targets == [("group", "sv1:web")]


def test_every_verb_is_an_action_some_source_has() -> None:
    names = {a.name for a in (*SUPERVISOR_ACTIONS, *ICECREAM_ACTIONS)}
    for v in VERBS:
        assert v.action in names, v
        assert v.kind in ("process", "source", "node")
    assert verb("clear-log").action == "clear_log"
    assert verb("signal").params == ("signal",)
    assert len({v.command for v in VERBS}) == len(VERBS)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (20.7, "20 s"),
        (59, "59 s"),
        (60, "1m 00s"),
        (754, "12m 34s"),
        (3600, "1h 00m"),
        (3 * 3600 + 12 * 60 + 5, "3h 12m"),
        (86400 * 2 + 3600 * 4, "2d 4h"),
        (-5, "0 s"),
    ],
)
def test_human_ages(seconds: float, text: str) -> None:
    assert render.age(seconds) == text


def test_process_ages_use_the_daemon_clock_offset() -> None:
    now = 1_000_000.0
    running = {"state": "RUNNING", "started": now - 11_520 - 30}  # daemon is 30 s behind
    assert render.process_when(running, 30.0, now) == "up 3h 12m"
    exited = {"state": "EXITED", "started": now - 100, "stopped": now - 20}
    assert render.process_when(exited, 0.0, now) == "exited 20 s ago"
    assert render.process_when({"state": "FATAL", "stopped": now - 5}, 0, now) == "failed 5 s ago"
    assert render.process_when({"state": "STOPPED", "stopped": 0}, 0, now) == "not started"
    assert render.process_when({"state": "BACKOFF", "started": now - 2}, 0, now) == (
        "starting for 2 s"
    )


def test_summary_and_tables() -> None:
    counts = {
        "source": {"online": 2, "offline": 1},
        "process": {"RUNNING": 1},
        "node": {},
        "job": {},
    }
    assert render.summary(counts) == "3 sources (2 online, 1 offline), 1 process (1 RUNNING)"
    lines = render.table(["A", "BB"], [["xxx", "y"], ["z", ""]])
    assert lines == ["A    BB", "xxx  y", "z"]
    painted = render.table(["A"], [["RUNNING"]], [["green"]], color=True)
    assert painted[1] == "\x1b[32mRUNNING\x1b[0m"


def test_params_parse_key_value_pairs() -> None:
    assert parse_params(["signal=HUP", "n=3", "force=true"]) == {
        "signal": "HUP",
        "n": 3,
        "force": True,
    }
    with pytest.raises(Failure, match="expected KEY=VALUE"):
        parse_params(["oops"])


def test_commands_parse_without_pydantic_or_rich() -> None:
    """The light conversions (cli/main.py) keep pydantic (~0.1-0.2 s) off the command path,
    and tables are written without Rich: a Typer that changed its private hook fails here."""
    code = (
        "import sys\n"
        "from fleetwatch.cli.main import command\n"
        "cmd = command()\n"
        "ctx = cmd.make_context('fleetwatch', ['status', 'x', '--json', '--url', 'h:1'])\n"
        "sub = cmd.commands['notes'].make_context('notes', ['-n', '7'])\n"
        "assert sub.params['limit'] == 7, sub.params\n"
        "bad = [m for m in sys.modules if m.startswith(('pydantic', 'rich'))]\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "LOADED []"


def test_the_command_can_be_run_again_in_one_process() -> None:
    """The shell runs commands in-process, one after another: no state may stick."""
    import typer.main
    from typer._click.exceptions import BadParameter

    from fleetwatch.cli.commands import app

    for _ in range(2):
        cmd = typer.main.get_command(app)
        assert cmd.main(["version"], standalone_mode=False) is None
        with pytest.raises(BadParameter, match="integer"):
            cmd.main(["notes", "-n", "x"], standalone_mode=False)


def test_the_lean_build_has_only_the_command_or_sub_app_named() -> None:
    """Regression: a sub-app (``token``) once turned the lean build off for every command."""
    from fleetwatch.cli.main import command

    assert sorted(command(["status", "x"]).commands) == ["status"]  # type: ignore[attr-defined]
    assert sorted(command(["token", "list"]).commands) == ["token"]  # type: ignore[attr-defined]
    whole = command([])
    assert {"status", "token", "shell", "tui"} <= set(whole.commands)  # type: ignore[attr-defined]
