"""The hub's HTTP API (FastAPI): snapshot, lists, stream, actions, logs, health.

Every error is JSON: ``{"error": TEXT}`` (and, for actions, the action result
shape ``{"ok": false, "error": TEXT, "detail": null}``) with a 4xx status for bad
requests, or 502 when the watched system failed to answer. The OpenAPI description
(``/api/openapi.json``) names every status an operation answers, with its model:

* 400 a malformed query or body (validation errors are 400, never 422);
* 404 an unknown id or API path; 405 (with ``Allow``) a known path with a wrong method;
* 409 an action the target does not have, a log a process cannot give;
* 502 the watched system failed to answer;
* 421 a ``Host`` the hub does not answer to, 403 a foreign ``Origin`` on a POST
  (:mod:`fleetwatch.web.guard`).

The body of ``POST /api/actions`` is described per action this hub's sources offer
(``name`` and the ``params`` it needs), so a body valid by the schema is one the hub
takes: an unknown name is still valid (409), a known one with the wrong params is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.staticfiles import StaticFiles

from fleetwatch import __version__, filters
from fleetwatch.config import parse_listen
from fleetwatch.errors import ActionError, SourceError
from fleetwatch.hub import Hub
from fleetwatch.model import ActionSpec, Kind, dumps
from fleetwatch.publishers.history import History
from fleetwatch.publishers.metrics import CONTENT_TYPE, FleetMetrics
from fleetwatch.sources.base import Target
from fleetwatch.web.auth import (
    Auth,
    AuthMiddleware,
    StreamView,
    act,
    add_auth_routes,
    document_auth,
    principal_of,
    visible_snapshot,
)
from fleetwatch.web.guard import Guard, GuardMiddleware
from fleetwatch.web.history import add_history_routes
from fleetwatch.web.multivisor import multivisor_app
from fleetwatch.web.stream import serve_stream

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_KINDS: dict[str, Kind] = {
    "sources": "source",
    "nodes": "node",
    "processes": "process",
    "jobs": "job",
}
MAX_LOG_WINDOW = 1 << 20


class JSONBytes(Response):
    media_type = "application/json"


def _error(status: int, text: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": text, **extra}, status_code=status)


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["source", "node", "process", "group", "job"]
    id: str = Field(min_length=1)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: TargetIn
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ActionOut(BaseModel):
    ok: bool
    error: str | None
    detail: Any = None


class ErrorOut(BaseModel):
    error: str


class RefusedOut(BaseModel):
    """A request refused by the Host or Origin check (fleetwatch.web.guard)."""

    error: str
    refused: str
    """The Host or Origin that was refused."""
    setting: str
    """The config key that would allow it: ``[hub] allowed_hosts`` or ``allowed_origins``."""


_HOST_REFUSED = "the Host is not one this hub answers to (see [hub] allowed_hosts)"
_ORIGIN_REFUSED = "the Origin is not this hub's page (see [hub] allowed_origins)"
_GUARDED: dict[int | str, dict[str, Any]] = {
    421: {"model": RefusedOut, "description": _HOST_REFUSED}
}
_API_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


def static_dir() -> Path:
    """The built web app: the package's ``static/``, or ``$FLEETWATCH_WEB_DIR`` when set
    (a build elsewhere, for front-end work beside a running hub)."""
    override = os.environ.get("FLEETWATCH_WEB_DIR")
    if override:
        return Path(override)
    return Path(str(resources.files("fleetwatch.web") / "static"))


def create_app(
    hub: Hub, *, manage_hub: bool = True, root_path: str = "", listen: str | None = None
) -> FastAPI:
    """The API around ``hub``. With ``manage_hub`` the app starts and stops the hub.

    ``listen`` is the address the server listens on (default: the config's); its host
    is one the Host check accepts.
    """

    metrics = FleetMetrics(hub)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_hub:
            await hub.start()
        following = asyncio.get_running_loop().create_task(metrics.run(), name="metrics")
        if history is not None:
            history.start()
        try:
            yield
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            if manage_hub:
                await hub.stop()
            if history is not None:
                await history.stop()  # after the hub's last commit: nothing is lost
            auth.close()

    app = FastAPI(
        title="fleetwatch",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        root_path=root_path,
    )
    app.state.hub = hub
    listen_host = parse_listen(listen or hub.config.hub.listen)[0]
    guard = Guard(listen_host, hub.config.hub.allowed_hosts, hub.config.hub.allowed_origins)
    app.state.auth = auth = Auth(hub.config)  # login, roles, audit (web/auth.py)
    app.add_middleware(AuthMiddleware, auth=auth)  # inside the guard: Host/Origin first
    app.add_middleware(GuardMiddleware, guard=guard)
    add_auth_routes(app, auth)
    app.state.history = history = _history(hub)  # the event store (publishers/history.py)

    def openapi() -> dict[str, Any]:
        # Not cached: sources may be added at run time, and with them actions.
        schema = get_openapi(
            title=app.title, version=app.version, routes=app.routes, servers=app.servers
        )
        return _honest_schema(schema, hub)

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        if request.url.path.endswith("/api/actions"):
            return JSONResponse({"ok": False, "error": problems, "detail": None}, 400)
        return _error(400, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # e.g. a body FastAPI cannot read at all (not UTF-8): 400 "error parsing the body"
        if request.url.path.endswith("/api/actions"):
            body: dict[str, Any] = {"ok": False, "error": str(exc.detail), "detail": None}
            return JSONResponse(body, exc.status_code, headers=exc.headers)
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(SourceError)
    async def upstream_error(request: Request, exc: SourceError) -> JSONResponse:
        return _error(502, str(exc) or type(exc).__name__)

    # Every route that reads the model is ``async``: FastAPI runs plain ``def`` routes in a
    # thread pool, and the model (and ``hub.snapshot()``'s commit) belongs to the loop.

    @app.get("/api/fleet", summary="Snapshot of the whole fleet", responses=_GUARDED)
    async def fleet(request: Request) -> Response:
        return JSONBytes(dumps(visible_snapshot(principal_of(request.scope), hub.snapshot())))

    @app.get("/api/health", summary="Liveness and a summary of the sources", responses=_GUARDED)
    async def health() -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for s in hub.fleet.all("source"):
            statuses[s.status] = statuses.get(s.status, 0) + 1  # type: ignore[union-attr]
        return {
            "status": "ok",
            "version": __version__,
            "name": hub.fleet.name,
            "seq": hub.fleet.seq,
            "uptime": round(time.time() - hub.started, 3),
            "sources": statuses,
            "subscribers": hub.subscribers,
        }

    @app.get(
        "/metrics",
        summary="Prometheus metrics of the fleet and the hub (docs/metrics.md)",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
            **_GUARDED,
        },
    )
    async def prometheus_metrics(request: Request) -> Response:
        who = principal_of(request.scope)
        text = metrics.exposition(who.sees if who.restricted else None)
        return Response(text, media_type=CONTENT_TYPE)

    @app.get(
        "/api/notifications",
        summary="Recent notifications, oldest first",
        responses={400: _err("limit out of range"), **_GUARDED},
    )
    async def notifications(request: Request, limit: int = Query(100, ge=1, le=10_000)) -> Response:
        who = principal_of(request.scope)
        notes = [n for n in hub.notes if who.sees(n.source)][-limit:]
        return JSONBytes(dumps([n.frame() for n in notes]))

    @app.post(
        "/api/actions",
        response_model=ActionOut,
        summary="Run an action",
        responses={
            400: {
                "model": ActionOut,
                "description": "a malformed body (not JSON, not UTF-8, not the schema)",
            },
            403: {"model": ActionOut, "description": _ORIGIN_REFUSED},
            404: {"model": ActionOut, "description": "no such target"},
            409: {"model": ActionOut, "description": "the target has no such action"},
            421: {"model": ActionOut, "description": _HOST_REFUSED},
        },
    )
    async def actions(body: ActionIn, request: Request) -> JSONResponse:
        target = Target(body.target.kind, body.target.id)
        try:
            result = await act(hub, target, body.name, body.params)  # role, sources, audit
        except ActionError as exc:
            return JSONResponse(
                {"ok": False, "error": str(exc), "detail": None}, status_code=exc.status
            )
        return JSONResponse(result.as_dict())

    @app.get(
        "/api/processes/{id}/log",
        summary="A window of a process's stdout or stderr log",
        responses={
            400: _err("a malformed channel, offset or length"),
            404: _err("no such process, or supervisord has no such log"),
            409: _err("the process's source has no readable logs"),
            502: _err("supervisord failed to answer"),
            **_GUARDED,
        },
    )
    async def process_log(
        request: Request,
        id: str,
        channel: Literal["stdout", "stderr"] = "stdout",
        offset: int | None = Query(None, ge=0, description="byte offset; omit for the tail"),
        length: int = Query(65536, ge=1, le=MAX_LOG_WINDOW),
    ) -> Response:
        if not principal_of(request.scope).sees_id(id):
            return _error(404, f"no process {id!r}")
        try:  # a SourceError (the system failed to answer) is upstream_error's 502
            chunk = await hub.read_log(id, channel, offset, length)
        except ActionError as exc:
            return _error(exc.status, str(exc))
        return JSONBytes(dumps(chunk.as_dict()))

    def list_route(plural: str, kind: Kind) -> None:
        @app.get(
            f"/api/{plural}",
            summary=f"The {plural}, filtered with ?q=",
            name=plural,
            responses=_GUARDED,
        )
        async def listing(
            request: Request,
            q: str = Query("", description="filter, e.g. state:running group:web"),
        ) -> Response:
            items = hub.snapshot()
            f = filters.parse(q)
            who = principal_of(request.scope)
            rows = [r for r in getattr(items, plural) if who.sees_id(r.id)]
            if f:
                rows = [r for r in rows if f.matches(_as_mapping(r))]
            return JSONBytes(dumps(rows), headers={"X-Fleet-Seq": str(items.seq)})

        @app.get(
            f"/api/{plural}/{{id:path}}",
            summary=f"One of the {plural}",
            name=kind,
            responses={404: _err(f"no such {kind}"), **_GUARDED},
        )
        async def one(id: str, request: Request) -> Response:
            item = hub.fleet.get(kind, id)
            if item is None or not principal_of(request.scope).sees_id(id):
                return _error(404, f"no {kind} {id!r}")
            return JSONBytes(dumps(item))

    for plural, kind in _KINDS.items():
        list_route(plural, kind)

    add_history_routes(app, history, _GUARDED)  # /api/history... (web/history.py)

    @app.websocket("/api/stream")
    async def stream(ws: WebSocket) -> None:
        await serve_stream(ws, hub, StreamView.of(ws.scope))

    # Multivisor's API for its CLI and scripts (web/multivisor.py; not in this OpenAPI schema).
    app.state.multivisor = multivisor_app(hub, auth)  # also served alone by server.py's second port
    app.mount("/multivisor", app.state.multivisor, name="multivisor")

    @app.api_route(
        "/api/{rest:path}",
        methods=_API_METHODS,
        include_in_schema=False,  # one operation id per method would clash in the schema
    )
    def api_not_found(rest: str, request: Request) -> JSONResponse:
        allowed = _methods_for(app, request)
        if allowed:
            text = f"{request.method} is not allowed on /api/{rest}: use {', '.join(allowed)}"
            return JSONResponse(
                {"error": text},
                405,
                headers={"Allow": ", ".join(allowed)},
            )
        return _error(404, f"no API endpoint /api/{rest}")

    static = static_dir()

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        page = static / "index.html"
        if not page.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503)
        # The page names its hashed assets: it must be revalidated, they can be cached.
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    app.mount("/", StaticFiles(directory=static, html=True, check_dir=False), name="static")
    return app


def _history(hub: Hub) -> History | None:
    """The hub's history when ``[history]`` is on; None (routes answer 404) when it is off
    or its store cannot be opened (said once, with no secret)."""
    from fleetwatch.publishers.history import History, HistoryUnavailable

    try:
        return History.for_hub(hub)
    except HistoryUnavailable as exc:
        log.error("history is off: %s", exc)
        return None


_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>fleetwatch</title>
<p>The web app is not built. In the source tree run <code>make web</code>
(<code>npm ci && npm run build</code> in <code>frontend/</code>); the API is at
<a href="api/docs">api/docs</a>.</p>
"""


def _methods_for(app: FastAPI, request: Request) -> list[str]:
    """The methods the API's own routes take on this request's path (for 405 + Allow)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if not isinstance(route, APIRoute) or route.path == "/api/{rest:path}":
            continue
        match, _ = route.matches(request.scope)
        if match in (Match.FULL, Match.PARTIAL) and route.methods:
            methods |= route.methods
    order = {m: i for i, m in enumerate(_API_METHODS)}
    return sorted(methods, key=lambda m: order.get(m, len(order)))


def _honest_schema(schema: dict[str, Any], hub: Hub) -> dict[str, Any]:
    """FastAPI's schema, less the 422 it documents but never sends (validation errors are
    answered 400), and with the actions body described per action."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    document_auth(schema, login=bool(hub.config.users))
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    post = schema.get("paths", {}).get("/api/actions", {}).get("post")
    if post is not None:
        content = post["requestBody"]["content"]["application/json"]
        content["schema"] = _actions_body(hub)
    return schema


