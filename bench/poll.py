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

**One big daemon** (issue #8 item 3), ``--programs`` over 1,000: one daemon with that
many processes next to ``--instances`` small real supervisords (default 2 x 5 programs).
A real supervisord 4.3.0 with 20,000 programs (autostart=false) needed 561 s to send one
23.6 MB ``getAllProcessInfo`` answer on this machine (its medusa server copies the rest of
the output buffer at each 512-byte send, which is quadratic), so the big daemon is a
stand-in: :class:`StandIn` (its docstring says what it serves; its answers are built with
``xmlrpc.client.dumps``, which re-encodes a real supervisord answer byte for byte, and it
checks that at start). Each second ``--changes`` of its processes stop or start, so every
poll must be decoded. The hub runs in a child process (``--hub-child``, built like
``fleetwatch serve`` by ``build_server``) with a 10 ms ticker whose lateness is the
event loop's stall. Printed: the time to decode one answer (the hub's own functions, in
this process), the worst stall, ``/api/health`` latency p50 / max (one request every
50 ms), whether every source stayed online at every 50 ms sample, and how long the small
sources take to show a stopped program.

Everything is stopped in ``finally``, on Ctrl-C too: the hub, every supervisord and its
programs; the temporary directory is removed.

Usage::

    .venv/bin/python bench/poll.py                                  # 40 x 50, 30 s
    .venv/bin/python bench/poll.py --instances 4 --programs 10 --seconds 5 --warmup 1
    .venv/bin/python bench/poll.py --programs 20000                 # one big daemon, 30 s

This prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import http.server
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import xmlrpc.client
from pathlib import Path
from typing import Any

import psutil

from _common import get_json, no_interrupts, opener
from fleetwatch.demo.supervisord import Program, Supervisord, free_port, stop_all


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
            if get_json(f"{base}/api/processes/{pid_id}", timeout=30)["state"] == "STOPPED":
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


# -- one big daemon (issue #8 item 3) ------------------------------------------------------------

BIG_THRESHOLD = 1000
_NOW_MARK = 2_147_000_001  # placeholders in a pre-encoded process struct
_DESC_MARK = "@@description@@"


