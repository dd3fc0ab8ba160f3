"""The hub against supervisord peers that misbehave on the wire (issue #8, items 1 and 2).

A real supervisord never drips its answer or sends 300 MB, so the peer here is
:class:`StandInPeer`, a stand-in on a real loopback TCP socket; the hub is the real one
(uvicorn, the API) and talks to it through its real HTTP client.
"""

from __future__ import annotations

import asyncio
import socketserver
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleetwatch.config import SupervisorSourceConfig
from fleetwatch.errors import Unreachable
from fleetwatch.sources.supervisor.client import AnswerTooLarge, XmlRpcClient
from tests.conftest import HubServer, wait_for

HubServers = Callable[..., HubServer]

NOW = int(time.time())
INFO = {
    "name": "web",
    "group": "web",
    "start": NOW - 60,
    "stop": 0,
    "now": NOW,
    "state": 20,
    "statename": "RUNNING",
    "spawnerr": "",
    "exitstatus": 0,
    "logfile": "/var/log/web.log",
    "stdout_logfile": "/var/log/web.log",
    "stderr_logfile": "/var/log/web.err",
    "pid": 4242,
    "description": "pid 4242, uptime 0:01:00",
}
ANSWERS: dict[str, Any] = {
    "supervisor.getSupervisorVersion": "4.3.0",
    "supervisor.getIdentification": "supervisor",
    "supervisor.getPID": 1,
    "supervisor.getAPIVersion": "3.0",
    "supervisor.getState": {"statecode": 1, "statename": "RUNNING"},
    "supervisor.getAllProcessInfo": [INFO],
    "supervisor.stopProcess": True,
    "supervisor.tailProcessStdoutLog": ["", 0, False],
}


def answer_to(request: bytes) -> bytes:
    """supervisord's answer to a call or a multicall of the calls in ``ANSWERS``."""
    params, method = xmlrpc.client.loads(request)
    if method == "system.multicall":
        value: Any = [ANSWERS[c["methodName"]] for c in params[0]]
    else:
        value = ANSWERS[str(method)]
    return xmlrpc.client.dumps((value,), methodresponse=True).encode()


HUGE_START = b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>"
HUGE_END = b"</string></value>\n</param>\n</params>\n</methodResponse>\n"


