"""``fleetwatch shell`` in a pseudo-terminal against a real hub on real supervisord: the
prompt, the live toolbar, a notification printed as it arrives, Tab completing a live id,
history across two runs, ``exit``, and an unreachable hub.

prompt-toolkit redraws only the cells that changed, so what the terminal shows is
rebuilt by :class:`Screen`, a small VT100 screen (the escapes prompt-toolkit writes);
what commands and notes print is read from the stream itself, escapes removed.
"""

from __future__ import annotations

import codecs
import copy
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port
from tests.conftest import HubServer, source_config, wait_for

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
ROWS, COLS = 40, 200
FLEETWATCH = [sys.executable, "-m", "fleetwatch.cli", "shell"]
#: The shell with one more command, ``echo-target TARGET`` (this module's ``main``).
WITH_ECHO = [sys.executable, "-c", "from tests.integration.test_cli_shell import main; main()"]

_CSI = re.compile(r"\x1b\[([0-?]*)([ -/]*)([@-~])")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_ESC = re.compile(r"\x1b[=>()78NOM][0-9A-Za-z]?")
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>()][0-9A-Za-z]?"
)


def main() -> None:
    """``fleetwatch shell`` over a copy of the app with a tiny ``echo-target TARGET``."""
    import typer
    import typer.main

    from fleetwatch.cli.commands import app
    from fleetwatch.cli.shell import run_shell

    echo_app = copy.copy(app)
    echo_app.registered_commands = list(app.registered_commands)

    @echo_app.command("echo-target")
    def echo_target(target: str) -> None:
        typer.echo(f"target: {target}")

    sys.exit(run_shell(typer.main.get_command(echo_app), None, None))


class Screen:
    """The cells of a VT100 screen, fed what prompt-toolkit writes (enough of VT100 for it)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.y = self.x = 0
        self.wrap = True
        self._rest = ""
        self.answers: list[str] = []
        """What a terminal answers (cursor position reports), for the program's stdin."""

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.grid]

    def feed(self, text: str) -> None:
        text = self._rest + text
        self._rest = ""
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\x1b":
                for pattern in (_CSI, _OSC, _ESC):
                    m = pattern.match(text, i)
                    if m:
                        if pattern is _CSI:
                            self._csi(m.group(1), m.group(3))
                        i = m.end()
                        break
                else:
                    if len(text) - i < 32:  # cut in the middle: wait for the rest
                        self._rest = text[i:]
                        return
                    i += 1
                continue
            if c == "\r":
                self.x = 0
            elif c == "\n":
                self._down()
            elif c == "\b":
                self.x = max(0, self.x - 1)
            elif c >= " ":
                if self.x >= self.cols:
                    if not self.wrap:
                        self.x = self.cols - 1
                    else:
                        self.x = 0
                        self._down()
                self.grid[self.y][self.x] = c
                self.x += 1
            i += 1

    def _down(self) -> None:
        if self.y == self.rows - 1:
            self.grid.pop(0)
            self.grid.append([" "] * self.cols)
        else:
            self.y += 1

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            if params == "?7":
                self.wrap = final == "h"
            return
        nums = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
        n = nums[0] if nums and nums[0] else 1
        if final == "n" and params == "6":
            self.answers.append(f"\x1b[{self.y + 1};{self.x + 1}R")
        elif final == "A":
            self.y = max(0, self.y - n)
        elif final == "B":
            self.y = min(self.rows - 1, self.y + n)
        elif final == "C":
            self.x = min(self.cols - 1, self.x + n)
        elif final == "D":
            self.x = max(0, self.x - n)
        elif final == "G":
            self.x = min(self.cols - 1, n - 1)
        elif final in "Hf":
            row = nums[0] if nums and nums[0] else 1
            col = nums[1] if len(nums) > 1 and nums[1] else 1
            self.y, self.x = min(self.rows, row) - 1, min(self.cols, col) - 1
        elif final == "K":
            mode = nums[0] if nums else 0
            row = self.grid[self.y]
            span = {0: range(self.x, self.cols), 1: range(self.x + 1), 2: range(self.cols)}
            for x in span.get(mode, ()):
                row[x] = " "
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode == 0:
                self._csi("", "K")
                for y in range(self.y + 1, self.rows):
                    self.grid[y] = [" "] * self.cols
            elif mode == 2:
                self.grid = [[" "] * self.cols for _ in range(self.rows)]


