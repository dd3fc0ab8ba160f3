"""Multivisor 7's HTTP API served by the hub, checked with the real ``multivisor-cli``.

The CLI is the one from PyPI (``multivisor[cli]``, pinned in ``requirements-mvcli.lock``),
installed by ``make mvcli`` into a venv of its own (``.mvcli``; ``$MULTIVISOR_CLI`` names
another). It is an interactive prompt-toolkit program, so it runs in a pseudo-terminal,
against real supervisord instances watched by a real hub. The shapes are compared with
the answers recorded from a real Multivisor (``tests/vectors/multivisor/``).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from multivisor.util import filter_patterns as multivisor_filter_patterns

from fleetwatch.config import Config, HubConfig, load_config
from fleetwatch.demo.supervisord import Program, Supervisord, free_port
from fleetwatch.server import ListenError
from fleetwatch.web.multivisor import filter_patterns
from tests.conftest import IN_CI, HubServer, source_config, standard_programs, wait_for

Supervisors = Callable[..., Supervisord]
HubServers = Callable[..., HubServer]

ROOT = Path(__file__).resolve().parents[2]


def samples_dir() -> Path:
    """Answers recorded from a real Multivisor 7.1.0 (see the folder's README)."""
    return ROOT / "tests" / "vectors" / "multivisor"


def multivisor_cli() -> str:
    """The real multivisor-cli; skip when missing, except under CI=true, where it fails."""
    candidates = [os.environ.get("MULTIVISOR_CLI", ""), str(ROOT / ".mvcli/bin/multivisor-cli")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    message = "multivisor-cli is not installed (make mvcli)"
    if IN_CI:
        pytest.fail(f"{message}: CI must install it (the Makefile's test target does)")
    pytest.skip(message)


PROMPT = "multivisor>"  # prompt-toolkit draws the space after it with a cursor move
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[=>()][0-9A-Za-z]?"
)


def _clean(raw: str) -> str:
    return _ANSI.sub("", raw).replace("\r", "")


class Terminal:
    """A program in a pseudo-terminal: what it wrote (escapes removed), and keys to send."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self._raw = bytearray()
        self._lock = threading.Lock()
        self.mark = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return  # the program closed the terminal
            if not data:
                return
            with self._lock:
                self._raw += data

    def raw(self) -> str:
        with self._lock:
            return self._raw.decode("utf-8", "replace")

    def text(self) -> str:
        return _clean(self.raw())

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until ``pattern`` appears after the mark; move the mark past it."""
        regex = re.compile(pattern, re.DOTALL)

        def found() -> re.Match[str] | None:
            return regex.search(self.text(), self.mark)

        match = wait_for(found, timeout, f"{pattern!r} in the terminal:\n{self.text()[-3000:]}")
        self.mark = match.end()
        return match

    def run(self, command: str, timeout: float = 60.0) -> str:
        """Type ``command``, wait for the next prompt, return what the command printed.

        prompt-toolkit turns bracketed paste off when a line is accepted and on again
        when it draws the next prompt: the output lies between the two.
        """
        start = len(self.raw())
        os.write(self.master, command.encode() + b"\r")
        done = re.compile(r"\x1b\[\?2004l(.*?)\x1b\[\?2004h", re.DOTALL)
        match = wait_for(
            lambda: done.search(self.raw(), start),
            timeout,
            f"{command!r} to finish:\n{self.text()[-3000:]}",
        )
        return _clean(match.group(1)).strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.write(self.master, b"\x04")  # Ctrl-D: the CLI's way out
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.close(self.master)
        self._reader.join(5)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(*args: str) -> Terminal:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TERM": "xterm",
            "LANG": "C.UTF-8",
            "PROMPT_TOOLKIT_NO_CPR": "1",  # nobody answers cursor-position requests here
        }
        t = Terminal([multivisor_cli(), *args], env)
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


def state(sv: Supervisord, namespec: str) -> tuple[str, int]:
    info = sv.call("supervisor.getProcessInfo", namespec)
    return info["statename"], info["pid"]


