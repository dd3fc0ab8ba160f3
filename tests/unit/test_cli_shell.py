"""``fleetwatch shell`` without a terminal: completion against a Mirror filled by hand, the
toolbar's text, how lines are cut and run through the Typer app, and errors."""

from __future__ import annotations

import copy
import io
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main

from fleetwatch import __version__
from fleetwatch.cli.commands import app
from fleetwatch.cli.completion import Live, ShellCompleter, split_partial
from fleetwatch.cli.shell import (
    ALIASES,
    LineRunner,
    SafeHistory,
    history_path,
    note_text,
    toolbar_text,
)
from fleetwatch.client import HubClient
from fleetwatch.client.mirror import Mirror

# -- a copy of the app with a few commands shaped like the CLI's -------------------------

# Commands shaped like the CLI's, on their own app; added to a copy of the real one below
# (in place of the real ones of the same names, whatever the CLI has by then).
extra = typer.Typer()
seen: list[dict[str, Any]] = []


@extra.command()
def stop(
    targets: Annotated[list[str] | None, typer.Argument()] = None,
    filter: Annotated[str | None, typer.Option("--filter", "-f")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
    url: Annotated[str | None, typer.Option()] = None,
    token: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Stop processes."""
    seen.append({"targets": targets, "filter": filter, "yes": yes, "url": url, "token": token})
    typer.echo(f"stop {' '.join(targets or [])}")


@extra.command()
def status(
    filter: Annotated[str | None, typer.Argument()] = None,
    url: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Show the fleet."""
    typer.echo(f"status {filter or ''} at {url}")


@extra.command()
def signal(
    sig: Annotated[str, typer.Argument()],
    targets: Annotated[list[str], typer.Argument()],
) -> None:
    """Send a signal."""


@extra.command()
def block(targets: Annotated[list[str], typer.Argument(metavar="HOST...")]) -> None:
    """Block a host."""


@extra.command()
def update(
    targets: Annotated[list[str], typer.Argument(metavar="SOURCE...")],
    channel: Annotated[str, typer.Option()] = "stdout",
) -> None:
    """Reread and update."""


@extra.command()
def boom() -> None:
    """Fails with a bug."""
    raise RuntimeError("kaboom")


@extra.command()
def quits(code: int = 3) -> None:
    """Exits with a status."""
    raise typer.Exit(code)


@extra.command("sys-exit")
def sys_exit() -> None:
    """Calls sys.exit with a message."""
    raise SystemExit("gone away")


piw_app = typer.Typer(help="piwheels masters.")


@piw_app.command()
def kill(
    slave: Annotated[str, typer.Argument()], url: Annotated[str | None, typer.Option()] = None
) -> None:
    """Kill a build slave."""
    typer.echo(f"kill {slave} at {url}")


def _name(info: Any) -> str:
    return str(info.name or info.callback.__name__.replace("_", "-"))


shell_app = copy.copy(app)
shell_app.registered_commands = [
    *(
        c
        for c in app.registered_commands
        if _name(c) not in set(map(_name, extra.registered_commands))
    ),
    *extra.registered_commands,
]
shell_app.registered_groups = [g for g in app.registered_groups if g.name != "piw"]
shell_app.add_typer(piw_app, name="piw")
ROOT = typer.main.get_command(shell_app)


def filled_mirror() -> Mirror:
    mirror = Mirror(HubClient("http://127.0.0.1:9"))
    mirror.name = "ACME"
    mirror.status = "connected"
    procs = [
        ("sv1", "web", "web", "RUNNING"),
        ("sv1", "workers", "worker_00", "RUNNING"),
        ("sv1", "workers", "worker_01", "FATAL"),
        ("sv2", "web", "web", "STOPPED"),
        ("sv2", "my group", "my app", "RUNNING"),
    ]
    for source, group, name, state in procs:
        pid = f"{source}:{group}:{name}"
        mirror.entities["process"][pid] = {
            "id": pid,
            "source": source,
            "group": group,
            "name": name,
            "state": state,
        }
    mirror.entities["source"] = {
        "sv1": {"id": "sv1", "status": "online"},
        "sv2": {"id": "sv2", "status": "offline"},
        "ice": {"id": "ice", "status": "online"},
    }
    mirror.entities["node"] = {
        "ice/alpha": {"id": "ice/alpha", "name": "alpha", "state": "online"},
        "ice/beta": {"id": "ice/beta", "name": "beta", "state": "offline"},
    }
    return mirror


@pytest.fixture
def completer() -> ShellCompleter:
    live = Live.of(filled_mirror())
    return ShellCompleter(ROOT, lambda: live, ALIASES)


def complete(completer: ShellCompleter, text: str) -> list[str]:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


# -- cutting a line --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ([], "", "")),
        ("stop", ([], "stop", "stop")),
        ("stop ", (["stop"], "", "")),
        ("stop  sv1:w", (["stop"], "sv1:w", "sv1:w")),
        ("stop 'my app' sv", (["stop", "my app"], "sv", "sv")),
        ("stop 'sv2:my group:m", (["stop"], "sv2:my group:m", "'sv2:my group:m")),
        ('stop "a\\"b" c\\ d', (["stop", 'a"b'], "c d", "c\\ d")),
        ("stop '' x", (["stop", ""], "x", "x")),
    ],
)
def test_split_partial(text: str, expected: tuple[list[str], str, str]) -> None:
    assert split_partial(text) == expected


