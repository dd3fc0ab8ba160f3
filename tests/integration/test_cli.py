"""The ``fleetwatch`` command, run as a user runs it: a real process, real signals."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fleetwatch.demo.icecream import icecc_available
from fleetwatch.demo.supervisord import Supervisord, free_port
from tests.conftest import IN_CI, icecc_cluster, wait_for

FLEETWATCH = [sys.executable, "-m", "fleetwatch.cli"]


def run(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLEETWATCH, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


class Marked:
    """An environment whose every descendant can be found again, whatever it became.

    A unique variable goes into the command's environment; supervisord, its programs
    and the icecc daemons inherit it, so "nothing left running" means no process in
    /proc carries it. ``TMPDIR`` is a directory of the test's own (0755: icecc's
    daemons, run as user icecc, must enter it), so the demo's directory is found too.
    """

    def __init__(self) -> None:
        self.marker = f"FLEETWATCH_TEST_MARKER={uuid.uuid4().hex}".encode()
        self.tmp = Path(tempfile.mkdtemp(prefix="fw-cli-test-"))
        os.chmod(self.tmp, 0o755)
        name, _, value = self.marker.decode().partition("=")
        self.env = {**os.environ, name: value, "TMPDIR": str(self.tmp)}

    def alive(self) -> list[str]:
        """``PID COMMAND`` of every live process started under this environment."""
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if (self.marker in environ or str(self.tmp).encode() in cmdline) and _alive(
                int(proc.name)
            ):
                command = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name} {command}")
        return found

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def marked() -> Iterator[Marked]:
    m = Marked()
    yield m
    m.close()


class Output:
    """Every line a process writes, collected by a thread (the test waits on conditions)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stdout:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def text(self) -> str:
        self._thread.join(30)
        return "".join(self.lines)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [*FLEETWATCH, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=env,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            # SIGINT first: the demo's children live in sessions of their own and are
            # stopped by the demo itself, not by killing its process group.
            p.send_signal(signal.SIGINT)
            try:
                p.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p.stdout:
            p.stdout.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[hub]\nname = "x"\n\n[sources.sv1]\nkind = "supervisor"\nurl = "http://h:1"\n'
            "pol_interval = 2\n",
            ":7: sources.sv1.pol_interval: ",
        ),
        ('[hub]\nlisten = "nowhere"\n', ":2: hub.listen: "),
        ("[hub\nname = 1\n", ":1: "),
    ],
)
def test_a_bad_config_names_file_line_and_key_and_exits_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    result = run("serve", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"fleetwatch: error: {path}{expected}")
    assert "Traceback" not in result.stderr + result.stdout


