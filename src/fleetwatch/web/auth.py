"""Who is calling, and what they may see and do: sessions, bearer tokens, roles, CSRF.

With ``[[users]]`` in the config (:mod:`fleetwatch.accounts`):

* Every ``/api/...`` and ``/multivisor/...`` request and the stream's handshake needs a
  caller: ``Authorization: Bearer TOKEN`` (``fleetwatch token create``) or the browser's
  session cookie (``POST /api/login``). Open without one: ``/api/login``, the OpenAPI
  document and its docs page, and the web app's files. Anonymous: 401; beyond the
  caller's role: 403 (JSON ``{"error"}``; on ``/api/actions`` the action result shape).
  A stream handshake without a caller is answered 401 before it is accepted.
* **Sessions**: ``fleetwatch_session``, signed (itsdangerous) with the key of
  ``FLEETWATCH_SECRET_KEY`` / ``MULTIVISOR_SECRET_KEY`` or of a 0600 key file beside the
  config; HttpOnly, SameSite=Strict, Secure under TLS, ``[hub] session_lifetime``. It
  names the account, a session id (revoked at logout) and a fingerprint of the
  account's password hash (a new password ends the old sessions).
* **CSRF**: a request that changes state (POST, PUT, PATCH, DELETE) made with the session
  cookie must carry ``X-CSRF-Token``: the token ``/api/login`` and ``/api/me`` answer
  (also in the readable cookie ``fleetwatch_csrf``), an HMAC of the session id.
  Requests with a bearer token carry no ambient credential and need none.
* **Login**: a failure says only "wrong username or password" (an unknown account takes
  an argon2 check too). Failures are limited per account and per client address
  (:class:`RateLimiter`): past the limit, 429 with ``Retry-After``.
* **Restricted accounts** (``sources = [...]``) see only their sources in every answer,
  including the stream (:class:`StreamView`); an id of another source is answered 404,
  as if absent.

Without ``[[users]]`` nothing changes: every caller is :data:`~fleetwatch.accounts.OPEN`.
Every action and login is written to the audit trail (:mod:`fleetwatch.audit`).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetwatch.accounts import (
    ACTION_ROLES,
    OPEN,
    Principal,
    TokenStore,
    lower_role,
    required_role,
    sibling_path,
    source_of,
    verify_password,
    warn_weak_passwords,
)
from fleetwatch.audit import AuditLog
from fleetwatch.config import Config, UserConfig
from fleetwatch.errors import ActionError, UnknownTarget
from fleetwatch.model import Delta, Snapshot, dumps
from fleetwatch.sources.base import ActionResult, Target

__all__ = [
    "Auth",
    "AuthMiddleware",
    "Forbidden",
    "RateLimiter",
    "StreamView",
    "act",
    "add_auth_routes",
    "principal_of",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "fleetwatch_session"
CSRF_COOKIE = "fleetwatch_csrf"
CSRF_HEADER = "x-csrf-token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_FAILED = "wrong username or password"
_PUBLIC = frozenset({"/api/login", "/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect"})
_SCOPE_KEY = "fleetwatch.principal"
_RECHECK_KEY = "fleetwatch.still_valid"


class Forbidden(ActionError):
    """The caller's role does not allow this."""

    status = 403


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    address: str
    auth: Auth


_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "fleetwatch_caller", default=None
)

_NOBODY = Principal("nobody", "viewer", sources=())


def principal_of(scope: Scope) -> Principal:
    """The caller :class:`AuthMiddleware` found (sees nothing when it did not run)."""
    found = scope.get(_SCOPE_KEY)
    return found if isinstance(found, Principal) else _NOBODY


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


class RateLimiter:
    """Failed logins per account and per address in a sliding window."""

    def __init__(
        self,
        *,
        per_account: int = 5,
        per_address: int = 20,
        window: float = 300.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        self.max_keys = max_keys
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after(self, account: str, address: str) -> float:
        """Seconds until another attempt is allowed (0: now)."""
        now = self._clock()
        waits = [0.0]
        for key, limit in ((f"u:{account}", self.per_account), (f"a:{address}", self.per_address)):
            q = self._recent(key, now)
            if len(q) >= limit:
                waits.append(q[len(q) - limit] + self.window - now)
        return max(waits)

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        if len(self._fails) >= self.max_keys:
            for key in list(self._fails)[: self.max_keys // 10]:
                del self._fails[key]
        for key in (f"u:{account}", f"a:{address}"):
            self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, account: str) -> None:
        self._fails.pop(f"u:{account}", None)


def _load_secret(config: Config) -> bytes:
    for var in ("FLEETWATCH_SECRET_KEY", "MULTIVISOR_SECRET_KEY"):
        value = os.environ.get(var)
        if value:
            return value.encode()
    path = sibling_path(config, config.hub.secret_key_file, "secret")
    try:
        data = path.read_bytes().strip()
        if data:
            return data
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key + b"\n")
    finally:
        os.close(fd)
    log.info("made a new session key in %s", path)
    return key


