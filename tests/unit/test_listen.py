"""listen_socket: the hub's socket is bound (and listening) before anything else starts."""

from __future__ import annotations

import socket

import pytest

from fleetwatch.server import ListenError, bound_listen, listen_socket


def test_a_busy_port_is_one_line_issue8_busy_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ListenError) as info:
            listen_socket("127.0.0.1", port)
    assert str(info.value) == f"cannot listen on 127.0.0.1:{port}: address in use"


def test_a_port_held_without_listening_is_busy_too_issue8_busy_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(ListenError, match="address in use"):
            listen_socket("127.0.0.1", port)


def test_other_failures_give_their_reason_issue8_busy_port() -> None:
    with pytest.raises(ListenError) as info:
        listen_socket("192.0.2.1", 22000)  # TEST-NET-1: not an address of this machine
    assert str(info.value) == ("cannot listen on 192.0.2.1:22000: cannot assign requested address")
    with pytest.raises(ListenError, match=r"^cannot listen on nowhere\.invalid:1: "):
        listen_socket("nowhere.invalid", 1)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_the_socket_listens_at_once(host: str) -> None:
    with listen_socket(host, 0) as sock:
        address = sock.getsockname()
        # Listening already: a client connects (the kernel queues it until uvicorn accepts).
        with socket.create_connection(address[:2], timeout=5):
            pass
        assert bound_listen(f"{'[::1]' if host == '::1' else host}:0", sock) == (
            f"{'[::1]' if host == '::1' else host}:{address[1]}"
        )
