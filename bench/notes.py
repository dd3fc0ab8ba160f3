"""How many notifications `fleetwatch demo` lists after a few minutes (issue 12).

Runs the real demo (three supervisords, each with a flapper that exits every 4-6 s) on a
free loopback port, waits ``--seconds`` (180: the issue's "31 entries in 3 minutes"),
then prints what ``GET /api/notifications`` holds, one line each, and stops the demo.
A figure to compare, not a test: the target is "a handful, not 31".
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import get_json, no_interrupts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    args = parser.parse_args()
    fleetwatch = Path(sys.executable).with_name("fleetwatch")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/notifications?limit=10000"
    demo = subprocess.Popen(
        [str(fleetwatch), "demo", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get_json(url)
                break
            except OSError:
                if time.monotonic() > deadline or demo.poll() is not None:
                    print("the demo did not come up", file=sys.stderr)
                    return 1
                time.sleep(0.5)
        started = time.monotonic()
        time.sleep(args.seconds)
        notes = get_json(url, timeout=10)
        elapsed = time.monotonic() - started
        print(f"after {elapsed:.0f} s of `fleetwatch demo`: {len(notes)} notifications listed")
        print("  (issue 12: 31 in 3 minutes before flap detection; target: a handful)")
        for n in notes:
            count = f" (count {n['count']})" if "count" in n else ""
            print(f"  {n.get('kind') or '-':9} {n['severity']:8} {n['title']}{count}")
        return 0
    finally:
        with no_interrupts():
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()


if __name__ == "__main__":
    sys.exit(main())
