"""``python -m fleetwatch.icecream HOST PORT``: pyicemon's web view, in one command.

Runs a :class:`~fleetwatch.icecream.Monitor` on the scheduler at HOST:PORT with a
:class:`~fleetwatch.publishers.WebsocketPublisher` (``--ws-port``, 9999), and
serves the force-graph page itself (``--http-port``, 8080). Both listen on
127.0.0.1 unless ``--bind`` says otherwise; there is no authentication. When the
scheduler goes away the page empties and the monitor reconnects every few seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from fleetwatch.errors import ProtocolError
from fleetwatch.icecream.monitor import Monitor
from fleetwatch.publishers.websocket import WebsocketPublisher

log = logging.getLogger("fleetwatch.icecream")

RECONNECT_DELAY = 5.0


def page_server(bind: str, port: int, ws_port: int) -> ThreadingHTTPServer:
    """An HTTP server for the page (``/``) and its settings (``/config.json``)."""
    page = (resources.files("fleetwatch.icecream") / "static" / "index.html").read_bytes()
    config = json.dumps({"ws_port": ws_port}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._reply(page, "text/html; charset=utf-8")
            elif path == "/config.json":
                self._reply(config, "application/json")
            else:
                self.send_error(404)

        def _reply(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer((bind, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleetwatch.icecream",
        description="Watch an icecream scheduler and show the cluster as a force graph.",
    )
    parser.add_argument("host", help="the scheduler's host name or address")
    parser.add_argument("port", type=int, nargs="?", default=8765, help="its port (8765)")
    parser.add_argument("--http-port", type=int, default=8080, help="the page's port (8080)")
    parser.add_argument("--ws-port", type=int, default=9999, help="the WebSocket's port (9999)")
    parser.add_argument(
        "--bind", default="127.0.0.1", help="address the page and WebSocket listen on (127.0.0.1)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    publisher = WebsocketPublisher(host=args.bind, port=args.ws_port)
    http = page_server(args.bind, args.http_port, publisher.port)
    threading.Thread(target=http.serve_forever, name="http", daemon=True).start()
    log.info("open http://%s:%d/", args.bind, http.server_address[1])
    try:
        while True:
            try:
                log.info("connecting to %s:%d", args.host, args.port)
                mon = Monitor(args.host, args.port)
                mon.add_publisher(publisher)
                log.info("connected, protocol version %s", getattr(mon.conn, "version", "?"))
                mon.run()
                log.warning("the scheduler closed the connection")
                mon.cs.clear()
                mon.jobs.clear()
                publisher.publish(mon)
            except (OSError, ProtocolError) as exc:
                log.warning("%s:%d: %s", args.host, args.port, exc)
            time.sleep(RECONNECT_DELAY)  # each new connection makes the scheduler pause
    except KeyboardInterrupt:
        return 0
    finally:
        http.shutdown()
        http.server_close()
        publisher.close()


if __name__ == "__main__":
    raise SystemExit(main())