def mv_hub(hub_server: HubServers, *svs: Supervisord, **kw: Any) -> tuple[HubServer, str]:
    """A hub over these supervisords with Multivisor's API on a second port; its URL."""
    port = free_port()
    hub = hub_server(
        *(source_config(sv, poll_interval=0.5) for sv in svs),
        multivisor_listen=f"127.0.0.1:{port}",
        **kw,
    )
    for sv in svs:
        wait_for(lambda sv=sv: hub.source(sv.name)["status"] == "online", what=f"{sv.name} online")
    return hub, f"http://127.0.0.1:{port}"


# -- the real multivisor-cli ----------------------------------------------------------


def test_multivisor_cli_status_restart_stop_against_real_supervisord(
    supervisors: Supervisors, hub_server: HubServers, terminal: Callable[..., Terminal]
) -> None:
    broken = Program("broken", "/nonexistent/program", autostart=False)
    sv1 = supervisors("sv1", [*standard_programs("sv1"), broken])
    sv2 = supervisors("sv2")
    hub, url = mv_hub(hub_server, sv1, sv2)

    # The CLI prints the state it loads at start: wait until the hub has seen every
    # autostarted program settle (polled every 0.5 s), not only supervisord itself.
    def settled() -> bool:
        steady = [p for p in hub.processes("source:sv1,sv2").values() if p["name"] != "flapper"]
        return len(steady) >= 10 and all(p["state"] in ("RUNNING", "STOPPED") for p in steady)

    wait_for(settled, what="every program but the flapper RUNNING (or STOPPED) in the hub")

    # A path after the port is dropped by the CLI's sanitize_url: the API must be at the root.
    cli = terminal("--url", f"{url}/multivisor")
    # On start it prints the status of every process, grouped, from GET /api/data.
    cli.expect(r"sv1:web:web\s+(STARTING|RUNNING)\s+pid \d+, started .*" + PROMPT)

    out = cli.run("status sv2:*")
    assert re.search(r"sv2:workers:worker_01\s+RUNNING\s+pid \d+", out), out
    assert "sv1:" not in out

    assert cli.run("stop sv1:web:web") == ""  # the CLI prints nothing when all went well
    assert state(sv1, "web")[0] == "STOPPED"
    assert state(sv2, "web")[0] == "RUNNING"
    # The CLI follows GET /api/stream: its status shows the stop without a refresh.
    wait_for(
        lambda: re.search(r"sv1:web:web\s+STOPPED\s+stopped on", cli.run("status sv1:web:web")),
        what="the CLI's status to show the stop",
    )

    assert cli.run("restart sv1:web:web") == ""
    assert state(sv1, "web")[0] == "RUNNING"

    # A bare name is Multivisor's *:name: that program on every supervisor.
    before = {sv.name: state(sv, "talker")[1] for sv in (sv1, sv2)}
    assert cli.run("restart talker") == ""
    after = {sv.name: state(sv, "talker") for sv in (sv1, sv2)}
    assert all(s == "RUNNING" and pid != before[n] for n, (s, pid) in after.items()), after

    assert cli.run("stop sv2:workers:*") == ""
    assert state(sv2, "workers:worker_00")[0] == state(sv2, "workers:worker_01")[0] == "STOPPED"
    assert state(sv1, "workers:worker_00")[0] == "RUNNING"

    out = cli.run("refresh-status")
    assert re.search(r"sv2:workers:worker_00\s+STOPPED", out), out

    # Failures are errors the CLI shows, not a silent "OK".
    assert "Error: 502 Server Error" in cli.run("restart sv1:broken:broken")
    assert "Error: 404 Client Error" in cli.run("stop sv1:nothing:here")
    assert cli.proc.poll() is None, "the CLI must survive a failed action"
    assert hub.processes()["sv1:broken:broken"]["state"] in ("FATAL", "BACKOFF", "STOPPED")


# -- shapes against the recorded samples ------------------------------------------------