def test_a_missing_config_exits_2(tmp_path: Path) -> None:
    result = run("serve", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert str(tmp_path / "nope.toml") in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_a_toml_fleet_and_stop_on_sigterm(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    with Supervisord(tmp_path, "sv1", []) as sv:
        port = free_port()
        cfg = tmp_path / "fleet.toml"
        cfg.write_text(
            f'[hub]\nname = "ACME"\nlisten = "127.0.0.1:{port}"\n\n'
            f'[sources.sv1]\nkind = "supervisor"\nurl = "{sv.url}"\npoll_interval = 0.5\n'
        )
        proc = spawn("serve", "-c", str(cfg))
        url = f"http://127.0.0.1:{port}"
        health = wait_for(
            lambda: (h := httpx.get(f"{url}/api/health").json())["sources"].get("online") and h,
            what="hub up with sv1 online",
        )
        assert health["name"] == "ACME"
        assert httpx.get(f"{url}/api/openapi.json").json()["info"]["title"] == "fleetwatch"
        assert "fleetwatch" in httpx.get(f"{url}/").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_serve_reads_multivisor_ini_as_is(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    ini = tmp_path / "multivisor.conf"
    ini.write_text(
        "[global]\nname=ACME\n\n[supervisor:roadrunner]\n\n"
        "[supervisor:coyote]\nurl=:9011\n\n[supervisor:daffy]\nurl=daffy.acme.org:9007\n"
    )
    port = free_port()
    spawn("serve", "-c", str(ini), "--listen", f"127.0.0.1:{port}")
    sources = wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/sources").json(), what="hub up"
    )
    assert [s["id"] for s in sources] == ["coyote", "daffy", "roadrunner"]
    assert httpx.get(f"http://127.0.0.1:{port}/api/health").json()["name"] == "ACME"


@pytest.mark.timeout(300)  # its own waits allow 120 s for the sources and 120 s for jobs
def test_demo_runs_a_live_fleet_and_ctrl_c_leaves_nothing_running(
    spawn: Callable[..., subprocess.Popen[str]], marked: Marked
) -> None:
    port = free_port()
    proc = spawn("demo", "--listen", f"127.0.0.1:{port}", env=marked.env)
    url = f"http://127.0.0.1:{port}"
    with_icecream = icecc_available() is None  # as root with Debian's icecc: a real cluster too
    wait_for(
        lambda: (
            httpx.get(f"{url}/api/health").json()["sources"]
            == {"online": 5 if with_icecream else 4}  # + the stand-in piwheels master
        ),
        timeout=120,
        what="every demo source online",
    )
    if with_icecream:
        jobs = wait_for(
            lambda: [
                j
                for j in httpx.get(f"{url}/api/jobs", params={"q": "source:build"}).json()
                if j["state"] == "done"
            ],
            timeout=120,
            what="real compile jobs done in the demo cluster",
        )
        assert all(j["source"] == "build" for j in jobs)
        assert len(httpx.get(f"{url}/api/nodes", params={"q": "source:build"}).json()) == 3
    farm = wait_for(
        lambda: (
            len(n := httpx.get(f"{url}/api/nodes", params={"q": "source:piw"}).json()) >= 3 and n
        ),
        timeout=60,
        what="the stand-in build farm's master and slaves",
    )
    assert {n["labels"]["role"] for n in farm} == {"master", "slave"}
    processes = wait_for(lambda: len(p := httpx.get(f"{url}/api/processes").json()) == 21 and p)
    assert {p["state"] for p in processes if p["name"] == "idle"} == {"STOPPED"}
    pids = [s["info"]["pid"] for s in httpx.get(f"{url}/api/sources").json() if "pid" in s["info"]]
    pids += [p["pid"] for p in processes if p["pid"]]

    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    out = proc.stdout.read() if proc.stdout else ""
    assert "demo stopped" in out
    assert "Traceback" not in out
    alive = [pid for pid in pids if _alive(pid)]
    assert alive == [], f"processes left running: {alive}"
    assert marked.alive() == []
    assert list(marked.tmp.iterdir()) == []  # the demo's directory is gone


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ------------------------------------------------ configs that should fail (issue 8, item 9)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("fleet.toml", "", ": no sources: nothing to watch (add a [sources.NAME] table)"),
        (
            "fleet.toml",
            '[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:99999"\n',
            ":3: sources.a.url: the port must be 1..65535, not 99999",
        ),
        (
            "multivisor.ini",
            "[global]\nname=ACME\n\n[supervisor:a]\nurl=\n",
            ":5: supervisor:a.url: must not be empty (leave url out for Multivisor's default "
            "a:9002)",
        ),
        (
            "multivisor.ini",
            "[global]\nname=ACME\n[supervisor:a\nurl=:9002\n",
            ":3: a section header without its closing ]",
        ),
        (
            "multivisor.ini",
            "[global]\nname=ACME\n",
            ": no [supervisor:NAME] section: nothing to watch",
        ),
    ],
    ids=[
        "empty",
        "url-port",
        "multivisor-empty-url",
        "ini-header-without-bracket",
        "ini-no-sources",
    ],
)
def test_configs_that_should_fail_exit_2_without_starting_issue8_bad_configs(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    result = run("serve", "-c", str(path), "--listen", f"127.0.0.1:{free_port()}", timeout=30)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"fleetwatch: error: {path}{expected}\n"


def test_an_unreadable_config_says_permission_denied_issue8_bad_configs(tmp_path: Path) -> None:
    """A file its user may not read: ``FILE: permission denied``, not Typer's box.

    Root reads any file whatever its mode (CAP_DAC_OVERRIDE), so as root the command
    runs without any capability (``setpriv``): still uid 0, but held to the file's
    mode 000 like any user.
    """
    path = tmp_path / "fleet.toml"
    path.write_text('[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9001"\n')
    path.chmod(0)
    command = [*FLEETWATCH, "serve", "-c", str(path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            if IN_CI:
                pytest.fail("setpriv (util-linux) is missing: CI must provide it")
            pytest.skip("setpriv (util-linux) is missing: cannot drop root's capabilities")
        command = [setpriv, "--inh-caps=-all", "--bounding-set=-all", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"fleetwatch: error: {path}: permission denied\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--root-path", "/a b"],
            "--root-path '/a b': expected a URL path such as /fleet, not '/a b'",
        ),
        (
            ["--root-path", "/x/../y"],
            "--root-path '/x/../y': expected a URL path such as /fleet, not '/x/../y'",
        ),
        (
            ["--listen", "127.0.0.1:99999"],
            "--listen '127.0.0.1:99999': the port must be 0..65535, not 99999",
        ),
    ],
)
def test_bad_options_exit_2_before_anything_starts_issue8_bad_configs(
    tmp_path: Path, option: list[str], message: str
) -> None:
    cfg = tmp_path / "fleet.toml"
    cfg.write_text('[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9"\n')
    result = run("serve", "-c", str(cfg), *option, timeout=30)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"fleetwatch: error: {message}\n"


