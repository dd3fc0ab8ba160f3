#!/usr/bin/env python3
"""Latency and start-up, side by side with Multivisor 7.1 on the same supervisord instances.

The rows of issue #8 (item 10), plus item 4's kill figure, measured in one run:

* **direct XML-RPC stop → stream client**, p50 / p95 (target p50 <= 15 ms, p95 <= 50 ms):
  ``stopProcess(NAME, wait=True)`` sent straight to supervisord returns (the process is
  STOPPED); the time until each tool's stream client sees it STOPPED (Multivisor: its SSE
  ``/api/stream``; fleetwatch: its WebSocket ``/api/stream``). Both tools watch through
  Multivisor's agent (``multivisor-rpc`` as an event listener), at the same time.
* **stop through the tool's own API → stream client**, p50 (target: the delta reaches the
  stream no later than the POST's answer): the POST is sent (Multivisor ``POST
  /api/process/stop``, fleetwatch ``POST /api/actions``), the time until the tool's own
  stream client sees STOPPED; also when the POST was answered and the stream time minus
  the answer time (<= 0: the stream was first).
* **cold start → full state of 3 supervisors**, median: the tool's process is spawned
  (Python start-up included) and its snapshot (Multivisor ``/api/data``, fleetwatch
  ``/api/fleet``) polled every 10 ms until it shows the 3 supervisors online with all
  their processes (Multivisor's lab definition: ``measure.py startup``).
* **supervisord killed (SIGKILL) under a live agent → offline**: the agent lives on,
  orphaned; the time until each tool shows that supervisor offline (stopped at 30 s).

The lab is ``../shared/labs/supervisor/`` (``--lab``), read-only: its programs and config
generator are copied to a temporary directory and run there, on free loopback ports (not
the lab's fixed ones, so a lab already running is left alone). The lab's venv
(``--lab-venv``, default ``LAB/venv``, as its README sets it up: ``supervisor`` and
``multivisor[web,rpc]`` from PyPI) runs supervisord, the agent and Multivisor. Without
Multivisor's web server there, it says so and measures fleetwatch only (supervisord and
the agent then come from this venv). Everything listens on 127.0.0.1 and is stopped in
``finally``, on Ctrl-C too.

    .venv/bin/python bench/latency.py --lab-venv /path/to/lab/venv
    .venv/bin/python bench/latency.py --samples 10 --starts 2 --no-kill   # quicker

This prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.sync.client import connect

from _common import get_json, no_interrupts, opener
from fleetwatch.demo.supervisord import _reap_session, free_port

REPO = Path(__file__).resolve().parent.parent
NAMES = ("sv1", "sv2", "sv3")
PROCS = 7  # per supervisor in the lab: sleeper flapper talker idle worker_00 worker_01 rpc
TARGET = ("sv1", "sleeper:sleeper")
KILLED = "sv2"


def until(condition: Callable[[], Any], timeout: float, every: float = 0.01) -> float | None:
    """Seconds until ``condition()`` is truthy (errors count as false); None at the deadline."""
    start = time.perf_counter()
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError, httpx.HTTPError):
            if condition():
                return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            return None
        time.sleep(every)


# -- the lab -------------------------------------------------------------------------


class Lab:
    """A copy of the lab in ``root`` on free ports: three supervisord with the agent."""

    def __init__(self, lab: Path, venv: Path, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(lab / "bin", root / "bin")
        shutil.copy(lab / "genconf.py", root / "genconf.py")
        (root / "venv").symlink_to(venv)
        (root / "conf").mkdir()
        spec = importlib.util.spec_from_file_location("lab_genconf", root / "genconf.py")
        assert spec is not None
        assert spec.loader is not None
        genconf = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(genconf)
        self.ports = {n: (free_port(), free_port()) for n in (1, 2, 3)}
        genconf.INSTANCES = self.ports
        for n in self.ports:
            (root / "conf" / f"sv{n}.conf").write_text(genconf.small_instance(n, "eventlistener"))
            (root / "run" / f"sv{n}" / "log").mkdir(parents=True)
        self.mv_conf = root / "conf" / "multivisor.conf"
        self.mv_conf.write_text(genconf.multivisor_conf())
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def proxy(self, name: str) -> Any:
        n = int(name[2:])
        auth = "lab:labpass@" if n == 3 else ""
        return xmlrpc.client.ServerProxy(f"http://{auth}127.0.0.1:{self.ports[n][0]}/RPC2")

    def start(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(
            [str(self.root / "venv/bin/supervisord"), "-n", "-c", f"{self.root}/conf/{name}.conf"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        def ready() -> bool:
            infos = self.proxy(name).supervisor.getAllProcessInfo()
            return any(p["name"] == "multivisor-rpc" and p["statename"] == "RUNNING" for p in infos)

        if until(ready, timeout, 0.05) is None:
            raise RuntimeError(f"{name} (and its agent) not running after {timeout:g}s")

    def kill(self, name: str) -> None:
        """SIGKILL supervisord alone: its programs, the agent among them, live on."""
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _reap_session(proc.pid)  # orphans of a killed supervisord


def fleetwatch_command(config: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "fleetwatch.cli", "serve", "-c", str(config),
            "--listen", f"127.0.0.1:{port}"]  # fmt: skip


def multivisor_command(lab: Lab, port: int) -> list[str]:
    return [str(lab.root / "venv/bin/multivisor"), "-c", str(lab.mv_conf),
            "--bind", f"127.0.0.1:{port}"]  # fmt: skip


def spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def end(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- what each tool shows ---------------------------------------------------------------


def mv_full(port: int) -> bool:
    sups = get_json(f"http://127.0.0.1:{port}/api/data", 2).get("supervisors", {})
    return all(
        sups.get(n, {}).get("running") and len(sups[n].get("processes", {})) >= PROCS for n in NAMES
    )


def fw_full(port: int) -> bool:
    fleet = get_json(f"http://127.0.0.1:{port}/api/fleet", 2)
    online = {s["id"] for s in fleet["sources"] if s["status"] == "online"}
    per: dict[str, int] = {}
    for p in fleet["processes"]:
        per[p["source"]] = per.get(p["source"], 0) + 1
    return all(n in online and per.get(n, 0) >= PROCS for n in NAMES)


def mv_offline(port: int, name: str) -> bool:
    return not get_json(f"http://127.0.0.1:{port}/api/data", 2)["supervisors"][name]["running"]


def fw_status(port: int, name: str) -> str:
    return str(get_json(f"http://127.0.0.1:{port}/api/sources/{name}", 2)["status"])


class Seen:
    """Process states as each tool's stream client receives them, with arrival times."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, str]] = []  # (time, tool, uid, state)
        self.cond = threading.Condition()
        self.errors: list[str] = []

    def add(self, tool: str, uid: str, state: str) -> None:
        t = time.perf_counter()
        with self.cond:
            self.events.append((t, tool, uid, state))
            self.cond.notify_all()

    def wait(self, tool: str, uid: str, state: str, since: float, timeout: float = 15) -> float:
        deadline = time.perf_counter() + timeout
        with self.cond:
            while True:
                for t, who, u, s in reversed(self.events):
                    if t < since:
                        break
                    if who == tool and u == uid and s == state:
                        return t
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError(f"{tool} did not show {uid} {state} within {timeout:g}s")
                self.cond.wait(left)


