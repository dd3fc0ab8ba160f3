"""Multivisor 7's HTTP API over the hub, so ``multivisor-cli`` and Multivisor scripts keep working.

Served under ``/multivisor/api/...`` on the hub's port and, because ``multivisor-cli
--url`` keeps only scheme, host and port (its ``sanitize_url`` drops any path), also at
the root of ``[hub] multivisor_listen``. Multivisor's vocabulary maps onto the model
one to one: a *supervisor* is a source of kind ``supervisor``, its *uid*s
``SUPERVISOR:GROUP:NAME`` are the process ids, its *host* is the source's node.

Routes (the shapes are Multivisor's, recorded in the protocol notes' samples):

=====================================  ==============================================
``GET  api/data``                      ``{"name", "supervisors": {NAME: supervisor}}``
``GET  api/refresh``                   the same, after a fresh poll of every supervisor
``GET  api/config/file``               ``{"content": INI}``, generated: never a password
``GET  api/process/list``              the uids
``GET  api/process/info/UID``          one process, after a fresh poll of its supervisor
``GET  api/supervisor/info/NAME``      one supervisor, after a fresh poll
``POST api/process/restart|stop``      form ``uid=PATTERN[,PATTERN...]`` (fnmatch globs;
                                       a bare ``name`` means ``*:name``)
``POST api/supervisor/ACTION``         form ``supervisor=NAME[,NAME...]``; ACTION is
                                       ``update``, ``restart``, ``reread`` or ``shutdown``
``GET  api/stream``                    SSE: ``process_changed``, ``supervisor_changed``,
                                       ``notification``
``GET  api/process/log/out|err/tail/UID``  SSE: ``{"message", "size"}``, the last 4 KB,
                                       then every new byte, once
=====================================  ==============================================

What Multivisor gets wrong is fixed, not copied: an unknown uid or supervisor is 404
(Multivisor: 500), a pattern that matches nothing is 404, a failed action is 502 with
what supervisord said (Multivisor: 200 "OK" and, at best, a notification later), and
``config/file`` is written from the parsed configuration, so it holds no credentials.
Every error is JSON ``{"error": TEXT}``. Success of an action is still the plain ``OK``
Multivisor's clients expect, and failures are also sent to stream clients as
notifications, as Multivisor does. A process action answers once its read-back is in
the model, a supervisor action once the supervisor was polled again (``Hub.refresh``),
so a ``GET api/data`` right after either shows what it did.

As in Multivisor, a supervisor that is not online has ``running: false``, null details
and no processes. The stream says ``supervisor_changed`` (with the whole supervisor)
when a supervisor's set of processes or its own details change, ``process_changed``
when one process does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fnmatch
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from fleetwatch.errors import ActionError, SourceError, UnknownTarget
from fleetwatch.hub import Hub, Subscription
from fleetwatch.model import Delta, Node, Process, Source
from fleetwatch.publishers.notifications import RUNNING_STATES, Notification
from fleetwatch.sources.base import ActionResult, Target
from fleetwatch.sources.supervisor import ProcessStates
from fleetwatch.web.auth import Auth, AuthMiddleware, act

__all__ = ["KEEPALIVE", "TAIL_INTERVAL", "filter_patterns", "multivisor_app"]

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
"""Seconds of silence after which a stream sends an SSE comment (clients ignore it)."""
TAIL_INTERVAL = 0.5
"""Seconds between two reads of a tailed log (Multivisor: 1 s)."""
TAIL_FIRST = 4096
"""Bytes of a log sent first, as Multivisor does."""
TAIL_CHUNK = 1 << 16
"""Bytes read per call while catching up: nothing is skipped, however fast a log grows."""
USER = "multivisor-api"
"""The user actions through this API are audited as (it has no login of its own)."""

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_LEVELS = {"info": "INFO", "warning": "WARNING", "error": "ERROR"}
_ids = itertools.count(1)


def filter_patterns(uids: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """Multivisor's matching: fnmatch globs over uids; one without ``:`` or ``*`` is ``*:P``."""
    names = list(uids)
    globs = [p if ":" in p or "*" in p else f"*:{p}" for p in patterns]
    return [uid for uid in names if any(fnmatch.fnmatchcase(uid, g) for g in globs)]