class StandInPeer(socketserver.ThreadingTCPServer):
    """A stand-in for a misbehaving supervisord (or anything else on its port), on loopback.

    It answers supervisord's calls with valid XML-RPC, honestly for the first ``honest``
    requests, then as ``mode`` says: ``"drip"`` sends each answer one byte every 20 ms
    (every read gets data, the call never ends in time); ``"huge"`` sends a valid answer
    of ``huge`` bytes, with a Content-Length unless ``chunked``. ``sent`` counts the bytes
    of the huge answer the socket accepted before the client closed it.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str, *, honest: int = 0, huge: int = 0, chunked: bool = False) -> None:
        self.mode = mode
        self.honest = honest
        self.huge = huge
        self.chunked = chunked
        self.requests = 0
        self.sent = 0
        self.closed = threading.Event()
        """Set when the client closed the connection during a huge answer."""
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Handler(socketserver.StreamRequestHandler):
    server: StandInPeer

    def handle(self) -> None:
        while not self.server.stopping.is_set():
            line = self.rfile.readline()
            if not line:
                return
            length = 0
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = answer_to(self.rfile.read(length))
            self.server.requests += 1
            if self.server.requests <= self.server.honest:
                self.send(body)
            elif self.server.mode == "drip":
                self.drip(body)
            else:
                self.send_huge()
                return

    def head(self, length: int | None) -> bytes:
        framing = (
            f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
        )
        return f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n{framing}\r\n\r\n".encode()

    def send(self, body: bytes) -> None:
        self.wfile.write(self.head(len(body)) + body)

    def drip(self, body: bytes) -> None:
        data = self.head(len(body)) + body
        for i in range(len(data)):
            if self.server.stopping.wait(0.02):  # the pace of the drip, not a synchronisation
                return
            try:
                self.wfile.write(data[i : i + 1])
            except OSError:
                return  # the client gave up: that is what the test wants

    def send_huge(self) -> None:
        """A valid XML-RPC answer of ``huge`` bytes: one string of ``x``."""
        start, end = HUGE_START, HUGE_END
        size = self.server.huge
        chunked = self.server.chunked
        block = b"x" * (1 << 16)
        parts = [start]
        left = size - len(start) - len(end)
        sent = 0
        try:
            self.wfile.write(self.head(None if chunked else size))
            while left > 0 or parts:
                if not parts:
                    n = min(left, len(block))
                    parts, left = [block[:n]], left - n
                    if left == 0:
                        parts.append(end)
                data = b"".join(parts)
                parts = []
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                self.wfile.flush()
                sent += len(data)
                self.server.sent = max(self.server.sent, sent)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except OSError:
            self.server.closed.set()


@pytest.fixture
def peers() -> Iterator[Callable[..., StandInPeer]]:
    made: list[StandInPeer] = []

    def make(mode: str, **kw: Any) -> StandInPeer:
        peer = StandInPeer(mode, **kw)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.stop()


def config(peer: StandInPeer, **kw: Any) -> SupervisorSourceConfig:
    return SupervisorSourceConfig(name="sv", url=peer.url, **kw)


def test_a_dripping_daemon_goes_offline_issue8_dripping_daemon(
    peers: Callable[..., StandInPeer], hub_server: HubServers
) -> None:
    # The session's multicall and the first poll are answered in full, then every answer drips.
    peer = peers("drip", honest=2)
    hub = hub_server(config(peer, poll_interval=0.5, action_timeout=1.0))
    wait_for(lambda: hub.source("sv")["status"] == "online", what="online")
    source = wait_for(
        lambda: (s := hub.source("sv"))["status"] == "offline" and s, what="offline", timeout=10
    )
    assert source["error"] == "no answer within 0.5s"
    assert hub.get("/api/nodes/sv/127.0.0.1")["state"] == "offline"
    assert hub.processes()["sv:web:web"]["state"] == "RUNNING"  # kept, but its node is offline


def test_a_dripping_daemon_fails_an_action_and_a_log_read_issue8_dripping_daemon(
    peers: Callable[..., StandInPeer],
) -> None:
    async def calls() -> tuple[BaseException, BaseException]:
        client = XmlRpcClient(peer.url, timeout=0.6)  # action_timeout: the default of call()
        try:
            with pytest.raises(Unreachable) as action:
                await client.call("supervisor.stopProcess", "web:web", True)
            with pytest.raises(Unreachable) as log:
                await client.call("supervisor.tailProcessStdoutLog", "web:web", 0, 0)
        finally:
            await client.aclose()
        return action.value, log.value

    peer = peers("drip")
    action, log = asyncio.run(calls())
    assert str(action) == str(log) == "no answer within 0.6s"
    assert peer.requests == 2


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_answer_is_an_error_issue8_huge_answer(
    peers: Callable[..., StandInPeer], hub_server: HubServers, chunked: bool
) -> None:
    huge = 256 << 20  # what the peer would send, were it let
    peer = peers("huge", honest=1, huge=huge, chunked=chunked)
    hub = hub_server(config(peer, poll_interval=0.5, max_answer_size=1 << 20))
    source = wait_for(
        lambda: (s := hub.source("sv"))["status"] == "error" and s, what="error", timeout=10
    )
    said = " (Content-Length 268435456)" if not chunked else ""
    assert source["error"] == (
        f"the answer exceeded 1048576 bytes{said}; "
        "raise max_answer_size in the source's config to accept it"
    )
    assert peer.closed.wait(10), "the hub did not close the connection"
    # Socket buffers hold a few MB at most: the hub stopped reading near the cap.
    assert peer.sent < 32 << 20


def test_an_answer_at_the_cap_is_read_issue8_huge_answer(
    peers: Callable[..., StandInPeer],
) -> None:
    peer = peers("huge", huge=1 << 20, chunked=True)

    async def read(cap: int) -> Any:
        client = XmlRpcClient(peer.url, max_answer_size=cap)
        try:
            return await client.call("supervisor.getState")
        finally:
            await client.aclose()

    assert asyncio.run(read(1 << 20)) == "x" * ((1 << 20) - len(HUGE_START + HUGE_END))
    with pytest.raises(AnswerTooLarge, match="exceeded 1048575 bytes"):
        asyncio.run(read((1 << 20) - 1))


def test_the_stand_in_answers_like_supervisord() -> None:
    # The stand-in's own contract: its honest answers decode to what supervisord says.
    calls = [{"methodName": "supervisor.getState", "params": []}]
    request = xmlrpc.client.dumps((calls,), "system.multicall").encode()
    assert xmlrpc.client.loads(answer_to(request))[0] == ([ANSWERS["supervisor.getState"]],)
