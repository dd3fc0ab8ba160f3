"""The client commands of ``fleetwatch`` (issue 9), run as a user runs them: the venv's
``fleetwatch`` script as a process, against a real hub on real supervisord. Output is
compared line by line, cell by cell, with the volatile cells (pids, ages, ports) replaced;
``tail -f`` and ``watch`` run in a pseudo-terminal and are stopped with Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.config import IcecreamSourceConfig
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port
from tests.conftest import HubServer, icecc_cluster, source_config, wait_for

pytestmark = pytest.mark.real

FLEETWATCH = str(Path(sys.executable).with_name("fleetwatch"))

#: Writes "line N café 日" with the "é" split across two writes 0.4 s apart, so a
#: follower that reads in between gets half a character from supervisord's log.
SPLITTER = (
    "import sys, time\n"
    "o = sys.stdout.buffer\n"
    "i = 0\n"
    "while True:\n"
    "    i += 1\n"
    "    o.write(b'line ' + str(i).encode() + b' caf\\xc3'); o.flush(); time.sleep(0.4)\n"
    "    o.write(b'\\xa9 \\xe6\\x97\\xa5\\n'); o.flush(); time.sleep(0.4)\n"
)


def programs(prefix: str, root: Path) -> list[Program]:
    splitter = root / "splitter.py"
    splitter.write_text(SPLITTER, encoding="utf-8")
    return [
        Program("web", demo_program("service", f"{prefix}-web")),
        Program("talker", demo_program("talker", f"{prefix}-talker")),
        Program("idle", demo_program("service", f"{prefix}-idle"), autostart=False),
        Program("worker", demo_program("worker", f"{prefix}-worker"), numprocs=2, group="workers"),
        Program("splitter", shlex.join([sys.executable, "-u", str(splitter)])),
    ]


@pytest.fixture
def fleet(
    supervisors: Callable[..., Supervisord],
    hub_server: Callable[..., HubServer],
    tmp_path: Path,
) -> HubServer:
    c1 = supervisors("c1", programs("c1", tmp_path))
    # No autorestart for c2's web: a crash polled only after the respawn looks like
    # RUNNING → STARTING, which is no notification, and test_sources_and_notes needs one.
    c2 = supervisors("c2", [Program("web", demo_program("service", "c2-web"), autorestart=False)])
    hub = hub_server(source_config(c1, poll_interval=0.5), source_config(c2, poll_interval=0.5))
    wait_for(
        lambda: (
            {s["id"]: s["status"] for s in hub.get("/api/sources")}
            == {"c1": "online", "c2": "online"}
        ),
        what="c1 and c2 online",
    )
    wait_for(
        lambda: (
            all(
                p["state"] == ("STOPPED" if p["name"] == "idle" else "RUNNING")
                for p in hub.processes().values()
            )
            and len(hub.processes()) == 7
        ),
        what="every program up",
    )
    return hub


def env_for(hub: HubServer | str, **extra: str) -> dict[str, str]:
    url = hub if isinstance(hub, str) else hub.url
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "FLEETWATCH_TOKEN")}
    return {**env, "FLEETWATCH_URL": url, "NO_COLOR": "1", "COLUMNS": "200", **extra}


def fw(
    hub: HubServer | str, *args: str, input: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLEETWATCH, *args],
        env=env_for(hub, **extra),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


AGE = re.compile(
    r"^(up |for |starting for |exited |stopped |failed )?"
    r"(\d+d \d+h|\d+h \d+m|\d+m \d+s|\d+ s)( ago)?$"
)


def cells(text: str) -> list[list[str]]:
    """Each line cut into its cells (two spaces or more apart), volatile cells replaced."""
    out = []
    for line in text.splitlines():
        row = []
        for cell in re.split(r"\s{2,}", line.strip()) if line.strip() else []:
            if re.fullmatch(r"\d+", cell):
                cell = "PID"
            elif m := AGE.match(cell):
                cell = f"{m.group(1) or ''}AGE{m.group(3) or ''}"
            cell = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", cell)
            row.append(cell)
        out.append(row)
    return out


def test_status_lists_the_fleet_with_ages_and_a_summary(fleet: HubServer) -> None:
    done = fw(fleet, "status")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert cells(done.stdout) == [
        ["SOURCE", "KIND", "STATUS", "SINCE", "URL / ERROR"],
        ["c1", "supervisor", "online", "for AGE", "http://127.0.0.1:PORT"],
        ["c2", "supervisor", "online", "for AGE", "http://127.0.0.1:PORT"],
        [],
        ["PROCESS", "STATE", "PID", "WHEN", "DETAIL"],
        ["c1:idle:idle", "STOPPED", "-", "not started"],
        ["c1:splitter:splitter", "RUNNING", "PID", "up AGE"],
        ["c1:talker:talker", "RUNNING", "PID", "up AGE"],
        ["c1:web:web", "RUNNING", "PID", "up AGE"],
        ["c1:workers:worker_00", "RUNNING", "PID", "up AGE"],
        ["c1:workers:worker_01", "RUNNING", "PID", "up AGE"],
        ["c2:web:web", "RUNNING", "PID", "up AGE"],
        [],
        ["NODE", "STATE", "ADDRESS", "SINCE", "METRICS"],
        ["c1/127.0.0.1", "online", "127.0.0.1", "for AGE", "processes=6 running=5"],
        ["c2/127.0.0.1", "online", "127.0.0.1", "for AGE", "processes=1 running=1"],
        [],
        ["2 sources (2 online), 2 nodes (2 online), 7 processes (6 RUNNING, 1 STOPPED)"],
    ]


def test_status_filters_on_the_hub(fleet: HubServer) -> None:
    done = fw(fleet, "status", "state:stopped,running name:idle,web")
    assert done.returncode == 0, done.stderr
    assert cells(done.stdout) == [
        ["PROCESS", "STATE", "PID", "WHEN", "DETAIL"],
        ["c1:idle:idle", "STOPPED", "-", "not started"],
        ["c1:web:web", "RUNNING", "PID", "up AGE"],
        ["c2:web:web", "RUNNING", "PID", "up AGE"],
        [],
        ["0 sources, 3 processes (2 RUNNING, 1 STOPPED)"],
    ]
    none = fw(fleet, "status", "name:nothing-like-this")
    assert none.returncode == 0
    assert none.stdout.splitlines() == [
        "nothing matches 'name:nothing-like-this'",
        "",
        "0 sources, 0 processes",
    ]


def test_status_json_is_the_apis_shapes(fleet: HubServer) -> None:
    done = fw(fleet, "status", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert sorted(data) == ["jobs", "nodes", "processes", "sources"]
    api = fleet.get("/api/fleet")
    assert [s["id"] for s in data["sources"]] == [s["id"] for s in api["sources"]]
    assert set(data["processes"][0]) == set(api["processes"][0])
    filtered = json.loads(fw(fleet, "status", "--json", "c2:").stdout)
    assert [p["id"] for p in filtered["processes"]] == ["c2:web:web"]
    assert filtered["processes"] == [p for p in fleet.get("/api/processes", params={"q": "c2:"})]
    assert filtered["jobs"] == []


def test_sources_and_notes(fleet: HubServer) -> None:
    done = fw(fleet, "sources")
    assert done.returncode == 0
    assert cells(done.stdout) == [
        ["SOURCE", "KIND", "STATUS", "SINCE", "URL / ERROR"],
        ["c1", "supervisor", "online", "for AGE", "http://127.0.0.1:PORT"],
        ["c2", "supervisor", "online", "for AGE", "http://127.0.0.1:PORT"],
    ]
    as_json = json.loads(fw(fleet, "sources", "--json", "c2").stdout)
    assert [s["id"] for s in as_json] == ["c2"]
    assert {"id", "kind", "status", "actions", "info"} <= set(as_json[0])
    assert fw(fleet, "notes").stdout == "no notifications\n"
    # A crash the hub did not ask for: a notification.
    os.kill(fleet.processes()["c2:web:web"]["pid"], signal.SIGKILL)
    wait_for(lambda: fleet.get("/api/notifications"), what="a notification")
    notes = fw(fleet, "notes", "-n", "1")
    assert notes.returncode == 0
    line = notes.stdout.splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  warning  web exited — .*", line), line
    notes_json = json.loads(fw(fleet, "notes", "--json").stdout)
    assert {"id", "ts", "severity", "source", "subject", "title", "text"} <= set(notes_json[0])


def test_actions_print_each_result_and_exit_1_on_any_failure(fleet: HubServer) -> None:
    stop = fw(fleet, "stop", "c1:web:web")
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, "c1:web:web: ok\n", "")
    assert fleet.processes()["c1:web:web"]["state"] == "STOPPED"
    start = fw(fleet, "start", "c1:web:*", "c1:workers")
    assert (start.returncode, start.stdout) == (0, "c1:web:web: ok\nc1:workers: ok\n")
    restart = fw(fleet, "restart", "talker")
    assert (restart.returncode, restart.stdout) == (0, "c1:talker:talker: ok\n")
    # What supervisord said, and exit status 1.
    bad = fw(fleet, "signal", "BOGUS", "c1:web:web")
    assert bad.returncode == 1
    assert (
        bad.stdout == 'c1:web:web: failed: BAD_SIGNAL: BOGUS {"fault": "BAD_SIGNAL", "code": 11}\n'
    )
    missing = fw(fleet, "stop", "c1:web:web", "nothing-here")
    assert missing.returncode == 1
    assert missing.stdout.splitlines() == [
        "nothing-here: failed: no target matches 'nothing-here' (or it has no action 'stop')",
        "c1:web:web: ok",
    ]
    assert fw(fleet, "clear-log", "c1:talker:talker").stdout == "c1:talker:talker: ok\n"
    reread = fw(fleet, "reread", "c1")
    assert reread.stdout == 'c1: ok {"added": [], "changed": [], "removed": []}\n'
    as_json = json.loads(fw(fleet, "start", "c1:web:web", "--json").stdout)
    assert as_json == [
        {
            "target": {"kind": "process", "id": "c1:web:web"},
            "ok": True,
            "error": None,
            "detail": None,
        }
    ]


def test_destructive_actions_across_sources_ask_unless_yes(fleet: HubServer) -> None:
    # "web" is the program on both supervisors: two sources, a destructive action.
    refused = fw(fleet, "stop", "web")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr == (
        "fleetwatch: error: stop 2 targets on 2 sources (c1, c2): "
        "say --yes (no terminal to ask on)\n"
    )
    assert fleet.processes()["c1:web:web"]["state"] == "RUNNING"
    # Not destructive (start), or on one source only: no question.
    assert fw(fleet, "start", "web").returncode == 0
    assert fw(fleet, "stop", "c1:web:*").returncode == 0
    yes = fw(fleet, "stop", "--yes", "web")
    # c1's was stopped already: supervisord said so, and the goal holds.
    assert (yes.returncode, yes.stdout) == (
        0,
        'c1:web:web: ok {"note": "NOT_RUNNING"}\nc2:web:web: ok\n',
    )
    by_filter = fw(fleet, "start", "--filter", "name:web state:stopped")
    assert (by_filter.returncode, by_filter.stdout) == (0, "c1:web:web: ok\nc2:web:web: ok\n")


def test_the_question_on_a_terminal(fleet: HubServer) -> None:
    with Pty([FLEETWATCH, "restart", "web"], env_for(fleet)) as term:
        term.expect("restart 2 targets on 2 sources (c1, c2)? [y/N] ")
        term.send("n\n")
        assert term.wait() == 1
        assert "fleetwatch: error: nothing done" in term.text
    with Pty([FLEETWATCH, "restart", "web"], env_for(fleet)) as term:
        term.expect("? [y/N] ")
        term.send("y\n")
        term.expect("c2:web:web: ok")
        assert term.wait() == 0


def test_do_runs_any_action_of_the_model(fleet: HubServer) -> None:
    done = fw(fleet, "do", "signal", "c1:web:web", "--param", "signal=HUP")
    assert (done.returncode, done.stdout) == (0, "c1:web:web: ok\n")
    assert fw(fleet, "do", "reread", "c2").returncode == 0
    nope = fw(fleet, "do", "fly", "c1")
    assert nope.returncode == 1
    assert nope.stdout == "c1: failed: no target matches 'c1' (or it has no action 'fly')\n"
    missing = fw(fleet, "do", "signal", "c1:web:web")  # the hub checks params: 400
    assert missing.returncode == 1
    assert missing.stdout.startswith("c1:web:web: failed: ")
    bad = fw(fleet, "do", "signal", "c1:web:web", "-p", "oops")
    assert (bad.returncode, bad.stderr) == (
        2,
        "fleetwatch: error: --param 'oops': expected KEY=VALUE\n",
    )


def test_supervisord_level_reload_and_shutdown(
    supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]
) -> None:
    sv = supervisors("s1", [Program("web", demo_program("service", "s1-web"))])
    hub = hub_server(source_config(sv, poll_interval=0.5))
    wait_for(lambda: hub.source("s1")["status"] == "online", what="s1 online")
    update = fw(hub, "update", "s1")
    assert (update.returncode, update.stdout) == (
        0,
        's1: ok {"added": [], "changed": [], "removed": []}\n',
    )
    reload = fw(hub, "reload", "s1")
    assert (reload.returncode, reload.stdout) == (0, "s1: ok\n")
    wait_for(
        lambda: hub.processes().get("s1:web:web", {}).get("state") == "RUNNING", 30, "web again"
    )
    shutdown = fw(hub, "shutdown", "s*")
    assert (shutdown.returncode, shutdown.stdout) == (0, "s1: ok\n")
    wait_for(lambda: hub.source("s1")["status"] == "offline", 30, "s1 offline")


def test_an_unreachable_hub_is_one_line_and_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["status"],
        ["status", "--json"],
        ["sources"],
        ["notes"],
        ["stop", "x"],
        ["tail", "x"],
        ["watch"],
        ["do", "start", "x"],
    ):
        done = fw(url, *args)
        assert done.returncode == 2, (args, done)
        assert done.stdout == ""
        assert done.stderr == (
            f"fleetwatch: error: cannot reach the hub at {url}: "
            "connection refused (is it running?)\n"
        ), args
    flag = fw("http://unused", "status", "--url", url)
    assert flag.returncode == 2
    assert url in flag.stderr
    bad_url = fw("ftp://x", "status")
    assert (bad_url.returncode, bad_url.stderr) == (
        2,
        "fleetwatch: error: --url: 'ftp://x' is not an http:// or https:// URL\n",
    )


def test_usage_errors_exit_2(fleet: HubServer) -> None:
    assert fw(fleet, "notes", "-n", "x").returncode == 2
    assert fw(fleet, "notes", "-n", "0").returncode == 2
    none = fw(fleet, "stop")
    assert (none.returncode, none.stderr) == (
        2,
        "fleetwatch: error: no targets: name some, or use --filter FILTER\n",
    )
    assert fw(fleet, "tail").returncode == 2
    many = fw(fleet, "tail", "web")
    assert (many.returncode, many.stderr) == (
        2,
        "fleetwatch: error: 'web' matches 2 processes: c1:web:web, c2:web:web\n",
    )


def test_tail_prints_the_last_lines_as_utf8_whatever_the_locale(fleet: HubServer) -> None:
    wait_for(
        lambda: fleet.get("/api/processes/c1:talker:talker/log")["text"].count("\n") > 4,
        what="talk",
    )
    done = subprocess.run(
        [FLEETWATCH, "tail", "-n", "3", "talker"],
        env=env_for(fleet, PYTHONIOENCODING="ascii", LC_ALL="C"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode("utf-8").splitlines()
    assert len(lines) == 3
    for line in lines:
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d c1-talker line \d+: all good, température=21°C, ✓ 日本語", line
        ), line
    wait_for(
        lambda: (
            "warning" in fleet.get("/api/processes/c1:talker:talker/log?channel=stderr")["text"]
        ),
        what="a warning",
    )
    err = fw(fleet, "tail", "--stderr", "-n", "1", "c1:talker:talker")
    assert re.fullmatch(r"\d\d:\d\d:\d\d c1-talker warning \d+: something odd ⚠\n", err.stdout)


def test_tail_follow_keeps_characters_split_across_reads_whole(fleet: HubServer) -> None:
    with Pty([FLEETWATCH, "tail", "-f", "-n", "1", "splitter"], env_for(fleet)) as term:
        term.expect_lines(r"line \d+ café 日", 4)
        term.interrupt()
        assert term.wait() == 0
    assert "�" not in term.text
    assert "Traceback" not in term.text
    numbers = [int(n) for n in re.findall(r"line (\d+) café 日", term.text)]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers


def test_watch_redraws_from_the_stream_until_ctrl_c(fleet: HubServer) -> None:
    with Pty([FLEETWATCH, "watch", "c1:web"], env_for(fleet, TERM="xterm")) as term:
        term.expect("c1:web:web")
        term.expect("1 process (1 RUNNING)")
        assert "c2:web:web" not in term.text
        assert fleet.action("process", "c1:web:web", "stop").json()["ok"]
        term.expect("1 process (1 STOPPED)")
        term.interrupt()
        assert term.wait() == 0
    assert "Traceback" not in term.text


def test_completion_offers_live_ids(fleet: HubServer) -> None:
    done = subprocess.run(
        [FLEETWATCH],
        env={
            **env_for(fleet),
            "_FLEETWATCH_COMPLETE": "complete_bash",
            "COMP_WORDS": "fleetwatch stop c1:w",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "c1:web",
        "c1:workers",
        "c1:web:web",
        "c1:workers:worker_00",
        "c1:workers:worker_01",
    ]
    # The hub gone: no candidates, no noise.
    gone = subprocess.run(
        [FLEETWATCH],
        env={
            **env_for(f"http://127.0.0.1:{free_port()}"),
            "_FLEETWATCH_COMPLETE": "complete_bash",
            "COMP_WORDS": "fleetwatch stop c1:w",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (gone.returncode, gone.stdout.strip(), gone.stderr) == (0, "", "")
    script = fw(fleet, "--show-completion", "bash")
    assert script.returncode == 0
    assert "_FLEETWATCH_COMPLETE" in script.stdout


def test_icecream_block_and_unblock_a_host(hub_server: Callable[..., HubServer]) -> None:
    with icecc_cluster(remotes=1) as cluster:
        hub = hub_server(
            IcecreamSourceConfig(
                name="ice", scheduler=f"127.0.0.1:{cluster.port}", netname="FWTEST"
            )
        )
        wait_for(lambda: hub.source("ice")["status"] == "online", 90, "scheduler online")
        remote = cluster.host_name("remote1")

        def state() -> str | None:
            found = hub.get("/api/nodes", params={"q": f"source:ice name:{remote}"})
            return found[0]["state"] if found else None

        wait_for(lambda: state() == "online", 60, "remote1 listed")
        listed = fw(hub, "status", "source:ice")
        assert [r[:3] for r in cells(listed.stdout) if r and r[0] == f"ice/{remote}"] == [
            [f"ice/{remote}", "online", "127.0.0.1"]
        ], listed.stdout
        try:
            blocked = fw(hub, "block", remote)  # a bare host name: every scheduler's
            assert blocked.returncode == 0, blocked.stdout
            assert blocked.stdout.startswith(f"ice/{remote}: ok"), blocked.stdout
            assert remote in cluster.text("listblocks")
            wait_for(lambda: state() == "blocked", 60, "blocked")
        finally:
            unblocked = fw(hub, "unblock", f"ice/{remote}")
        assert unblocked.returncode == 0, unblocked.stdout
        assert unblocked.stdout.startswith(f"ice/{remote}: ok"), unblocked.stdout
        assert remote not in cluster.text("listblocks")
        # Not a host of any scheduler: said so, exit 1; and supervisord verbs never reach it.
        nope = fw(hub, "block", "no-such-host")
        assert nope.returncode == 1
        assert fw(hub, "stop", "ice").returncode == 1


class Pty:
    """A command on a pseudo-terminal: read what it draws, type, press Ctrl-C."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.raw = b""

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            with contextlib.suppress(OSError):  # the child closed its side
                self.raw += os.read(self.master, 65536)

    def expect(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in _plain(self.text):
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} never appeared; got:\n{_plain(self.text)[-2000:]}")
            self._pump(0.1)

    def expect_lines(self, pattern: str, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.text)) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"{n} lines like {pattern!r} never came; got:\n{self.text[-2000:]}")
            self._pump(0.1)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail("the command did not end")
            self._pump(0.05)
        self._pump(0)
        return self.proc.returncode

    def __enter__(self) -> Pty:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
