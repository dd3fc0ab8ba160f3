"""``/api/history...``: the event store's queries (issue 13; the contract is HISTORY-API.md).

Times in queries are Unix seconds or ISO 8601 (a time without a zone is UTC); every
error is 4xx JSON. Restricted accounts see only their sources. The queries run in the
default thread pool (the store is thread-safe), never on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from fleetwatch.model import dumps
from fleetwatch.publishers.history import History
from fleetwatch.web.auth import principal_of

__all__ = ["add_history_routes", "parse_time"]

DAY = 86400.0
MAX_EVENTS = 10_000


class _ErrorOut(BaseModel):
    error: str


class _BadTime(ValueError):
    pass


TIME_PATTERN = (
    r"^(\d{1,12}(\.\d{1,9})?"
    r"|[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?)?"
    r"(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?)$"
)
"""What a time parameter takes (the OpenAPI schema says so: a request valid by it is
answered, one that is not is a 400)."""
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,6}))?)?)?"
    r"(Z|[+-]\d\d:?\d\d)?"
)
_LATEST = 1e11


def parse_time(text: str, what: str) -> float:
    """Unix seconds or ISO 8601 (UTC when no zone is given); ``_BadTime`` otherwise.

    A day past its month's end counts on (February 30 is March 2); times are clamped to
    0..1e11, so every text :data:`TIME_PATTERN` takes is answered."""
    value = text.strip()
    if re.fullmatch(TIME_PATTERN, value) is None:
        raise _BadTime(
            f"{what} must be Unix seconds or an ISO 8601 time such as"
            f" 2026-12-02T03:12:00Z, not {text[:40]!r}"
        )
    iso = _ISO.fullmatch(value)
    if iso is None:
        seconds = float(value)
    else:
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
        zone = iso[8]
        offset = datetime.timedelta(0)
        if zone and zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        when = datetime.datetime(year, month, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            days=day - 1,
            hours=int(iso[4] or 0),
            minutes=int(iso[5] or 0),
            seconds=int(iso[6] or 0),
            microseconds=int((iso[7] or "0").ljust(6, "0")),
        )
        seconds = (when - offset).timestamp()
    return min(max(seconds, 0.0), _LATEST)


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def _json(data: Any) -> Response:
    return Response(dumps(data), media_type="application/json")


def _err(description: str) -> dict[str, Any]:
    return {"model": _ErrorOut, "description": description}


_OFF = "history is off"


def _time(default: Any = None) -> Any:
    """A time parameter (a new Query each: FastAPI binds one to one parameter)."""
    return Query(default, description="Unix seconds or ISO 8601", pattern=TIME_PATTERN)


def _range(since: str | None, until: str | None) -> tuple[float, float]:
    end = parse_time(until, "until") if until is not None else time.time()
    start = parse_time(since, "since") if since is not None else max(0.0, end - DAY)
    return start, end  # since after until: an empty range


def add_history_routes(
    app: FastAPI, history: History | None, guarded: dict[int | str, dict[str, Any]]
) -> None:
    """The routes, on ``app``; with ``history`` None each answers 404 "history is off"."""
    off = {404: _err("history is off, or nothing is recorded that early"), **guarded}
    bad = {400: _err("a malformed time or parameter"), **off}

    def sources_of(request: Request) -> tuple[str, ...] | None:
        who = principal_of(request.scope)
        return who.sources if who.restricted else None

    @app.get("/api/history", summary="The history's bounds (for a time slider)", responses=off)
    async def history_info() -> Response:
        if history is None:
            return _error(404, _OFF)
        return _json(await asyncio.to_thread(history.store.bounds))

    @app.get(
        "/api/history/fleet",
        summary="The fleet as it was at a moment (GET /api/fleet's shape, plus at)",
        responses=bad,
    )
    async def history_fleet(request: Request, at: str = _time(...)) -> Response:
        if history is None:
            return _error(404, _OFF)
        try:
            when = parse_time(at, "at")
        except _BadTime as exc:
            return _error(400, str(exc))
        fleet = await asyncio.to_thread(history.store.fleet_at, when, sources_of(request))
        if fleet is None:
            return _error(404, "nothing is recorded that early")
        return _json(fleet)

    async def _entity(
        request: Request, kind: str, id: str, since: str | None, until: str | None
    ) -> Response:
        """A process's or a node's history over (since, until]: the two routes' one body."""
        if history is None:
            return _error(404, _OFF)
        try:
            start, end = _range(since, until)
        except _BadTime as exc:
            return _error(400, str(exc))
        if "\x00" in id or not principal_of(request.scope).sees_id(id):
            return _error(404, f"no {kind} {id!r}")
        query = history.store.process_history if kind == "process" else history.store.node_history
        return _json(await asyncio.to_thread(query, id, start, end))

    @app.get(
        "/api/history/processes/{id}",
        summary="A process's state changes over a time range",
        responses=bad,
    )
    async def history_process(
        request: Request, id: str, since: str | None = _time(), until: str | None = _time()
    ) -> Response:
        return await _entity(request, "process", id, since, until)

    @app.get(
        "/api/history/nodes/{id:path}",
        summary="A host's state changes and the jobs it ran over a time range",
        responses=bad,
    )
    async def history_node(
        request: Request, id: str, since: str | None = _time(), until: str | None = _time()
    ) -> Response:
        return await _entity(request, "node", id, since, until)

    @app.get(
        "/api/history/events",
        summary="Raw changes, notifications and actions, oldest first",
        responses=bad,
    )
    async def history_events(
        request: Request,
        since: str | None = _time(),
        until: str | None = _time(),
        kind: str | None = Query(None, description="source, node, process, job, note, action"),
        id: str | None = Query(None, description="a glob of ids, e.g. web:*"),
        limit: int = Query(1000, ge=1, le=MAX_EVENTS),
    ) -> Response:
        if history is None:
            return _error(404, _OFF)
        try:
            start, end = _range(since, until)
        except _BadTime as exc:
            return _error(400, str(exc))
        if "\x00" in (kind or "") + (id or ""):
            return _json({"events": [], "more": False})  # no id or kind holds one
        result = await asyncio.to_thread(
            lambda: history.store.events(
                start, end, kind=kind, id=id, limit=limit, sources=sources_of(request)
            )
        )
        return _json(result)
