#!/usr/bin/env python3
"""How fast the hub notices a supervisord going away, and coming back.

Targets (issue #2): a daemon that stops answering is ``offline`` within two poll
intervals; a system back after an outage of under a minute is ``online`` again
within 2 s. Multivisor's figures from the lab (``shared/protocols/supervisor.md``
§6.3), for comparison: 6.8 s to show a shut-down supervisord offline, 7.1 s to
show it online again.

A real ``fleetwatch serve`` (a subprocess) watches one real supervisord with the
default 1 s poll interval; this script changes the daemon and polls the hub's API
every 10 ms to time each transition. Everything runs on 127.0.0.1.

    .venv/bin/python bench/reconnect.py [--outages 2,10,30]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from fleetwatch.demo.supervisord import Program, Supervisord, free_port

MULTIVISOR = {"offline after shutdown": 6.8, "online after restart": 7.1}


def until(condition: Callable[[], bool], timeout: float = 120.0) -> float:
    """Seconds until ``condition()`` holds (polled every 10 ms)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", default="2,10,30", help="outage lengths to try, seconds")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    outages = [float(x) for x in args.outages.split(",") if x]

    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        root = Path(tmp)
        sv = Supervisord(root, "sv", [Program("sleeper", "/bin/sleep 100000")])
        sv.start()
        port = free_port()
        cfg = root / "fleet.toml"
        cfg.write_text(
            f'[hub]\nlisten = "127.0.0.1:{port}"\n[sources.sv]\nkind = "supervisor"\n'
            f'url = "{sv.url}"\npoll_interval = {args.poll_interval}\n'
        )
        hub = subprocess.Popen(
            [sys.executable, "-m", "fleetwatch.cli", "serve", "-c", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)

        def status() -> str:
            try:
                return str(http.get("/api/sources/sv").json()["status"])
            except httpx.HTTPError:
                return "?"

        rows: list[tuple[str, float, float | None]] = []
        try:
            until(lambda: status() == "online", 30)

            def restart_after(outage: float, label: str) -> None:
                time.sleep(outage)  # the outage itself, not a synchronisation
                sv.start()  # returns once supervisord answers XML-RPC
                rows.append((label, until(lambda: status() == "online"), None))

            # 1. supervisord shut down cleanly (what Multivisor's lab measured).
            sv.call("supervisor.shutdown")
            rows.append(
                (
                    "offline after shutdown()",
                    until(lambda: status() == "offline"),
                    MULTIVISOR["offline after shutdown"],
                )
            )
            assert sv.proc is not None
            sv.proc.wait(30)
            sv.socket.unlink(missing_ok=True)
            restart_after(0.0, "online after an immediate restart")
            rows[-1] = (rows[-1][0], rows[-1][1], MULTIVISOR["online after restart"])

            # 2. kill -9, then outages of several lengths.
            for outage in outages:
                until(lambda: status() == "online")
                sv.kill()
                rows.append(
                    (
                        f"offline after kill -9 ({outage:g}s outage)",
                        until(lambda: status() == "offline"),
                        None,
                    )
                )
                restart_after(outage, f"online after a {outage:g}s outage")

            # 3. A hung daemon (SIGSTOP): the socket stays open, nothing answers.
            until(lambda: status() == "online")
            assert sv.proc is not None
            os.kill(sv.proc.pid, signal.SIGSTOP)
            rows.append(
                ("offline after a hang (SIGSTOP)", until(lambda: status() == "offline"), None)
            )
            os.kill(sv.proc.pid, signal.SIGCONT)
            rows.append(("online after SIGCONT", until(lambda: status() == "online"), None))
        finally:
            hub.terminate()
            hub.wait(30)
            sv.stop()
            http.close()

    print(f"poll interval {args.poll_interval:g}s; times in seconds (polled every 10 ms)\n")
    print(f"{'transition':44} {'fleetwatch':>10} {'Multivisor':>10}")
    for label, secs, theirs in rows:
        ref = f"{theirs:10.1f}" if theirs is not None else f"{'':>10}"
        print(f"{label:44} {secs:10.2f} {ref}")


if __name__ == "__main__":
    main()
