"""``fleetwatch shell``: multivisor-cli's interactive shell, with every command of the CLI.

A line is cut into words as a POSIX shell does (:func:`shlex.split`, no globbing: ``sv1:*``
reaches the command as typed) and run in-process through the Typer app, with ``--url``
and ``--token`` added for the commands that take them. A command's error is printed and
the shell goes on. The shell's own words are ``help [COMMAND]``, ``exit``/``quit``
(and Ctrl-D); Ctrl-C cancels the line being typed, or stops the command running. Like
multivisor-cli it shows ``status`` when it starts, knows ``refresh-status`` (= ``status``),
and F5 runs ``status``.

Threads: the prompt and the commands run in the main thread (so a command may use
``asyncio.run`` and Ctrl-C reaches it as it would outside the shell); a
:class:`~fleetwatch.client.mirror.Mirror` follows the hub's stream in a thread of its own,
with its own event loop. What the prompt shows of the model (the toolbar, completion) is
a :class:`~fleetwatch.cli.completion.Live` copy taken in the mirror's thread and kept until
the next change. A notification is printed above the prompt when it arrives; one that
arrives while a command runs is printed when the command ends, so that it never lands in
the middle of the command's output.

History is kept in ``$XDG_STATE_HOME/fleetwatch/history`` (default
``~/.local/state/fleetwatch/history``); a line holding ``--token`` or ``--password`` is
not written to it. With stdin not a terminal, the shell reads lines from it and runs them
(no prompt, no toolbar); its exit status is then the last command's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import typer
from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.styles import Style

from fleetwatch.cli.completion import HIDDEN, STATES, Live, ShellCompleter, is_group
from fleetwatch.client import HubClient, HubError, hub_token, hub_url
from fleetwatch.client.mirror import Event, Mirror

__all__ = [
    "PROMPT",
    "LineRunner",
    "SafeHistory",
    "Shell",
    "history_path",
    "note_text",
    "run_shell",
    "toolbar_fragments",
    "toolbar_text",
]

PROMPT = "fleetwatch> "
ALIASES = {"refresh-status": "status"}
FLAP_REPRINT = 60.0
"""Seconds between two prints of one flapping note's updates (its count)."""
_SECRET_WORDS = ("--token", "--password")

STYLE = Style.from_dict(
    {
        "bottom-toolbar": "noreverse bg:#262626 #d0d0d0",
        "toolbar.connected": "#5fd75f bold",
        "toolbar.connecting": "#d7af00 bold",
        "toolbar.reconnecting": "#ff5f5f bold",
        "state.running": "#5fd75f",
        "state.starting": "#5fafff",
        "state.stopping": "#5fafff",
        "state.backoff": "#ff8700",
        "state.stopped": "#bcbcbc",
        "state.exited": "#ff8700",
        "state.fatal": "#ff5f5f bold",
        "state.unknown": "#ff5f5f",
        "note.info": "#5fafff",
        "note.warning": "#ff8700",
        "note.error": "#ff5f5f bold",
        "dim": "#8a8a8a",
    }
)


