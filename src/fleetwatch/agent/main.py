"""``fleetwatch-agent``: the command line (standard library only, Python 3.8+)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import ssl
import sys
import threading
from typing import TextIO

from fleetwatch.agent.agent import (
    Agent,
    AgentServer,
    PidWatcher,
    Supervisor,
    Waker,
    is_loopback,
    protocol_streams,
    run_listener,
)

__all__ = ["main", "print_config"]

DEFAULT_LISTEN = "127.0.0.1:9002"
TOKEN_ENV = "FLEETWATCH_AGENT_TOKEN"
EVENTS = "PROCESS_STATE,PROCESS_GROUP,SUPERVISOR_STATE_CHANGE,REMOTE_COMMUNICATION"

log = logging.getLogger("fleetwatch.agent")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def print_config(args: argparse.Namespace, out: TextIO) -> None:
    """The supervisord.conf section to paste, and the hub's matching source."""
    token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(32)
    script = sys.argv[0]
    named = os.path.basename(script) == "fleetwatch-agent"
    exe = shlex.quote(os.path.abspath(script)) if named else "fleetwatch-agent"
    command = [exe, "--listen", args.listen]
    if args.tls_cert:
        command += ["--tls-cert", args.tls_cert, "--tls-key", args.tls_key]
    env = [f'{TOKEN_ENV}="{token}"']
    if args.username:
        env += [f'SUPERVISOR_USERNAME="{args.username}"', 'SUPERVISOR_PASSWORD="CHANGE-ME"']
    host = args.listen.rpartition(":")[0]
    lines = [
        "[eventlistener:fleetwatch]",
        "; fleetwatch-agent: pushes this supervisord's changes to fleetwatch hubs",
        f"command={' '.join(command)}",
        f"events={EVENTS}",
        "; >= 2 x processes x states per restart: a full buffer drops events (T17)",
        f"buffer_size={args.buffer_size}",
        "autostart=true",
        "autorestart=true",
        "startsecs=1",
        "; stdout is the event protocol; the agent logs to stderr",
        "stdout_logfile=NONE",
        "stderr_logfile=AUTO",
        f"environment={','.join(env)}",
        "",
        "; the hub's side (fleetwatch.toml):",
        "; [sources.THIS-HOST]",
        '; kind = "supervisor"',
        f'; agent = "{host if host not in ("", "0.0.0.0", "::") else "THIS-HOST"}:'
        f'{args.listen.rpartition(":")[2]}"',
        f'; agent_token = "{token}"',
        '; url = "http://THIS-HOST:9001"   # optional: polled while the agent is unreachable',
    ]
    out.write("\n".join(lines) + "\n")


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fleetwatch-agent",
        description="supervisord event listener that pushes changes to fleetwatch hubs",
    )
    p.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT (default %(default)s)")
    p.add_argument("--token-file", help=f"a file holding the shared token (else ${TOKEN_ENV})")
    p.add_argument("--tls-cert", help="PEM certificate: serve TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--print-config", action="store_true", help="print the supervisord.conf section")
    p.add_argument("--buffer-size", type=int, default=1024, help="for --print-config")
    p.add_argument("--username", help="for --print-config: supervisord's HTTP username")
    p.add_argument(
        "--no-wake",
        action="store_true",
        help="never poke supervisord's loop (events then wait for its next pass, up to 1 s; "
        "for measurements)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("fleetwatch-agent: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(f"fleetwatch-agent: --listen: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print_config(args, sys.stdout)
        return 0
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        token = _token(args)
    except OSError as exc:
        print(f"fleetwatch-agent: --token-file: {exc}", file=sys.stderr)
        return 2
    if token is None and not is_loopback(host):
        print(
            f"fleetwatch-agent: refusing to listen on {host or '*'}:{port} without a token "
            f"(set {TOKEN_ENV} or --token-file; only loopback may go without)",
            file=sys.stderr,
        )
        return 2
    url = os.environ.get("SUPERVISOR_SERVER_URL")
    if not url:
        print(
            "fleetwatch-agent: SUPERVISOR_SERVER_URL is not set: run me as a supervisord "
            "[eventlistener:...] (fleetwatch-agent --print-config prints one)",
            file=sys.stderr,
        )
        return 2
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"fleetwatch-agent: TLS certificate: {exc}", file=sys.stderr)
            return 2
    supervisor = Supervisor(
        url, os.environ.get("SUPERVISOR_USERNAME"), os.environ.get("SUPERVISOR_PASSWORD")
    )
    waker = Waker(supervisor.poke)
    agent = Agent(supervisor, waker=None if args.no_wake else waker)
    try:
        server = AgentServer((host, port), agent, token=token, tls=tls)
    except OSError as exc:
        print(f"fleetwatch-agent: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    stdin, stdout = protocol_streams()
    sync = agent.begin_sync()  # before the first READY: earlier events are in the snapshot
    if not args.no_wake:
        agent.pids = PidWatcher(agent.on_exit)
    threads = [
        threading.Thread(target=waker.run, name="waker", daemon=True),
        threading.Thread(target=_first_sync, args=(agent, sync), name="worker", daemon=True),
        threading.Thread(target=server.serve_forever, name="server", daemon=True),
    ]
    if agent.pids is not None:
        threads.append(threading.Thread(target=agent.pids.run, name="pids", daemon=True))
    for t in threads:
        t.start()
    log.info(
        "fleetwatch-agent listening on %s:%d (%s, %s) for %s",
        host,
        port,
        "TLS" if tls else "plain TCP",
        "token" if token else "no token: loopback only",
        url,
    )
    try:
        run_listener(agent, stdin, stdout)
    except EOFError:
        log.info("supervisord closed stdin: exiting")
    finally:
        server.server_close()
    return 0


def _first_sync(agent: Agent, sync: object) -> None:
    try:
        agent.resync(sync)  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("first snapshot failed (%s); retrying", exc)
        agent.request_resync()
    agent.run_worker()


if __name__ == "__main__":
    sys.exit(main())