class StandIn:
    """A stand-in for one supervisord with thousands of programs (a real one cannot serve them).

    Real supervisord 4.3.0 took 561 s to send the answer for 20,000 programs here, so this
    HTTP/1.1 server answers ``system.multicall`` of the calls fleetwatch makes
    (getSupervisorVersion, getIdentification, getPID, getAPIVersion, getState,
    getAllProcessInfo) as supervisord does: each struct has supervisord's 14 members in its
    order, encoded by ``xmlrpc.client.dumps(..., methodresponse=True)`` like
    ``supervisor.xmlrpc.xmlrpc_marshal``, with Content-Length. ``now`` is the clock and a
    RUNNING process's description is "pid N, uptime H:MM:SS", both moving every second;
    ``changes`` processes a second stop or start. Each answer is built once a second and
    served to every request in that second (a daemon that answers at once). Any other
    call is answered with a fault.
    """

    def __init__(self, programs: int, changes: int) -> None:
        self.count = programs
        self.changes = changes
        self.started = int(time.time()) - 3600
        self.running = [True] * programs
        self.pid = [10_000 + j for j in range(programs)]
        self.since = [self.started] * programs
        self.templates = [self._template(j) for j in range(programs)]
        self.applied = int(time.time())
        self.lock = threading.Lock()
        self._check()

    def _info(self, j: int, now: int, description: str) -> dict[str, Any]:
        name = f"p{j:05d}"
        log = f"/var/log/supervisor/{name}-std%s---supervisor-3x9k2f.log"
        run = self.running[j]
        return {
            "name": name,
            "group": name,
            "start": self.since[j] if run else self.started,
            "stop": 0 if run else self.since[j],
            "now": now,
            "state": 20 if run else 0,
            "statename": "RUNNING" if run else "STOPPED",
            "spawnerr": "",
            "exitstatus": 0,
            "logfile": log % "out",
            "stdout_logfile": log % "out",
            "stderr_logfile": log % "err",
            "pid": self.pid[j] if run else 0,
            "description": description,
        }

    def _template(self, j: int) -> bytes:
        body = xmlrpc.client.dumps((self._info(j, _NOW_MARK, _DESC_MARK),), methodresponse=True)
        start = body.index("<value><struct>")
        return body[start : body.rindex("</struct></value>") + len("</struct></value>\n")].encode()

    def _description(self, j: int, now: int) -> str:
        if not self.running[j]:
            return time.strftime("%b %d %I:%M %p", time.localtime(self.since[j]))
        up = now - self.since[j]
        return f"pid {self.pid[j]}, uptime {up // 3600}:{up // 60 % 60:02d}:{up % 60:02d}"

    def _struct(self, j: int, now: int) -> bytes:
        return (
            self.templates[j]
            .replace(b"<int>%d</int>" % _NOW_MARK, b"<int>%d</int>" % now)
            .replace(_DESC_MARK.encode(), self._description(j, now).encode())
        )

    def _check(self) -> None:
        """Our assembled answer is byte for byte what ``xmlrpc_marshal`` would send."""
        now = int(time.time())
        infos = [self._info(j, now, self._description(j, now)) for j in range(min(3, self.count))]
        state = {"statecode": 1, "statename": "RUNNING"}
        want = xmlrpc.client.dumps(([state, infos],), methodresponse=True).encode()
        got = self.answer(["supervisor.getState", "supervisor.getAllProcessInfo"], now, len(infos))
        assert got == want, "the stand-in's answer is not what supervisord would send"

    def step(self, now: int) -> None:
        """Stop or start ``changes`` processes for each second since the last step."""
        while self.applied < now:
            self.applied += 1
            for i in range(self.changes):
                j = (self.applied * 7919 + i * 104_729) % self.count
                self.running[j] = not self.running[j]
                self.since[j] = self.applied
                if self.running[j]:
                    self.pid[j] += 50_000
                self.templates[j] = self._template(j)

    def answer(self, methods: list[str], now: int, count: int | None = None) -> bytes:
        simple: dict[str, Any] = {
            "supervisor.getSupervisorVersion": "4.3.0",
            "supervisor.getIdentification": "supervisor",
            "supervisor.getPID": os.getpid(),
            "supervisor.getAPIVersion": "3.0",
            "supervisor.getState": {"statecode": 1, "statename": "RUNNING"},
        }
        mark = "@@all-process-info@@"
        results = [
            simple.get(m, mark if m == "supervisor.getAllProcessInfo" else None) for m in methods
        ]
        results = [
            r if r is not None else {"faultCode": 1, "faultString": "UNKNOWN_METHOD"}
            for r in results
        ]
        envelope = xmlrpc.client.dumps((results,), methodresponse=True).encode()
        head, _, tail = envelope.partition(b"<value><string>%s</string></value>\n" % mark.encode())
        if not _:
            return envelope
        structs = [self._struct(j, now) for j in range(self.count if count is None else count)]
        return b"".join(
            [head, b"<value><array><data>\n", *structs, b"</data></array></value>\n", tail]
        )

    def cached(self, methods: list[str]) -> bytes:
        """The answer of this second (built once a second: a fast daemon, not a slow one)."""
        now = int(time.time())
        with self.lock:
            self.step(now)
            key = (now, tuple(methods))
            if self._cache[0] != key:
                self._cache = (key, self.answer(methods, now))
            return self._cache[1]

    def serve(self, port: int) -> None:
        standin = self
        self._cache: tuple[Any, bytes] = (None, b"")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                request = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                (calls,), method = xmlrpc.client.loads(request)
                names = [c["methodName"] for c in calls] if method == "system.multicall" else []
                body = standin.cached(names)
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the hub gave up (a deadline)
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        print("ready", flush=True)
        server.serve_forever()


def hub_child(config: str, listen: str, ticks: str) -> None:
    """Run the hub as ``fleetwatch serve`` does, plus a 10 ms ticker writing its lateness."""
    from fleetwatch.config import load_config
    from fleetwatch.server import build_server

    server, _ = build_server(load_config(config), listen=listen)

    out = open(ticks, "a", encoding="ascii")  # noqa: SIM115 - closed when the hub stops

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        second, worst = int(time.time()), 0.0
        while True:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - due)
            if int(time.time()) != second:
                out.write(f"{second} {worst * 1000:.1f}\n")
                out.flush()
                second, worst = int(time.time()), 0.0

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(ticker())
        try:
            await server.serve()
        finally:
            task.cancel()

    try:
        asyncio.run(main())
    finally:
        out.close()


