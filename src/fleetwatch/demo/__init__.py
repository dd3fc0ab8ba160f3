"""``fleetwatch demo``: a real fleet on loopback, and the hub watching it.

Three supervisord instances in a temporary directory — ``sv1`` over HTTP,
``sv2`` over its unix socket, ``sv3`` over HTTP with basic auth — each running a
steady service, a flapper, a talker (non-ASCII logs), a stopped program and a
numprocs group. A build farm: the stand-in piwheels master
(:class:`~fleetwatch.demo.piwheels.StandInMaster`, the recorded traffic of a real
piw-master with two build slaves, looped with fresh times) on two ipc sockets in
the directory, watched as source ``piw``. When Debian's icecc is installed and we
run as root, also a real icecream cluster (scheduler, a submitting daemon, two
compile servers, all on loopback) with a trickle of real compile jobs. Ctrl-C stops
the hub, then everything it started, and removes the directory.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import tempfile
import threading
from pathlib import Path
from types import FrameType

from fleetwatch.config import (
    Config,
    HistoryConfig,
    HubConfig,
    IcecreamSourceConfig,
    PiwheelsSourceConfig,
    SourceConfig,
    SupervisorSourceConfig,
)
from fleetwatch.demo.icecream import IcecreamCluster, icecc_available
from fleetwatch.demo.piwheels import StandInMaster
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, stop_all
from fleetwatch.types import Secret

__all__ = ["demo_fleet", "run_demo"]


def demo_fleet(root: Path) -> list[Supervisord]:
    def programs(sv: str) -> list[Program]:
        return [
            Program("web", demo_program("service", f"{sv}-web")),
            Program("flapper", demo_program("flapper", f"{sv}-flapper")),
            Program("talker", demo_program("talker", f"{sv}-talker")),
            Program("idle", demo_program("service", f"{sv}-idle"), autostart=False),
            Program("worker", demo_program("worker", f"{sv}-worker"), numprocs=3, group="workers"),
        ]

    return [
        Supervisord(root, "sv1", programs("sv1")),
        Supervisord(root, "sv2", programs("sv2"), unix=True),
        Supervisord(root, "sv3", programs("sv3"), username="demo", password="demo-pass"),
    ]


class _Stop(BaseException):
    """SIGINT or SIGTERM while the demo starts its fleet: stop what was started."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def _while_stopping(signum: int, frame: FrameType | None) -> None:
    print("still stopping the fleet (it takes a few seconds)", flush=True)


def run_demo(sock: socket.socket, listen: str) -> int:
    """Run the demo on the hub's listening socket, already bound to ``listen``.

    SIGINT and SIGTERM stop it in every phase: while supervisords or the icecream
    cluster start (a signal interrupts the start), while the hub serves (uvicorn stops
    it gracefully), and while the fleet is being stopped (the signal is noted and the
    stopping goes on). Then nothing it started is left running; it exits 0.
    """
    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _raise_stop)
        return _run(sock, listen)
    except _Stop:
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()


def _run(sock: socket.socket, listen: str) -> int:
    from fleetwatch.server import build_server

    with tempfile.TemporaryDirectory(prefix="fleetwatch-demo-") as tmp:
        os.chmod(tmp, 0o755)  # icecc daemons run as user icecc and need to enter it
        print(f"fleetwatch demo in {tmp}", flush=True)
        fleet = demo_fleet(Path(tmp))
        cluster: IcecreamCluster | None = None
        piw: StandInMaster | None = None
        trickle: threading.Thread | None = None
        stop = threading.Event()
        try:
            for sv in fleet:
                sv.start()
                pid = sv.proc.pid if sv.proc else "?"
                print(f"started supervisord {sv.name} (pid {pid}) on {sv.url}", flush=True)
            sources: dict[str, SourceConfig] = {
                sv.name: SupervisorSourceConfig(
                    name=sv.name,
                    url=sv.url,
                    username=sv.username,
                    password=Secret(sv.password) if sv.password else None,
                )
                for sv in fleet
            }
            status_queue, control_queue = f"ipc://{tmp}/piw-status", f"ipc://{tmp}/piw-control"
            piw = StandInMaster(status_queue, control_queue, gated=False, loop=True, fresh=True)
            piw.start()
            print(f"started a stand-in piwheels master on {status_queue}", flush=True)
            sources["piw"] = PiwheelsSourceConfig(
                name="piw", status_queue=status_queue, control_queue=control_queue
            )
            why_not = icecc_available()
            if why_not is None:
                # Loopback aliases 127.0.0.101+: test clusters use .21+, .41+ and .61+.
                cluster = IcecreamCluster(
                    Path(tmp) / "icecc", netname="DEMO", remotes=2, first_alias=100
                )
                cluster.root.mkdir()
                print("starting an icecream cluster (netname DEMO)...", flush=True)
                cluster.start()
                print(f"started an icecream cluster on 127.0.0.1:{cluster.port}", flush=True)
                sources["build"] = IcecreamSourceConfig(
                    name="build", scheduler=f"127.0.0.1:{cluster.port}", netname="DEMO"
                )
                trickle = threading.Thread(target=_trickle, args=(cluster, stop), daemon=True)
                trickle.start()
            else:
                print(f"no icecream cluster in this demo: {why_not}", flush=True)
            config = Config(
                path="<demo>",
                hub=HubConfig(name="fleetwatch demo", listen=listen),
                sources=sources,
                # the history of this run, for the time slider (issue 13)
                history=HistoryConfig(url=str(Path(tmp) / "demo.history.db")),
            )
            server, _ = build_server(config)
            print(
                f"\nfleetwatch demo: serving on http://{listen}/  (Ctrl-C stops everything)\n",
                flush=True,
            )
            server.run(sockets=[sock])
            return 0 if server.started else 1
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, _while_stopping)
            print("stopping the demo's fleet...", flush=True)
            stop.set()
            if cluster is not None:
                cluster.stop()  # also ends the trickle's compiles
            if trickle is not None:
                trickle.join(30)
            if piw is not None:
                piw.stop()
            stop_all(fleet)
            print("demo stopped: every supervisord, icecc process and program is gone", flush=True)


def _trickle(cluster: IcecreamCluster, stop: threading.Event) -> None:
    """Real compile jobs through the cluster: a few at a time, now and then a failure or a link."""
    rounds = 0
    while not stop.wait(2.0):
        rounds += 1
        cluster.compile(random.randint(1, 4), 2, fail=rounds % 7 == 0)
        if rounds % 5 == 0:
            cluster.link()