def _fingerprint(user: UserConfig) -> str:
    return hashlib.blake2b(user.password.reveal().encode(), digest_size=6).hexdigest()


class Auth:
    """The accounts, tokens, sessions and audit trail of one hub."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.enabled = bool(config.users)
        self.users = {u.name: u for u in config.users}
        self.tokens = TokenStore(sibling_path(config, config.hub.token_store, "tokens.db"))
        trail = self.enabled or config.hub.audit_log is not None
        self.audit = AuditLog(
            sibling_path(config, config.hub.audit_log, "audit.db") if trail else None
        )
        self.lifetime = config.hub.session_lifetime
        self.secure = bool(config.hub.tls_cert)
        self.limiter = RateLimiter()
        self._revoked: dict[str, float] = {}
        self._key = b""
        if self.enabled:
            warn_weak_passwords(config.users)
            self._key = _load_secret(config)
        self._signer = URLSafeTimedSerializer(self._key or b"-", salt="fleetwatch-session")

    def __repr__(self) -> str:
        return f"Auth(enabled={self.enabled}, users={len(self.users)})"

    # -- who is it ---------------------------------------------------------------

    def _account(self, user: UserConfig, via: Any, token_id: str | None = None) -> Principal:
        return Principal(user.name, user.role, tuple(user.sources), via, token_id)

    def from_token(self, token: str) -> Principal | None:
        info = self.tokens.check(token)
        if info is None:
            return None
        owner = self.users.get(info.owner)
        if owner is None:
            return None
        role = lower_role(info.role, owner.role)
        return Principal(owner.name, role, tuple(owner.sources), "token", info.id)

    def from_session(self, cookie: str) -> tuple[Principal, str] | None:
        try:
            data = self._signer.loads(cookie, max_age=int(self.lifetime))
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user = self.users.get(str(data.get("u")))
        sid = str(data.get("s", ""))
        if user is None or not sid or sid in self._revoked or data.get("p") != _fingerprint(user):
            return None
        return self._account(user, "session"), sid

    def csrf_token(self, sid: str) -> str:
        return hmac.new(self._key, f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()

    def identify(self, scope: Scope) -> tuple[Principal | None, str | None]:
        """The caller and, when it came by cookie, its session id (for the CSRF check)."""
        if not self.enabled:
            return OPEN, None
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer":
                return None, None
            return self.from_token(token.strip()), None
        cookie = headers.get(b"cookie")
        if cookie:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(cookie.decode("latin-1"))
            except Exception:
                return None, None
            morsel = jar.get(SESSION_COOKIE)
            if morsel is not None:
                found = self.from_session(morsel.value)
                if found is not None:
                    return found
        return None, None

    # -- sessions ----------------------------------------------------------------

    def login(self, username: str, password: str) -> tuple[Principal, str, str] | None:
        """The account, its cookie value and session id, or None (wrong either way)."""
        user = self.users.get(username)
        ok = verify_password(user.password.reveal() if user else None, password)
        if user is None or not ok:
            return None
        sid = secrets.token_urlsafe(16)
        cookie = self._signer.dumps({"u": user.name, "s": sid, "p": _fingerprint(user)})
        return self._account(user, "session"), cookie, sid

    def logout(self, sid: str) -> None:
        now = time.time()
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}
        self._revoked[sid] = now + self.lifetime

    def set_cookies(
        self, response: Response, cookie: str, sid: str, *, https: bool = False
    ) -> None:
        common: dict[str, Any] = {
            "max_age": int(self.lifetime),
            "path": "/",
            "samesite": "strict",
            "secure": self.secure or https,
        }
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True, **common)
        response.set_cookie(CSRF_COOKIE, self.csrf_token(sid), httponly=False, **common)

    def clear_cookies(self, response: Response) -> None:
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", samesite="strict", secure=self.secure)

    def close(self) -> None:
        self.audit.close()


# ---------------------------------------------------------------------- middleware


def _json_response(status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()):  # type: ignore[no-untyped-def]
    raw = orjson.dumps(body)
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in headers]
    return raw, hdrs


class _DenialNoise(logging.Filter):
    """Drops the error line uvicorn's websockets-sansio (0.54) logs after a WebSocket
    denial response (``websocket.http.response.*``, which it does support: it never marks
    that handshake complete). Only as many lines as this middleware sent denials."""

    MESSAGE = "ASGI callable returned without completing handshake."

    def __init__(self) -> None:
        super().__init__()
        self.pending = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pending > 0 and record.getMessage() == self.MESSAGE:
            self.pending -= 1
            return False
        return True


_DENIALS = _DenialNoise()
logging.getLogger("uvicorn.error").addFilter(_DENIALS)


class AuthMiddleware:
    """Finds the caller of every request, refuses anonymous ones, checks CSRF.

    ``multivisor``: the app is Multivisor's API alone (its second port), where every
    ``/api/...`` path is one of Multivisor's.
    """

    def __init__(self, app: ASGIApp, auth: Auth, *, multivisor: bool = False) -> None:
        self.app = app
        self.auth = auth
        self.multivisor = multivisor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        principal, sid = self.auth.identify(scope)
        scope[_SCOPE_KEY] = principal if principal is not None else _NOBODY
        if scope["type"] == "websocket" and self.auth.enabled:
            scope[_RECHECK_KEY] = lambda: self.auth.identify(scope)[0] is not None
        token = _CALLER.set(Caller(principal or _NOBODY, _address(scope), self.auth))
        try:
            refusal = self._refusal(scope, path, principal, sid)
            if refusal is None:
                await self.app(scope, receive, send)
            else:
                await self._refuse(scope, receive, send, path, *refusal)
        finally:
            _CALLER.reset(token)

    def _refusal(
        self, scope: Scope, path: str, principal: Principal | None, sid: str | None
    ) -> tuple[int, str] | None:
        if not self.auth.enabled:
            return None
        multivisor = self.multivisor or path.startswith("/multivisor/")
        if multivisor and not self.multivisor:
            path = path.removeprefix("/multivisor")
        if not path.startswith("/api/") and (multivisor or path != "/metrics"):
            return None  # the web app's files (its login page among them)
        if not multivisor and path in _PUBLIC:
            return None
        if principal is None:
            return 401, "login required: POST /api/login, or send Authorization: Bearer TOKEN"
        method = str(scope.get("method", "GET"))
        if scope["type"] == "http" and method in STATE_CHANGING and sid is not None:
            headers = {k.lower(): v for k, v in scope.get("headers", ())}
            sent = headers.get(CSRF_HEADER.encode(), b"").decode("latin-1")
            if not hmac.compare_digest(sent, self.auth.csrf_token(sid)):
                return 403, f"missing or wrong CSRF token (send the {CSRF_HEADER} header)"
        if multivisor:
            if principal.restricted:
                return 403, "Multivisor's API is for accounts that see every source"
            if method in STATE_CHANGING:
                needed = "admin" if path.startswith("/api/supervisor/") else "operator"
                if not principal.may(needed):
                    return (
                        403,
                        f"this needs the {needed} role; {principal.name} is {principal.role}",
                    )
        return None

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, path: str, status: int, text: str
    ) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            raw, headers = _json_response(status, {"error": text})
            _DENIALS.pending += 1
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": raw})
            return
        body: dict[str, Any] = {"error": text}
        if path.endswith("/api/actions"):
            body = {"ok": False, "error": text, "detail": None}
        extra = [("www-authenticate", 'Bearer realm="fleetwatch"')] if status == 401 else []
        raw, headers = _json_response(status, body, extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})


# ---------------------------------------------------------------- actions, views


async def act(
    hub: Any, target: Target, name: str, params: dict[str, Any] | None = None
) -> ActionResult:
    """Run an action as the current caller: role and source checked, audited either way.

    Raises :class:`Forbidden` (403), :class:`~fleetwatch.errors.UnknownTarget` (404, also
    for a target of a source the caller may not see) and the hub's other ActionErrors.
    """
    caller = _CALLER.get()
    principal = caller.principal if caller else _NOBODY
    where = f"{target.kind}:{target.id}"

    def record(result: str, error: str | None) -> None:
        if caller is not None:
            caller.auth.audit.record(
                user=principal.name,
                via=principal.via,
                address=caller.address,
                what=name,
                target=where,
                result=result,
                error=error,
                params=params,
                echo=result == "refused",  # the hub logs what it ran
            )

    try:
        if not principal.sees_id(target.id):
            raise UnknownTarget(f"no {target.kind} {target.id!r}")
        needed = required_role(name)
        if not principal.may(needed):
            raise Forbidden(
                f"{name!r} needs the {needed} role; {principal.name} is {principal.role}"
            )
        result: ActionResult = await hub.run_action(target, name, params, user=principal.name)
    except ActionError as exc:
        record("refused", str(exc))
        raise
    record("ok" if result.ok else "failed", result.error)
    return result


def visible_snapshot(principal: Principal, snap: Snapshot) -> dict[str, Any]:
    data = snap.as_dict()
    if principal.restricted:
        for key in ("sources", "nodes", "processes", "jobs"):
            data[key] = [e for e in data[key] if principal.sees_id(e.id)]
    return data


class CredentialsGone(Exception):
    """The stream's token was revoked or expired, or its session ended: it is closed."""