def test_a_directory_as_config_exits_2_issue8_bad_configs(tmp_path: Path) -> None:
    result = run("serve", "-c", str(tmp_path), timeout=30)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"fleetwatch: error: {tmp_path}: is a directory\n"


# ------------------------------------------------------------- a busy port (issue 8, item 8)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a real listening socket for the test's duration."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _require_icecream_in_ci() -> bool:
    """Whether the demo runs an icecream cluster here; under CI=true it must."""
    why = icecc_available()
    if why is not None and IN_CI:
        pytest.fail(f"{why}: CI must provide it (see .ci/run)")
    return why is None


def _in_use(port: int) -> str:
    return f"fleetwatch: error: cannot listen on 127.0.0.1:{port}: address in use\n"


def test_serve_on_a_busy_port_exits_1_and_starts_nothing_issue8_busy_port(
    tmp_path: Path, busy_port: int, marked: Marked
) -> None:
    with Supervisord(tmp_path, "sv1", []) as sv:
        cfg = tmp_path / "fleet.toml"
        cfg.write_text(
            f'[hub]\nlisten = "127.0.0.1:{busy_port}"\n\n'
            f'[sources.sv1]\nkind = "supervisor"\nurl = "{sv.url}"\n'
        )
        result = run("serve", "-c", str(cfg), env=marked.env, timeout=30)
    assert (result.returncode, result.stdout) == (1, "")  # no "serving on" either
    assert result.stderr == _in_use(busy_port)
    assert marked.alive() == []


