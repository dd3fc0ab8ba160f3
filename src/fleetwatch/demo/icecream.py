"""A real icecream cluster on loopback: Debian's icecc scheduler and daemons, real compiles.

Used by ``fleetwatch demo`` (when icecc is installed and we run as root) and by the
tests. Everything stays on the machine:

* every process runs with ``ICECC_TESTS=1``, so icecream's own UDP broadcasts go to
  the loopback interface only;
* the scheduler binds 127.0.0.1 (``-i lo``); each compile server gets a loopback
  alias 127.0.0.N of its own (``iceccd -i lo`` cannot work on icecc 1.4: it binds
  127.0.0.1 twice), added here and removed by :meth:`IcecreamCluster.stop`;
* the submitting daemon ("client") refuses remote jobs; compiles are sent to it
  over its own unix socket (``ICECC_TEST_SOCKET``), and ``ICECC_TEST_REMOTEBUILD``
  makes a job picked for a 127.x server really go there.

Root is needed: the daemons chroot to compile, and aliases need root. The
daemons drop to user ``icecc``, so ``root`` and every folder above it must be
traversable by that user (``tempfile.mkdtemp`` under /tmp is; pytest's are not).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from fleetwatch.demo.supervisord import free_port, signals_deferred

__all__ = ["IcecreamCluster", "icecc_available"]

SCHEDULER = "/usr/sbin/icecc-scheduler"
DAEMON = "/usr/sbin/iceccd"


def icecc_available() -> str | None:
    """None when a real cluster can run here, else why not."""
    if not (os.path.exists(SCHEDULER) and os.path.exists(DAEMON)):
        return "Debian's icecc is not installed (apt-get install icecc)"
    if shutil.which("icecc") is None or shutil.which("gcc") is None:
        return "the icecc client or gcc is missing"
    if os.geteuid() != 0:
        return "icecc daemons need root (they chroot to compile)"
    if shutil.which("ip") is None:
        return "iproute2's ip is missing (loopback aliases)"
    return None


class IcecreamCluster:
    """A scheduler, a submitting daemon and ``remotes`` compile servers, all on loopback."""

    def __init__(
        self,
        root: Path,
        *,
        netname: str = "FWTEST",
        remotes: int = 2,
        max_jobs: int = 2,
        port: int | None = None,
        first_alias: int = 20,
    ) -> None:
        self.root = root
        self.netname = netname
        self.remotes = remotes
        self.max_jobs = max_jobs
        self.port = port or _free_port_pair()
        self.first_alias = first_alias
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.added_addrs: list[str] = []
        self.run_dir = root / "run"
        self.log_dir = root / "logs"
        self.work = root / "work"
        self._jobs = 0
        self._compiles: set[subprocess.Popen[bytes]] = set()
        self._compiles_lock = threading.Lock()
        self._stopped = False

    @property
    def client_socket(self) -> Path:
        return self.run_dir / "socket-client"

    @property
    def daemons(self) -> list[str]:
        return ["client", *(f"remote{i}" for i in range(1, self.remotes + 1))]

    def host_name(self, daemon: str) -> str:
        return f"{self.netname.lower()}-{daemon}"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "ICECC_TESTS": "1", **extra}

    # -- processes -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        self._stopped = False
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        for d in (
            self.run_dir,
            self.log_dir,
            self.work / "src",
            self.work / "tmp",
            self.work / "obj",
            self.root / "envs",
        ):
            d.mkdir(parents=True, exist_ok=True)
        # The daemons drop root to user icecc: they must write logs, sockets, envs here.
        for d in (self.root, self.run_dir, self.log_dir, self.root / "envs"):
            shutil.chown(d, "icecc", "icecc")
        self.start_scheduler()
        self.start_daemon("client")
        for i in range(1, self.remotes + 1):
            self.start_daemon(f"remote{i}")
        self.wait_hosts(len(self.daemons), timeout)

    def start_scheduler(self) -> None:
        self._spawn(
            "scheduler",
            [
                SCHEDULER,
                "-p",
                str(self.port),
                "-i",
                "lo",
                "-n",
                self.netname,
                "-l",
                str(self.log_dir / "scheduler.log"),
            ],
        )

    def start_daemon(self, daemon: str) -> None:
        name = self.host_name(daemon)
        envs = self.root / "envs" / daemon
        envs.mkdir(parents=True, exist_ok=True)
        shutil.chown(envs, "icecc", "icecc")
        args = [
            DAEMON,
            "-m",
            str(self.max_jobs),
            "-N",
            name,
            "-n",
            self.netname,
            "-s",
            f"127.0.0.1:{self.port}",
            "-b",
            str(envs),
            "-l",
            str(self.log_dir / f"{daemon}.log"),
        ]
        if daemon == "client":
            args.insert(1, "--no-remote")
        else:
            index = int(daemon.removeprefix("remote"))
            addr = f"127.0.0.{self.first_alias + index}"
            label = f"lo:fw{self.first_alias + index}"
            self._alias(addr, label)
            args += ["-i", label, "-p", str(free_port(addr))]
        self._spawn(daemon, args, ICECC_TEST_SOCKET=str(self.run_dir / f"socket-{daemon}"))

    def _alias(self, addr: str, label: str) -> None:
        shown = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", "lo"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if f" {addr}/" not in shown:
            with signals_deferred():  # an alias added is an alias recorded (stop removes it)
                subprocess.run(
                    ["ip", "addr", "add", f"{addr}/8", "dev", "lo", "label", label], check=True
                )
                self.added_addrs.append(addr)

    def _spawn(self, name: str, args: Sequence[str], **env: str) -> None:
        out = open(self.log_dir / f"{name}.stdout", "ab")  # noqa: SIM115 - the child owns it
        try:
            with signals_deferred():  # a daemon started is a daemon recorded (stop ends it)
                self.procs[name] = subprocess.Popen(
                    list(args),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env(**env),
                    start_new_session=True,
                )
        finally:
            out.close()

    def stop_process(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Forgotten only once it is gone: a stop interrupted (Ctrl-C) can be done again.
        del self.procs[name]

    def stop(self) -> None:
        """Stop every daemon, then the scheduler; compiles still running are killed."""
        with self._compiles_lock:
            self._stopped = True
            compiles = list(self._compiles)
        for proc in compiles:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for name in [n for n in self.procs if n != "scheduler"]:
            self.stop_process(name)
        self.stop_process("scheduler")
        for proc in compiles:
            proc.wait()
        for addr in self.added_addrs:
            subprocess.run(
                ["ip", "addr", "del", f"{addr}/8", "dev", "lo"], check=False, capture_output=True
            )
        self.added_addrs.clear()

    def __enter__(self) -> IcecreamCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the scheduler's view ----------------------------------------------------------------

    def text(self, command: str, timeout: float = 45.0) -> str:
        """One command on the scheduler's text port (blocking), without the greeting."""
        with socket.create_connection(("127.0.0.1", self.port + 1), timeout=timeout) as s:
            f = s.makefile("rwb")
            lines: list[str] = []
            while not (line := f.readline().decode()).startswith("200 "):
                if not line:
                    raise ConnectionError("text port closed")
            f.write(command.encode() + b"\nquit\n")
            f.flush()
            while True:
                line = f.readline().decode()
                if not line or line.startswith("200 "):
                    return "".join(lines)
                lines.append(line)

    def wait_hosts(self, count: int, timeout: float = 60.0) -> None:
        """Until ``listcs`` shows ``count`` hosts (the scheduler may take ~36 s to accept)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"icecc {name} exited ({proc.returncode}); see {self.log_dir}"
                    )
            with contextlib.suppress(OSError):
                last = self.text("listcs", timeout=max(1.0, deadline - time.monotonic()))
                if (
                    sum(1 for line in last.splitlines() if line.startswith(" ") and "[" in line)
                    >= count
                ):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{count} icecc hosts not logged in after {timeout}s: {last!r}")

    # -- jobs ------------------------------------------------------------------------------------

    def _source(self, name: str, functions: int = 60) -> Path:
        path = self.work / "src" / f"{name}.c"
        body = [
            f"static int {name}_f{k}(int x) {{ int s = 0; for (int j = 0; j < x; j++) "
            f"s += (j * {k}) ^ (s >> 1); return s; }}"
            for k in range(functions)
        ]
        total = " + ".join(f"{name}_f{k}(x)" for k in range(functions))
        path.write_text("\n".join([*body, f"int {name}(int x) {{ return {total}; }}", ""]))
        return path

    def compile(self, count: int = 4, parallel: int = 2, *, fail: bool = False) -> list[int]:
        """Compile ``count`` files through the cluster; return each compile's exit status."""
        sources = []
        for _ in range(count):
            self._jobs += 1
            sources.append(self._source(f"unit{self._jobs}"))
        if fail:
            broken = self.work / "src" / "broken.c"
            broken.write_text("int broken( { return; }\n")
            sources.append(broken)
        env = self.env(
            ICECC_TEST_SOCKET=str(self.client_socket),
            ICECC_TEST_REMOTEBUILD="1",
            TMPDIR=str(self.work / "tmp"),  # a killed compile's temporary files stay in root
            ICECC_LOGFILE=str(self.log_dir / "icecc-client.log"),
        )
        started: list[subprocess.Popen[bytes]] = []
        running: list[subprocess.Popen[bytes]] = []
        codes: list[int] = []
        for src in sources:
            while len(running) >= parallel:
                codes.append(running.pop(0).wait())
            obj = self.work / "obj" / (src.stem + ".o")
            proc = self._client(["icecc", "gcc", "-O2", "-c", str(src), "-o", str(obj)], env)
            if proc is None:
                break
            started.append(proc)
            running.append(proc)
        codes += [p.wait() for p in running]
        with self._compiles_lock:
            self._compiles.difference_update(started)
        return codes

    def _client(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes] | None:
        """Start an icecc client that :meth:`stop` kills if still running; None once stopped."""
        with self._compiles_lock:
            if self._stopped:
                return None
            proc = subprocess.Popen(
                args,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its group (icecc and the gcc it runs) is killed
            )
            self._compiles.add(proc)
            return proc

    def link(self) -> int:
        """A link: a local job (MON_LOCAL_JOB_BEGIN with the output file)."""
        main = self.work / "src" / "main.c"
        main.write_text("int main(void) { return 0; }\n")
        env = self.env(ICECC_TEST_SOCKET=str(self.client_socket), TMPDIR=str(self.work / "tmp"))
        obj = self.work / "obj" / "main.o"
        subprocess.run(["gcc", "-c", str(main), "-o", str(obj)], env=env, check=True)
        proc = self._client(["icecc", "gcc", str(obj), "-o", str(self.work / "obj" / "prog")], env)
        if proc is None:
            return -1
        code = proc.wait()
        with self._compiles_lock:
            self._compiles.discard(proc)
        return code


def _free_port_pair() -> int:
    """A port P with P+1 free too (the scheduler's text port)."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError), socket.socket() as s:
            s.bind(("127.0.0.1", port + 1))
            return port
    raise RuntimeError("no free port pair")