# -- completion --------------------------------------------------------------------------


def test_command_names_come_from_the_app_without_the_servers(completer: ShellCompleter) -> None:
    names = complete(completer, "")
    for name in ("stop", "status", "discover", "version", "help", "exit", "quit", "refresh-status"):
        assert name in names
    for hidden in ("serve", "demo", "shell"):
        assert hidden not in names
    assert "version" in complete(completer, "ve")
    helped = complete(completer, "help st")
    assert {"status", "stop"} <= set(helped)
    assert all(name.startswith("st") for name in helped)
    assert complete(completer, "nosuch ") == []


def test_options_of_the_command(completer: ShellCompleter) -> None:
    assert complete(completer, "discover --p") == ["--port"]
    assert complete(completer, "stop --") == ["--filter", "--help", "--token", "--url", "--yes"]
    # An option already given is not offered again; one that repeats is.
    assert "--yes" not in complete(completer, "stop --yes --")
    assert "--address" in complete(completer, "discover --address 1.2.3.4 --a")


def test_targets_are_live_ids_globs_and_bare_names(completer: ShellCompleter) -> None:
    words = complete(completer, "stop ")
    assert words[:2] == ["sv1:*", "sv2:*"]
    assert "sv1:workers:*" in words
    assert "sv1:workers:worker_01" in words
    assert "worker_00" in words  # a bare program name matches it on every supervisor
    assert complete(completer, "stop sv1:w") == [
        "sv1:web",
        "sv1:workers",
        "sv1:web:*",
        "sv1:workers:*",
        "sv1:web:web",
        "sv1:workers:worker_00",
        "sv1:workers:worker_01",
    ]
    # Every argument of a list argument, and past options with their values.
    assert complete(completer, "stop sv1:web:web --filter x -y sv2:w") == [
        "sv2:web",
        "sv2:web:*",
        "sv2:web:web",
    ]


def test_a_completion_with_a_space_is_quoted(completer: ShellCompleter) -> None:
    assert complete(completer, "stop sv2:my") == [
        "'sv2:my group'",
        "'sv2:my group:*'",
        "'sv2:my group:my app'",
    ]
    assert complete(completer, "stop 'sv2:my group:m") == ["'sv2:my group:my app'"]


def test_the_state_is_shown_beside_a_process_id(completer: ShellCompleter) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    done = completer.get_completions(Document("stop sv1:workers:worker_01"), CompleteEvent())
    assert [(c.text, c.display_meta_text) for c in done] == [("sv1:workers:worker_01", "FATAL")]


