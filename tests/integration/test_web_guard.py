"""A real hub (uvicorn) against real clients (websockets, httpx): the Host and Origin
checks (issue 8, item 5) and a binary frame on the stream (item 6).

The hub watches a real supervisord, so an accepted action really runs.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fleetwatch.demo.supervisord import Program, Supervisord, demo_program
from tests.conftest import HubServer, source_config, wait_for

ACTION = {"target": {"kind": "process", "id": "alpha:web:web"}, "name": "start"}


@pytest.fixture
def hub(supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]) -> HubServer:
    sv = supervisors("alpha", [Program("web", demo_program("service", "alpha-web"))])
    server = hub_server(source_config(sv))
    wait_for(lambda: "alpha:web:web" in server.processes(), 20, "alpha's process")
    return server


@pytest.fixture
def hub_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the hub, uvicorn's own (which do not reach the root logger) too."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    try:
        yield caplog
    finally:
        uvicorn_log.removeHandler(caplog.handler)


def open_stream(
    hub: HubServer, *, origin: str | None = None, host: str | None = None, **kw: Any
) -> ClientConnection:
    """A stream client; with ``host`` its URL (so its Host header) names that host while
    the socket goes to the hub on loopback, as a DNS-rebound name would."""
    if host is None:
        url = f"ws://127.0.0.1:{hub.port}/api/stream"
        return connect(url, origin=origin, open_timeout=10, **kw)  # type: ignore[arg-type]
    sock = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
    url = f"ws://{host}/api/stream"
    return connect(url, sock=sock, origin=origin, open_timeout=10, **kw)  # type: ignore[arg-type]


def refused(hub: HubServer, **kw: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        open_stream(hub, **kw).close()
    return info.value


def first_frame(conn: ClientConnection) -> dict[str, Any]:
    conn.send("{}")
    frame: dict[str, Any] = orjson.loads(conn.recv(10))
    return frame


# -- Origin ----------------------------------------------------------------------------------------


def test_a_foreign_origin_cannot_open_the_stream_issue8_hijacking(
    hub: HubServer, hub_log: pytest.LogCaptureFixture
) -> None:
    exc = refused(hub, origin="http://evil.example")
    assert exc.response.status_code == 403
    lines = [r for r in hub_log.records if r.levelno >= logging.WARNING]
    assert [r.name for r in lines] == ["fleetwatch.web.guard"], hub_log.text  # one line
    assert "http://evil.example" in lines[0].getMessage()
    assert "[hub] allowed_origins" in lines[0].getMessage()
    assert hub.get("/api/health")["subscribers"] == 0


@pytest.mark.parametrize("origin", [None, "own", "https://own"])
def test_the_hubs_own_page_and_clients_without_origin_get_the_stream(
    hub: HubServer, origin: str | None
) -> None:
    if origin is not None:
        origin = origin.replace("own", f"127.0.0.1:{hub.port}")
        if "://" not in origin:
            origin = f"http://{origin}"
    with open_stream(hub, origin=origin) as conn:
        frame = first_frame(conn)
    assert frame["t"] == "snapshot"
    assert "alpha:web:web" in {p["id"] for p in frame["processes"]}


def test_a_foreign_origin_cannot_post_an_action_issue8(hub: HubServer) -> None:
    r = hub.http.post("/api/actions", json=ACTION, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    body = r.json()
    assert set(body) == {"ok", "error", "detail"}
    assert body["ok"] is False
    assert "[hub] allowed_origins" in body["error"]
    assert body["detail"] == {"refused": "http://evil.example", "setting": "[hub] allowed_origins"}
    own = f"http://127.0.0.1:{hub.port}"
    r = hub.http.post("/api/actions", json=ACTION, headers={"Origin": own})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"ok", "error", "detail"}
    r = hub.http.post("/api/actions", json=ACTION)  # a script: no Origin
    assert r.status_code == 200, r.text


def test_a_foreign_origin_may_still_read(hub: HubServer) -> None:
    r = hub.http.get("/api/fleet", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers  # so its page cannot read it


def test_allowed_origins_are_honoured(hub_server: Callable[..., HubServer]) -> None:
    server = hub_server(allowed_origins=("https://fleet.example.com",))
    with open_stream(server, origin="https://fleet.example.com") as conn:
        assert first_frame(conn)["t"] == "snapshot"
    assert refused(server, origin="https://other.example.com").response.status_code == 403
    r = server.http.post(
        "/api/actions", json=ACTION, headers={"Origin": "https://fleet.example.com"}
    )
    assert r.status_code == 404  # past the check: no such process on this empty hub
    assert r.json()["ok"] is False


# -- Host ------------------------------------------------------------------------------------------


def test_a_rebinding_host_is_refused_issue8_dns_rebinding(
    hub: HubServer, hub_log: pytest.LogCaptureFixture
) -> None:
    evil = {"Host": f"evil.example:{hub.port}"}
    r = hub.http.get("/api/fleet", headers=evil)
    assert r.status_code == 421
    assert r.headers["content-type"] == "application/json"
    assert r.json()["refused"] == f"evil.example:{hub.port}"
    assert r.json()["setting"] == "[hub] allowed_hosts"
    assert "[hub] allowed_hosts" in r.json()["error"]
    r = hub.http.post("/api/actions", json=ACTION, headers=evil)
    assert r.status_code == 421
    assert r.json()["ok"] is False
    assert r.json()["detail"]["setting"] == "[hub] allowed_hosts"
    # same-origin for the rebound page: its Origin matches its Host, and is refused anyway
    r = hub.http.post(
        "/api/actions", json=ACTION, headers={**evil, "Origin": f"http://evil.example:{hub.port}"}
    )
    assert r.status_code == 421
    exc = refused(hub, host=f"evil.example:{hub.port}", origin=f"http://evil.example:{hub.port}")
    assert exc.response.status_code == 403  # a WebSocket is refused before accept: bare 403
    lines = [r for r in hub_log.records if r.levelno >= logging.WARNING]
    assert [r.name for r in lines] == ["fleetwatch.web.guard"] * 4, hub_log.text
    assert "evil.example" in lines[3].getMessage()
    assert "[hub] allowed_hosts" in lines[3].getMessage()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_ip_literals_and_localhost_are_accepted(hub: HubServer, host: str) -> None:
    host = host.format(port=hub.port)
    r = hub.http.get("/api/fleet", headers={"Host": host})
    assert r.status_code == 200
    assert "alpha:web:web" in {p["id"] for p in r.json()["processes"]}
    with open_stream(hub, host=host, origin=f"http://{host}") as conn:
        assert first_frame(conn)["t"] == "snapshot"


def test_allowed_hosts_are_honoured(hub_server: Callable[..., HubServer]) -> None:
    server = hub_server(allowed_hosts=("*.fleet.example",))
    host = f"hub.fleet.example:{server.port}"
    assert server.http.get("/api/health", headers={"Host": host}).status_code == 200
    assert server.http.get("/api/health", headers={"Host": "fleet.example"}).status_code == 421
    with open_stream(server, host=host, origin=f"https://{host}") as conn:
        assert first_frame(conn)["t"] == "snapshot"


# -- a binary frame (item 6) -----------------------------------------------------------------------


def close_code(conn: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        conn.recv(10)
    rcvd = info.value.rcvd
    return rcvd.code if rcvd is not None else None


@pytest.mark.parametrize("when", ["hello", "streaming"])
def test_a_binary_frame_closes_the_stream_with_1003_issue8(
    hub: HubServer, hub_log: pytest.LogCaptureFixture, when: str
) -> None:
    with open_stream(hub) as conn:
        if when == "streaming":
            assert first_frame(conn)["t"] == "snapshot"
        conn.send(b"\x00\xff binary")
        assert close_code(conn) == 1003  # a close frame, with "unsupported data"
    lines = [r for r in hub_log.records if r.levelno >= logging.WARNING]
    assert [r.name for r in lines] == ["fleetwatch.web.stream"], hub_log.text
    assert "binary frame" in lines[0].getMessage()
    assert all(r.exc_info is None for r in hub_log.records)
    assert "Traceback" not in hub_log.text
    wait_for(lambda: hub.get("/api/health")["subscribers"] == 0, 10, "the stream to go")
    with open_stream(hub) as conn:  # and the hub goes on serving
        assert first_frame(conn)["t"] == "snapshot"


def test_a_cli_style_client_still_works(hub: HubServer) -> None:
    """httpx with its defaults (Host 127.0.0.1:PORT, no Origin), as the CLI and TUI."""
    r = httpx.get(f"http://127.0.0.1:{hub.port}/api/processes", timeout=10)
    assert r.status_code == 200
    assert [p["id"] for p in r.json()] == ["alpha:web:web"]
