"""The ``fleetwatch`` command's Typer app (:mod:`fleetwatch.cli.main` runs it).

Start-up time matters: this module imports only Typer, and each command imports what it
needs when it runs (the server, uvicorn and the sources only for ``serve`` and ``demo``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetwatch import __version__
from fleetwatch.cli.targets import VERBS, Verb

if TYPE_CHECKING:
    import socket

    from fleetwatch.client import HubClient
    from fleetwatch.config import Config

__all__ = ["app"]

app = typer.Typer(
    name="fleetwatch",
    help="One live monitor and control hub for build clusters and process fleets.",
    no_args_is_help=True,
    add_completion=True,
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


def _load(config: Path, *, sources_optional: bool = False) -> Config:
    from fleetwatch.config import ConfigError, load_config

    try:
        return load_config(str(config), sources_optional=sources_optional)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _need_redis() -> None:
    import importlib.util

    if importlib.util.find_spec("redis") is None:
        raise _fail("a bus needs redis-py: pip install redis")


def _with_bus(cfg: Config, bus: str | None) -> Config:
    """``cfg`` with ``[hub] bus`` set to ``--bus`` (checked: exit 2 when malformed)."""
    import dataclasses

    from fleetwatch.bus import check_bus_url

    if bus is None:
        if cfg.hub.bus:
            _need_redis()
        return cfg
    try:
        check_bus_url(bus)
    except ValueError as exc:
        raise _fail(f"--bus: {exc}") from None
    _need_redis()
    return dataclasses.replace(cfg, hub=dataclasses.replace(cfg.hub, bus=bus))


def _bind(listen: str) -> socket.socket:
    """The listening socket, bound before anything starts; exit 1 when it cannot be."""
    from fleetwatch.config import parse_listen
    from fleetwatch.server import ListenError, listen_socket

    try:
        return listen_socket(*parse_listen(listen))
    except ListenError as exc:
        raise _fail(str(exc), 1) from None


def _check_exposure(cfg: Config, listen: str | None, insecure_no_login: bool) -> None:
    """No [[users]] and a non-loopback listen: exit 2 saying why (issue 11)."""
    from fleetwatch.server import ListenError, check_exposure, tls_options

    try:
        check_exposure(cfg, listen, insecure_no_login=insecure_no_login, warn=False)
        tls_options(cfg)
    except ListenError as exc:
        raise _fail(str(exc)) from None


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
    insecure_no_login: Annotated[
        bool,
        typer.Option(
            "--insecure-no-login",
            help="listen beyond loopback with no [[users]]: anyone who reaches it may act",
        ),
    ] = False,
    bus: Annotated[
        str | None,
        typer.Option(help="redis://HOST:PORT/DB (/DB optional): also watch the collectors there"),
    ] = None,
) -> None:
    """Watch the fleet described by CONFIG and serve the API and web app."""
    _check_listen(listen)
    root_path = _check_root_path(root_path)
    cfg = _with_bus(_load(config, sources_optional=bus is not None), bus)
    _logging(verbose)
    _check_exposure(cfg, listen, insecure_no_login)
    sock = _bind(listen or cfg.hub.listen)
    try:
        from fleetwatch.server import ListenError, bound_listen, build_server

        address = bound_listen(listen or cfg.hub.listen, sock)
        try:
            server, _ = build_server(cfg, listen=address, root_path=root_path)
        except ListenError as exc:  # [hub] multivisor_listen's port
            raise _fail(str(exc), 1) from None
        typer.echo(f"fleetwatch {__version__}: {cfg.hub.name}, {len(cfg.sources)} source(s)")
        scheme = "https" if cfg.hub.tls_cert else "http"
        typer.echo(f"serving on {scheme}://{address}/")
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise _fail("the hub did not start (see the log above)", 1)


@app.command()
def collect(
    config: Annotated[
        Path, typer.Option("-c", "--config", help="TOML file of the sources", readable=False)
    ],
    bus: Annotated[str, typer.Option(help="redis://HOST:PORT/DB (the /DB optional) to publish to")],
    name: Annotated[
        str | None, typer.Option(help="this collector's name (default: the host's name)")
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Run only CONFIG's sources and publish their changes to a hub through Redis."""
    from fleetwatch.bus import COLLECTOR_NAME, check_bus_url, redacted
    from fleetwatch.cli.collect import default_name, run_collector

    try:
        check_bus_url(bus)
    except ValueError as exc:
        raise _fail(f"--bus: {exc}") from None
    _need_redis()
    name = name if name is not None else default_name()
    if not COLLECTOR_NAME.fullmatch(name):
        raise _fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' (at most 100)")
    cfg = _load(config)
    _logging(verbose)
    typer.echo(
        f"fleetwatch {__version__}: collector {name}, {len(cfg.sources)} source(s), "
        f"publishing to {redacted(bus)}"
    )
    run_collector(cfg, bus, name)


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