def _json(value: Any, status: int = 200) -> Response:
    # Flask's jsonify sorts keys; so do we, so that answers read the same.
    return Response(
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS),
        status_code=status,
        media_type="application/json",
    )


def _error(status: int, text: str, **extra: Any) -> Response:
    return _json({"error": text, **extra}, status)


class _View:
    """Multivisor's picture of the fleet, built from the hub's model on demand."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def sources(self) -> list[Source]:
        return [
            s
            for s in self.hub.fleet.all("source")
            if isinstance(s, Source) and s.kind == "supervisor"
        ]

    def source(self, name: str) -> Source | None:
        s = self.hub.fleet.get("source", name)
        return s if isinstance(s, Source) and s.kind == "supervisor" else None

    def host(self, source: Source) -> str:
        for node_id in sorted(self.hub.fleet.ids_of_source("node", source.id)):
            node = self.hub.fleet.get("node", node_id)
            if isinstance(node, Node):
                return node.name
        return ""

    def processes(self, source: Source) -> list[Process]:
        if source.status != "online":
            return []  # Multivisor shows no processes for a supervisor it cannot reach
        fleet = self.hub.fleet
        found = (fleet.get("process", i) for i in sorted(fleet.ids_of_source("process", source.id)))
        return [p for p in found if isinstance(p, Process)]

    def process(self, p: Process, source: Source, host: str) -> dict[str, Any]:
        offset = source.info.get("clock_offset", 0)
        now = int(time.time() - (offset if isinstance(offset, int | float) else 0))
        start = int(p.started or 0)
        pid = p.pid or 0
        state = ProcessStates.__members__.get(p.state, ProcessStates.UNKNOWN)
        description = p.description
        if p.state == "RUNNING" and start:
            # supervisord's own wording, live (the model keeps it from the last change)
            description = f"pid {pid}, uptime {datetime.timedelta(seconds=max(0, now - start))}"
        return {
            "name": p.name,
            "group": p.group,
            "start": start,
            "stop": int(p.stopped or 0),
            "now": now,
            "state": int(state),
            "statename": p.state,
            "spawnerr": p.spawnerr,
            "exitstatus": p.exitstatus or 0,
            "logfile": p.stdout_logfile,
            "stdout_logfile": p.stdout_logfile,
            "stderr_logfile": p.stderr_logfile,
            "pid": pid,
            "description": description,
            "full_name": f"{p.group}:{p.name}",
            "supervisor": p.source,
            "host": host,
            "uid": p.id,
            "running": p.state in RUNNING_STATES,
        }

    def header(self, source: Source, host: str) -> dict[str, Any]:
        """A supervisor without its processes."""
        online = source.status == "online"
        info = source.info if online else {}
        return {
            "name": source.name,
            "url": source.url,
            "host": host,
            "identification": info.get("identification"),
            "api_version": info.get("api_version"),
            "supervisor_version": source.version if online else None,
            "version": None,  # Multivisor's own field, always null there too
            "pid": info.get("pid"),
            "running": online,
        }

    def supervisor(self, source: Source) -> dict[str, Any]:
        host = self.host(source)
        procs = {p.id: self.process(p, source, host) for p in self.processes(source)}
        return {**self.header(source, host), "processes": procs}

    def data(self) -> dict[str, Any]:
        return {
            "name": self.hub.fleet.name,
            "supervisors": {s.name: self.supervisor(s) for s in self.sources()},
        }

    def uids(self) -> list[str]:
        return [p.id for s in self.sources() for p in self.processes(s)]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Multivisor's process equality: everything but ``now`` and ``description``."""
    return all(a[k] == b.get(k) for k in a if k not in ("now", "description"))


