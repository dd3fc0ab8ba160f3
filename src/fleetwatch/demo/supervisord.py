"""Start and stop real supervisord instances on loopback (for the demo, tests and benchmarks).

Each :class:`Supervisord` owns a directory with its config, logs and socket, and
runs ``supervisord -n`` as a child in its own session, so a Ctrl-C meant for us
does not reach it before we stop it ourselves.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

__all__ = ["Program", "Supervisord", "free_port", "signals_deferred", "stop_all"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then act as if they came then.

    Around starting a child and recording it: a Ctrl-C that lands while ``Popen``
    waits for the child's ``exec`` would otherwise leave a child nobody knows of,
    and so nobody stops. Only the main thread handles signals; elsewhere, a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


@dataclass(frozen=True)
class Program:
    name: str
    command: str
    autostart: bool = True
    autorestart: bool = True
    startsecs: int = 1
    numprocs: int = 1
    group: str | None = None
    """Put the program in a ``[group:NAME]`` section of that name."""
    events: str | None = None
    """Make it an ``[eventlistener:NAME]`` subscribed to these events."""
    extra: dict[str, str] = field(default_factory=dict)


def demo_program(kind: str, name: str) -> str:
    return shlex.join([sys.executable, "-u", "-m", "fleetwatch.demo.programs", kind, name])


class Supervisord:
    """One real supervisord; ``url`` is its XML-RPC address (http, or unix with ``unix=True``)."""

    def __init__(
        self,
        root: Path,
        name: str,
        programs: Sequence[Program],
        *,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        unix: bool = False,
    ) -> None:
        self.name = name
        self.dir = root / name
        self.programs = list(programs)
        self.port = port or free_port()
        self.username = username
        self.password = password
        self.unix = unix
        self.proc: subprocess.Popen[bytes] | None = None
        self._orphaned: list[int] = []
        self.conf = self.dir / "supervisord.conf"
        self.socket = self.dir / "supervisor.sock"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}" if self.unix else self.http_url

    def write_config(self) -> None:
        (self.dir / "log").mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.username:
            auth = f"username={self.username}\npassword={self.password}\n"
        lines = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            auth,
            "[inet_http_server]",
            f"port=127.0.0.1:{self.port}",
            auth,
            "[supervisord]",
            f"identifier={self.name}",
            f"logfile={self.dir}/supervisord.log",
            f"pidfile={self.dir}/supervisord.pid",
            f"childlogdir={self.dir}/log",
            "logfile_maxbytes=5MB",
            "loglevel=info",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
        ]
        groups: dict[str, list[str]] = {}
        for p in self.programs:
            proc_name = "%(program_name)s_%(process_num)02d" if p.numprocs > 1 else p.name
            if p.events:
                lines += [
                    f"[eventlistener:{p.name}]",
                    f"command={p.command}",
                    f"events={p.events}",
                    "buffer_size=1000",
                    "autorestart=true",
                    "stdout_logfile=NONE",
                    f"stderr_logfile={self.dir}/log/{p.name}.err.log",
                    *(f"{k}={v}" for k, v in p.extra.items()),
                    "",
                ]
                continue
            lines += [
                f"[program:{p.name}]",
                f"command={p.command}",
                f"process_name={proc_name}",
                f"numprocs={p.numprocs}",
                f"autostart={str(p.autostart).lower()}",
                f"autorestart={str(p.autorestart).lower()}",
                f"startsecs={p.startsecs}",
                "startretries=1000000",
                "stopwaitsecs=5",
                f"stdout_logfile={self.dir}/log/{proc_name}.out.log",
                f"stderr_logfile={self.dir}/log/{proc_name}.err.log",
                "stdout_logfile_maxbytes=1MB",
                "stderr_logfile_maxbytes=1MB",
                *(f"{k}={v}" for k, v in p.extra.items()),
                "",
            ]
            if p.group:
                groups.setdefault(p.group, []).append(p.name)
        for g, members in groups.items():
            lines += [f"[group:{g}]", f"programs={','.join(members)}", ""]
        self.conf.write_text("\n".join(lines), encoding="utf-8")

    def start(self, timeout: float = 20.0) -> None:
        if not self.conf.exists():
            self.write_config()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with signals_deferred():
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        self.wait_ready(timeout)

    def call(self, method: str, *args: Any) -> Any:
        """Call one XML-RPC method, blocking, over the unix socket (no TCP port needed)."""
        transport = SupervisorTransport(self.username, self.password, f"unix://{self.socket}")
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        try:
            return getattr(proxy, method)(*args)
        finally:
            transport.close()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = self.dir / "supervisord.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(
                    f"supervisord {self.name} exited ({self.proc.returncode}): {tail}"
                )
            try:
                if self.call("supervisor.getState")["statename"] == "RUNNING":
                    return
            except (OSError, xmlrpc.client.Error) as exc:
                last = exc
            time.sleep(0.05)
        raise TimeoutError(f"supervisord {self.name} not ready after {timeout}s: {last}")

    def kill(self) -> None:
        """``kill -9`` supervisord alone; its orphaned programs are reaped by :meth:`stop`."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self._orphaned.append(self.proc.pid)
        self.socket.unlink(missing_ok=True)

    def terminate(self) -> None:
        """Ask supervisord to stop (it stops its programs first); see :meth:`stop`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop supervisord and its programs; SIGKILL the session if it takes too long."""
        if self.proc is None:
            return
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for sid in [*self._orphaned, self.proc.pid]:
            _reap_session(sid)
        self._orphaned.clear()

    def __enter__(self) -> Supervisord:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(instances: Sequence[Supervisord]) -> None:
    """Stop several supervisords at once (they stop their programs in parallel)."""
    for sv in instances:
        sv.terminate()
    for sv in instances:
        sv.stop()


def _reap_session(sid: int) -> None:
    """SIGKILL what is left of supervisord session ``sid``: programs orphaned by a kill.

    supervisord puts each program in a process group of its own, so killing its
    group does not reach them; they all share its session, though.
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(stat.parent.name), signal.SIGKILL)