def _actions_body(hub: Hub) -> dict[str, Any]:
    """``ActionIn`` as JSON Schema, one branch per action this hub's sources offer."""
    specs: dict[str, list[ActionSpec]] = {}
    for name in hub.config.sources:
        runner = hub.runner(name)
        for spec in runner.actions() if runner is not None else ():
            known = specs.setdefault(spec.name, [])
            if all(s.params != spec.params for s in known):
                known.append(spec)
    target = {"$ref": "#/components/schemas/TargetIn"}
    branches: list[dict[str, Any]] = []
    for name in sorted(specs):
        for spec in specs[name]:
            properties: dict[str, Any] = {}
            required: list[str] = []
            for p in spec.params:
                prop: dict[str, Any] = {"type": p.type}
                if p.title:
                    prop["title"] = p.title
                if p.choices:
                    prop["examples"] = list(p.choices)
                if p.default is not None:
                    prop["default"] = p.default
                elif p.required:
                    required.append(p.name)
                properties[p.name] = prop
            params: dict[str, Any] = {
                "type": "object",
                "properties": properties,
                "additionalProperties": False,
            }
            if required:
                params["required"] = required
            branches.append(
                {
                    "type": "object",
                    "title": f"{name} action",
                    "properties": {"target": target, "name": {"const": name}, "params": params},
                    "required": ["target", "name", "params"] if required else ["target", "name"],
                    "additionalProperties": False,
                }
            )
    other: dict[str, Any] = {"type": "string", "minLength": 1}
    if specs:
        other["not"] = {"enum": sorted(specs)}
    branches.append(
        {
            "type": "object",
            "title": "an action no source here offers (answered 409)",
            "properties": {"target": target, "name": other, "params": {"type": "object"}},
            "required": ["target", "name"],
            "additionalProperties": False,
        }
    )
    return {"title": "ActionIn", "anyOf": branches}


def _as_mapping(entity: Any) -> dict[str, Any]:
    return {f: getattr(entity, f) for f in entity.__slots__}