def test_serve_with_an_icecream_source_on_a_busy_port_exits_1_issue8_busy_port(
    tmp_path: Path, busy_port: int, marked: Marked
) -> None:
    with icecc_cluster(remotes=1, first_alias=40) as cluster:
        cfg = tmp_path / "fleet.toml"
        cfg.write_text(
            f'[sources.build]\nkind = "icecream"\nscheduler = "127.0.0.1:{cluster.port}"\n'
            'netname = "FWTEST"\n'
        )
        result = run("serve", "-c", str(cfg), "--listen", f"127.0.0.1:{busy_port}", env=marked.env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == _in_use(busy_port)
    assert marked.alive() == []


def test_serve_on_an_address_not_here_gives_the_reason_issue8_busy_port(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet.toml"
    cfg.write_text('[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9"\n')
    # --insecure-no-login: without [[users]] a non-loopback listen is refused first (issue 11).
    listen = ("--listen", "192.0.2.1:22000", "--insecure-no-login")  # TEST-NET-1
    result = run("serve", "-c", str(cfg), *listen, timeout=30)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "fleetwatch: error: cannot listen on 192.0.2.1:22000: cannot assign requested address\n"
    )


def test_demo_on_a_busy_port_exits_1_and_starts_nothing_issue8_busy_port(
    busy_port: int, marked: Marked
) -> None:
    _require_icecream_in_ci()  # the issue's hang was a demo with an icecream cluster
    result = run("demo", "--listen", f"127.0.0.1:{busy_port}", env=marked.env, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")  # nothing started, nothing served
    assert result.stderr == _in_use(busy_port)
    assert marked.alive() == []
    assert list(marked.tmp.iterdir()) == []


def test_make_demo_passes_listen_issue8_busy_port(busy_port: int, marked: Marked) -> None:
    """``make demo LISTEN=HOST:PORT``: the busy port proves the address reached the demo."""
    make = shutil.which("make")
    if make is None:
        if IN_CI:
            pytest.fail("make is missing: CI must provide it")
        pytest.skip("make is missing")
    root = Path(__file__).resolve().parents[2]
    # -o: take the venv and the web build as they are (this test checks the demo recipe).
    result = subprocess.run(
        [make, "-s", "-C", str(root), "-o", ".venv/.installed", "-o",
         "src/fleetwatch/web/static/index.html", "demo", f"LISTEN=127.0.0.1:{busy_port}"],
        capture_output=True, text=True, timeout=60, check=False, env=marked.env,
    )  # fmt: skip
    assert result.returncode != 0
    assert _in_use(busy_port) in result.stderr
    assert "serving on" not in result.stdout
    assert marked.alive() == []


# ------------------------------------------------- Ctrl-C in every phase (issue 8, item 8)


@pytest.mark.parametrize(
    ("phase", "line", "sig"),
    [
        ("supervisords", "started supervisord sv1 ", signal.SIGINT),
        ("supervisords", "started supervisord sv1 ", signal.SIGTERM),
        ("icecream", "starting an icecream cluster", signal.SIGINT),
        ("icecream", "starting an icecream cluster", signal.SIGTERM),
        ("serving", "serving on http://", signal.SIGTERM),
    ],
    ids=["supervisords-INT", "supervisords-TERM", "icecream-INT", "icecream-TERM", "serving-TERM"],
)
def test_demo_stops_on_a_signal_in_every_phase_and_leaves_nothing_issue8_ctrl_c(
    spawn: Callable[..., subprocess.Popen[str]],
    marked: Marked,
    phase: str,
    line: str,
    sig: signal.Signals,
) -> None:
    with_icecream = _require_icecream_in_ci()
    if phase == "icecream" and not with_icecream:
        pytest.skip(f"no icecream cluster here: {icecc_available()}")
    port = free_port()
    proc = spawn("demo", "--listen", f"127.0.0.1:{port}", env=marked.env)
    out = Output(proc)
    wait_for(lambda: out.has(line) or proc.poll() is not None, timeout=120, what=repr(line))
    assert proc.poll() is None, out.text()
    if phase == "serving":
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/api/health").json(), 60, "the hub")
    supervisords = [
        int(m[1]) for m in re.finditer(r"started supervisord \S+ \(pid (\d+)\)", "".join(out.lines))
    ]
    assert supervisords, out.text()

    proc.send_signal(sig)
    assert proc.wait(90) == 0
    text = out.text()
    assert "demo stopped" in text
    assert "Traceback" not in text
    assert [pid for pid in supervisords if _alive(pid)] == []
    assert marked.alive() == []
    assert list(marked.tmp.iterdir()) == []  # the demo's directory is gone


def test_a_second_signal_while_the_demo_stops_does_not_cut_the_stop_short_issue8_ctrl_c(
    spawn: Callable[..., subprocess.Popen[str]], marked: Marked
) -> None:
    _require_icecream_in_ci()
    port = free_port()
    proc = spawn("demo", "--listen", f"127.0.0.1:{port}", env=marked.env)
    out = Output(proc)
    wait_for(lambda: out.has("serving on http://") or proc.poll() is not None, 120, "serving")
    assert proc.poll() is None, out.text()
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/api/health").json(), 60, "the hub")

    proc.send_signal(signal.SIGINT)
    wait_for(lambda: out.has("stopping the demo's fleet") or proc.poll() is not None, 60, "stop")
    proc.send_signal(signal.SIGTERM)  # impatient: the stop goes on all the same
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 0
    text = out.text()
    assert "demo stopped" in text
    assert "Traceback" not in text
    assert marked.alive() == []
    assert list(marked.tmp.iterdir()) == []


# ------------------------------------------------- start-up: what each command imports


HEAVY = ("typer", "click", "pydantic", "rich", "uvicorn", "fastapi", "starlette", "httpx", "zmq")


def _imported_by(code: str) -> tuple[str, list[str]]:
    """What ``code`` prints, and which heavy top-level packages it left imported."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    *printed, modules = result.stdout.splitlines()
    return "\n".join(printed), json.loads(modules)


@pytest.mark.parametrize("argv", [["version"], ["--version"]])
def test_version_imports_nothing_heavy_issue8_latency(argv: list[str]) -> None:
    """``fleetwatch version`` answers before Typer (and its pydantic) is imported."""
    from fleetwatch import __version__

    code = f"import sys\nsys.argv = ['fleetwatch', *{argv!r}]\n"
    code += "from fleetwatch.cli.main import main\nmain()"
    printed, heavy = _imported_by(code)
    assert (printed, heavy) == (__version__, [])


def test_the_cli_module_imports_only_typer_issue8_latency() -> None:
    """``--help`` and the commands' parsing need Typer, not the server or the sources."""
    _, heavy = _imported_by("import fleetwatch.cli.commands")
    assert "typer" in heavy
    assert set(heavy) & {"uvicorn", "fastapi", "starlette", "httpx", "zmq"} == set()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["version"], None),
        (["--version"], None),
        (["--help"], ("serve", "demo", "discover", "version", "--version")),
        (["serve", "--help"], ("--config", "--listen", "--root-path")),
        (["demo", "--help"], ("--listen",)),
        # Issue 13: a help text with "[/DB]" was read as Rich markup and raised.
        (["collect", "--help"], ("--bus", "--name")),
    ],
)
def test_version_and_help_still_answer_issue8_latency(
    argv: list[str], expected: tuple[str, ...] | None
) -> None:
    from fleetwatch import __version__

    result = run(*argv, timeout=30)
    assert (result.returncode, result.stderr) == (0, "")
    if expected is None:
        assert result.stdout == f"{__version__}\n"
    else:
        assert all(word in result.stdout for word in expected), result.stdout