def history_path() -> Path:
    """``$XDG_STATE_HOME/fleetwatch/history``, by default under ``~/.local/state``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "fleetwatch" / "history"


class SafeHistory(FileHistory):
    """A history file that never receives a line holding a secret (``--token X``)."""

    def store_string(self, string: str) -> None:
        if any(word in string for word in _SECRET_WORDS):
            return
        super().store_string(string)


# -- what the prompt shows -----------------------------------------------------------


def toolbar_fragments(live: Live) -> list[tuple[str, str]]:
    """The bottom toolbar: hub, link status, processes by state, sources, last note."""
    sep = ("class:dim", " │ ")
    out: list[tuple[str, str]] = [("", " ")]
    if live.name:
        out += [("bold", live.name), sep]
    out.append((f"class:toolbar.{live.status}", live.status_text))
    out += [sep, ("", _count(len(live.processes), "process", "processes"))]
    counts = dict(live.state_counts)
    order = [s for s in STATES if s in counts] + sorted(set(counts) - set(STATES))
    for i, state in enumerate(order):
        out.append(("", ": " if i == 0 else ", "))
        out.append((f"class:state.{state.lower()}", f"{counts[state]} {state}"))
    online = sum(1 for _, status in live.sources if status == "online")
    out += [sep, ("", f"sources {online}/{len(live.sources)} online")]
    if live.nodes:
        out += [sep, ("", _count(len(live.nodes), "node", "nodes"))]
    if live.last_note is not None:
        note = live.last_note
        out += [sep, (f"class:note.{note.get('severity', 'info')}", _note_head(note))]
    return out


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def toolbar_text(live: Live) -> str:
    return "".join(text for _, text in toolbar_fragments(live))


def _note_head(note: dict[str, Any]) -> str:
    ts = note.get("ts")
    when = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, int | float) else "--"
    count = (
        f" \u00d7{note['count']}" if note.get("kind") == "flapping" and note.get("count") else ""
    )
    return f"{when} {note.get('title', '')}{count}"


def note_fragments(note: dict[str, Any]) -> list[tuple[str, str]]:
    severity = str(note.get("severity", "info"))
    text = note.get("text") or ""
    return [
        (f"class:note.{severity}", f"{_note_head(note)} [{severity}]"),
        ("", f" {text}" if text else ""),
    ]


def note_text(note: dict[str, Any]) -> str:
    """A notification as the shell prints it: ``HH:MM:SS title [severity] text``."""
    return "".join(text for _, text in note_fragments(note))


# -- running a line ------------------------------------------------------------------


class LineRunner:
    """Runs shell lines through the Typer app's click command ``root``.

    :meth:`run` returns the line's exit status, or None when the line asks to leave.
    """

    def __init__(
        self,
        root: Any,
        url: str,
        token: str | None = None,
        *,
        completer: ShellCompleter | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.root = root
        self.url = url
        self.token = token
        self.completer = completer or ShellCompleter(root, Live)
        self._err = err

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    def say(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def run(self, line: str) -> int | None:
        try:
            words = shlex.split(line, comments=False)
        except ValueError as exc:
            self.say(f"fleetwatch: error: cannot read the line: {exc}")
            return 2
        if not words:
            return 0
        name = words[0]
        if name in ("exit", "quit"):
            return None
        if name == "help":
            return self.help(words[1:])
        if name in HIDDEN:
            self.say(f"fleetwatch: error: {name!r} is not available inside the shell")
            return 2
        cmd = self.completer.command(name)
        if cmd is None:
            self.say(f"fleetwatch: error: no such command {name!r} (try 'help')")
            return 2
        return self.invoke([ALIASES.get(name, name), *self._inject(cmd, words[1:])])

    def startup(self) -> int | None:
        """What multivisor-cli does first: ``status``, when the CLI has it."""
        if self.completer.command("status") is None:
            return None
        try:
            return self.run("status")
        except KeyboardInterrupt:
            return 130

    def help(self, words: list[str]) -> int:
        if words:
            cmd = self.completer.command(words[0])
            if cmd is None:
                self.say(f"fleetwatch: error: no such command {words[0]!r}")
                return 2
            return self.invoke([ALIASES.get(words[0], words[0]), "--help"])
        rows = self.completer.help_lines()
        width = max(len(name) for name, _ in rows)
        lines = ["Commands (help COMMAND for its options; Tab completes, F5 runs status):"]
        lines += [f"  {name:<{width}}  {text}" for name, text in rows]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        return 0

    def _inject(self, cmd: Any, args: list[str]) -> list[str]:
        if is_group(cmd):
            if args and not args[0].startswith("-"):
                sub = cmd.get_command(self.completer.ctx, args[0])
                if sub is not None:
                    return [args[0], *self._inject(sub, args[1:])]
            return args
        opts = {o for p in cmd.params for o in getattr(p, "opts", ())}
        options = args[: args.index("--")] if "--" in args else args
        given = {a.split("=", 1)[0] for a in options if a.startswith("--")}
        extra: list[str] = []
        if "--url" in opts and "--url" not in given:
            extra += ["--url", self.url]
        if self.token and "--token" in opts and "--token" not in given:
            extra += ["--token", self.token]
        return extra + args

    def invoke(self, args: list[str]) -> int:
        """``fleetwatch ARGS`` in-process: its exit status, errors printed, never raised."""
        try:
            rv = self.root.main(args, prog_name="fleetwatch", standalone_mode=False)
        except typer.Exit as exc:
            return exc.exit_code
        except typer.Abort:
            self.say("Aborted.")
            return 1
        except typer.TyperException as exc:
            show = getattr(exc, "show", None)
            if callable(show):
                show(self.err)
            else:
                self.say(f"Error: {exc.format_message()}")
            return exc.exit_code
        except SystemExit as exc:
            return _exit_code(exc.code, self)
        except KeyboardInterrupt:
            return 130
        except HubError as exc:
            self.say(f"fleetwatch: error: {exc}")
            return 2
        except Exception as exc:  # a command's bug: say it, keep the shell
            self.say(f"fleetwatch: error: {type(exc).__name__}: {exc}")
            return 1
        finally:
            sys.stdout.flush()
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0

    def run_lines(self, lines: Iterable[str]) -> int:
        status = 0
        for line in lines:
            result = self.run(line.rstrip("\n"))
            if result is None:
                break
            status = result
        return status


def _exit_code(code: object, runner: LineRunner) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    runner.say(str(code))
    return 1


# -- the interactive shell -----------------------------------------------------------


class Shell:
    """The prompt, the mirror thread and the notes between them (module docstring)."""

    def __init__(self, root: Any, url: str, token: str | None, *, history: Path) -> None:
        self.mirror = Mirror(HubClient(url, token=token))
        self.mirror.listeners.append(self._on_event)
        self.completer = ShellCompleter(root, self.live, ALIASES)
        self.runner = LineRunner(root, url, token, completer=self.completer)
        self.history = history
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._told: dict[str, float] = {}
        """When each flapping note was last printed (monotonic): see _on_event."""
        self._prompt_loop: asyncio.AbstractEventLoop | None = None
        self._version = 0
        self._cache: tuple[int, Live] = (-1, Live())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="mirror", daemon=True)
        self.session: PromptSession[str] | None = None

    # -- the mirror's thread ----------------------------------------------------------

    def _follow(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._task = loop.create_task(self.mirror.run())
        self._ready.set()
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.run_until_complete(self.mirror.close())
            loop.close()

    def _on_event(self, event: Event) -> None:
        self._version += 1
        if event.type == "note" and event.note is not None:
            if not self._worth_printing(event.note):
                return
            with self._lock:
                self._pending.append(event.note)
                loop = self._prompt_loop
            if loop is not None:
                # RuntimeError: that prompt has ended (the next one prints the note).
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._notes_at_prompt)
        if self.session is not None:
            self.session.app.invalidate()  # thread safe; a no-op between prompts

    def live(self) -> Live:
        """The current copy of the model (taken in the mirror's thread when it changed)."""
        version, live = self._cache
        if version == self._version or self._loop is None:
            return live
        want = self._version
        future: concurrent.futures.Future[Live] = concurrent.futures.Future()

        def copy() -> None:
            try:
                future.set_result(Live.of(self.mirror))
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(copy)
            live = future.result(timeout=2)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return live
        self._cache = (want, live)
        return live

    # -- the main thread ---------------------------------------------------------------

    def _worth_printing(self, note: dict[str, Any]) -> bool:
        """A flapping note is re-sent at each change: print it at most once a minute."""
        if note.get("kind") != "flapping":
            return True
        now = time.monotonic()
        key = str(note.get("id"))
        if note.get("updated") and now - self._told.get(key, -math.inf) < FLAP_REPRINT:
            return False
        self._told[key] = now
        return True

    def _notes_at_prompt(self) -> None:
        """In the prompt's loop: print the pending notes above the prompt."""
        if self.session is None:
            return
        if self.session.app.is_running:
            self._print_notes()
        elif self._prompt_loop is not None:  # the prompt is starting: print once it runs
            self._prompt_loop.call_later(0.05, self._notes_at_prompt)

    def _print_notes(self) -> None:
        with self._lock:
            notes, self._pending = self._pending, []
        for note in notes:
            print_formatted_text(FormattedText(note_fragments(note)), style=STYLE)

    def _at_prompt(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._prompt_loop = loop
            pending = bool(self._pending)
        if pending:  # arrived since the loop printed the last ones
            loop.call_soon(self._notes_at_prompt)

    def _toolbar(self) -> FormattedText:
        return FormattedText(toolbar_fragments(self.live()))

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()

        @keys.add("f5")
        def _status(event: KeyPressEvent) -> None:
            if self.completer.command("status") is not None:
                event.app.current_buffer.text = "status"
                event.app.current_buffer.validate_and_handle()

        return keys

    def interact(self) -> int:
        self._thread.start()
        self._ready.wait(5)
        self.history.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.session = PromptSession(
            history=SafeHistory(str(self.history)),
            completer=self.completer,
            complete_while_typing=False,
            auto_suggest=AutoSuggestFromHistory(),
            bottom_toolbar=self._toolbar,
            style=STYLE,
            key_bindings=self._keys(),
        )
        self.session.app.min_redraw_interval = 0.1
        try:
            self.runner.startup()
            while True:
                self._print_notes()
                try:
                    line = self.session.prompt(PROMPT, pre_run=self._at_prompt)
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    break
                finally:
                    with self._lock:
                        self._prompt_loop = None
                try:
                    if self.runner.run(line) is None:
                        break
                except KeyboardInterrupt:  # between the prompt and the command
                    continue
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        if self._thread.is_alive():
            self._thread.join(5)


def run_shell(root: Any, url: str | None, token: str | None) -> int:
    """``fleetwatch shell``: 2 with a one-line message when the hub cannot be used."""
    url, token = hub_url(url), hub_token(token)
    try:
        client = HubClient(url, token=token)
    except ValueError as exc:
        typer.echo(f"fleetwatch: error: --url: {exc}", err=True)
        return 2
    if not sys.stdin.isatty():
        runner = LineRunner(root, url, token, completer=ShellCompleter(root, Live, ALIASES))
        return runner.run_lines(sys.stdin)
    try:
        fleet = client.fleet()
    except HubError as exc:
        typer.echo(f"fleetwatch: error: {exc}", err=True)
        return 2
    finally:
        client.close()
    name = fleet.get("name") or "the hub"
    typer.echo(
        f"fleetwatch shell: {name} at {client.url}. "
        "Type help for the commands, Tab to complete, Ctrl-D to leave."
    )
    return Shell(root, url, token, history=history_path()).interact()