# -- the client commands: every one reads or acts through a hub's public API ---------------

_URL_HELP = "the hub's URL [env FLEETWATCH_URL; default http://127.0.0.1:22000]"
Url = Annotated[str | None, typer.Option("--url", help=_URL_HELP, show_default=False)]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="bearer token when the hub has login on [env FLEETWATCH_TOKEN]",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of tables")]
Yes = Annotated[
    bool, typer.Option("-y", "--yes", help="do not ask before acting on several sources")
]
FilterOpt = Annotated[
    str | None,
    typer.Option("--filter", "-f", help="also act on what this filter selects", show_default=False),
]


def _complete_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Live ids from the hub for shell completion: short timeout, silent on any failure."""
    try:
        from fleetwatch.client import HubClient

        params = ctx.params
        with HubClient(params.get("url"), token=params.get("token"), timeout=0.5) as hub:
            sources = [s["id"] for s in hub.rows("sources")]
            processes = hub.rows("processes")
            nodes = [n["id"] for n in hub.rows("nodes")]
    except Exception:
        return []
    groups = sorted({f"{p['source']}:{p['group']}" for p in processes})
    ids = [*sources, *groups, *(p["id"] for p in processes), *nodes]
    return [i for i in ids if i.startswith(incomplete)]


def _client(url: str | None, token: str | None) -> HubClient:
    from fleetwatch.cli.common import client

    return client(url, token)


def _run(body: Callable[[], int | None]) -> None:
    """Run a client command's body: a Failure is one line on stderr and its exit status."""
    from fleetwatch.cli.common import Failure

    try:
        code = body()
    except Failure as exc:
        raise _fail(str(exc), exc.code) from None
    if code:
        raise typer.Exit(code)