def shape(value: Any) -> Any:
    """Keys and types, recursively (ints and floats alike are numbers; None is its own)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    if isinstance(value, list):
        return ["list"]
    raise AssertionError(f"unexpected JSON value {value!r}")


def sse_frames(text: str) -> list[Any]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


class SSE:
    """An SSE client reading in the background; ``frames`` are the decoded ``data:`` lines."""

    def __init__(self, url: str) -> None:
        self.frames: list[Any] = []
        self.comments = 0
        self.status: int | None = None
        self._response: httpx.Response | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()
        wait_for(lambda: self.status is not None and self.comments + len(self.frames) > 0)

    def _run(self, url: str) -> None:
        try:
            with self._client.stream("GET", url) as r:
                self._response = r
                self.status = r.status_code
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        self.frames.append(json.loads(line[5:]))
                    elif line.startswith(":"):
                        self.comments += 1
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise  # closed by the server, not by close()

    def events(self, name: str) -> list[Any]:
        return [f["payload"] for f in self.frames if f.get("event") == name]

    def close(self) -> None:
        self._stop.set()
        if self._response is not None:
            self._response.close()
        self._thread.join(10)
        self._client.close()


def test_json_shapes_are_multivisors(supervisors: Supervisors, hub_server: HubServers) -> None:
    samples = samples_dir()
    sv = supervisors("sv1")
    hub, url = mv_hub(hub_server, sv)
    wait_for(lambda: state(sv, "talker")[0] == "RUNNING")
    with httpx.Client(base_url=url, timeout=30) as http:
        check_shapes(samples, sv, hub, url, http)


def check_shapes(
    samples: Path, sv: Supervisord, hub: HubServer, url: str, http: httpx.Client
) -> None:
    recorded = json.loads((samples / "api_data.json").read_text())
    data = http.get("/api/data").json()
    assert set(data) == set(recorded) == {"name", "supervisors"}
    want_sup = recorded["supervisors"]["sv1"]
    got_sup = data["supervisors"]["sv1"]
    header = {k: v for k, v in want_sup.items() if k != "processes"}
    assert shape({k: v for k, v in got_sup.items() if k != "processes"}) == shape(header)
    want_proc = shape(want_sup["processes"]["sv1:talker:talker"])
    assert shape(got_sup["processes"]["sv1:talker:talker"]) == want_proc
    assert got_sup["processes"]["sv1:talker:talker"]["uid"] == "sv1:talker:talker"
    assert got_sup["processes"]["sv1:workers:worker_00"]["full_name"] == "workers:worker_00"
    assert got_sup["running"] is True
    assert got_sup["version"] is None
    assert got_sup["supervisor_version"] == "4.3.0"
    assert got_sup["identification"] == "sv1"
    assert got_sup["pid"] == sv.call("supervisor.getPID")

    info = http.get("/api/process/info/sv1:talker:talker").json()
    assert shape(info) == shape(json.loads((samples / "api_process_info.json").read_text()))
    truth = sv.call("supervisor.getProcessInfo", "talker")
    for key in ("name", "group", "pid", "start", "state", "statename", "stdout_logfile"):
        assert info[key] == truth[key], key
    assert info["description"] == truth["description"] or info["description"].startswith(
        f"pid {truth['pid']}, uptime 0:00:"
    )

    sup = http.get("/api/supervisor/info/sv1").json()
    recorded_sup = json.loads((samples / "api_supervisor_info.json").read_text())
    assert shape({k: v for k, v in sup.items() if k != "processes"}) == shape(
        {k: v for k, v in recorded_sup.items() if k != "processes"}
    )
    assert set(sup["processes"]) == {
        f"sv1:{p['group']}:{p['name']}" for p in sv.call("supervisor.getAllProcessInfo")
    }

    listed = http.get("/api/process/list").json()
    assert isinstance(json.loads((samples / "api_process_list.json").read_text()), list)
    assert listed == sorted(listed)
    assert set(listed) == set(sup["processes"])

    config = http.get("/api/config/file").json()
    assert shape(config) == shape(json.loads((samples / "api_config_file.json").read_text()))

    assert http.get("/api/refresh").json()["supervisors"]["sv1"]["running"] is True

    # The log tail's frames: {"message", "size"}, as recorded.
    recorded_tail = sse_frames((samples / "api_log_tail_out.sse.txt").read_text())
    tail = SSE(f"{url}/api/process/log/out/tail/sv1:talker:talker")
    try:
        wait_for(lambda: tail.frames, what="a first log frame")
        assert shape(tail.frames[0]) == shape(recorded_tail[0])
        wait_for(
            lambda: "température=21°C, ✓" in "".join(f["message"] for f in tail.frames),
            what="a line of the log, its UTF-8 intact",
        )
    finally:
        tail.close()

    # The same API under /multivisor on the main port.
    assert httpx.get(f"{hub.url}/multivisor/api/process/list").json() == listed


def test_stream_events_arrive_on_a_real_change(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    samples = samples_dir()
    recorded = sse_frames((samples / "api_stream.sse.txt").read_text())
    recorded_by_event = {f["event"]: f for f in recorded}
    sv = supervisors("sv1")
    hub, url = mv_hub(hub_server, sv)
    wait_for(lambda: state(sv, "web")[0] == "RUNNING")
    stream = SSE(f"{url}/api/stream")
    try:
        assert stream.status == 200
        assert hub.hub.subscribers == 1
        sv.call("supervisor.stopProcess", "web")  # behind the hub's back, straight to supervisord

        def stopped() -> bool:
            return any(
                p["uid"] == "sv1:web:web" and p["statename"] == "STOPPED"
                for p in stream.events("process_changed")
            )

        wait_for(stopped, what="process_changed to STOPPED")
        change = next(p for p in stream.events("process_changed") if p["uid"] == "sv1:web:web")
        assert shape(change) == shape(recorded_by_event["process_changed"]["payload"])
        notes = [n["message"] for n in stream.events("notification")]
        wait_for(
            lambda: any(
                re.fullmatch(r"web on sv1 changed from \w+ to STOPPED", n["message"])
                for n in stream.events("notification")
            ),
            what=f"the state-change notification (got {notes})",
        )
        note = stream.events("notification")[-1]
        assert shape(note) == shape(recorded_by_event["notification"]["payload"])
        assert note["level"] == "INFO"

        # A supervisor that goes away: supervisor_changed, running false, no processes.
        sv.stop()
        wait_for(
            lambda: any(not s["running"] for s in stream.events("supervisor_changed")),
            what="supervisor_changed to not running",
        )
        gone = next(s for s in stream.events("supervisor_changed") if not s["running"])
        assert gone["name"] == "sv1"
        assert gone["processes"] == {}
    finally:
        stream.close()
    # The client went away: its subscription goes too.
    wait_for(lambda: hub.hub.subscribers == 0, what="the stream's subscription closed")


def test_log_tail_sends_every_line_once(supervisors: Supervisors, hub_server: HubServers) -> None:
    sv = supervisors("sv1")
    _, url = mv_hub(hub_server, sv)
    wait_for(lambda: state(sv, "talker")[0] == "RUNNING")
    tail = SSE(f"{url}/api/process/log/out/tail/sv1:talker:talker")
    try:

        def numbers() -> list[int]:
            text = "".join(f["message"] for f in tail.frames)
            return [int(n) for n in re.findall(r"sv1-talker line (\d+):", text)]

        first = wait_for(lambda: numbers() or None, what="the first lines")[-1]
        wait_for(lambda: numbers()[-1] >= first + 4, 30, "four more lines")
        seen = numbers()
        assert seen == list(range(seen[0], seen[0] + len(seen))), "a line lost or repeated"
        assert all(f["size"] >= len(f["message"].encode()) for f in tail.frames)
    finally:
        tail.close()


# -- errors Multivisor gets wrong -------------------------------------------------------


def test_unknown_uid_or_supervisor_is_404_json(
    supervisors: Supervisors, hub_server: HubServers
) -> None:
    sv = supervisors("sv1")
    hub, url = mv_hub(hub_server, sv)
    with httpx.Client(base_url=url, timeout=30) as http:
        check_404s(hub, http)


def check_404s(hub: HubServer, http: httpx.Client) -> None:
    for method, path, form in [
        ("GET", "/api/process/info/sv9:nope:nope", None),
        ("GET", "/api/supervisor/info/sv9", None),
        ("GET", "/api/process/log/out/tail/sv9:nope:nope", None),
        ("POST", "/api/process/stop", {"uid": "sv1:doesnotexist"}),
        ("POST", "/api/process/restart", {"uid": "sv9:*"}),
        ("POST", "/api/supervisor/reread", {"supervisor": "sv1,sv9"}),
        ("GET", "/api/nothing/here", None),
    ]:
        r = http.request(method, path, data=form)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"], path
    assert "sv9" in http.get("/api/process/info/sv9:nope:nope").json()["error"]
    r = http.post("/api/process/stop", data={})
    assert r.status_code == 400
    assert "uid" in r.json()["error"]
    assert http.post("/api/data").status_code == 405
    assert httpx.get(f"{hub.url}/multivisor/api/process/info/x:y:z").status_code == 404


def test_a_failed_action_is_not_ok(supervisors: Supervisors, hub_server: HubServers) -> None:
    broken = Program("broken", "/nonexistent/program", autostart=False)
    sv = supervisors("sv1", [*standard_programs("sv1"), broken])
    _, url = mv_hub(hub_server, sv)
    wait_for(lambda: state(sv, "web")[0] == "RUNNING")
    stream = SSE(f"{url}/api/stream")
    try:
        r = httpx.post(f"{url}/api/process/restart", data={"uid": "sv1:broken:broken,web"})
        assert r.status_code == 502, r.text
        body = r.json()
        assert "1 of 2 failed" in body["error"]
        assert "can't find command '/nonexistent/program'" in body["error"]  # supervisord's words
        assert body["results"]["sv1:broken:broken"]["ok"] is False
        assert body["results"]["sv1:web:web"]["ok"] is True
        wait_for(
            lambda: any(
                n["level"] == "ERROR" and "sv1:broken:broken" in n["message"]
                for n in stream.events("notification")
            ),
            what="an ERROR notification for the failure",
        )
        # and success is still Multivisor's plain OK
        ok = httpx.post(f"{url}/api/process/stop", data={"uid": "sv1:web:web"})
        assert (ok.status_code, ok.text) == (200, "OK")
        assert state(sv, "web")[0] == "STOPPED"
        # answered once the model has caught up: read your own write
        data = httpx.get(f"{url}/api/data").json()
        assert data["supervisors"]["sv1"]["processes"]["sv1:web:web"]["statename"] == "STOPPED"
    finally:
        stream.close()


def test_supervisor_actions(supervisors: Supervisors, hub_server: HubServers) -> None:
    sv = supervisors("sv1")
    other = supervisors("sv2")
    hub, url = mv_hub(hub_server, sv, other)
    stream = SSE(f"{url}/api/stream")
    try:
        for action in ("reread", "update"):
            r = httpx.post(f"{url}/api/supervisor/{action}", data={"supervisor": "sv1, sv2"})
            assert (r.status_code, r.text) == (200, "OK"), action
        wait_for(
            lambda: (
                "Reread config of sv2 (0 added; 0 changed; 0 disappeared)"
                in [n["message"] for n in stream.events("notification")]
            ),
            what="the reread notification",
        )
        pid = other.call("supervisor.getPID")
        r = httpx.post(f"{url}/api/supervisor/shutdown", data={"supervisor": "sv2"}, timeout=30)
        assert (r.status_code, r.text) == (200, "OK")
        assert other.proc is not None
        other.proc.wait(30)
        assert not os.path.exists(f"/proc/{pid}/status") or other.proc.returncode is not None
        wait_for(lambda: hub.source("sv2")["status"] != "online", what="sv2 seen down")
        # An action on a supervisor that is down fails honestly.
        r = httpx.post(f"{url}/api/supervisor/reread", data={"supervisor": "sv2"}, timeout=30)
        assert r.status_code == 502, r.text
        r = httpx.post(f"{url}/api/process/stop", data={"uid": "sv2:web:web"}, timeout=30)
        assert r.status_code == 502, r.text  # a known process, its supervisor down
        assert httpx.get(f"{url}/api/data").json()["supervisors"]["sv2"]["processes"] == {}
        r = httpx.get(f"{url}/api/process/info/sv2:web:web")
        assert r.status_code == 503, r.text
    finally:
        stream.close()


def test_config_file_never_holds_a_password(
    supervisors: Supervisors, hub_server: HubServers, tmp_path: Path
) -> None:
    sv = supervisors("locked", username="alice", password="s3cret-pw")
    _hub, url = mv_hub(hub_server, sv)
    content = httpx.get(f"{url}/api/config/file").json()["content"]
    assert "s3cret-pw" not in content
    assert "alice" not in content
    assert "[supervisor:locked]" in content
    assert "s3cret-pw" not in httpx.get(f"{url}/api/data").text

    # A Multivisor INI file with its [global] credentials, served as-is by a real hub.
    ini = tmp_path / "multivisor.conf"
    ini.write_text(
        "[global]\nname=ACME\nusername=admin\n"
        "password={SHA}d033e22ae348aeb5660fc2140aec35850c4da997\n\n"
        f"[supervisor:sv1]\nurl=127.0.0.1:{free_port()}\n"
    )
    loaded = load_config(str(ini))
    port = free_port()
    config = Config(
        path=str(ini),
        hub=HubConfig(
            name=loaded.hub.name,
            listen=f"127.0.0.1:{free_port()}",
            multivisor_listen=f"127.0.0.1:{port}",
        ),
        sources=loaded.sources,
        users=loaded.users,
    )
    server = HubServer(config)
    try:
        # [global] username/password turn login on (issue 11): sha1("admin") is the password.
        main = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"http://127.0.0.1:{port}/api/config/file").status_code == 401
        login = httpx.post(f"{main}/api/login", json={"username": "admin", "password": "admin"})
        cookies = {"fleetwatch_session": login.cookies["fleetwatch_session"]}
        answer = httpx.get(f"http://127.0.0.1:{port}/api/config/file", cookies=cookies).json()[
            "content"
        ]
    finally:
        server.close()
    assert "d033e22ae348aeb5660fc2140aec35850c4da997" not in answer
    assert "password" not in answer
    assert "admin" not in answer
    assert answer.startswith("[global]\nname=ACME\n")
    assert "[supervisor:sv1]" in answer


# -- the second port ---------------------------------------------------------------------


def test_second_port_that_is_taken_is_a_clear_error(hub_server: HubServers) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match="address in use"):
            hub_server(multivisor_listen=f"127.0.0.1:{port}")


# -- Multivisor's matching rules ---------------------------------------------------------


@pytest.mark.parametrize(
    "patterns",
    [
        ["sleeper"],
        ["sv1:idle:idle", "sv2:workers:*"],
        ["*"],
        ["sv1:*"],
        ["workers:worker_00"],
        ["sv?:w*"],
        ["nothing"],
        ["sv1:doesnotexist"],
        ["*:sleeper", "sleeper"],
    ],
)
def test_patterns_match_as_in_multivisor(patterns: list[str]) -> None:
    uids = [
        f"sv{i}:{g}:{n}"
        for i in (1, 2, 3)
        for g, n in [
            ("sleeper", "sleeper"),
            ("idle", "idle"),
            ("workers", "worker_00"),
            ("workers", "worker_01"),
        ]
    ]
    assert set(filter_patterns(uids, patterns)) == multivisor_filter_patterns(uids, patterns)


def test_multivisor_cli_keeps_no_path_of_its_url() -> None:
    """Why the API has a port of its own: the CLI's --url goes through this, path dropped."""
    from multivisor.util import sanitize_url

    kept = sanitize_url("http://hub.example:22000/multivisor", protocol="http", port=22000)
    assert kept["url"] == "http://hub.example:22000"
