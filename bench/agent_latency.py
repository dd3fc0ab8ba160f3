#!/usr/bin/env python3
"""fleetwatch-agent: latency of actions and of spontaneous changes, and supervisord's CPU.

Targets (issue #9 §3):

* an XML-RPC stop (or start) returning → the delta at a stream client: p50 < 10 ms,
  p99 < 50 ms with the agent (Multivisor ≈ 2 ms to its SSE); polling at 1 s shown too;
* a spontaneous change — a crash (EXITED) and ``startsecs`` passing (RUNNING) → the
  delta: p50 < 50 ms with no thread inside supervisord (Multivisor's event-listener
  agent: median 504 ms for RUNNING; its in-process agent 2 ms, with a thread inside).

Each setup is a real supervisord, a real ``fleetwatch serve`` (a subprocess) and a
WebSocket stream client in this process (``/api/stream``), all on 127.0.0.1:

* ``agent``        — fleetwatch-agent as shipped (its waker pokes supervisord's loop
  when an event is due; see ``fleetwatch.agent.agent.Waker``);
* ``agent-nowake`` — fleetwatch-agent ``--no-wake``: events wait for supervisord's
  next loop pass (what any plain event listener, Multivisor's included, gets);
* ``polling``      — no agent: the hub polls XML-RPC every second.

Programs: ``web`` (stopped and started by this script over XML-RPC, ``wait=True``)
and ``--crashers`` programs that exit with status 3 after 1.5 to 3 s and are restarted
(``startsecs=1``). A spontaneous transition is timed from supervisord's own log
timestamp of it (milliseconds; Multivisor's ``measure.py spontaneous`` method), an
EXITED also from the crasher's own exit time, a RUNNING also from the moment it
became due (spawn + startsecs). A transition that never reached the stream (the
hub saw only a later state) counts as missed. supervisord's CPU is its utime + stime
over the spontaneous window, in % of one core.

    .venv/bin/python bench/agent_latency.py                 # ~2.5 min
    .venv/bin/python bench/agent_latency.py --seconds 10 --cycles 10 --setups agent
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.sync.client import connect

from fleetwatch.agent.main import EVENTS
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port

CRASHER = (
    "import os, random, sys, time; time.sleep(random.uniform(1.5, 3.0)); "
    "print('exit-at', repr(time.time()), flush=True); os._exit(3)"
)
LOG_LINE = re.compile(
    r"^(\S+ \S+),(\d+) \S+ (?:exited: (\S+) \(exit status 3"
    r"|success: (\S+) entered RUNNING|spawned: '(\S+)')"
)


class StreamClient(threading.Thread):
    """A stream client recording when each process state arrives (wall clock)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.changes: list[tuple[float, str, str]] = []
        self.snapshot = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        with connect(self.url, open_timeout=10) as ws:
            ws.send("{}")
            while not self._halt.is_set():
                try:
                    message = ws.recv(timeout=0.2)
                except TimeoutError:
                    continue
                now = time.time()
                frame = orjson.loads(message)
                if frame["t"] == "snapshot":
                    self.snapshot.set()
                elif frame["t"] == "delta":
                    for c in frame["changes"]:
                        if c["kind"] == "process" and c["op"] == "put":
                            self.changes.append((now, c["id"], c["value"]["state"]))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.002)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ms = sorted(x * 1000 for x in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return (
        f"n={len(ms):3d}  p50 {statistics.median(ms):7.1f} ms  p99 {p99:7.1f} ms  "
        f"min {ms[0]:6.1f}  max {ms[-1]:7.1f}"
    )


def run_setup(name: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    programs = [Program("web", demo_program("service", "bench-web"))]
    programs += [
        Program(f"crasher{i}", f"{sys.executable} -c {shlex.quote(CRASHER)}")
        for i in range(args.crashers)
    ]
    port, token = free_port(), secrets.token_urlsafe(24)
    if name.startswith("agent"):
        command = f"{sys.executable} -m fleetwatch.agent --listen 127.0.0.1:{port}"
        if name == "agent-nowake":
            command += " --no-wake"
        programs.append(
            Program(
                "fleetwatch",
                command,
                events=EVENTS,
                extra={"environment": f'FLEETWATCH_AGENT_TOKEN="{token}"'},
            )
        )
    sv = Supervisord(root / name, "sv", programs)
    sv.start()
    hub_port = free_port()
    cfg = root / name / "fleet.toml"
    source = (
        f'agent = "127.0.0.1:{port}"\nagent_token = "{token}"\npoll_interval = 60\n'
        if name.startswith("agent")
        else f'url = "{sv.url}"\npoll_interval = 1.0\n'
    )
    cfg.write_text(
        f'[hub]\nlisten = "127.0.0.1:{hub_port}"\nbatch_interval = {args.batch_interval}\n'
        f'[sources.sv]\nkind = "supervisor"\n{source}'
    )
    hub = subprocess.Popen(
        [str(Path(sys.executable).parent / "fleetwatch"), "serve", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client: StreamClient | None = None
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{hub_port}", timeout=5)

        def online() -> bool:
            try:
                return bool(http.get("/api/sources/sv").json()["status"] == "online")
            except (httpx.HTTPError, KeyError, ValueError):
                return False

        until(online, 30)
        client = StreamClient(f"ws://127.0.0.1:{hub_port}/api/stream")
        client.start()
        until(client.snapshot.is_set, 10)

        # 1. actions: an XML-RPC stop/start returning → the delta at the client
        action: list[float] = []
        for _ in range(args.cycles):
            for method, state in (("stopProcess", "STOPPED"), ("startProcess", "RUNNING")):
                mark = len(client.changes)
                sv.call(f"supervisor.{method}", "web", True)
                returned = time.time()
                seen = until(
                    lambda mark=mark, state=state: next(
                        (
                            t
                            for t, i, s in client.changes[mark:]
                            if i == "sv:web:web" and s == state
                        ),
                        None,
                    ),
                    10,
                )
                action.append(seen - returned)

        # 2. spontaneous changes, and supervisord's CPU meanwhile
        assert sv.proc is not None
        log_start = (sv.dir / "supervisord.log").stat().st_size
        t0, cpu0 = time.time(), cpu_seconds(sv.proc.pid)
        time.sleep(args.seconds)  # the measuring window itself, not a synchronisation
        t1, cpu1 = time.time(), cpu_seconds(sv.proc.pid)
        time.sleep(2.5)  # let the window's last transitions arrive before matching
        with open(sv.dir / "supervisord.log", encoding="utf-8") as f:
            f.seek(log_start)
            lines = f.read().splitlines()
        result = {
            "action": action,
            "cpu": 100 * (cpu1 - cpu0) / (t1 - t0),
            **match_spontaneous(sv, lines, client.changes, t0, t1),
        }
        return result
    finally:
        if client is not None:
            client.stop()
        hub.terminate()
        hub.wait(15)
        sv.stop()


def match_spontaneous(
    sv: Supervisord, lines: list[str], changes: list[tuple[float, str, str]], t0: float, t1: float
) -> dict[str, Any]:
    transitions: list[tuple[float, str, str]] = []  # (supervisord's time, program, state)
    spawned: dict[str, list[float]] = {}
    for line in lines:
        m = LOG_LINE.match(line)
        if not m:
            continue
        ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
        ts += int(m.group(2)) / 1000
        if m.group(3):
            transitions.append((ts, m.group(3), "EXITED"))
        elif m.group(4):
            transitions.append((ts, m.group(4), "RUNNING"))
        elif m.group(5):
            spawned.setdefault(m.group(5), []).append(ts)
    exits: dict[str, list[float]] = {}
    for log in sv.dir.glob("log/crasher*.out.log"):
        program = log.name.split(".")[0]
        for line in log.read_text().splitlines():
            if line.startswith("exit-at "):
                exits.setdefault(program, []).append(float(line.split()[1]))

    def arrival(program: str, state: str, after: float) -> float | None:
        """The first arrival of ``state`` after ``after`` and before the next such transition.

        A transition the hub coalesced with the next one (it saw only the later state)
        must not take the next transition's arrival as its own.
        """
        pid = f"sv:{program}:{program}"
        later = [ts for ts, p, s in transitions if p == program and s == state and ts > after]
        until = min(later) - 0.05 if later else after + 2
        return next(
            (t for t, i, s in changes if i == pid and s == state and after - 0.05 <= t < until),
            None,
        )

    out: dict[str, Any] = {"EXITED": [], "RUNNING": [], "EXITED_true": [], "RUNNING_due": []}
    missed = {"EXITED": 0, "RUNNING": 0}
    for ts, program, state in transitions:
        if not (t0 <= ts <= t1) or not program.startswith("crasher"):
            continue
        t = arrival(program, state, ts)
        if t is None:
            missed[state] += 1
            continue
        out[state].append(t - ts)
        if state == "EXITED":
            real = [x for x in exits.get(program, []) if ts - 1.5 < x <= ts + 0.01]
            if real:
                out["EXITED_true"].append(t - real[-1])
        else:
            spawns = [x for x in spawned.get(program, []) if ts - 2.5 < x < ts]
            if spawns:
                out["RUNNING_due"].append(t - (spawns[-1] + 1.0))
    out["missed"] = missed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setups", default="agent,agent-nowake,polling")
    parser.add_argument("--cycles", type=int, default=30, help="stop+start cycles of web")
    parser.add_argument("--seconds", type=float, default=30.0, help="spontaneous window")
    parser.add_argument("--crashers", type=int, default=4)
    parser.add_argument(
        "--batch-interval", type=float, default=0.1, help="the hub's (default: its default)"
    )
    args = parser.parse_args()
    print(
        f"fleetwatch-agent latency ({args.crashers} crashers, {args.seconds:g} s window, "
        f"hub batch_interval {args.batch_interval:g} s)"
    )
    print("targets: action p50 < 10 ms, p99 < 50 ms; spontaneous p50 < 50 ms (agent)\n")
    with tempfile.TemporaryDirectory(prefix="fw-agent-bench-") as tmp:
        for name in args.setups.split(","):
            r = run_setup(name, Path(tmp), args)
            print(f"== {name}")
            print(f"  XML-RPC stop/start returned → delta      {stats(r['action'])}")
            print(f"  crash: supervisord's 'exited:' → delta   {stats(r['EXITED'])}")
            print(f"  crash: the process's own exit → delta    {stats(r['EXITED_true'])}")
            print(f"  'success: … RUNNING' logged → delta      {stats(r['RUNNING'])}")
            print(f"  RUNNING due (spawn+startsecs) → delta    {stats(r['RUNNING_due'])}")
            print(
                f"  missed (never in the stream): EXITED {r['missed']['EXITED']}, "
                f"RUNNING {r['missed']['RUNNING']}"
            )
            print(f"  supervisord CPU over the window          {r['cpu']:.2f} % of one core\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
