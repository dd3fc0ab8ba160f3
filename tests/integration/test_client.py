"""fleetwatch.client against a real hub on real supervisord: HubClient's requests and
errors, the token on the wire and nowhere else, and Mirror following, resuming and
resyncing the stream."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from fleetwatch.client import HubClient, HubError
from fleetwatch.client.mirror import Event, Mirror
from fleetwatch.demo.supervisord import Supervisord
from tests.conftest import HubServer, run_async, source_config, standard_programs, wait_for

pytestmark = pytest.mark.real


@pytest.fixture
def hub(supervisors: Callable[..., Supervisord], hub_server: Callable[..., HubServer]) -> HubServer:
    sv = supervisors("c1", standard_programs("c1"))
    server = hub_server(source_config(sv, poll_interval=0.5))
    wait_for(lambda: server.source("c1")["status"] == "online", what="c1 online")
    return server


def test_client_reads_the_fleet_and_runs_actions(hub: HubServer) -> None:
    client = HubClient(hub.url)
    fleet = client.fleet()
    assert [s["id"] for s in fleet["sources"]] == ["c1"]
    ids = {p["id"] for p in client.rows("processes")}
    assert "c1:web:web" in ids
    assert [p["id"] for p in client.rows("processes", "name:web")] == ["c1:web:web"]
    result = client.action("process", "c1:web:web", "stop")
    assert result == {"ok": True, "error": None, "detail": None}
    assert hub.processes()["c1:web:web"]["state"] == "STOPPED"
    # Refusals are results too, with the hub's reason.
    refused = client.action("process", "c1:nope:nope", "stop")
    assert refused["ok"] is False
    assert "nope" in refused["error"]
    assert client.action("process", "c1:web:web", "fly")["ok"] is False
    client.close()


def test_client_errors_are_one_line_with_the_status(hub: HubServer) -> None:
    with HubClient(hub.url) as client, pytest.raises(HubError) as missing:
        client.get("/api/processes/c1:none")
    assert missing.value.status == 404
    assert str(missing.value) == "GET /api/processes/c1:none: no process 'c1:none'"
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(HubError) as down:
        HubClient(f"127.0.0.1:{port}").fleet()
    assert down.value.status == 0
    assert str(down.value) == (
        f"cannot reach the hub at http://127.0.0.1:{port}: connection refused (is it running?)"
    )


def test_client_reconnects_after_the_hub_restarts(hub: HubServer) -> None:
    with HubClient(hub.url) as client:
        assert client.fleet()["name"]
        hub.restart()  # the kept-alive connection is gone
        assert [s["id"] for s in client.fleet()["sources"]] == ["c1"]


def test_client_rejects_urls_it_cannot_use() -> None:
    for url, why in [
        ("ftp://h", "not an http:// or https:// URL"),
        ("http://", "has no host"),
        ("http://h:99999", "has a bad port"),
    ]:
        with pytest.raises(ValueError, match=why):
            HubClient(url)
    assert HubClient("gw.example/fleet/").url == "http://gw.example/fleet"
    assert HubClient("https://[::1]:8443").stream_url == "wss://[::1]:8443/api/stream"


class _Recorder:
    """A loopback HTTP peer that records one request's head and answers 200 ``{}``."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.head = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while b"\r\n\r\n" not in self.head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                self.head += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")

    def close(self) -> None:
        self._thread.join(10)
        self.sock.close()


def test_token_goes_in_the_header_and_never_in_reprs_or_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peer = _Recorder()
    monkeypatch.setenv("FLEETWATCH_TOKEN", "s3cret-token")
    client = HubClient(f"http://127.0.0.1:{peer.port}/root")
    assert client.get("/api/health") == {}
    peer.close()
    assert b"GET /root/api/health HTTP/1.1\r\n" in peer.head
    assert b"\r\nAuthorization: Bearer s3cret-token\r\n" in peer.head
    assert "s3cret" not in repr(client)
    with pytest.raises(HubError) as exc:
        client.get("/api/health")  # the peer is gone
    assert "s3cret" not in str(exc.value)
    assert HubClient("h", token="t2").headers["Authorization"] == "Bearer t2"
    monkeypatch.delenv("FLEETWATCH_TOKEN")
    assert "Authorization" not in HubClient("h").headers


def test_mirror_follows_the_stream_and_resumes_after_a_hub_restart(hub: HubServer) -> None:
    async def scenario() -> None:
        client = HubClient(hub.url)
        mirror = Mirror(client)
        events: list[Event] = []
        statuses: list[str] = []
        mirror.listeners.append(events.append)
        mirror.listeners.append(lambda e: e.type == "status" and statuses.append(mirror.status))
        task = asyncio.create_task(mirror.run())

        changed = asyncio.Event()
        mirror.listeners.append(lambda e: changed.set())

        async def until(condition: Callable[[], Any], what: str) -> None:
            try:
                async with asyncio.timeout(30):
                    while not condition():
                        changed.clear()
                        await changed.wait()
            except TimeoutError:
                pytest.fail(f"the mirror never showed {what}")

        try:
            await mirror.wait_synced(20)
            await until(lambda: mirror.status == "connected", "connected")
            assert mirror.status_text == "Connected"
            assert mirror.get("process", "c1:web:web") is not None
            await asyncio.to_thread(client.action, "process", "c1:web:web", "stop")
            await until(
                lambda: mirror.entities["process"]["c1:web:web"]["state"] == "STOPPED",
                "the stop in the mirror",
            )
            assert any(e.type == "delta" for e in events)

            await asyncio.to_thread(hub.stop)
            await until(lambda: mirror.status == "reconnecting", "reconnecting")
            assert mirror.status_text == "Reconnecting"
            snapshots = sum(e.type == "snapshot" for e in events)
            await asyncio.to_thread(hub.start)
            # A new hub counts from 0 in a new epoch: the mirror gets a snapshot.
            await until(lambda: mirror.status == "connected", "connected again")
            await until(
                lambda: sum(e.type == "snapshot" for e in events) > snapshots,
                "a fresh snapshot",
            )
            assert statuses[:3] == ["connected", "reconnecting", "connected"]
            await until(
                lambda: mirror.get("process", "c1:web:web") is not None,
                "the process after the restart",
            )
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            client.close()

    run_async(scenario())


def test_mirror_resyncs_on_a_gap_in_the_numbering() -> None:
    """Regression guard: a delta that does not follow on is never applied."""

    async def scenario() -> None:
        mirror = Mirror(HubClient("127.0.0.1:1"))
        mirror._frame({"t": "snapshot", "seq": 5, "name": "n", "epoch": 1, "processes": []})
        mirror._frame(
            {
                "t": "delta",
                "seq": 6,
                "changes": [{"op": "put", "kind": "node", "id": "a", "value": {"id": "a"}}],
            }
        )
        assert mirror.get("node", "a") == {"id": "a"}
        assert mirror.seq == 6
        with pytest.raises(Exception, match="a gap in the stream: at 6, got delta 9"):
            mirror._frame(
                {"t": "delta", "seq": 9, "changes": [{"op": "del", "kind": "node", "id": "a"}]}
            )
        assert mirror.get("node", "a") == {"id": "a"}
        assert mirror.seq == 6

    run_async(scenario())
