"""The ``fleetwatch`` command."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from fleetwatch import __version__
from fleetwatch.config import ConfigError, load_config, parse_listen

__all__ = ["app", "main"]

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
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _check_listen(listen: str | None) -> None:
    if listen is not None:
        try:
            parse_listen(listen)
        except ValueError as exc:
            raise _fail(f"--listen {listen!r}: {exc}") from None


@app.command()
def serve(
    config: Annotated[
        Path, typer.Option("-c", "--config", help="TOML file, or Multivisor's INI file")
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
    try:
        cfg = load_config(str(config))
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _logging(verbose)
    from fleetwatch.server import build_server

    server, _ = build_server(cfg, listen=listen, root_path=root_path)
    host, port = parse_listen(listen or cfg.hub.listen)
    typer.echo(f"fleetwatch {__version__}: {cfg.hub.name}, {len(cfg.sources)} source(s)")
    typer.echo(f"serving on http://{_url_host(host)}:{port}/")
    server.run()
    if not server.started:
        raise _fail(f"could not listen on {host}:{port}", 1)


@app.command()
def demo(
    listen: Annotated[str, typer.Option(help="HOST:PORT for the hub")] = "127.0.0.1:22000",
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Start three real supervisord instances on loopback and watch them. Ctrl-C stops all."""
    _check_listen(listen)
    _logging(verbose)
    from fleetwatch.demo import run_demo

    sys.exit(run_demo(listen))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main() -> None:
    app()
