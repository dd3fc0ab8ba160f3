"""pyicemon's WebSocket publisher: the cluster as a force graph, in JSON, to every client.

Each frame is one JSON text message::

    {"timestamp": 1795380084.826, "index": 12,
     "nodes": [{"id": 1, "name": "icelab-client", "ip": "127.0.0.1", "load": 50.0,
                "maxjobs": 2}, ...],
     "links": [{"source": 1, "target": 3, "value": 10}, ...]}

* ``nodes``: one per compile host; ``load`` = 100 * active jobs / MaxJobs (0 when
  MaxJobs is 0 or less; above 100 when a host runs more jobs than it has slots).
  ``maxjobs`` is our one addition to pyicemon's keys (the page sizes hosts by it).
* ``links``: one per (client host → server host) pair with at least one job
  between them; a local job, or a job the submitter builds itself, is a link from
  a host to itself. Individual jobs are not sent.
* ``nodes`` and ``links`` are left out of a frame when they did not change since
  the previous frame; a frame where neither changed is not sent at all.
* Frames go out at most once per :attr:`WebsocketPublisher.MIN_SEND_GAP_S` (0.1 s);
  changes in between are folded into the next frame.
* A client that connects gets the whole current frame at once.
* ``index`` counts the frames broadcast so far; ``timestamp`` is the Unix time
  the frame was built.

This is the shape pyicemon sent, so its page keeps working. Clients never slow
down the monitor: :meth:`~WebsocketPublisher.publish` only stores the new state,
and a separate thread does the sending.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, ClassVar, Protocol

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

__all__ = ["WebsocketPublisher", "build_links", "build_nodes"]

log = logging.getLogger(__name__)


class _Host(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def ip(self) -> str: ...
    @property
    def maxjobs(self) -> int: ...
    def active_jobs(self) -> int: ...


class _Job(Protocol):
    @property
    def client_id(self) -> int: ...
    @property
    def host_id(self) -> int: ...


class _ClusterView(Protocol):
    """What the publisher reads from a :class:`~fleetwatch.icecream.Monitor`."""

    @property
    def cs(self) -> dict[int, Any]: ...
    @property
    def jobs(self) -> dict[int, Any]: ...


def build_nodes(hosts: Iterable[_Host]) -> list[dict[str, Any]]:
    """The ``nodes`` list, ordered by host id."""
    nodes = []
    for host in sorted(hosts, key=lambda h: h.id):
        load = 100 * host.active_jobs() / host.maxjobs if host.maxjobs > 0 else 0.0
        nodes.append(
            {
                "id": host.id,
                "name": host.name,
                "ip": host.ip,
                "load": round(load, 1),
                "maxjobs": host.maxjobs,
            }
        )
    return nodes


def build_links(hosts: dict[int, Any], jobs: Iterable[_Job]) -> list[dict[str, Any]]:
    """The ``links`` list: one per client → server pair with a job, both hosts known."""
    pairs = {
        (job.client_id, job.host_id)
        for job in jobs
        if job.client_id in hosts and job.host_id in hosts
    }
    return [{"source": c, "target": s, "value": 10} for c, s in sorted(pairs)]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class WebsocketPublisher:
    """Serve the cluster graph over WebSocket to any number of clients.

    Args:
        host: address to listen on. **Loopback by default** (pyicemon listened on
            0.0.0.0); pass ``"0.0.0.0"`` to let other machines connect. There is no
            authentication.
        port: TCP port (9999 as in pyicemon); 0 picks a free one, see :attr:`port`.

    The server and the sending run in daemon threads from construction on. Call
    :meth:`close` (or use ``with``) to stop them and disconnect the clients.
    Give the publisher to a monitor with ``monitor.add_publisher(publisher)``.
    """

    MIN_SEND_GAP_S: ClassVar[float] = 0.1
    """The least time between two broadcast frames, in seconds."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9999) -> None:
        self.host = host
        # Current state, written by publish() (the monitor's thread), guarded by _state.
        self._state = threading.Condition()
        self._nodes = "[]"
        self._links = "[]"
        self._dirty = False
        self._closed = False
        # What was last broadcast and who receives it, guarded by _send. Holding
        # _send orders a new client's first frame against the broadcasts.
        self._send = threading.Lock()
        self._sent_nodes: str | None = "[]"
        self._sent_links: str | None = "[]"
        self._index = 0
        self._clients: set[ServerConnection] = set()

        self._server = serve(self._serve_client, host, port, compression=None)
        self.port: int = self._server.socket.getsockname()[1]
        """The port listened on (useful with ``port=0``)."""
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="ws-accept", daemon=True),
            threading.Thread(target=self._broadcast_loop, name="ws-send", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- the Publisher interface ----------------------------------------------------------

    def publish(self, mon: _ClusterView) -> None:
        """Take the monitor's new state; it reaches the clients within the send gap."""
        nodes = _dumps(build_nodes(mon.cs.values()))
        links = _dumps(build_links(mon.cs, mon.jobs.values()))
        with self._state:
            if nodes != self._nodes or links != self._links:
                self._nodes, self._links = nodes, links
                self._dirty = True
                self._state.notify_all()

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def clients(self) -> int:
        """How many clients are connected (and have had their first frame)."""
        with self._send:
            return len(self._clients)

    def close(self) -> None:
        """Stop listening, disconnect every client and stop the threads. Idempotent."""
        with self._state:
            self._closed = True
            self._state.notify_all()
        self._server.shutdown()  # closes the clients and waits for their handlers
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> WebsocketPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WebsocketPublisher ws://{self.host}:{self.port}>"

    # -- internals ------------------------------------------------------------------------------

    def _frame(self, nodes: str | None, links: str | None) -> str:
        parts = [f'{{"timestamp":{round(time.time(), 3)},"index":{self._index}']
        if nodes is not None:
            parts.append(f',"nodes":{nodes}')
        if links is not None:
            parts.append(f',"links":{links}')
        parts.append("}")
        return "".join(parts)

    def _serve_client(self, conn: ServerConnection) -> None:
        """One client: the whole frame first, then whatever is broadcast, until it leaves."""
        with self._send:
            with self._state:
                if self._closed:
                    return
                nodes, links = self._nodes, self._links
                if (nodes, links) != (self._sent_nodes, self._sent_links):
                    # This client is ahead of the others: the next broadcast must be
                    # whole, or the others' deltas could leave it on a stale state.
                    self._sent_nodes = self._sent_links = None
                    self._dirty = True
                    self._state.notify_all()
            try:
                conn.send(self._frame(nodes, links))
            except ConnectionClosed:
                return
            self._clients.add(conn)
        try:
            # Anything a client sends is ignored. Handler threads are not daemons, so
            # stop when the program's main thread ends, even if close() was not called.
            while not self._closed and threading.main_thread().is_alive():
                try:
                    conn.recv(timeout=0.5)
                except TimeoutError:
                    continue
        except ConnectionClosed:
            pass
        finally:
            with self._send:
                self._clients.discard(conn)

    def _broadcast_loop(self) -> None:
        next_send = 0.0
        while True:
            with self._state:
                while not self._closed:
                    wait = next_send - time.monotonic()
                    if self._dirty and wait <= 0:
                        break
                    self._state.wait(wait if self._dirty else None)
                if self._closed:
                    return
            with self._send:
                with self._state:
                    nodes, links = self._nodes, self._links
                    self._dirty = False
                new_nodes = nodes if nodes != self._sent_nodes else None
                new_links = links if links != self._sent_links else None
                if new_nodes is None and new_links is None:
                    continue
                self._index += 1
                frame = self._frame(new_nodes, new_links)
                self._sent_nodes, self._sent_links = nodes, links
                for conn in list(self._clients):
                    try:
                        conn.send(frame)
                    except ConnectionClosed:
                        self._clients.discard(conn)
            next_send = time.monotonic() + self.MIN_SEND_GAP_S
