#!/usr/bin/env python3
"""Polling cost: the hub watching many real supervisord instances at 1 Hz.

Target (issue text; a 2-core machine): 40 real supervisord instances x 50 programs
polled at 1 Hz: hub CPU < 25 % of one core, hub memory < 150 MB RSS.

What it does: starts ``--instances`` real supervisord processes on loopback
(``fleetwatch.demo.supervisord.Supervisord``), each with ``--programs`` programs running
``/bin/sleep 100000`` (startsecs=0); writes a TOML config with one ``kind = "supervisor"``
source per instance; runs ``fleetwatch serve -c FILE --listen 127.0.0.1:PORT`` as a
subprocess; waits until ``/api/health`` shows every source online and ``/api/processes``
lists every program RUNNING; lets it run ``--warmup`` seconds, then measures the hub
process over ``--seconds``: CPU (utime + stime, as % of one core), RSS (end, peak
sampled in the window, and VmHWM, the peak since the hub started), and the changes it
committed (nothing changes in the fleet, so this should stay near 0). The supervisords'
own CPU is printed for context (they share the machine's cores with the hub). Last, it
stops a few programs through supervisord and times how long the hub takes to show them
STOPPED (detection latency: up to one poll interval plus one poll).

Everything is stopped in ``finally``, on Ctrl-C too: the hub, every supervisord and its
programs; the temporary directory is removed.

Usage::

    .venv/bin/python bench/poll.py                                  # 40 x 50, 30 s
    .venv/bin/python bench/poll.py --instances 4 --programs 10 --seconds 5 --warmup 1

This prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from fleetwatch.demo.supervisord import Program, Supervisord, free_port, stop_all

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C while cleaning up: a second one would leave processes behind."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def get_json(url: str, timeout: float = 5.0) -> Any:
    with _OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read())


def fleetwatch_command() -> list[str]:
    script = Path(sys.executable).with_name("fleetwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fleetwatch.cli.main import main; main()"]


def write_config(path: Path, instances: list[Supervisord], poll_interval: float) -> None:
    lines = ['[hub]\nname = "bench-poll"\n']
    for sv in instances:
        lines.append(
            f'[sources.{sv.name}]\nkind = "supervisor"\nurl = "{sv.url}"\n'
            f"poll_interval = {poll_interval}\n"
        )
    path.write_text("\n".join(lines), encoding="utf-8")


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_fleet(base: str, hub: subprocess.Popen[bytes], sources: int, total: int) -> float:
    """Wait until every source is online and every program RUNNING; return the seconds."""
    started = time.monotonic()
    deadline = started + 180
    last = "no answer yet"
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited ({hub.returncode})")
        try:
            health = get_json(f"{base}/api/health")
            online = health["sources"].get("online", 0)
            if online == sources:
                processes = get_json(f"{base}/api/processes", timeout=10)
                running = sum(1 for p in processes if p["state"] == "RUNNING")
                if len(processes) == total and running == total:
                    return time.monotonic() - started
                last = f"{len(processes)} processes, {running} RUNNING"
            else:
                last = f"sources {health['sources']}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(f"the fleet did not come up within 180 s: {last}")


def detection_latency(base: str, instances: list[Supervisord], samples: int) -> list[float]:
    """Stop one program in each of ``samples`` supervisords; time until the hub shows it."""
    out: list[float] = []
    for sv in instances[:samples]:
        program = sv.programs[-1].name
        pid_id = urllib.parse.quote(f"{sv.name}:{program}:{program}", safe="")
        sv.call("supervisor.stopProcess", program, True)
        stopped = time.monotonic()
        while time.monotonic() - stopped < 30:
            if get_json(f"{base}/api/processes/{pid_id}")["state"] == "STOPPED":
                out.append(time.monotonic() - stopped)
                break
            time.sleep(0.01)
    return out


def run(args: argparse.Namespace, root: Path, instances: list[Supervisord]) -> None:
    total = args.instances * args.programs
    programs = [
        Program(f"p{j:02d}", "/bin/sleep 100000", startsecs=0) for j in range(args.programs)
    ]
    instances += [Supervisord(root, f"sv{i:02d}", programs) for i in range(args.instances)]
    t0 = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    try:
        for future in [pool.submit(sv.start, 60.0) for sv in instances]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    print(
        f"  {args.instances} supervisord x {args.programs} programs ({total:,} sleep processes) "
        f"started in {time.monotonic() - t0:.1f} s"
    )

    config = root / "fleet.toml"
    write_config(config, instances, args.poll_interval)
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    log = root / "hub.log"
    with open(log, "wb") as out:
        hub = subprocess.Popen(
            [*fleetwatch_command(), "serve", "-c", str(config), "--listen", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the hub in `finally`
        )
    try:
        measure(args, base, hub, instances, total)
    finally:
        with no_interrupts():
            if hub.poll() is None:
                hub.send_signal(signal.SIGTERM)  # the hub's Server stops gracefully on it
                try:
                    hub.wait(15)
                except subprocess.TimeoutExpired:
                    hub.kill()
                    hub.wait()
        if hub.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            tail = log.read_text(errors="replace")[-2000:]
            print(f"  the hub exited with {hub.returncode}; its log ends:\n{tail}")


def measure(
    args: argparse.Namespace,
    base: str,
    hub: subprocess.Popen[bytes],
    instances: list[Supervisord],
    total: int,
) -> None:
    up = wait_fleet(base, hub, args.instances, total)
    print(f"  hub {base} (pid {hub.pid}): all online, {total:,} processes RUNNING after {up:.1f} s")
    time.sleep(args.warmup)

    proc = psutil.Process(hub.pid)
    daemons = [psutil.Process(sv.proc.pid) for sv in instances if sv.proc is not None]
    seq0 = get_json(f"{base}/api/health")["seq"]
    rss: list[float] = []
    cpu0, daemons0, wall0 = cpu_seconds(proc), sum(map(cpu_seconds, daemons)), time.monotonic()
    while time.monotonic() - wall0 < args.seconds:
        rss.append(proc.memory_info().rss / 2**20)
        time.sleep(0.5)
    cpu1, daemons1, wall1 = cpu_seconds(proc), sum(map(cpu_seconds, daemons)), time.monotonic()
    rss.append(proc.memory_info().rss / 2**20)
    seq1 = get_json(f"{base}/api/health")["seq"]

    wall = wall1 - wall0
    cpu = (cpu1 - cpu0) / wall * 100
    polls = args.instances * wall / args.poll_interval
    print(
        f"  measured {wall:.1f} s after a {args.warmup:g} s warm-up "
        f"({args.instances} sources x 1 poll / {args.poll_interval:g} s):"
    )
    print(f"    hub CPU:       {cpu:6.1f} % of one core      [target < 25 %]")
    print(f"    per poll:      {(cpu1 - cpu0) / polls * 1000:6.2f} ms of hub CPU")
    print(
        f"    hub RSS:       {rss[-1]:6.1f} MB at the end, {max(rss):.1f} MB peak in the window,"
        f" {peak_rss_mb(hub.pid):.1f} MB peak since start      [target < 150 MB]"
    )
    print(f"    changes:       {seq1 - seq0} committed in the window (the fleet is idle)")
    print(
        f"    supervisords:  {(daemons1 - daemons0) / wall * 100:6.1f} % of one core "
        f"together (context: they share the machine's {os.cpu_count()} cores)"
    )
    samples = detection_latency(base, instances, min(5, len(instances)))
    if samples:
        print(
            f"    detection:     a program stopped through supervisord is STOPPED in the hub "
            f"after {sum(samples) / len(samples) * 1000:.0f} ms on average, "
            f"{max(samples) * 1000:.0f} ms at most ({len(samples)} samples)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=40, help="supervisord instances")
    parser.add_argument("--programs", type=int, default=50, help="programs per instance")
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--port", type=int, default=0, help="hub port (default: a free one)")
    args = parser.parse_args(argv)

    print(
        f"fleetwatch bench/poll.py: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"{args.instances} x {args.programs} at {1 / args.poll_interval:g} Hz"
    )
    instances: list[Supervisord] = []
    with tempfile.TemporaryDirectory(prefix="fleetwatch-bench-") as tmp:
        try:
            run(args, Path(tmp), instances)
        except KeyboardInterrupt:
            print("  interrupted: stopping everything")
            return 130
        finally:
            with no_interrupts():
                t0 = time.monotonic()
                stop_all(instances)
                if instances:
                    print(
                        f"  stopped {len(instances)} supervisord and their programs in "
                        f"{time.monotonic() - t0:.1f} s"
                    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