@app.command()
def status(
    filter: Annotated[
        str, typer.Argument(metavar="FILTER", help="filter, e.g. state:running group:web")
    ] = "",
    url: Url = None,
    token: Token = None,
    json: Json = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="the fleet as it was then, from the history (3:12, -2h, ISO...)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Processes, nodes and jobs matching FILTER, coloured by state, with a summary.

    --json prints {"sources": [...], "nodes": [...], "processes": [...], "jobs": [...]},
    each list as GET /api/{kind}?q=FILTER answers it. With --at, the fleet as it was at
    TIME (GET /api/history/fleet), filtered here, and "at" in the JSON.
    """

    def body() -> None:
        if at is not None:
            from fleetwatch.cli.history import status_at

            with _client(url, token) as hub:
                status_at(hub, at, filter, json)
            return
        from fleetwatch.cli.status import status as run

        with _client(url, token) as hub:
            run(hub, filter, json)

    _run(body)


@app.command()
def history(
    target: Annotated[
        str,
        typer.Argument(
            metavar="PROCESS|HOST",
            help="a process (SOURCE:GROUP:NAME or NAME) or a host (SOURCE/HOST or HOST)",
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="from (default: a day before --until)"),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="to (default: now)")
    ] = None,
    url: Url = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """A process's state changes, or a host's and the jobs it ran, from the hub's history.

    TIME is local time: 2026-12-02T03:12, 3:12 (the last one), "yesterday 03:00", -2h,
    "30m ago", now, or Unix seconds. --json prints GET /api/history/processes/ID (or
    /nodes/ID) as it answers.
    """

    def body() -> None:
        from fleetwatch.cli.history import history as run

        with _client(url, token) as hub:
            run(hub, target, since, until, json)

    _run(body)


@app.command()
def sources(
    filter: Annotated[
        str, typer.Argument(metavar="FILTER", help="filter, e.g. kind:supervisor")
    ] = "",
    url: Url = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """The watched systems and their link status.

    --json prints GET /api/sources?q=FILTER: a list of sources (id, kind, name, url,
    status, since, error, version, actions, info, last_seen).
    """

    def body() -> None:
        from fleetwatch.cli.status import sources as run

        with _client(url, token) as hub:
            run(hub, filter, json)

    _run(body)


@app.command()
def notes(
    limit: Annotated[int, typer.Option("-n", "--limit", help="how many, newest last")] = 20,
    url: Url = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Recent notifications (a process left RUNNING, a source went offline, ...).

    --json prints GET /api/notifications?limit=N: a list of {"t", "id", "ts",
    "severity", "source", "subject": {"kind", "id"}, "title", "text"}, oldest first.
    """

    def body() -> None:
        from fleetwatch.cli.common import Failure
        from fleetwatch.cli.status import notes as run

        if not 1 <= limit <= 10_000:
            raise Failure("--limit must be between 1 and 10000")
        with _client(url, token) as hub:
            run(hub, limit, json)

    _run(body)


def _act(
    action: str,
    kind: str,
    targets: list[str] | None,
    filter: str | None,
    url: str | None,
    token: str | None,
    yes: bool,
    json: bool,
    params: dict[str, object] | None = None,
) -> None:
    def body() -> int:
        from fleetwatch.cli.actions import run

        with _client(url, token) as hub:
            return run(
                hub,
                action,
                kind,
                targets or [],
                filter_q=filter,
                params=params,
                yes=yes,
                as_json=json,
            )

    _run(body)


_ACTION_EPILOG = (
    "Each target's result is printed (a failure says what the system said); exit status 1 "
    'when any failed. --json prints a list of {"target": {"kind", "id"}, "ok", '
    '"error", "detail"}.'
)


def _verb_command(v: Verb) -> None:
    metavar = v.metavar
    if v.kind == "process":
        what = (
            "TARGETs are ids (SOURCE, SOURCE:GROUP, SOURCE:GROUP:NAME), globs (sv1:web:*) "
            "or a bare program name (every supervisor's)."
        )
    elif v.kind == "node":
        what = "HOSTs are node ids (SOURCE/HOST), host names (on every source) or globs."
    else:
        what = "SOURCEs are source ids or globs."
    targets_arg = Annotated[
        list[str] | None,
        typer.Argument(metavar=f"{metavar}...", autocompletion=_complete_ids, show_default=False),
    ]

    def command(
        targets: list[str] | None = None,
        filter: FilterOpt = None,
        yes: Yes = False,
        url: Url = None,
        token: Token = None,
        json: Json = False,
    ) -> None:
        _act(v.action, v.kind, targets, filter, url, token, yes, json)

    command.__annotations__["targets"] = targets_arg  # per verb: its metavar
    command.__doc__ = f"{v.help}\n\n{what}"
    app.command(v.command, epilog=_ACTION_EPILOG)(command)


for _verb in VERBS:
    if not _verb.params:
        _verb_command(_verb)


@app.command("signal", epilog=_ACTION_EPILOG)
def signal_(
    sig: Annotated[
        str, typer.Argument(metavar="SIG", help="HUP, INT, TERM, KILL, USR1, USR2, ...")
    ],
    targets: Annotated[
        list[str] | None,
        typer.Argument(metavar="TARGET...", autocompletion=_complete_ids, show_default=False),
    ] = None,
    filter: FilterOpt = None,
    yes: Yes = False,
    url: Url = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Send a signal (HUP, TERM, ...) to processes.

    TARGETs are ids (SOURCE, SOURCE:GROUP, SOURCE:GROUP:NAME), globs (sv1:web:*) or a
    bare program name (every supervisor's).
    """
    name = sig.upper().removeprefix("SIG")
    _act("signal", "process", targets, filter, url, token, yes, json, {"signal": name})


@app.command("do", epilog=_ACTION_EPILOG)
def do(
    action: Annotated[
        str, typer.Argument(help="an action a source lists (GET /api/sources: actions)")
    ],
    targets: Annotated[
        list[str] | None,
        typer.Argument(metavar="TARGET...", autocompletion=_complete_ids, show_default=False),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE, repeatable", show_default=False),
    ] = None,
    filter: FilterOpt = None,
    yes: Yes = False,
    url: Url = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Run any action of the model on TARGETs (ids or globs of any kind the action takes)."""

    def body() -> int:
        from fleetwatch.cli.actions import parse_params, run

        params = parse_params(param or [])
        with _client(url, token) as hub:
            return run(
                hub,
                action,
                "any",
                targets or [],
                filter_q=filter,
                params=params,
                yes=yes,
                as_json=json,
            )

    _run(body)


@app.command()
def tail(
    process: Annotated[
        str,
        typer.Argument(
            metavar="PROCESS", autocompletion=_complete_ids, help="id, glob or program name"
        ),
    ],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep printing what is written")
    ] = False,
    stderr: Annotated[
        bool, typer.Option("--stderr", help="the stderr log instead of stdout")
    ] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", help="how many last lines")] = 10,
    url: Url = None,
    token: Token = None,
) -> None:
    """The end of a process's log, and with -f what follows, live (Ctrl-C stops)."""

    def body() -> None:
        from fleetwatch.cli.common import Failure
        from fleetwatch.cli.tail import tail as run

        if lines < 0:
            raise Failure("--lines must be 0 or more")
        with _client(url, token) as hub:
            run(hub, process, follow=follow, stderr=stderr, lines=lines)

    _run(body)


@app.command()
def watch(
    filter: Annotated[
        str, typer.Argument(metavar="FILTER", help="filter, e.g. state:running group:web")
    ] = "",
    url: Url = None,
    token: Token = None,
) -> None:
    """A live view of what FILTER matches, redrawn from the hub's stream (Ctrl-C stops)."""

    def body() -> None:
        from fleetwatch.cli.watch import watch as run

        with _client(url, token) as hub:
            run(hub, filter)

    _run(body)


# Accounts, API tokens and the audit trail (issue 11): hash-password, token, audit.
from fleetwatch.cli import admin as _admin  # noqa: E402

_admin.register(app)

# -- terminal UI (issue 10) --------------------------------------------------------------


@app.command()
def tui(
    url: Annotated[
        str | None,
        typer.Option(
            help="the hub's base URL (env FLEETWATCH_URL, default http://127.0.0.1:22000)"
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="bearer token (env FLEETWATCH_TOKEN)", show_default=False)
    ] = None,
) -> None:
    """Watch and control the hub's fleet in the terminal (piw-monitor's screen and keys)."""
    from fleetwatch.tui import FleetApp, RemoteBackend

    try:
        backend = RemoteBackend(url, token)
    except ValueError as exc:
        raise _fail(f"--url: {exc}") from None
    FleetApp(backend, title=f"fleetwatch {backend.where}").run()


@app.command(
    name="piw-monitor",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
def piw_monitor(ctx: typer.Context) -> None:
    """piw-monitor: watch and control one piwheels master (its own options: -h)."""
    from fleetwatch.tui.piw_monitor import main

    raise typer.Exit(main(ctx.args))


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
