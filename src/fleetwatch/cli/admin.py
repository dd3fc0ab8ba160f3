"""Account administration: ``hash-password``, ``token create|list|revoke``, ``audit``.

These work on the files beside the config (the token store and the audit trail), not
through a running hub: whoever may read and write them is the hub's administrator. A
running hub reads the token store at every request, so a new or revoked token counts at
once. Only Typer is imported here at start-up; the rest when a command runs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fleetwatch.config import Config

__all__ = ["register"]

ConfigOption = Annotated[
    Path, typer.Option("-c", "--config", help="the hub's config file", readable=False)
]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"fleetwatch: error: {message}", err=True)
    return typer.Exit(code)


def _when(ts: float | None) -> str:
    import time

    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def hash_password() -> None:
    """Read a password (from stdin, or a prompt without echo) and print its argon2 hash."""
    from fleetwatch.accounts import hash_password as make_hash

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise _fail("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise _fail("an empty password")
    typer.echo(make_hash(password))


token_app = typer.Typer(
    name="token", help="API tokens (Authorization: Bearer TOKEN).", no_args_is_help=True
)


def _record(cfg: Config, what: str, target: str, detail: dict[str, object]) -> None:
    """Token changes go to the audit trail too, as the local user who made them."""
    import getpass

    from fleetwatch.accounts import sibling_path
    from fleetwatch.audit import AuditLog

    trail = AuditLog(sibling_path(cfg, cfg.hub.audit_log, "audit.db"))
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "?"
    trail.record(
        user=f"local:{who}", via="cli", address="local", what=what, target=target,
        result="ok", params=detail, echo=False,
    )  # fmt: skip
    trail.close()


def _store(config: Path):  # type: ignore[no-untyped-def]
    from fleetwatch.accounts import TokenStore, sibling_path
    from fleetwatch.config import ConfigError, load_config

    try:
        cfg = load_config(str(config))
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    return cfg, TokenStore(sibling_path(cfg, cfg.hub.token_store, "tokens.db"))


@token_app.command("create")
def token_create(
    config: ConfigOption,
    user: Annotated[str, typer.Option("-u", "--user", help="the account the token acts as")],
    role: Annotated[
        str | None, typer.Option(help="viewer, operator or admin (default: the account's)")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="lifetime: 3600, 90m, 12h, 30d, 2w (default: none)")
    ] = None,
    note: Annotated[str, typer.Option(help="what the token is for")] = "",
) -> None:
    """Make a token and print it (it is shown this once; only its hash is kept)."""
    import time

    from fleetwatch.accounts import ROLES, role_at_least

    cfg, store = _store(config)
    owner = next((u for u in cfg.users if u.name == user), None)
    if owner is None:
        raise _fail(f"no account {user!r} in {config} ([[users]])")
    chosen = role or owner.role
    if chosen not in ROLES:
        raise _fail(f"--role must be viewer, operator or admin, not {chosen!r}")
    if not role_at_least(owner.role, chosen):
        raise _fail(f"{user} is {owner.role}: a token cannot be {chosen}")
    until = None
    if expires is not None:
        m = _DURATION.match(expires)
        if m is None or float(m.group(1)) <= 0:
            raise _fail(f"--expires {expires!r}: expected e.g. 3600, 90m, 12h, 30d or 2w")
        until = time.time() + float(m.group(1)) * _UNITS[m.group(2)]
    info, token = store.create(owner.name, chosen, expires=until, note=note)
    _record(cfg, "token create", f"token:{info.id}", {"owner": owner.name, "role": chosen})
    typer.echo(token)
    typer.echo(f"token {info.id} for {info.owner} ({info.role}), expires {_when(until)}", err=True)


@token_app.command("list")
def token_list(config: ConfigOption) -> None:
    """List the tokens (never their secrets)."""
    _, store = _store(config)
    tokens = store.list()
    if not tokens:
        typer.echo("no tokens")
        return
    typer.echo(f"{'id':10} {'owner':16} {'role':9} {'created (UTC)':20} {'expires (UTC)':20} state")
    for t in tokens:
        line = f"{t.id:10} {t.owner:16} {t.role:9} {_when(t.created):20} {_when(t.expires):20} "
        typer.echo(line + t.state + (f"  {t.note}" if t.note else ""))


@token_app.command("revoke")
def token_revoke(
    config: ConfigOption, token_id: Annotated[str, typer.Argument(help="the token's id")]
) -> None:
    """Revoke a token: it stops working at once, in a running hub too."""
    from fleetwatch.accounts import TokenError

    cfg, store = _store(config)
    try:
        info = store.revoke(token_id)
    except TokenError as exc:
        raise _fail(str(exc), 1) from None
    _record(cfg, "token revoke", f"token:{info.id}", {"owner": info.owner})
    typer.echo(f"revoked token {info.id} of {info.owner}")


def audit(
    config: ConfigOption,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="newest N entries")] = 50,
    user: Annotated[str | None, typer.Option("-u", "--user", help="one account's")] = None,
    json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Show the audit trail: who did what, from where, on which target, with what result."""
    from fleetwatch.accounts import sibling_path
    from fleetwatch.audit import AuditLog
    from fleetwatch.config import ConfigError, load_config

    try:
        cfg = load_config(str(config))
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    trail = AuditLog(sibling_path(cfg, cfg.hub.audit_log, "audit.db"))
    rows = trail.entries(limit=limit, user=user)
    if json:
        import orjson

        for r in rows:
            typer.echo(orjson.dumps(r.as_dict()).decode())
        return
    if not rows:
        typer.echo("no audit entries")
        return
    for r in rows:
        error = f"  ({r.error})" if r.error else ""
        target = f" {r.target}" if r.target else ""
        typer.echo(
            f"{_when(r.ts)}  {r.user:12} {r.via:8} {r.address:15} {r.what}{target}: "
            f"{r.result}{error}"
        )


def register(app: typer.Typer) -> None:
    app.command("hash-password")(hash_password)
    app.add_typer(token_app)
    app.command("audit")(audit)
