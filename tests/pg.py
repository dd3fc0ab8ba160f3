"""A real PostgreSQL server for the tests (Debian's postgresql-15), in a temporary directory.

``initdb`` a cluster with trust authentication for one user, start it with ``pg_ctl`` on
a free loopback port (and its unix socket in the same directory), and stop it at the end.
PostgreSQL refuses to run as root: as root the cluster belongs to ``nobody`` and the
commands run through ``runuser``. When it cannot start the tests skip — except under
``CI=true``, where they fail (CI installs it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwatch.demo.supervisord import free_port
from tests.conftest import IN_CI

__all__ = ["BIN", "postgres_server"]

BIN = Path(os.environ.get("FLEETWATCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "fleetwatch"


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}: CI must install postgresql (see .ci/run)")
    pytest.skip(message)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its URL (``postgresql://fleetwatch@127.0.0.1:PORT/postgres``)."""
    if not (BIN / "initdb").exists() or not (BIN / "pg_ctl").exists():
        _unavailable(f"PostgreSQL is not installed ({BIN}/initdb)")
    root = Path(tempfile.mkdtemp(prefix="fw-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            _unavailable("running as root and runuser is missing")
        owner = pwd.getpwnam("nobody")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        prefix = [str(runuser), "-u", "nobody", "--"]
    port = free_port()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False, cwd=root
        )

    started = False
    try:
        done = run(
            str(BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        if done.returncode != 0:
            _unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        options = f"-k {root} -p {port} -h 127.0.0.1 -c fsync=off"
        done = run(
            str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
            "-t", "60", "start",
        )  # fmt: skip
        if done.returncode != 0:
            log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
            _unavailable(f"pg_ctl start failed: {done.stderr.strip()[-300:]} {log[-500:]}")
        started = True
        yield f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            run(str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