def fetch_answer(url: str) -> bytes:
    calls = [
        {"methodName": "supervisor.getState", "params": []},
        {"methodName": "supervisor.getAllProcessInfo", "params": []},
    ]
    request = urllib.request.Request(
        f"{url}/RPC2",
        data=xmlrpc.client.dumps((calls,), "system.multicall").encode(),
        headers={"Content-Type": "text/xml"},
    )
    with opener.open(request, timeout=60) as response:
        return bytes(response.read())


def decode_figures(first: bytes, second: bytes) -> list[str]:
    """Decode two answers a second apart with the hub's own code: time, longest step."""
    from fleetwatch.config import Config, SupervisorSourceConfig
    from fleetwatch.hub import Hub
    from fleetwatch.sources.supervisor import protocol, source

    t0 = time.perf_counter()
    protocol.ProcessInfo.list_from(protocol.decode_response(first)[1])
    whole = time.perf_counter() - t0
    lines = [f"{whole:.2f} s to decode and validate one answer in one piece (stdlib xmlrpc)"]
    if not hasattr(source, "_decode_calls"):
        return [*lines, "this version decodes each changed answer so, on the event loop"]

    async def poll(runner: Any, body: bytes) -> tuple[float, float, int]:
        loop = asyncio.get_running_loop()
        worst = 0.0
        done = False

        async def tick() -> None:
            nonlocal worst
            while not done:
                due = loop.time()
                await asyncio.sleep(0)
                worst = max(worst, loop.time() - due)

        task = loop.create_task(tick())
        t0 = time.perf_counter()
        await source._signature(body)
        _, infos = await source._decode_calls(body, 2)
        processes, fresh, _ = await runner._table(infos)
        await runner._commit_table(processes, fresh)
        took = time.perf_counter() - t0
        done = True
        await task
        return took, worst, len(fresh)

    async def both() -> list[str]:
        cfg = SupervisorSourceConfig(name="big", url="http://127.0.0.1:1")
        hub = Hub(Config(path="bench", sources={"big": cfg}))
        runner = hub.runner("big")
        out = []
        for what, body in (("first poll", first), ("next poll", second)):
            took, worst, fresh = await poll(runner, body)
            out.append(
                f"{what}: {took:.2f} s in the hub's sliced path (signature, split, decode "
                f"{fresh:,} changed processes, publish), longest step {worst * 1000:.0f} ms"
            )
        await runner.close()
        return out

    return [*lines, *asyncio.run(both())]


