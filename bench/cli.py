#!/usr/bin/env python3
"""A command's whole run, side by side: ``supervisorctl status`` and ``fleetwatch status``.

Target (issue 9): a fleetwatch command's whole run (start-up, request, output) is no
slower than ``supervisorctl status`` against one daemon, ``fleetwatch status`` across
the whole fleet included.

It starts real supervisord instances on loopback (``--programs`` quiet programs each):
one alone, under a hub of its own (``fleetwatch serve``, a child process), and
``--fleet`` of them (the first one among them) under a second hub. Then each command
below runs ``--runs`` times as a fresh process, the commands taking turns (a burst of
load elsewhere falls on all of them alike), output to a pipe that is read and thrown
away (so the output's cost counts, as it does for a user):

* ``supervisorctl -c CONF status`` (CONF names the one daemon's HTTP server);
* ``fleetwatch status`` over the hub of the one daemon, and over the whole fleet;
* ``fleetwatch status --json`` over the fleet;
* ``python -c pass``: the interpreter's own start-up, the floor of both tools.

It prints the median and p90 of each, wall-clock and CPU time (user + system of the
command's own process: steadier than the wall clock on a shared machine), and each
fleetwatch median over supervisorctl's.

    .venv/bin/python bench/cli.py
    .venv/bin/python bench/cli.py --runs 60 --fleet 10 --programs 20

This prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fleetwatch
from _common import get_json, no_interrupts
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port, stop_all

VENV_BIN = Path(sys.executable).parent
FLEETWATCH = str(VENV_BIN / "fleetwatch")
SUPERVISORCTL = str(VENV_BIN / "supervisorctl")


def start_hub(
    root: Path, name: str, daemons: list[Supervisord]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    conf = root / f"{name}.toml"
    lines = [f'[hub]\nname = "{name}"\nlisten = "127.0.0.1:{port}"\n']
    for sv in daemons:
        lines.append(f'[sources.{sv.name}]\nkind = "supervisor"\nurl = "{sv.url}"\n')
    conf.write_text("\n".join(lines), encoding="utf-8")
    log = (root / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [FLEETWATCH, "serve", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    want = {sv.name for sv in daemons}
    while True:
        try:
            sources = get_json(f"{url}/api/sources", timeout=2)
            if {s["id"] for s in sources if s["status"] == "online"} >= want:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"hub {name} did not come up (see {root / (name + '.log')})")
        time.sleep(0.1)
    return proc, url


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of ``argv``.

    The CPU time is the reaped child's own (``RUSAGE_CHILDREN``; the hubs and daemons
    are children too, but are reaped only at the end): unlike the wall clock, it hardly
    moves when other work shares the machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs of each command")
    parser.add_argument("--fleet", type=int, default=5, help="supervisord instances in the fleet")
    parser.add_argument("--programs", type=int, default=8, help="programs per supervisord")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fw-bench-cli-"))
    daemons: list[Supervisord] = []
    hubs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(args.fleet):
            programs = [
                Program(f"p{j:02d}", demo_program("worker", f"b{i}-p{j}"))
                for j in range(args.programs)
            ]
            sv = Supervisord(root, f"b{i}", programs)
            daemons.append(sv)
            sv.start()
        one = daemons[0]
        ctl_conf = root / "supervisorctl.conf"
        ctl_conf.write_text(f"[supervisorctl]\nserverurl = {one.http_url}\n", encoding="utf-8")
        one_hub, one_url = start_hub(root, "one", [one])
        hubs.append(one_hub)
        fleet_hub, fleet_url = start_hub(root, "fleet", daemons)
        hubs.append(fleet_hub)
        env = {
            k: v for k, v in os.environ.items() if k not in ("FLEETWATCH_URL", "FLEETWATCH_TOKEN")
        }
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "supervisorctl status (1 daemon)": [SUPERVISORCTL, "-c", str(ctl_conf), "status"],
            "fleetwatch status (1 daemon)": [FLEETWATCH, "status", "--url", one_url],
            f"fleetwatch status ({args.fleet} daemons)": [FLEETWATCH, "status", "--url", fleet_url],
            f"fleetwatch status --json ({args.fleet})": [
                FLEETWATCH,
                "status",
                "--json",
                "--url",
                fleet_url,
            ],
            "fleetwatch status FILTER (fleet)": [
                FLEETWATCH,
                "status",
                "state:running",
                "--url",
                fleet_url,
            ],
        }
        # As an installed wheel has them (supervisor's, in site-packages, have them too):
        # an editable install under PYTHONDONTWRITEBYTECODE would compile every run.
        compileall.compile_dir(Path(fleetwatch.__file__).parent, quiet=1)
        for argv in commands.values():  # warm the page cache
            timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                wall, cpu = timed(argv, env)
                times[name].append(wall)
                cpus[name].append(cpu)
        base = statistics.median(times["supervisorctl status (1 daemon)"])
        cpu_base = statistics.median(cpus["supervisorctl status (1 daemon)"])
        print(
            f"{args.runs} runs each; fleet: {args.fleet} supervisord x {args.programs} programs; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'command':38} {'wall median':>12} {'p90':>9} {'ratio':>6}"
            f"   {'CPU median':>11} {'p90':>9} {'ratio':>6}"
        )
        for name, values in times.items():
            median, cpu = statistics.median(values), statistics.median(cpus[name])
            fw = "fleetwatch" in name
            ratio = f"{median / base:5.2f}x" if fw else ""
            cpu_ratio = f"{cpu / cpu_base:5.2f}x" if fw else ""
            print(
                f"{name:38} {median * 1000:9.0f} ms {p90(values) * 1000:6.0f} ms {ratio:>6}"
                f"   {cpu * 1000:8.0f} ms {p90(cpus[name]) * 1000:6.0f} ms {cpu_ratio:>6}"
            )
    finally:
        with no_interrupts():
            for proc in hubs:
                proc.terminate()
            for proc in hubs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            stop_all(daemons)


if __name__ == "__main__":
    main()
