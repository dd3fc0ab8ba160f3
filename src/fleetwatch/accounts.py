"""Accounts, roles, password checks and API tokens (no HTTP here: the CLI uses it too).

* **Roles** are ordered ``viewer < operator < admin``. :data:`ACTION_ROLES` is the one
  table of which role an action needs: supervisord-level actions (``update``, ``reload``,
  ``shutdown``, ``reread``) need ``admin``; every other action (processes, groups, hosts,
  build slaves, masters) needs ``operator``. A viewer acts on nothing.
* **Passwords** in ``[[users]]`` are argon2 hashes (``fleetwatch hash-password``).
  Multivisor's ``{SHA}`` + hex SHA-1 and plain text are still accepted, with a warning at
  start to move to argon2.
* **Restricted accounts** (``sources = ["lid*"]``) see and act on only the sources whose
  names match; :func:`source_of` finds the source in any id (``SOURCE``,
  ``SOURCE/HOST``, ``SOURCE:GROUP:NAME``, ``SOURCE#JOB``).
* **Tokens** (``Authorization: Bearer fwt_ID_SECRET``) live in a SQLite file; only the
  SHA-256 of the secret is stored (the secret has 256 random bits, so a slow hash adds
  nothing). Each has an owner, a role no higher than the owner's (checked again at every
  use, against the owner's current role) and an optional expiry. The store is read at
  every use, so a running hub sees tokens created or revoked by ``fleetwatch token``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fleetwatch.config import Config, UserConfig

__all__ = [
    "ACTION_ROLES",
    "ROLES",
    "Principal",
    "TokenInfo",
    "TokenStore",
    "hash_password",
    "required_role",
    "role_at_least",
    "sibling_path",
    "source_of",
    "verify_password",
]

log = logging.getLogger(__name__)

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
_RANK: dict[str, int] = {r: i for i, r in enumerate(ROLES)}

ACTION_ROLES: dict[str, Role] = {
    "update": "admin",
    "reload": "admin",
    "shutdown": "admin",
    "reread": "admin",
}
"""The role an action needs when it is not ``operator`` (the one place that says so)."""


def required_role(action: str) -> Role:
    return ACTION_ROLES.get(action, "operator")


def role_at_least(role: str, needed: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[needed]


def lower_role(a: str, b: str) -> Role:
    return ROLES[min(_RANK.get(a, 0), _RANK.get(b, 0))]


def source_of(id: str) -> str:
    """The source an entity id belongs to (source names never hold ``/``, ``:`` or ``#``)."""
    end = len(id)
    for sep in "/:#":
        i = id.find(sep)
        if 0 <= i < end:
            end = i
    return id[:end]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: an account (by session or token), or everyone when login is off."""

    name: str
    role: Role
    sources: tuple[str, ...] = ("*",)
    via: Literal["session", "token", "open"] = "open"
    token_id: str | None = None

    @property
    def restricted(self) -> bool:
        return "*" not in self.sources

    def sees(self, source: str) -> bool:
        if not self.restricted:
            return True
        return any(fnmatch.fnmatchcase(source, p) for p in self.sources)

    def sees_id(self, id: str) -> bool:
        return self.sees(source_of(id))

    def may(self, role: str) -> bool:
        return role_at_least(self.role, role)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "sources": list(self.sources),
            "via": self.via,
        }


OPEN = Principal("anonymous", "admin")
"""The caller when no ``[[users]]`` are configured (no login, as before)."""


# -------------------------------------------------------------------------- passwords

if TYPE_CHECKING:
    from argon2 import PasswordHasher

_hasher: PasswordHasher | None = None


def _argon2() -> PasswordHasher:
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (for ``[[users]] password``)."""
    return str(_argon2().hash(password))


def password_scheme(stored: str) -> Literal["argon2", "sha1", "plain"]:
    if stored.startswith("$argon2"):
        return "argon2"
    if stored.startswith("{SHA}"):
        return "sha1"
    return "plain"


_DUMMY: str | None = None


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with ``stored`` None (no such user) an
    argon2 check still runs, so the time taken does not tell which part was wrong."""
    global _DUMMY
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    if stored is None:
        if _DUMMY is None:
            _DUMMY = hash_password(secrets.token_hex(16))
        with contextlib.suppress(VerificationError, InvalidHashError):
            _argon2().verify(_DUMMY, password)
        return False
    scheme = password_scheme(stored)
    if scheme == "argon2":
        try:
            return bool(_argon2().verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    if scheme == "sha1":
        digest = hashlib.sha1(password.encode()).hexdigest()
        return hmac.compare_digest(digest.lower(), stored[5:].strip().lower())
    return hmac.compare_digest(password.encode(), stored.encode())


def warn_weak_passwords(users: Iterable[UserConfig]) -> None:
    for user in users:
        scheme = password_scheme(user.password.reveal())
        if scheme != "argon2":
            what = "a {SHA} hash" if scheme == "sha1" else "plain text"
            log.warning(
                "account %r has its password as %s: make an argon2 hash with "
                "`fleetwatch hash-password` and put it in a [[users]] table",
                user.name,
                what,
            )


def sibling_path(config: Config, configured: str | None, suffix: str) -> Path:
    """``configured`` (relative to the config's directory), else CONFIG-STEM.SUFFIX beside it."""
    base = Path(config.path).resolve().parent
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else base / path
    return base / f"{Path(config.path).stem}.{suffix}"


# ----------------------------------------------------------------------------- tokens

TOKEN_PREFIX = "fwt_"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    owner: str
    role: Role
    created: float
    expires: float | None
    revoked: float | None
    note: str

    @property
    def state(self) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= time.time():
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "owner": self.owner,
            "role": self.role,
            "created": self.created,
            "expires": self.expires,
            "revoked": self.revoked,
            "note": self.note,
            "state": self.state,
        }


class TokenError(Exception):
    """A token cannot be created or revoked; ``str()`` says why (never the token)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    owner TEXT NOT NULL,
    role TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    revoked REAL,
    note TEXT NOT NULL DEFAULT ''
)
"""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """API tokens in a SQLite file (created 0600 on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _db(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        db = sqlite3.connect(self.path, timeout=5.0)
        try:
            db.execute(_SCHEMA)
            yield db
            db.commit()
        finally:
            db.close()

    def create(
        self, owner: str, role: Role, *, expires: float | None = None, note: str = ""
    ) -> tuple[TokenInfo, str]:
        """A new token: its record and the token text (shown once, never stored)."""
        token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        info = TokenInfo(token_id, owner, role, time.time(), expires, None, note)
        with self._db(create=True) as db:
            db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                (token_id, _digest(secret), owner, role, info.created, expires, note),
            )
        return info, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def list(self) -> list[TokenInfo]:
        try:
            with self._db() as db:
                rows = db.execute(
                    "SELECT id, owner, role, created, expires, revoked, note FROM tokens "
                    "ORDER BY created"
                ).fetchall()
        except FileNotFoundError:
            return []
        return [TokenInfo(*row) for row in rows]

    def revoke(self, token_id: str) -> TokenInfo:
        try:
            with self._db() as db:
                done = db.execute(
                    "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                    (time.time(), token_id),
                ).rowcount
        except FileNotFoundError:
            done = 0
        found = next((t for t in self.list() if t.id == token_id), None)
        if found is None:
            raise TokenError(f"no token {token_id!r}")
        if not done and found.revoked is None:  # pragma: no cover - raced
            raise TokenError(f"token {token_id!r} was not revoked")
        return found

    def check(self, token: str) -> TokenInfo | None:
        """The active token ``token`` is, or None (malformed, unknown, revoked, expired)."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
        if not sep or not token_id or not secret:
            return None
        try:
            with self._db() as db:
                row = db.execute(
                    "SELECT digest, id, owner, role, created, expires, revoked, note "
                    "FROM tokens WHERE id = ?",
                    (token_id,),
                ).fetchone()
        except (FileNotFoundError, sqlite3.Error):
            return None
        if row is None or not hmac.compare_digest(row[0], _digest(secret)):
            return None
        info = TokenInfo(*row[1:])
        return info if info.state == "active" else None