CREDENTIALS_GONE = 4401
"""The stream's close code when its credentials stop being valid."""


class StreamView:
    """What one stream client may see. A restricted account's deltas hold only its
    sources' changes, numbered on their own (gap-free for it), so it never resumes from
    the hub's numbers: it always starts from a snapshot.

    Before a frame is sent, the caller's credentials are checked again (at most every
    :attr:`recheck` seconds): a revoked or expired token, or an ended session, closes
    the stream (:class:`CredentialsGone`, close code 4401)."""

    recheck = 1.0

    def __init__(self, principal: Principal, still_valid: Callable[[], bool] | None = None) -> None:
        self.principal = principal
        self.seq = 0
        self._still_valid = still_valid
        self._checked = time.monotonic()

    @classmethod
    def of(cls, scope: Scope) -> StreamView:
        """The view of the stream whose handshake ``scope`` is (AuthMiddleware's caller)."""
        check = scope.get(_RECHECK_KEY)
        return cls(principal_of(scope), check if callable(check) else None)

    def _check(self) -> None:
        if self._still_valid is None:
            return
        now = time.monotonic()
        if now - self._checked < self.recheck:
            return
        self._checked = now
        if not self._still_valid():
            raise CredentialsGone

    @property
    def resumable(self) -> bool:
        return not self.principal.restricted

    def snapshot(self, snap: Snapshot) -> bytes:
        self._check()
        self.seq = snap.seq
        return dumps({"t": "snapshot", **visible_snapshot(self.principal, snap)})

    def delta(self, delta: Delta) -> bytes | None:
        self._check()
        frame = delta.frame()
        if not self.principal.restricted:
            return frame
        data = orjson.loads(frame)
        changes = [c for c in data["changes"] if self.principal.sees_id(c["id"])]
        if not changes:
            return None
        self.seq += len(changes)
        return dumps({"t": "delta", "seq": self.seq, "changes": changes})

    def note(self, frame: dict[str, Any]) -> bytes | None:
        self._check()
        if not self.principal.sees(str(frame.get("source", ""))):
            return None
        return dumps(frame)