def follow_multivisor(port: int, seen: Seen, stop: threading.Event) -> None:
    try:
        with opener.open(f"http://127.0.0.1:{port}/api/stream", timeout=600) as r:
            for raw in r:
                if stop.is_set():
                    return
                line = raw.decode().strip()
                if line.startswith("data:"):
                    ev = json.loads(line[5:])
                    if ev.get("event") == "process_changed":
                        p = ev["payload"]
                        seen.add("multivisor", p["uid"], p["statename"])
    except Exception as exc:
        if not stop.is_set():
            seen.errors.append(f"multivisor stream: {exc!r}")


def follow_fleetwatch(port: int, seen: Seen, stop: threading.Event) -> None:
    try:
        with connect(f"ws://127.0.0.1:{port}/api/stream", open_timeout=10) as ws:
            ws.send("{}")
            while not stop.is_set():
                try:
                    frame = orjson.loads(ws.recv(0.5))
                except TimeoutError:
                    continue
                if frame["t"] == "delta":
                    for c in frame["changes"]:
                        if c["kind"] == "process" and c["op"] == "put":
                            seen.add("fleetwatch", c["id"], c["value"]["state"])
    except Exception as exc:
        if not stop.is_set():
            seen.errors.append(f"fleetwatch stream: {exc!r}")


# -- the rows --------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def ms(values: list[float], *ps: float) -> str:
    if not values:
        return "-"
    return " / ".join(f"{pct(values, p) * 1000:.0f}" for p in ps) + " ms"