def run_big(args: argparse.Namespace, root: Path, instances: list[Supervisord]) -> None:
    small = [Program(f"p{j:02d}", "/bin/sleep 100000", startsecs=0) for j in range(5)]
    count = 2 if args.instances == 40 else args.instances  # 40: the default of the other mode
    instances += [Supervisord(root, f"sv{i:02d}", small) for i in range(count)]
    for sv in instances:
        sv.start(60.0)
    big_port = free_port()
    standin = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--stand-in",
            str(big_port),
            "--programs",
            str(args.programs),
            "--changes",
            str(args.changes),
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    hub: subprocess.Popen[bytes] | None = None
    try:
        assert standin.stdout is not None
        if standin.stdout.readline().strip() != b"ready":
            raise RuntimeError("the stand-in did not start")
        big_url = f"http://127.0.0.1:{big_port}"
        t0 = time.monotonic()
        first = fetch_answer(big_url)
        served = time.monotonic() - t0
        time.sleep(1.1)  # the next second's answer: changes to decode
        second = fetch_answer(big_url)
        print(
            f"  stand-in daemon: {args.programs:,} processes, {len(first) / 1e6:.1f} MB answer "
            f"(served in {served:.2f} s), {args.changes} changes/s; "
            f"{count} real supervisord x 5 programs beside it"
        )
        for line in decode_figures(first, second):
            print(f"    decode:        {line}")
        del first, second

        config = root / "fleet.toml"
        write_config(config, instances, args.poll_interval)
        with open(config, "a", encoding="utf-8") as f:
            f.write(
                f'\n[sources.big]\nkind = "supervisor"\nurl = "{big_url}"\n'
                f"poll_interval = {args.poll_interval}\n"
            )
        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        ticks = root / "ticks.txt"
        log = root / "hub.log"
        with open(log, "wb") as out:
            hub = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--hub-child",
                    str(config),
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--ticks",
                    str(ticks),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        measure_big(args, base, hub, instances, ticks, count * 5 + args.programs)
    finally:
        with no_interrupts():
            for proc in (hub, standin):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def measure_big(
    args: argparse.Namespace,
    base: str,
    hub: subprocess.Popen[bytes],
    instances: list[Supervisord],
    ticks: Path,
    total: int,
) -> None:
    sources = len(instances) + 1
    deadline = time.monotonic() + 180
    while True:
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited ({hub.returncode})")
        try:
            health = get_json(f"{base}/api/health", timeout=30)
            if health["sources"].get("online", 0) == sources:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the sources did not come online within 180 s")
        time.sleep(0.5)
    time.sleep(args.warmup)
    proc = psutil.Process(hub.pid)
    latencies: list[float] = []
    not_online: list[str] = []
    rss: list[float] = []
    cpu0, wall0 = cpu_seconds(proc), time.time()
    while time.time() - wall0 < args.seconds:
        t = time.monotonic()
        health = get_json(f"{base}/api/health", timeout=30)
        latencies.append(time.monotonic() - t)
        if health["sources"].get("online", 0) != sources:
            errors = {
                f"{s['id']}: {s['status']} ({s['error']})"
                for s in get_json(f"{base}/api/sources", timeout=30)
                if s["status"] != "online"
            }
            not_online.append(f"{time.time() - wall0:.1f}s {sorted(errors)}")
        if len(latencies) % 10 == 0:
            rss.append(proc.memory_info().rss / 2**20)
        time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))
    wall1 = time.time()
    cpu = (cpu_seconds(proc) - cpu0) / (wall1 - wall0) * 100
    stalls = [
        float(ms)
        for second, ms in (line.split() for line in ticks.read_text().splitlines())
        if wall0 <= int(second) <= wall1
    ]
    latencies.sort()
    print(
        f"  measured {wall1 - wall0:.1f} s after a {args.warmup:g} s warm-up, {total:,} processes:"
    )
    print(
        f"    event loop:    worst stall {max(stalls, default=float('nan')):.0f} ms "
        f"(10 ms ticker's lateness); seconds with a stall > 50 ms: "
        f"{sum(s > 50 for s in stalls)} of {len(stalls)}"
    )
    print(
        f"    /api/health:   p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms ({len(latencies)} requests)"
    )
    print(
        "    online:        every source online at every sample"
        if not not_online
        else f"    online:        NOT online at {len(not_online)} samples: {not_online[:5]}"
    )
    print(f"    hub CPU:       {cpu:6.1f} % of one core; RSS peak {max(rss, default=0):.0f} MB")
    samples = detection_latency(base, instances, len(instances))
    if samples:
        print(
            f"    small sources: a stopped program is STOPPED in the hub after "
            f"{sum(samples) / len(samples) * 1000:.0f} ms on average, "
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
    parser.add_argument(
        "--changes", type=int, default=20, help="big daemon: processes changed per second"
    )
    parser.add_argument("--stand-in", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--hub-child", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--ticks", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stand_in is not None:
        with contextlib.suppress(KeyboardInterrupt):
            StandIn(args.programs, args.changes).serve(args.stand_in)
        return 0
    if args.hub_child is not None:
        hub_child(args.hub_child, args.listen, args.ticks)
        return 0
    big = args.programs > BIG_THRESHOLD

    print(
        f"fleetwatch bench/poll.py: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        + (
            f"{args.instances} x {args.programs} at {1 / args.poll_interval:g} Hz"
            if args.programs <= BIG_THRESHOLD
            else f"one daemon of {args.programs:,} processes at {1 / args.poll_interval:g} Hz"
        )
    )
    instances: list[Supervisord] = []
    with tempfile.TemporaryDirectory(prefix="fleetwatch-bench-") as tmp:
        try:
            (run_big if big else run)(args, Path(tmp), instances)
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
