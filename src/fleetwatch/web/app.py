"""The hub's HTTP API (FastAPI): snapshot, lists, stream, actions, logs, health.

Every error is JSON: ``{"error": TEXT}`` (and, for actions, the action result
shape ``{"ok": false, "error": TEXT, "detail": null}``) with a 4xx status for bad
requests, or 502 when the watched system failed to answer.
"""

from __future__ import annotations

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
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from fleetwatch import __version__, filters
from fleetwatch.errors import ActionError, SourceError, UnknownTarget
from fleetwatch.hub import Hub
from fleetwatch.model import Kind, dumps
from fleetwatch.sources.base import Target
from fleetwatch.sources.supervisor import SupervisorSource
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


def static_dir() -> Path:
    """The built web app: the package's ``static/``, or ``$FLEETWATCH_WEB_DIR`` when set
    (a build elsewhere, for front-end work beside a running hub)."""
    override = os.environ.get("FLEETWATCH_WEB_DIR")
    if override:
        return Path(override)
    return Path(str(resources.files("fleetwatch.web") / "static"))


def create_app(hub: Hub, *, manage_hub: bool = True, root_path: str = "") -> FastAPI:
    """The API around ``hub``. With ``manage_hub`` the app starts and stops the hub."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_hub:
            await hub.start()
        try:
            yield
        finally:
            if manage_hub:
                await hub.stop()

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
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(SourceError)
    async def upstream_error(request: Request, exc: SourceError) -> JSONResponse:
        return _error(502, str(exc) or type(exc).__name__)

    @app.get("/api/fleet", summary="Snapshot of the whole fleet")
    def fleet() -> Response:
        return JSONBytes(dumps(hub.snapshot().as_dict()))

    @app.get("/api/health", summary="Liveness and a summary of the sources")
    def health() -> dict[str, Any]:
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

    @app.get("/api/notifications", summary="Recent notifications, oldest first")
    def notifications(limit: int = Query(100, ge=1, le=10_000)) -> Response:
        notes = list(hub.notes)[-limit:]
        return JSONBytes(dumps([n.frame() for n in notes]))

    @app.post(
        "/api/actions",
        response_model=ActionOut,
        summary="Run an action",
        responses={400: {"model": ActionOut}, 404: {"model": ActionOut}, 409: {"model": ActionOut}},
    )
    async def actions(body: ActionIn, request: Request) -> JSONResponse:
        target = Target(body.target.kind, body.target.id)
        try:
            result = await hub.run_action(target, body.name, body.params, user="anonymous")
        except ActionError as exc:
            return JSONResponse(
                {"ok": False, "error": str(exc), "detail": None}, status_code=exc.status
            )
        return JSONResponse(result.as_dict())

    @app.get("/api/processes/{id}/log", summary="A window of a process's stdout or stderr log")
    async def process_log(
        id: str,
        channel: Literal["stdout", "stderr"] = "stdout",
        offset: int | None = Query(None, ge=0, description="byte offset; omit for the tail"),
        length: int = Query(65536, ge=1, le=MAX_LOG_WINDOW),
    ) -> Response:
        process = hub.fleet.get("process", id)
        if process is None:
            return _error(404, f"no process {id!r}")
        runner = hub.runner(process.source)
        if not isinstance(runner, SupervisorSource):
            return _error(409, f"process {id!r} has no readable log")
        try:
            chunk = await runner.read_log(id, channel, offset, length)
        except UnknownTarget as exc:
            return _error(404, str(exc))
        return JSONBytes(dumps(chunk.as_dict()))

    def list_route(plural: str, kind: Kind) -> None:
        @app.get(f"/api/{plural}", summary=f"The {plural}, filtered with ?q=", name=plural)
        def listing(
            q: str = Query("", description="filter, e.g. state:running group:web"),
        ) -> Response:
            items = hub.snapshot()
            f = filters.parse(q)
            rows = getattr(items, plural)
            if f:
                rows = [r for r in rows if f.matches(_as_mapping(r))]
            return JSONBytes(dumps(rows), headers={"X-Fleet-Seq": str(items.seq)})

        @app.get(f"/api/{plural}/{{id:path}}", summary=f"One of the {plural}", name=kind)
        def one(id: str) -> Response:
            item = hub.fleet.get(kind, id)
            if item is None:
                return _error(404, f"no {kind} {id!r}")
            return JSONBytes(dumps(item))

    for plural, kind in _KINDS.items():
        list_route(plural, kind)

    @app.websocket("/api/stream")
    async def stream(ws: WebSocket) -> None:
        await serve_stream(ws, hub)

    # Multivisor's API for its CLI and scripts (web/multivisor.py; not in this OpenAPI schema).
    app.state.multivisor = multivisor_app(hub)  # also served alone by server.py's second port
    app.mount("/multivisor", app.state.multivisor, name="multivisor")

    @app.api_route(
        "/api/{rest:path}",
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,  # one operation id per method would clash in the schema
    )
    def api_not_found(rest: str) -> JSONResponse:
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


_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>fleetwatch</title>
<p>The web app is not built. In the source tree run <code>make web</code>
(<code>npm ci && npm run build</code> in <code>frontend/</code>); the API is at
<a href="api/docs">api/docs</a>.</p>
"""


def _as_mapping(entity: Any) -> dict[str, Any]:
    return {f: getattr(entity, f) for f in entity.__slots__}