def cold_starts(lab: Lab, tools: list[str], starts: int, logs: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {t: [] for t in tools}
    for i in range(starts):
        for tool in tools:
            port = free_port()
            cmd = (
                multivisor_command(lab, port)
                if tool == "multivisor"
                else fleetwatch_command(lab.mv_conf, port)
            )
            full = mv_full if tool == "multivisor" else fw_full
            t0 = time.perf_counter()
            proc = spawn(cmd, logs / f"{tool}-cold.log")
            try:
                took = until(lambda full=full, port=port: full(port), 60)  # type: ignore[misc]
            finally:
                end(proc)
            if took is None:
                print(f"  cold start #{i + 1} {tool}: no full state within 60 s")
                continue
            out[tool].append(time.perf_counter() - t0 if took is None else took)
            print(f"  cold start #{i + 1} {tool}: full state after {took:.3f} s")
    return out


def direct_stops(lab: Lab, tools: list[str], seen: Seen, samples: int) -> dict[str, list[float]]:
    name, ns = TARGET
    uid = f"{name}:{ns}"
    out: dict[str, list[float]] = {t: [] for t in tools}
    rpc = lab.proxy(name)
    for _ in range(samples):
        t0 = time.perf_counter()
        rpc.supervisor.stopProcess(ns, True)  # returns once STOPPED
        returned = time.perf_counter()
        for tool in tools:
            out[tool].append(seen.wait(tool, uid, "STOPPED", t0) - returned)
        t0 = time.perf_counter()
        rpc.supervisor.startProcess(ns, True)  # returns once RUNNING (startsecs=1)
        for tool in tools:
            seen.wait(tool, uid, "RUNNING", t0)
    return out


def api_stops(
    lab: Lab, ports: dict[str, int], seen: Seen, samples: int
) -> dict[str, dict[str, list[float]]]:
    name, ns = TARGET
    uid = f"{name}:{ns}"
    out = {t: {"stream": [], "answer": [], "lead": []} for t in ports}
    rpc = lab.proxy(name)
    with httpx.Client(timeout=30) as http:
        for _ in range(samples):
            for tool, port in ports.items():
                t0 = time.perf_counter()
                if tool == "multivisor":
                    r = http.post(f"http://127.0.0.1:{port}/api/process/stop", data={"uid": uid})
                else:
                    r = http.post(
                        f"http://127.0.0.1:{port}/api/actions",
                        json={"target": {"kind": "process", "id": uid}, "name": "stop"},
                    )
                answered = time.perf_counter()
                r.raise_for_status()
                streamed = seen.wait(tool, uid, "STOPPED", t0)
                out[tool]["stream"].append(streamed - t0)
                out[tool]["answer"].append(answered - t0)
                out[tool]["lead"].append(streamed - answered)
                t0 = time.perf_counter()
                rpc.supervisor.startProcess(ns, True)
                for other in ports:
                    seen.wait(other, uid, "RUNNING", t0)
    return out


def kill_under_agent(lab: Lab, ports: dict[str, int]) -> dict[str, tuple[float | None, str]]:
    """SIGKILL one supervisord; seconds until each tool shows it offline, and what it showed."""
    shown: dict[str, list[str]] = {t: [] for t in ports}
    found: dict[str, float | None] = dict.fromkeys(ports)
    lab.kill(KILLED)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 30 and any(v is None for v in found.values()):
        for tool, port in ports.items():
            if found[tool] is not None:
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                if tool == "multivisor":
                    state = "offline" if mv_offline(port, KILLED) else "running"
                else:
                    state = fw_status(port, KILLED)
                if not shown[tool] or shown[tool][-1] != state:
                    shown[tool].append(state)
                if state == "offline":
                    found[tool] = time.perf_counter() - t0
        time.sleep(0.01)
    return {t: (found[t], " → ".join(shown[t])) for t in ports}


# -- main ------------------------------------------------------------------------------


def has_multivisor(venv: Path) -> str | None:
    """None when Multivisor's web server can run from ``venv``, else why not."""
    exe = venv / "bin" / "multivisor"
    if not exe.exists():
        return f"{exe} does not exist"
    check = subprocess.run(
        [str(venv / "bin/python"), "-c", "import flask, multivisor.server.web"],
        capture_output=True,
        text=True,
    )
    if check.returncode:
        return f"its web server does not import: {check.stderr.strip().splitlines()[-1]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", type=Path, default=REPO.parent / "shared/labs/supervisor")
    parser.add_argument("--lab-venv", type=Path, help="the lab's venv (default LAB/venv)")
    parser.add_argument("--samples", type=int, default=30, help="stops per stop row")
    parser.add_argument("--starts", type=int, default=5, help="cold starts per tool")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 row")
    args = parser.parse_args()

    lab_dir = args.lab.resolve()
    if not (lab_dir / "genconf.py").exists():
        sys.exit(f"latency.py: error: {lab_dir} is not the supervisor lab (no genconf.py)")
    venv = (args.lab_venv or lab_dir / "venv").absolute()
    why = has_multivisor(venv) if venv.exists() else f"{venv} does not exist"
    tools = ["multivisor", "fleetwatch"]
    if why is not None:
        print(f"Multivisor is absent ({why}): measuring fleetwatch only.")
        print("  To compare, set up the lab's venv as its README says and pass --lab-venv.")
        tools = ["fleetwatch"]
        venv = Path(sys.prefix)  # supervisord and multivisor-rpc are in this venv
        if not (venv / "bin/multivisor-rpc").exists():
            sys.exit("latency.py: error: multivisor-rpc (Multivisor's agent) is not installed")

    tmp = Path(tempfile.mkdtemp(prefix="fw-latency-"))
    lab: Lab | None = None
    running: dict[str, subprocess.Popen[bytes]] = {}
    stop = threading.Event()
    try:
        lab = Lab(lab_dir, venv, tmp / "lab")
        for name in NAMES:
            lab.start(name)
        for name in NAMES:
            lab.wait_ready(name)
        print(f"lab copy in {lab.root}: sv1..sv3 with multivisor-rpc as an event listener")
        print("\n== cold start → full state of 3 supervisors")
        starts = cold_starts(lab, tools, args.starts, tmp)

        ports = {t: free_port() for t in tools}
        for tool, port in ports.items():
            cmd = (
                multivisor_command(lab, port)
                if tool == "multivisor"
                else fleetwatch_command(lab.mv_conf, port)
            )
            running[tool] = spawn(cmd, tmp / f"{tool}.log")
        for tool, port in ports.items():
            full = mv_full if tool == "multivisor" else fw_full
            if until(lambda full=full, port=port: full(port), 60) is None:  # type: ignore[misc]
                raise RuntimeError(f"{tool} did not show the lab within 60 s")
        seen = Seen()
        followers = {"multivisor": follow_multivisor, "fleetwatch": follow_fleetwatch}
        for tool, port in ports.items():
            threading.Thread(target=followers[tool], args=(port, seen, stop), daemon=True).start()
        time.sleep(1.0)  # the stream clients connect and get their snapshot

        print(f"\n== direct XML-RPC stop → stream client ({args.samples} stops of {TARGET})")
        direct = direct_stops(lab, tools, seen, args.samples)
        print(f"== stop through the tool's API → stream client ({args.samples} each)")
        api = api_stops(lab, ports, seen, args.samples)
        killed: dict[str, tuple[float | None, str]] = {}
        if not args.no_kill:
            print(f"== supervisord {KILLED} killed (SIGKILL) under its live agent")
            killed = kill_under_agent(lab, ports)
        if seen.errors:
            print("stream errors:", *seen.errors, sep="\n  ")
    finally:
        with no_interrupts():
            stop.set()
            for proc in running.values():
                end(proc)
            if lab is not None:
                lab.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def row(label: str, values: dict[str, str], ratio: dict[str, float], target: str) -> None:
        mv = values.get("multivisor", "absent")
        fw = values.get("fleetwatch", "-")
        r = ""
        if "multivisor" in ratio and ratio.get("multivisor") and "fleetwatch" in ratio:
            r = f"{ratio['fleetwatch'] / ratio['multivisor']:.2f}"
        print(f"{label:52} | {mv:>15} | {fw:>15} | {r:>8} | {target}")

    print(f"\n{'row':52} | {'Multivisor 7.1':>15} | {'fleetwatch':>15} | {'fw / mv':>8} | target")
    print("-" * 120)
    row(
        "direct XML-RPC stop → stream client, p50 / p95",
        {t: ms(v, 50, 95) for t, v in direct.items()},
        {t: statistics.median(v) for t, v in direct.items()},
        "p50 <= 15 ms, p95 <= 50 ms",
    )
    row(
        "stop through the tool's API → stream client, p50",
        {t: ms(v["stream"], 50) for t, v in api.items()},
        {t: statistics.median(v["stream"]) for t, v in api.items()},
        "",
    )
    row(
        "  the POST answered, p50",
        {t: ms(v["answer"], 50) for t, v in api.items()},
        {t: statistics.median(v["answer"]) for t, v in api.items()},
        "",
    )
    row(
        "  stream minus answer, p50 / max (<= 0: stream first)",
        {t: ms(v["lead"], 50, 100) for t, v in api.items()},
        {},
        "the delta no later than the answer",
    )
    row(
        f"cold start → full state of 3 supervisors, median ({args.starts})",
        {t: f"{statistics.median(v):.2f} s" for t, v in starts.items() if v},
        {t: statistics.median(v) for t, v in starts.items() if v},
        "faster than Multivisor",
    )
    for tool, (secs, path) in killed.items():
        label = f"kill -9 under a live agent → offline ({tool})"
        figure = f"{secs:.2f} s" if secs is not None else "> 30 s"
        print(f"{label:52} | {figure:>15} | shown: {path}")
    if killed:
        print(f"{'':52} | target (fleetwatch): offline within 2 s, as when polling")


if __name__ == "__main__":
    main()