def sees(principal: Principal, id: str) -> bool:
    return principal.sees(source_of(id))


# ------------------------------------------------------------------------- routes


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=4096)


class MeOut(BaseModel):
    name: str
    role: str
    sources: list[str]
    via: str
    login: bool
    """Whether this hub has login at all (no ``[[users]]``: everyone is ``anonymous``)."""
    csrf: str | None = None
    """The token to send as ``X-CSRF-Token`` with a cookie session's POSTs."""
    expires: float | None = None
    action_roles: dict[str, str] = Field(
        default_factory=dict,
        description='The role each action needs ("*": every action not named); the web '
        "app shows a button only when the caller's role reaches it (the hub still checks).",
    )


class AuditOut(BaseModel):
    id: int
    ts: float
    user: str
    via: str
    address: str
    what: str
    target: str
    result: str
    error: str | None
    params: dict[str, Any]


class _ErrorOut(BaseModel):
    error: str


def _err(text: str) -> dict[str, Any]:
    return {"model": _ErrorOut, "description": text}


def add_auth_routes(router: FastAPI, auth: Auth) -> None:
    """``/api/login``, ``/api/logout``, ``/api/me`` and ``/api/audit`` on ``router`` (the
    app itself: routes of an included router are not seen by the 405 answer's lookup)."""

    def me_body(principal: Principal, sid: str | None) -> dict[str, Any]:
        return {
            **principal.as_dict(),
            "login": auth.enabled,
            "csrf": auth.csrf_token(sid) if sid else None,
            "expires": None,
            "action_roles": {"*": "operator", **ACTION_ROLES},
        }

    @router.post(
        "/api/login",
        response_model=MeOut,
        summary="Log in: a session cookie",
        responses={
            400: _err("a malformed body"),
            401: _err(LOGIN_FAILED),
            404: _err("login is off (no [[users]])"),
            429: _err("too many failed logins; see Retry-After"),
        },
    )
    async def login(body: LoginIn, request: Request) -> Response:
        if not auth.enabled:
            return JSONResponse({"error": "login is off: this hub has no [[users]]"}, 404)
        address = _address(request.scope)
        wait = auth.limiter.retry_after(body.username, address)
        if wait > 0:
            auth.audit.record(
                user=body.username,
                via="session",
                address=address,
                what="login",
                result="refused",
                error="rate limited",
            )
            return JSONResponse(
                {"error": "too many failed logins: try again later"},
                429,
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        # argon2 takes ~50-250 ms of CPU: not on the loop, which serves every stream.
        done = await asyncio.to_thread(auth.login, body.username, body.password)
        if done is None:
            auth.limiter.failed(body.username, address)
            auth.audit.record(
                user=body.username,
                via="session",
                address=address,
                what="login",
                result="failed",
                error=LOGIN_FAILED,
            )
            return JSONResponse({"error": LOGIN_FAILED}, 401)
        principal, cookie, sid = done
        auth.limiter.succeeded(body.username)
        auth.audit.record(
            user=principal.name, via="session", address=address, what="login", result="ok"
        )
        out = me_body(principal, sid)
        out["expires"] = time.time() + auth.lifetime
        response = JSONResponse(out)
        auth.set_cookies(response, cookie, sid, https=request.url.scheme == "https")
        return response

    @router.post(
        "/api/logout",
        summary="Log out: the session ends",
        responses={401: _err("not logged in"), 403: _err("missing or wrong CSRF token")},
    )
    async def logout(request: Request) -> Response:
        principal = principal_of(request.scope)
        _, sid = auth.identify(request.scope)
        if sid is not None:
            auth.logout(sid)
            auth.audit.record(
                user=principal.name,
                via="session",
                address=_address(request.scope),
                what="logout",
                result="ok",
            )
        response = JSONResponse({"ok": True})
        auth.clear_cookies(response)
        return response

    @router.get(
        "/api/me",
        response_model=MeOut,
        summary="Who you are: account, role, sources",
        responses={401: _err("not logged in")},
    )
    async def me(request: Request) -> dict[str, Any]:
        _, sid = auth.identify(request.scope)
        return me_body(principal_of(request.scope), sid)

    @router.get(
        "/api/audit",
        response_model=list[AuditOut],
        summary="The audit trail, oldest first (admin)",
        responses={
            400: _err("limit out of range"),
            401: _err("not logged in"),
            403: _err("needs the admin role"),
        },
    )
    async def audit(
        request: Request,
        limit: int = Query(100, ge=1, le=10_000),
        user: str | None = Query(None, description="only this account's entries"),
    ) -> Response:
        principal = principal_of(request.scope)
        if not principal.may("admin"):
            return JSONResponse({"error": "the audit trail needs the admin role"}, 403)
        rows = auth.audit.entries(limit=limit, user=user)
        return Response(dumps([r.as_dict() for r in rows]), media_type="application/json")


def secret_key_path(config: Config) -> Path:
    return sibling_path(config, config.hub.secret_key_file, "secret")


_ANONYMOUS = "anonymous (login is on): POST /api/login, or send Authorization: Bearer TOKEN"


def document_auth(schema: dict[str, Any], *, login: bool) -> None:
    """Add the 401 every non-public operation may answer when login is on, and the 403
    of the ones a role may be refused (actions, logout's CSRF check, the audit trail)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ErrorOut",
        {
            "title": "ErrorOut",
            "type": "object",
            "properties": {"error": {"type": "string", "title": "Error"}},
            "required": ["error"],
        },
    )
    ref = {"$ref": "#/components/schemas/ErrorOut"}
    paths = schema.get("paths", {})
    host_refused = next(
        (
            op["responses"]["421"]
            for ops in paths.values()
            for op in ops.values()
            if "421" in op.get("responses", {})
        ),
        None,
    )
    for path, operations in paths.items():
        if host_refused is not None:  # the Host check (web/guard.py) guards these too
            for operation in operations.values():
                operation.setdefault("responses", {}).setdefault("421", host_refused)
        if path in _PUBLIC or not login:
            continue  # without [[users]] no 401 and no role 403 is ever sent
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            body = {"$ref": "#/components/schemas/ActionOut"} if path == "/api/actions" else ref
            responses.setdefault(
                "401",
                {"description": _ANONYMOUS, "content": {"application/json": {"schema": body}}},
            )
            if method.lower() in ("post", "put", "patch", "delete"):
                responses.setdefault(
                    "403",
                    {
                        "description": "beyond the caller's role, or a cookie session's "
                        "request without its CSRF token",
                        "content": {"application/json": {"schema": body}},
                    },
                )
