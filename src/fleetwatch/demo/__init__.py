"""``fleetwatch demo``: a real fleet on loopback, and the hub watching it.

Three supervisord instances in a temporary directory — ``sv1`` over HTTP,
``sv2`` over its unix socket, ``sv3`` over HTTP with basic auth — each running a
steady service, a flapper, a talker (non-ASCII logs), a stopped program and a
numprocs group. Ctrl-C stops the hub, then every supervisord and its programs,
and removes the directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fleetwatch.config import Config, HubConfig, SupervisorSourceConfig, parse_listen
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


def run_demo(listen: str) -> int:
    from fleetwatch.server import build_server

    with tempfile.TemporaryDirectory(prefix="fleetwatch-demo-") as tmp:
        fleet = demo_fleet(Path(tmp))
        try:
            for sv in fleet:
                sv.start()
                print(f"started supervisord {sv.name} on {sv.url}")
            config = Config(
                path="<demo>",
                hub=HubConfig(name="fleetwatch demo", listen=listen),
                sources={
                    sv.name: SupervisorSourceConfig(
                        name=sv.name,
                        url=sv.url,
                        username=sv.username,
                        password=Secret(sv.password) if sv.password else None,
                    )
                    for sv in fleet
                },
            )
            server, _ = build_server(config)
            host, port = parse_listen(listen)
            print(f"\nfleetwatch demo: open http://{host}:{port}/  (Ctrl-C stops everything)\n")
            server.run()
            return 0 if server.started else 1
        finally:
            stop_all(fleet)
            print("demo stopped: every supervisord and its programs are gone")
