"""The ``fleetwatch`` command's Typer app (:mod:`fleetwatch.cli.main` runs it).

Start-up time matters: this module imports only Typer, and each command imports what it
needs when it runs (the server, uvicorn and the sources only for ``serve`` and ``demo``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetwatch import __version__

if TYPE_CHECKING:
    import socket

    from fleetwatch.config import Config

__all__ = ["app"]

app = typer.Typer(
    name="fleetwatch",
    help="One live monitor and control hub for build clusters and process fleets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"fleetwatch: error: {message}", err=True)
    return typer.Exit(code)


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _check_listen(listen: str | None) -> None:
    from fleetwatch.config import parse_listen

    if listen is not None:
        try:
            parse_listen(listen)
        except ValueError as exc:
            raise _fail(f"--listen {listen!r}: {exc}") from None


def _check_root_path(root_path: str | None) -> str | None:
    from fleetwatch.config import parse_root_path

    if root_path is None:
        return None
    try:
        return parse_root_path(root_path)
    except ValueError as exc:
        raise _fail(f"--root-path {root_path!r}: {exc}") from None


def _load(config: Path) -> Config:
    from fleetwatch.config import ConfigError, load_config

    try:
        return load_config(str(config))
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _bind(listen: str) -> socket.socket:
    """The listening socket, bound before anything starts; exit 1 when it cannot be."""
    from fleetwatch.config import parse_listen
    from fleetwatch.server import ListenError, listen_socket

    try:
        return listen_socket(*parse_listen(listen))
    except ListenError as exc:
        raise _fail(str(exc), 1) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """One live monitor and control hub for build clusters and process fleets."""


@app.command()
def serve(
    config: Annotated[
        Path,
        typer.Option(
            "-c",
            "--config",
            help="TOML file, or Multivisor's INI file",
            # Checked by load_config, which says FILE: permission denied (Typer's own
            # check would print a box instead).
            readable=False,
        ),
    ],
    listen: Annotated[
        str | None, typer.Option(help="HOST:PORT to listen on (default 127.0.0.1:22000)")
    ] = None,
    root_path: Annotated[
        str | None, typer.Option(help="sub-path when behind a reverse proxy, e.g. /fleet")
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Watch the fleet described by CONFIG and serve the API and web app."""
    _check_listen(listen)
    root_path = _check_root_path(root_path)
    cfg = _load(config)
    _logging(verbose)
    sock = _bind(listen or cfg.hub.listen)
    try:
        from fleetwatch.server import ListenError, bound_listen, build_server

        address = bound_listen(listen or cfg.hub.listen, sock)
        try:
            server, _ = build_server(cfg, listen=address, root_path=root_path)
        except ListenError as exc:  # [hub] multivisor_listen's port
            raise _fail(str(exc), 1) from None
        typer.echo(f"fleetwatch {__version__}: {cfg.hub.name}, {len(cfg.sources)} source(s)")
        typer.echo(f"serving on http://{address}/")
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise _fail("the hub did not start (see the log above)", 1)


@app.command()
def demo(
    listen: Annotated[str, typer.Option(help="HOST:PORT for the hub")] = "127.0.0.1:22000",
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Start three real supervisord instances on loopback and watch them. Ctrl-C stops all."""
    _check_listen(listen)
    _logging(verbose)
    sock = _bind(listen)
    from fleetwatch.demo import run_demo
    from fleetwatch.server import bound_listen

    sys.exit(run_demo(sock, bound_listen(listen, sock)))


@app.command()
def discover(
    netname: Annotated[
        str | None, typer.Option("-n", "--netname", help="show which one this netname picks")
    ] = None,
    port: Annotated[int, typer.Option("-p", "--port", help="the schedulers' UDP port")] = 8765,
    timeout: Annotated[float, typer.Option(help="seconds to wait for answers")] = 2.0,
    address: Annotated[
        list[str] | None,
        typer.Option("-a", "--address", help="query this address instead of broadcasting"),
    ] = None,
) -> None:
    """List every icecream scheduler that answers a discovery query."""
    import asyncio
    import time

    from fleetwatch.sources.icecream import discovery as d

    found = asyncio.run(d.discover(port=port, timeout=timeout, addresses=address))
    if not found:
        typer.echo("no icecream scheduler answered", err=True)
        raise typer.Exit(1)
    chosen = d.choose(found, netname) if netname is not None else None
    typer.echo(f"{'scheduler':24} {'netname':16} {'protocol':>8} {'started (UTC)':20}")
    for s in found:
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s.start_time)) if s.start_time else "-"
        )
        mark = "  <- chosen" if s == chosen else ""
        typer.echo(f"{s.address:24} {s.netname:16} {s.version or '-':>8} {started:20}{mark}")
    if netname is not None and chosen is None:
        typer.echo(f"none has netname {netname!r}", err=True)
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


# -- fleetwatch shell (issue 9; src/fleetwatch/cli/shell.py) ---------------------------


@app.command()
def shell(
    url: Annotated[
        str | None,
        typer.Option(help="the hub's URL (env FLEETWATCH_URL; default http://127.0.0.1:22000)"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="bearer token, when the hub has login on (env FLEETWATCH_TOKEN)"),
    ] = None,
) -> None:
    """An interactive shell: every command, Tab completion of live ids, history, live toolbar."""
    import typer.main

    from fleetwatch.cli import main
    from fleetwatch.cli.shell import run_shell

    # The entry point's own build of the app when it has one (its light conversions).
    build = getattr(main, "command", None)
    root = build() if callable(build) else typer.main.get_command(app)
    raise typer.Exit(run_shell(root, url, token))