class _StreamState:
    """What one stream client has been told, to send it only what changed."""

    def __init__(self, view: _View) -> None:
        self.view = view
        self.headers: dict[str, dict[str, Any]] = {}
        self.members: dict[str, frozenset[str]] = {}
        self.procs: dict[str, dict[str, Any]] = {}
        for source in view.sources():
            self._remember(source.name, view.supervisor(source))

    def _remember(self, name: str, supervisor: dict[str, Any]) -> None:
        header = {k: v for k, v in supervisor.items() if k != "processes"}
        self.headers[name] = header
        for uid in self.members.get(name, ()):
            self.procs.pop(uid, None)
        self.members[name] = frozenset(supervisor["processes"])
        self.procs.update(supervisor["processes"])

    def changes(self, sources: set[str], uids: set[str]) -> list[tuple[str, Any]]:
        """The events for a change to these sources and processes, as Multivisor sends them."""
        events: list[tuple[str, Any]] = []
        by_source: dict[str, set[str]] = {}
        for uid in uids:
            by_source.setdefault(self._source_of(uid), set()).add(uid)
        for name in sorted(sources | set(by_source)):
            source = self.view.source(name)
            if source is None:
                if name in self.headers:  # a supervisor source went away
                    for uid in self.members.pop(name, ()):
                        self.procs.pop(uid, None)
                    del self.headers[name]
                continue
            host = self.view.host(source)
            processes = {p.id: p for p in self.view.processes(source)}
            header = self.view.header(source, host)
            if header != self.headers.get(name) or frozenset(processes) != self.members.get(name):
                supervisor = self.view.supervisor(source)
                events += self._state_notes(supervisor["processes"].values())
                self._remember(name, supervisor)
                events.append(("supervisor_changed", supervisor))
                continue
            for uid in sorted(by_source.get(name, ())):
                old = self.procs.get(uid)
                if uid not in processes or old is None:
                    continue
                payload = self.view.process(processes[uid], source, host)
                if _same(payload, old):
                    continue
                events.append(("process_changed", payload))
                events += self._state_notes([payload])
                self.procs[uid] = payload
        return events

    def _source_of(self, uid: str) -> str:
        p = self.view.hub.fleet.get("process", uid)
        if p is not None:
            return p.source
        known = self.procs.get(uid)
        return str(known["supervisor"]) if known else uid.split(":", 1)[0]

    def everything(self) -> tuple[set[str], set[str]]:
        """Every supervisor and process, now and as last told (to start again after a resync)."""
        sources = {s.name for s in self.view.sources()} | set(self.headers)
        uids = set(self.procs)
        for s in self.view.sources():
            uids |= self.view.hub.fleet.ids_of_source("process", s.id)
        return sources, uids

    def _state_notes(self, payloads: Iterable[dict[str, Any]]) -> list[tuple[str, Any]]:
        notes = []
        for p in payloads:
            old = self.procs.get(p["uid"])
            if old is not None and old["statename"] != p["statename"]:
                text = (
                    f"{p['name']} on {p['supervisor']} changed from "
                    f"{old['statename']} to {p['statename']}"
                )
                notes.append(("notification", _payload("INFO", text)))
        return notes


def _payload(level: str, message: str, ts: float | None = None) -> dict[str, Any]:
    return {"message": message, "level": level, "time": time.time() if ts is None else ts}


def _frame(event: str, payload: Any) -> bytes:
    return b"data: " + orjson.dumps({"payload": payload, "event": event}) + b"\n\n"