def _controlling_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty (stdin),
    so that Ctrl-C in cooked mode is a SIGINT, as in a terminal emulator."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A program in a pseudo-terminal: its screen, its output stream, keys to send."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.master = master
        self.screen = Screen(ROWS, COLS)
        self._raw: list[str] = []
        self._lock = threading.Lock()
        self.mark = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return  # the program closed the terminal
            if not data:
                return
            text = decoder.decode(data)
            with self._lock:
                self._raw.append(text)
                self.screen.feed(text)
                answers, self.screen.answers = self.screen.answers, []
            for answer in answers:
                os.write(self.master, answer.encode())

    def text(self) -> str:
        """Everything written, escapes and carriage returns removed."""
        with self._lock:
            raw = "".join(self._raw)
        return _ANSI.sub("", raw).replace("\r", "")

    def lines(self) -> list[str]:
        with self._lock:
            return self.screen.lines()

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until ``pattern`` is in the stream after the mark; move the mark past it."""
        regex = re.compile(pattern, re.DOTALL)
        match = wait_for(
            lambda: regex.search(self.text(), self.mark),
            timeout,
            f"{pattern!r} in the output:\n{self.text()[-3000:]}",
        )
        self.mark = match.end()
        return match

    def on_screen(self, pattern: str, timeout: float = 20.0) -> str:
        """Wait until a line of the screen matches ``pattern``; that line."""
        regex = re.compile(pattern)

        def line() -> str | None:
            return next((s for s in self.lines() if regex.search(s)), None)

        return wait_for(line, timeout, f"{pattern!r} on the screen:\n" + "\n".join(self.lines()))

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)
        self._reader.join(5)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(argv: list[str], url: str = "") -> Terminal:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path / "home"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "TERM": "xterm",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
        }
        if url:
            env["FLEETWATCH_URL"] = url
        t = Terminal(argv, env)
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


@pytest.fixture
def hub(supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]) -> HubServer:
    sv = supervisors(
        "sv1",
        [
            Program("web", demo_program("service", "sv1-web"), autorestart=False),
            Program("api", demo_program("service", "sv1-api")),
            Program("idle", demo_program("service", "sv1-idle"), autostart=False),
        ],
    )
    server = hub_server(source_config(sv, poll_interval=0.5))

    def settled() -> bool:
        states = {p: v["state"] for p, v in server.processes().items()}
        return states == {
            "sv1:web:web": "RUNNING",
            "sv1:api:api": "RUNNING",
            "sv1:idle:idle": "STOPPED",
        }

    wait_for(settled, 30, "sv1's programs running on the hub")
    return server


PROMPT = r"^fleetwatch>"


def test_prompt_toolbar_notes_and_exit(hub: HubServer, terminal: Callable[..., Terminal]) -> None:
    t = terminal(FLEETWATCH, hub.url)
    t.expect(r"fleetwatch shell: fleetwatch at http://127\.0\.0\.1:\d+\. Type help")
    t.on_screen(PROMPT)
    t.on_screen(r"Connected │ 3 processes: 2 RUNNING, 1 STOPPED │ sources 1/1 online")
    # A line runs and its output comes before the next prompt.
    t.type("version\r")
    t.expect(r"\n0\.1\.0\n")
    t.on_screen(r"^fleetwatch> version$")
    # A notification is printed above the prompt when it arrives, the toolbar follows.
    assert hub.action("process", "sv1:web:web", "signal", signal="KILL").json()["ok"]
    t.expect(r"\d\d:\d\d:\d\d web exited \[warning\] web:web on sv1 left RUNNING unexpectedly")
    line = t.on_screen(r"3 processes: 1 RUNNING, 1 STOPPED, 1 EXITED │ sources 1/1 online │")
    assert re.search(r"│ \d\d:\d\d:\d\d web exited$", line), line
    # Ctrl-C drops the line being typed; the shell goes on.
    t.type("versio\x03")
    t.type("help\r")
    t.expect(r"Commands \(help COMMAND.*\n  version +Print the version\.")
    # An error is one line, and the shell goes on.
    t.type("serve\r")
    t.expect(r"fleetwatch: error: 'serve' is not available inside the shell")
    t.type("exit\r")
    assert t.wait() == 0


def test_ctrl_c_stops_a_command_and_notes_wait_for_its_end(
    hub: HubServer, terminal: Callable[..., Terminal]
) -> None:
    t = terminal(FLEETWATCH, hub.url)
    t.on_screen(r"│ Connected │ 3 processes")
    # discover waits the whole --timeout for answers that never come.
    t.type(f"discover -a 127.0.0.1 -p {free_port()} --timeout 120\r")
    t.on_screen(r"^fleetwatch> discover -a 127\.0\.0\.1")
    assert hub.action("process", "sv1:web:web", "signal", signal="KILL").json()["ok"]
    wait_for(
        lambda: any(n["title"] == "web exited" for n in hub.get("/api/notifications")),
        20,
        "the hub's notification",
    )
    note = r"web exited \[warning\] web:web on sv1"
    assert not re.search(note, t.text()), "a note was printed into a running command's output"
    t.mark = len(t.text())
    t.type("\x03")  # a SIGINT, as the terminal is in cooked mode while a command runs
    t.expect(note)
    t.on_screen(r"1 EXITED")  # the prompt and its toolbar are back
    t.type("exit\r")
    assert t.wait() == 0


def test_toolbar_says_reconnecting_while_the_hub_is_away(
    hub: HubServer, terminal: Callable[..., Terminal]
) -> None:
    t = terminal(FLEETWATCH, hub.url)
    t.on_screen(r"│ Connected │ 3 processes")
    hub.stop()
    t.on_screen(r"│ Reconnecting │ 3 processes")
    hub.start()
    t.on_screen(r"│ Connected │ 3 processes")
    t.type("\x04")  # Ctrl-D leaves too
    assert t.wait() == 0


def test_tab_completes_a_live_id(hub: HubServer, terminal: Callable[..., Terminal]) -> None:
    t = terminal(WITH_ECHO, hub.url)
    t.on_screen(r"│ Connected │ 3 processes")
    t.type("echo-t\t")
    t.on_screen(r"fleetwatch> echo-target$")
    t.type(" sv1:w\t")
    t.on_screen(r"fleetwatch> echo-target sv1:web$")  # the part sv1:web, sv1:web:* share
    t.type(":w\t")
    t.on_screen(r"fleetwatch> echo-target sv1:web:web$")
    t.type("\r")
    t.expect(r"\ntarget: sv1:web:web\n")
    t.type("exit\r")
    assert t.wait() == 0


def test_history_is_kept_across_two_runs(
    hub: HubServer, terminal: Callable[..., Terminal], tmp_path: Path
) -> None:
    first = terminal(FLEETWATCH, hub.url)
    first.on_screen(PROMPT)
    first.on_screen(r"│ Connected │")
    first.type("version --help\r")
    first.expect(r"Usage: fleetwatch version")
    first.type("exit\r")
    assert first.wait() == 0
    history = tmp_path / "state" / "fleetwatch" / "history"
    assert "\n+version --help\n" in history.read_text()
    assert history.read_text().endswith("\n+exit\n")

    second = terminal(FLEETWATCH, hub.url)
    second.on_screen(PROMPT)
    second.on_screen(r"│ Connected │")
    second.type("\x1b[A")  # Up: the last line of the run before, exit
    second.on_screen(r"fleetwatch> exit$")
    second.type("\x1b[A")
    second.on_screen(r"fleetwatch> version --help$")
    second.type("\r")
    second.expect(r"Usage: fleetwatch version")
    second.type("exit\r")
    assert second.wait() == 0


def test_an_unreachable_hub_is_one_clear_line(terminal: Callable[..., Terminal]) -> None:
    port = free_port()
    t = terminal([*FLEETWATCH, "--url", f"127.0.0.1:{port}"])
    assert t.wait() == 2
    assert t.text().strip() == (
        f"fleetwatch: error: cannot reach the hub at http://127.0.0.1:{port}: "
        "connection refused (is it running?)"
    )
    bad = terminal([*FLEETWATCH, "--url", "ftp://hub"])
    assert bad.wait() == 2
    assert bad.text().strip() == (
        "fleetwatch: error: --url: 'ftp://hub' is not an http:// or https:// URL"
    )


def test_lines_piped_in_are_run_one_by_one(hub: HubServer) -> None:
    script = "version\n\nnosuch\nhelp version\nexit\nversion --nope\n"
    done = subprocess.run(
        FLEETWATCH,
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLEETWATCH_URL": hub.url},
        check=False,
    )
    assert done.returncode == 0  # the status of the last line run, help version
    assert done.stdout.startswith("0.1.0\n")
    assert "Usage: fleetwatch version" in done.stdout
    assert done.stderr == "fleetwatch: error: no such command 'nosuch' (try 'help')\n"
