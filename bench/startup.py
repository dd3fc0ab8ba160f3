"""How long ``fleetwatch version`` (and a few other command lines) take, start to exit.

Each command (the venv's ``fleetwatch`` script) runs ``--runs`` times as a fresh process,
the commands taking turns (so a burst of load elsewhere falls on all of them alike); the
best and the median wall-clock times are printed. ``python -c pass`` is the floor: the
interpreter's own start-up.

    .venv/bin/python bench/startup.py
    .venv/bin/python bench/startup.py --src /tmp/old/src   # another checkout's src/, to compare

Target (issue 8): ``fleetwatch version`` < 150 ms on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("fleetwatch")
FLEETWATCH = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fleetwatch.cli"]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "fleetwatch version": [*FLEETWATCH, "version"],
    "fleetwatch --version": [*FLEETWATCH, "--version"],
    "fleetwatch --help": [*FLEETWATCH, "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command")
    parser.add_argument("--src", help="put this directory first on PYTHONPATH")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.src, env.get("PYTHONPATH")]))
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(
                argv,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            times[name].append(time.perf_counter() - start)
    print(f"{args.runs} runs each; load average {os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        best, median = min(values) * 1000, statistics.median(values) * 1000
        target = "  (target < 150 ms)" if name == "fleetwatch version" else ""
        print(f"{name:22} best {best:6.0f} ms   median {median:6.0f} ms{target}")


if __name__ == "__main__":
    main()