class MultivisorAPI:
    """The routes' logic over one hub (one instance serves both ports)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.view = _View(hub)
        self._streams: set[Subscription] = set()

    # -- telling stream clients ----------------------------------------------------

    def notify(self, level: str, message: str, source: str = "", subject: str = "") -> None:
        """Send a Multivisor notification (action outcomes) to this API's stream clients."""
        severity = {"INFO": "info", "WARNING": "warning"}.get(level, "error")
        note = Notification(
            id=f"mv{next(_ids)}",
            ts=time.time(),
            severity=severity,  # type: ignore[arg-type]
            source=source,
            subject={"kind": "process" if subject else "source", "id": subject or source},
            title=message,
            text=message,
        )
        for sub in list(self._streams):
            sub.push(note)

    # -- reading -------------------------------------------------------------------

    async def refresh(self, names: Iterable[str]) -> None:
        """Have these supervisors re-read now; wait (bounded) until each has (Hub.refresh).

        A supervisor that is not online has nothing to show (Multivisor shows no
        processes for it) and is not waited for.
        """
        online = [n for n in names if (s := self.view.source(n)) and s.status == "online"]
        await asyncio.gather(*(self._refresh_one(n) for n in online))

    async def _refresh_one(self, name: str) -> None:
        with contextlib.suppress(UnknownTarget):  # removed meanwhile: nothing to wait for
            await self.hub.refresh(name)

    async def data(self, request: Request) -> Response:
        return _json(self.view.data())

    async def refresh_all(self, request: Request) -> Response:
        await self.refresh(s.name for s in self.view.sources())
        return _json(self.view.data())

    async def config_file(self, request: Request) -> Response:
        # Written from the parsed configuration, in Multivisor's INI format: the file
        # itself may hold credentials (Multivisor hands them out, trap T9).
        lines = ["[global]", f"name={self.hub.fleet.name}"]
        for s in self.view.sources():
            cfg = self.hub.config.sources.get(s.name)
            url = getattr(cfg, "multivisor_rpc", None) or s.url
            lines += ["", f"[supervisor:{s.name}]", f"url={url}"]
        return _json({"content": "\n".join(lines) + "\n"})

    async def process_list(self, request: Request) -> Response:
        return _json(self.view.uids())

    def _process(self, uid: str) -> tuple[Process, Source] | Response:
        p = self.hub.fleet.get("process", uid)
        source = self.view.source(p.source) if isinstance(p, Process) else None
        if not isinstance(p, Process) or source is None:
            return _error(404, f"no process {uid!r}")
        if source.status != "online":
            return _error(503, f"supervisor {source.name!r} is {source.status}: {source.error}")
        return p, source

    async def process_info(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        found = self._process(uid)
        if isinstance(found, Response):
            return found
        await self.refresh([found[1].name])
        found = self._process(uid)  # it may have gone in the meantime
        if isinstance(found, Response):
            return found
        p, source = found
        return _json(self.view.process(p, source, self.view.host(source)))

    async def supervisor_info(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.view.source(name) is None:
            return _error(404, f"no supervisor {name!r}")
        await self.refresh([name])
        source = self.view.source(name)
        if source is None:
            return _error(404, f"no supervisor {name!r}")
        return _json(self.view.supervisor(source))

    # -- acting --------------------------------------------------------------------

    def _source_of(self, uid: str) -> str:
        p = self.hub.fleet.get("process", uid)
        return p.source if p is not None else uid.split(":", 1)[0]

    async def process_action(self, request: Request, name: str) -> Response:
        form = await _form(request)
        patterns = _listed(form, "uid")
        if not patterns:
            return _error(400, "form field 'uid' (uid patterns, comma separated) is required")
        # Matched against every known process, those of a supervisor that is down too:
        # acting on them then fails with a 502 that says so, rather than "no such process".
        known = (
            uid
            for s in self.view.sources()
            for uid in self.hub.fleet.ids_of_source("process", s.id)
        )
        uids = filter_patterns(sorted(known), patterns)
        if not uids:
            return _error(404, f"no process matches {','.join(patterns)!r}")
        # No refresh after them: a start/stop/restart reads back what it changed before it
        # answers (SupervisorSource._settle), and a poll on its way since is dropped, so
        # the model read next already shows what the action did.
        results = await asyncio.gather(*(self._act(Target("process", u), name) for u in uids))
        failed = {u: r for u, r in zip(uids, results, strict=True) if not r[0].ok}
        for uid, (result, _) in failed.items():
            verb = "stop" if name == "stop" else "restart"
            level = "WARNING" if name == "stop" else "ERROR"
            source = uid.split(":", 1)[0]
            self.notify(level, f"Failed to {verb} {uid}: {result.error}", source, uid)
        return self._answer(dict(zip(uids, results, strict=True)))

    async def supervisor_action(self, request: Request, action: str) -> Response:
        form = await _form(request)
        names = _listed(form, "supervisor")
        if not names:
            return _error(400, "form field 'supervisor' (names, comma separated) is required")
        unknown = [n for n in names if self.view.source(n) is None]
        if unknown:
            return _error(404, f"no supervisor {', '.join(map(repr, unknown))}")
        results = await asyncio.gather(*(self._on_supervisor(n, action) for n in names))
        # A reload or shutdown is not read back by the action: a fresh poll sees it.
        await self.refresh(names)
        return self._answer(dict(zip(names, results, strict=True)))

    async def _on_supervisor(self, name: str, action: str) -> tuple[ActionResult, int]:
        target = Target("source", name)
        if action == "restart":
            # As Multivisor: reread first, and refuse to restart on a bad configuration.
            reread, status = await self._act(target, "reread")
            if not reread.ok:
                self.notify("ERROR", f"Cannot restart {name}: {reread.error}", name)
                return reread, status
            result, status = await self._act(target, "reload")
            done = f"Restarted {name}"
        elif action == "reread":
            result, status = await self._act(target, "reread")
            d = result.detail if isinstance(result.detail, dict) else {}
            done = (
                f"Reread config of {name} ({len(d.get('added', ()))} added; "
                f"{len(d.get('changed', ()))} changed; {len(d.get('removed', ()))} disappeared)"
            )
        elif action == "update":
            result, status = await self._act(target, "update")
            done = f"Updated {name}"
        else:
            result, status = await self._act(target, "shutdown")
            done = f"Shut down {name}"
        if result.ok:
            self.notify("INFO", done, name)
        else:
            self.notify("ERROR", f"Error: {action} {name}: {result.error}", name)
        return result, status

    async def _act(self, target: Target, name: str) -> tuple[ActionResult, int]:
        """Run one action; the status says how it failed (502: the supervisord did)."""
        try:
            result = await act(self.hub, target, name, {})  # as the caller (web/auth.py)
        except ActionError as exc:
            return ActionResult.failed(str(exc)), exc.status
        return result, 200 if result.ok else 502

    def _answer(self, results: dict[str, tuple[ActionResult, int]]) -> Response:
        failed = {k: r for k, (r, _) in results.items() if not r.ok}
        if not failed:
            return PlainTextResponse("OK")  # what Multivisor's clients look for
        statuses = {s for r, s in results.values() if not r.ok}
        status = 502 if 502 in statuses else min(statuses)
        text = "; ".join(f"{k}: {r.error}" for k, r in failed.items())
        detail = {k: r.as_dict() for k, (r, _) in results.items()}
        return _error(status, f"{len(failed)} of {len(results)} failed: {text}", results=detail)

    # -- streams -------------------------------------------------------------------

    async def stream(self, request: Request) -> Response:
        return StreamingResponse(
            self._events(), media_type="text/event-stream", headers=_SSE_HEADERS
        )

    async def _events(self) -> AsyncIterator[bytes]:
        sub = self.hub.subscribe()
        self._streams.add(sub)
        try:
            self.hub.flush()  # what is pending is in the state below, not news
            state = _StreamState(self.view)
            yield b": fleetwatch\n\n"  # the headers and a first byte, at once
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        items = await sub.next()
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                sources: set[str] = set()
                uids: set[str] = set()
                if sub.resync:  # fell behind: compare everything instead
                    sub.take_resync()
                    sources, uids = state.everything()
                notes: list[tuple[str, Any]] = []
                for item in items:
                    if isinstance(item, Delta):
                        for c in item.changes:
                            if c.kind == "process":
                                uids.add(c.id)
                            elif c.kind == "source":
                                sources.add(c.id)
                            elif c.value is not None:
                                sources.add(c.value.source)
                    else:
                        level = _LEVELS.get(item.severity, "INFO")
                        notes.append(("notification", _payload(level, item.text, item.ts)))
                events = state.changes(sources, uids) + notes
                if events:
                    yield b"".join(_frame(e, p) for e, p in events)
        finally:
            self._streams.discard(sub)
            sub.close()

    async def log_tail(self, request: Request) -> Response:
        channel = {"out": "stdout", "err": "stderr"}.get(request.path_params["stream"])
        if channel is None:
            return _error(404, "the log stream is 'out' or 'err'")
        uid = request.path_params["uid"]
        found = self._process(uid)
        if isinstance(found, Response):
            return found
        try:  # the first read here, so that a log that cannot be read is an error status
            first = await self.hub.read_log(uid, channel, None, TAIL_FIRST)
        except ActionError as exc:  # gone (404), or its source has no logs (409)
            return _error(exc.status, str(exc))
        except SourceError as exc:
            return _error(502, str(exc) or type(exc).__name__)
        return StreamingResponse(
            _tail(self.hub, uid, channel, first.end, first.text, first.size),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )


async def _tail(
    hub: Hub, uid: str, channel: str, end: int, text: str, size: int
) -> AsyncIterator[bytes]:
    """Frames ``{"message", "size"}``: the last bytes of the log, then each new byte once.

    Unlike Multivisor (trap T8) nothing is skipped when the log grows fast: the tail
    reads on from the last byte it sent, in chunks, until it has caught up.
    """
    yield b"data: " + orjson.dumps({"message": text, "size": size}) + b"\n\n"
    quiet = 0.0
    while True:
        try:
            chunk = await hub.read_log(uid, channel, end, TAIL_CHUNK)
        except ActionError:
            return  # the process is gone
        except SourceError as exc:
            log.debug("tail of %s: %s", uid, exc)  # offline for now: try again
        else:
            end = chunk.end  # from where the next read goes on (0 after a reset)
            if chunk.text or chunk.reset:
                quiet = 0.0
                yield (
                    b"data: " + orjson.dumps({"message": chunk.text, "size": chunk.size}) + b"\n\n"
                )
                if chunk.text and chunk.end < chunk.size:
                    continue  # more to read at once
        await asyncio.sleep(TAIL_INTERVAL)
        quiet += TAIL_INTERVAL
        if quiet >= KEEPALIVE:
            quiet = 0.0
            yield b": keepalive\n\n"


async def _form(request: Request) -> dict[str, list[str]]:
    """The url-encoded form (what Multivisor's clients send); multipart is refused."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind.startswith("multipart/"):
        raise HTTPException(415, "send the form url-encoded (application/x-www-form-urlencoded)")
    body = await request.body()
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=False)
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None


def _listed(form: dict[str, list[str]], key: str) -> list[str]:
    """Every comma-separated item of every ``key`` field, stripped, empty ones dropped."""
    return [
        item.strip() for value in form.get(key, ()) for item in value.split(",") if item.strip()
    ]


def multivisor_app(hub: Hub, auth: Auth | None = None) -> Starlette:
    """Multivisor's API at ``/api/...`` of the returned app (mount it, or serve it alone),
    behind ``auth`` (the main app's, so both ports share sessions, tokens and audit)."""
    api = MultivisorAPI(hub)
    auth = auth if auth is not None else Auth(hub.config)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"no Multivisor API endpoint {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    def bound(
        handler: Callable[[Request, str], Awaitable[Response]], arg: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(request, arg)

        return endpoint

    get, post = ["GET"], ["POST"]
    routes = [
        Route("/api/data", api.data, methods=get),
        Route("/api/refresh", api.refresh_all, methods=get),
        Route("/api/config/file", api.config_file, methods=get),
        Route("/api/process/list", api.process_list, methods=get),
        Route("/api/process/info/{uid}", api.process_info, methods=get),
        Route("/api/supervisor/info/{name}", api.supervisor_info, methods=get),
        Route("/api/stream", api.stream, methods=get),
        Route("/api/process/log/{stream}/tail/{uid}", api.log_tail, methods=get),
    ]
    routes += [
        Route(f"/api/process/{a}", bound(api.process_action, a), methods=post)
        for a in ("restart", "stop")
    ]
    routes += [
        Route(f"/api/supervisor/{a}", bound(api.supervisor_action, a), methods=post)
        for a in ("update", "restart", "reread", "shutdown")
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(AuthMiddleware, auth=auth, multivisor=True)],
    )
    app.state.api = api
    return app
