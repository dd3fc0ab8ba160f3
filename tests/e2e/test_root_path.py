"""Served under a sub-path: ``fleetwatch serve --root-path /fleet`` behind a reverse proxy.

The proxy here is small but real (uvicorn + Starlette, httpx for HTTP, websockets for the
stream): it answers only under ``/fleet/`` and forwards to the hub, either stripping the
prefix (nginx's ``location /fleet/ { proxy_pass http://hub/; }``) or keeping it (as
Traefik does without a strip-prefix middleware). The page loaded at ``/fleet/`` must
fetch ``/fleet/api/...``, open ``ws://.../fleet/api/stream``, show the processes, and its
actions must work.

Like real proxies it forwards the browser's ``Origin`` (HTTP and WebSocket) and says
which host the browser asked for, so the hub's Origin check (issue 8) can recognise its
own page: the nginx-like mode rewrites ``Host`` to the upstream's and sets
``X-Forwarded-Host`` (``proxy_set_header X-Forwarded-Host $host;``), the Traefik-like
mode passes ``Host`` through and sets ``X-Forwarded-Host`` too, as Traefik does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, WebSocket, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as ServerSocket
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port
from tests.conftest import wait_for
from tests.e2e.conftest import (
    HubProcess,
    action_spec,
    process_row,
    screenshot,
    state_of,
    tid,
    write_config,
)

PREFIX = "/fleet"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "host",
}


class Proxy:
    """A reverse proxy on 127.0.0.1 serving ``PREFIX/`` from ``upstream``; 404 elsewhere."""

    def __init__(self, upstream_port: int, *, strip: bool) -> None:
        self.upstream = f"127.0.0.1:{upstream_port}"
        self.strip = strip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{PREFIX}/"
        self.seen: list[str] = []
        """``"http GET /fleet/api/fleet"``, ``"ws /fleet/api/stream"``, ... as they came."""
        app = Starlette(
            routes=[
                Route("/{path:path}", self.http, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
                WebSocketRoute("/{path:path}", self.ws),
            ]
        )
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                ws="websockets-sansio",
                log_level="warning",
                lifespan="off",
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="proxy", daemon=True)

    def target(self, path: str) -> str | None:
        if not path.startswith(PREFIX + "/"):
            return None
        return path[len(PREFIX) :] if self.strip else path

    async def http(self, request: Request) -> Response:
        path = request.url.path
        self.seen.append(f"http {request.method} {path}")
        target = self.target(path)
        if target is None:
            return Response(f"not under {PREFIX}/\n", status_code=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["x-forwarded-prefix"] = PREFIX
        headers["x-forwarded-host"] = request.headers["host"]
        if not self.strip:
            headers["host"] = request.headers["host"]  # Traefik's passHostHeader
        async with httpx.AsyncClient(timeout=90) as client:
            upstream = await client.request(
                request.method,
                f"http://{self.upstream}{target}",
                params=request.url.query or None,
                headers=headers,
                content=await request.body(),
            )
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=out)

    async def ws(self, client: ServerSocket) -> None:
        path = client.url.path
        self.seen.append(f"ws {path}")
        target = self.target(path)
        if target is None:
            await client.close(code=4404)
            return
        query = f"?{client.url.query}" if client.url.query else ""
        async with connect(
            f"ws://{self.upstream}{target}{query}",
            max_size=None,
            origin=client.headers.get("origin"),  # type: ignore[arg-type]
            additional_headers={"X-Forwarded-Host": client.headers["host"]},
        ) as upstream:
            await client.accept()

            async def down() -> None:
                async for message in upstream:
                    if isinstance(message, bytes):
                        await client.send_bytes(message)
                    else:
                        await client.send_text(message)

            async def up() -> None:
                while True:
                    message = await client.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    if message.get("text") is not None:
                        await upstream.send(message["text"])
                    elif message.get("bytes") is not None:
                        await upstream.send(message["bytes"])

            tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(
                        asyncio.CancelledError, ConnectionClosed, WebSocketDisconnect, RuntimeError
                    ):
                        await t
        with contextlib.suppress(RuntimeError):
            await client.close()

    def start(self) -> None:
        self.thread.start()
        wait_for(lambda: self.server.started, 20, "the proxy to listen")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def fleet_under_prefix(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Supervisord, HubProcess]]:
    root = tmp_path_factory.mktemp("prefix")
    sv = Supervisord(
        root,
        "delta",
        [
            Program("web", demo_program("service", "delta-web")),
            Program("api", demo_program("service", "delta-api")),
        ],
    )
    sv.start()
    hub: HubProcess | None = None
    try:
        port = free_port()
        config = write_config(root / "hub.toml", "behind a proxy", [sv], port)
        hub = HubProcess(config, port, PREFIX)
        hub.start([sv.name])
        yield sv, hub
    finally:
        if hub is not None:
            hub.stop()
        sv.stop()


@pytest.fixture(params=["strip", "keep"], ids=["proxy-strips-prefix", "proxy-keeps-prefix"])
def proxy(
    request: pytest.FixtureRequest, fleet_under_prefix: tuple[Supervisord, HubProcess]
) -> Iterator[Proxy]:
    p = Proxy(fleet_under_prefix[1].port, strip=request.param == "strip")
    p.start()
    yield p
    p.stop()


def test_the_page_works_under_a_sub_path(
    page: Page, proxy: Proxy, fleet_under_prefix: tuple[Supervisord, HubProcess]
) -> None:
    sv, hub = fleet_under_prefix
    requests: list[str] = []
    sockets: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    frames: list[str] = []

    def on_socket(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: frames.append(str(payload)[:40]))

    page.on("websocket", on_socket)

    page.goto(proxy.url + "#/processes")
    web, api = "delta:web:web", "delta:api:api"
    expect(process_row(page, web)).to_have_attribute("data-state", "RUNNING")
    expect(process_row(page, api)).to_have_attribute("data-state", "RUNNING")
    origin = f"http://127.0.0.1:{proxy.port}"
    assert sockets == [f"ws://127.0.0.1:{proxy.port}{PREFIX}/api/stream"], sockets
    assert any(f.startswith('{"t":"snapshot"') for f in frames), frames[:3]
    outside = [u for u in requests if u.startswith(origin) and not u.startswith(proxy.url)]
    assert not outside, f"the page asked outside {PREFIX}/: {outside}"
    assert all(s.split(" ")[-1].startswith(PREFIX + "/") for s in proxy.seen), proxy.seen

    confirm = bool(action_spec(httpx.get(f"{hub.url}/api/sources/delta").json(), "stop")["confirm"])
    row = process_row(page, api)
    try:
        tid(row, "action-stop").click()
        if confirm:
            tid(page, "confirm-ok").click()
        wait_for(lambda: state_of(sv, api) == "STOPPED", 20, "supervisord to say STOPPED")
        expect(row).to_have_attribute("data-state", "STOPPED")
        assert f"http POST {PREFIX}/api/actions" in proxy.seen
    finally:
        if state_of(sv, api) != "RUNNING":
            sv.call("supervisor.startProcess", "api:api")
    wait_for(lambda: state_of(sv, api) == "RUNNING", 20, "api RUNNING again")
    expect(row).to_have_attribute("data-state", "RUNNING")
    screenshot(page, f"root-path-{'strip' if proxy.strip else 'keep'}")


def test_a_foreign_page_cannot_act_through_the_proxy_issue8(proxy: Proxy) -> None:
    """The proxy forwards the Origin: the hub refuses another site's page behind it too."""
    body = {"target": {"kind": "process", "id": "delta:api:api"}, "name": "stop"}
    r = httpx.post(proxy.url + "api/actions", json=body, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert r.json()["ok"] is False
    assert r.json()["detail"] == {
        "refused": "http://evil.example",
        "setting": "[hub] allowed_origins",
    }
    r = httpx.get(proxy.url + "api/fleet", headers={"Host": "evil.example"})
    assert r.status_code == 421  # a rebound name, forwarded by the proxy, is refused
    assert r.json()["refused"] == "evil.example"


def test_the_proxy_refuses_what_is_not_under_the_prefix(proxy: Proxy) -> None:
    """The check above means something: outside the prefix the proxy serves nothing."""
    assert httpx.get(f"http://127.0.0.1:{proxy.port}/api/fleet").status_code == 404
    inside = httpx.get(proxy.url + "api/fleet")
    assert inside.status_code == 200
    assert {p["id"] for p in inside.json()["processes"]} == {"delta:web:web", "delta:api:api"}