def test_filters_signals_sources_and_hosts(completer: ShellCompleter) -> None:
    assert complete(completer, "stop --filter sta") == ["state:"]
    assert complete(completer, "stop --filter state:r") == ["state:running"]
    assert complete(completer, "stop --filter -source:") == [
        "-source:ice",
        "-source:sv1",
        "-source:sv2",
    ]
    assert complete(completer, "stop --filter=state:f") == ["--filter=state:fatal"]
    assert complete(completer, "status gro") == ["group:"]
    assert complete(completer, "signal K") == ["KILL"]
    assert complete(completer, "signal KILL sv2:w") == ["sv2:web", "sv2:web:*", "sv2:web:web"]
    assert complete(completer, "update ") == ["ice", "sv1", "sv2"]
    assert complete(completer, "update sv1 s") == ["sv1", "sv2"]
    assert complete(completer, "block ") == ["alpha", "beta", "ice/alpha", "ice/beta"]
    assert complete(completer, "block alpha b") == ["beta"]  # HOST... by its metavar
    assert complete(completer, "status state:running ") == []  # one filter only
    assert complete(completer, "update --channel ") == []  # nothing known about it


def test_sub_apps_complete_and_get_the_url(
    completer: ShellCompleter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert complete(completer, "pi") == ["piw"]
    assert complete(completer, "piw ") == ["kill"]
    assert complete(completer, "piw kill --u") == ["--url"]
    assert complete(completer, "piw nosuch --u") == []
    runner = LineRunner(ROOT, "http://hub:1", completer=completer)
    assert runner.run("piw kill s1") == 0
    assert capsys.readouterr().out == "kill s1 at http://hub:1\n"


def test_completion_follows_the_mirror() -> None:
    mirror = filled_mirror()
    completer = ShellCompleter(ROOT, lambda: Live.of(mirror), ALIASES)
    assert complete(completer, "stop sv3") == []
    mirror.entities["process"]["sv3:db:db"] = {
        "id": "sv3:db:db",
        "source": "sv3",
        "group": "db",
        "name": "db",
        "state": "STARTING",
    }
    assert complete(completer, "stop sv3") == ["sv3:*", "sv3:db", "sv3:db:*", "sv3:db:db"]


# -- the toolbar and notes ------------------------------------------------------------


def test_toolbar_counts_processes_by_state_and_sources_online() -> None:
    mirror = filled_mirror()
    ts = 1_700_000_000.0
    mirror.notes.append({"ts": ts, "severity": "error", "title": "worker_01 failed", "text": "x"})
    when = time.strftime("%H:%M:%S", time.localtime(ts))
    assert toolbar_text(Live.of(mirror)) == (
        " ACME │ Connected │ 5 processes: 3 RUNNING, 1 STOPPED, 1 FATAL"
        f" │ sources 2/3 online │ 2 nodes │ {when} worker_01 failed"
    )


def test_toolbar_says_where_the_link_is() -> None:
    mirror = Mirror(HubClient("http://127.0.0.1:9"))
    assert toolbar_text(Live.of(mirror)) == (
        " Waiting for connection │ 0 processes │ sources 0/0 online"
    )
    filled = filled_mirror()
    filled.status = "reconnecting"
    assert toolbar_text(Live.of(filled)).startswith(" ACME │ Reconnecting │ 5 processes")
    assert toolbar_text(Live()) == " Waiting for connection │ 0 processes │ sources 0/0 online"


def test_note_text() -> None:
    ts = 1_700_000_000.0
    when = time.strftime("%H:%M:%S", time.localtime(ts))
    note = {
        "ts": ts,
        "severity": "warning",
        "title": "web exited",
        "text": "web:web on sv1 left RUNNING unexpectedly: EXITED",
    }
    assert note_text(note) == (
        f"{when} web exited [warning] web:web on sv1 left RUNNING unexpectedly: EXITED"
    )
    assert note_text({"title": "odd"}) == "-- odd [info]"


# -- running lines -------------------------------------------------------------------------


@pytest.fixture
def runner() -> tuple[LineRunner, io.StringIO]:
    err = io.StringIO()
    seen.clear()
    live = Live.of(filled_mirror())
    completer = ShellCompleter(ROOT, lambda: live, ALIASES)
    return LineRunner(ROOT, "http://hub:1", None, completer=completer, err=err), err


def test_a_line_runs_the_command_in_process(
    runner: tuple[LineRunner, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    shell, err = runner
    assert shell.run("version") == 0
    assert capsys.readouterr().out == f"{__version__}\n"
    assert shell.run("stop 'sv2:my group:my app' sv1:* -y") == 0
    assert capsys.readouterr().out == "stop sv2:my group:my app sv1:*\n"
    assert seen == [
        {
            "targets": ["sv2:my group:my app", "sv1:*"],
            "filter": None,
            "yes": True,
            "url": "http://hub:1",
            "token": None,
        }
    ]
    assert err.getvalue() == ""


def test_url_and_token_are_injected_unless_given(runner: tuple[LineRunner, io.StringIO]) -> None:
    shell, _ = runner
    shell.token = "s3cret"
    shell.run("stop --url http://other:2 x")
    shell.run("stop --token=mine x")
    shell.run("stop -- --url")
    assert [(s["url"], s["token"]) for s in seen] == [
        ("http://other:2", "s3cret"),
        ("http://hub:1", "mine"),
        ("http://hub:1", "s3cret"),
    ]
    assert seen[2]["targets"] == ["--url"]


def test_alias_and_help(
    runner: tuple[LineRunner, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    shell, _ = runner
    assert shell.run("refresh-status") == 0
    assert capsys.readouterr().out == "status  at http://hub:1\n"
    assert shell.run("help") == 0
    out = capsys.readouterr().out
    assert "  stop            Stop processes." in out
    assert "  refresh-status  same as status" in out
    assert "serve" not in out
    assert shell.run("help stop") == 0
    assert "Usage: fleetwatch stop" in capsys.readouterr().out


def test_startup_shows_the_status_as_multivisor_cli_does(
    runner: tuple[LineRunner, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    shell, _ = runner
    assert shell.startup() == 0
    assert capsys.readouterr().out == "status  at http://hub:1\n"


def test_errors_are_printed_and_the_shell_goes_on(runner: tuple[LineRunner, io.StringIO]) -> None:
    shell, err = runner
    cases = [
        ("stop --nope", 2, "No such option: --nope"),
        ("signal", 2, "Missing argument"),
        ("boom", 1, "fleetwatch: error: RuntimeError: kaboom"),
        ("quits", 3, ""),
        ("quits --code 0", 0, ""),
        ("sys-exit", 1, "gone away"),
        ("nosuch", 2, "fleetwatch: error: no such command 'nosuch' (try 'help')"),
        ("serve -c x", 2, "fleetwatch: error: 'serve' is not available inside the shell"),
        ("shell", 2, "'shell' is not available inside the shell"),
        ("stop 'open", 2, "fleetwatch: error: cannot read the line: No closing quotation"),
        ("help nosuch", 2, "fleetwatch: error: no such command 'nosuch'"),
    ]
    for line, status, message in cases:
        err.seek(0)
        err.truncate()
        assert shell.run(line) == status, line
        assert message in err.getvalue(), (line, err.getvalue())
        assert "Traceback" not in err.getvalue()
    assert shell.run("") == 0
    assert shell.run("   ") == 0
    assert shell.run("exit") is None
    assert shell.run("quit") is None


def test_lines_from_a_script_stop_at_exit(
    runner: tuple[LineRunner, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    shell, _ = runner
    assert shell.run_lines(["stop a\n", "quits --code 4\n", "exit\n", "stop b\n"]) == 4
    assert capsys.readouterr().out == "stop a\n"


# -- history -------------------------------------------------------------------------------


def test_history_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert history_path() == tmp_path / "fleetwatch" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert history_path() == tmp_path / "home" / ".local" / "state" / "fleetwatch" / "history"


def test_history_keeps_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "history"
    history = SafeHistory(str(path))
    for line in ("status", "stop --token abc sv1:*", "login --password=x", "stop sv1:web:web"):
        history.append_string(line)
    assert list(SafeHistory(str(path)).load_history_strings()) == ["stop sv1:web:web", "status"]
    assert "abc" not in path.read_text()
