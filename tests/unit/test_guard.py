"""The Host and Origin rules of :mod:`fleetwatch.web.guard`, without a server (issue 8, item 5).

The same rules against a real uvicorn server and real clients are in
``tests/integration/test_web_guard.py``.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from fleetwatch.web.guard import Guard, split_host


def scope(
    host: str | None = "127.0.0.1:8000",
    origin: str | None = None,
    *,
    method: str = "GET",
    kind: str = "http",
    forwarded: str | None = None,
) -> dict[str, Any]:
    headers = []
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if forwarded is not None:
        headers.append((b"x-forwarded-host", forwarded.encode()))
    out: dict[str, Any] = {"type": kind, "headers": headers, "path": "/api/fleet"}
    if kind == "http":
        out["method"] = method
    return out


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("[::1]:8000", ("::1", 8000)),
        ("[::1]", ("::1", None)),
        ("Fleet.Example.COM.", ("fleet.example.com", None)),
        ("fleet.example.com:443", ("fleet.example.com", 443)),
        ("", None),
        ("host:0", None),
        ("host:99999", None),
        ("host:x", None),
        ("[::1", None),
        ("[::1]x", None),
        ("evil.example/path", None),
        ("user@host", None),
    ],
)
def test_split_host(value: str, parsed: tuple[str, int | None] | None) -> None:
    assert split_host(value) == parsed


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8000",
        "127.0.0.1",
        "10.1.2.3:9",  # any IP literal: DNS rebinding needs a name
        "[::1]:8000",
        "[2001:db8::1]",
        "localhost:8000",
        "LOCALHOST",
        "fleet.localhost:8000",
        "localhost.:8000",
    ],
)
def test_hosts_rebinding_cannot_forge_are_accepted(host: str) -> None:
    assert Guard("127.0.0.1", (), ()).check(scope(host)) is None


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example"],
)
def test_a_rebinding_host_is_refused_naming_the_setting_issue8(host: str) -> None:
    refusal = Guard("127.0.0.1", (), ()).check(scope(host))
    assert refusal is not None
    assert refusal.status == 421
    assert refusal.refused == host
    assert refusal.setting == "[hub] allowed_hosts"
    assert repr(host) in refusal.error
    assert "[hub] allowed_hosts" in refusal.error
    assert refusal.body(False) == {
        "error": refusal.error,
        "refused": host,
        "setting": "[hub] allowed_hosts",
    }
    assert refusal.body(True) == {
        "ok": False,
        "error": refusal.error,
        "detail": {"refused": host, "setting": "[hub] allowed_hosts"},
    }


def test_the_listen_host_is_accepted() -> None:
    guard = Guard("fleet.lan", (), ())
    assert guard.check(scope("fleet.lan:8000")) is None
    assert guard.check(scope("FLEET.LAN")) is None
    assert guard.check(scope("other.lan:8000")) is not None


@pytest.mark.parametrize(
    ("patterns", "host", "ok"),
    [
        (("fleet.example.com",), "fleet.example.com", True),
        (("fleet.example.com",), "fleet.example.com:8443", True),  # no port: any port
        (("fleet.example.com:443",), "fleet.example.com:443", True),
        (("fleet.example.com:443",), "fleet.example.com:8443", False),
        (("*.example.com",), "a.b.example.com", True),
        (("*.example.com",), "example.com", False),
        (("*.example.com",), "example.com.evil", False),
        (("*",), "anything.at.all", True),
        ((), "fleet.example.com", False),
    ],
)
def test_allowed_hosts_globs_and_ports(patterns: tuple[str, ...], host: str, ok: bool) -> None:
    assert (Guard("127.0.0.1", patterns, ()).check(scope(host)) is None) is ok


def test_a_bad_allowed_hosts_entry_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\[hub\] allowed_hosts: not a host name: 'a/b'"):
        Guard("127.0.0.1", ("a/b",), ())


def test_the_machines_own_name_only_beyond_loopback() -> None:
    name = socket.gethostname().lower()
    if name in ("localhost",) or name.endswith(".localhost"):
        pytest.skip("this machine is called localhost")
    assert Guard("0.0.0.0", (), ()).check(scope(f"{name}:8000")) is None
    assert Guard("::", (), ()).check(scope(name)) is None
    assert Guard("127.0.0.1", (), ()).check(scope(name)) is not None


def test_no_host_header_is_accepted() -> None:
    """HTTP/1.0 without Host: not a browser, and DNS rebinding needs a browser."""
    assert Guard("127.0.0.1", (), ()).check(scope(None)) is None
    assert Guard("127.0.0.1", (), ()).check(scope(None, method="POST")) is None


def test_every_host_header_is_checked() -> None:
    s = scope("127.0.0.1:8000")
    s["headers"].append((b"host", b"evil.example"))
    refusal = Guard("127.0.0.1", (), ()).check(s)
    assert refusal is not None
    assert refusal.refused == "evil.example"


def test_a_forwarded_host_passes_the_same_rule() -> None:
    guard = Guard("127.0.0.1", ("fleet.example.com",), ())
    assert guard.check(scope(forwarded="fleet.example.com")) is None
    refusal = guard.check(scope(forwarded="evil.example, fleet.example.com"))
    assert refusal is not None
    assert refusal.refused == "evil.example"


@pytest.mark.parametrize("kind", ["websocket", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    ("host", "origin", "ok"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("127.0.0.1:8000", "https://127.0.0.1:8000", True),  # scheme-less
        ("localhost:8000", "http://LOCALHOST:8000", True),
        ("[::1]:8000", "http://[::1]:8000", True),
        ("fleet.example.com", "https://fleet.example.com", True),  # default ports
        ("fleet.example.com:443", "https://fleet.example.com", True),
        ("127.0.0.1:8000", "http://127.0.0.1:8001", False),  # another local page
        ("127.0.0.1:8000", "http://localhost:8000", False),  # another origin, same socket
        ("127.0.0.1:8000", "http://evil.example", False),
        ("127.0.0.1:8000", "null", False),  # sandboxed frames, file://
        ("127.0.0.1:8000", "garbage", False),
    ],
)
def test_origin_must_be_the_hubs_own_issue8(kind: str, host: str, origin: str, ok: bool) -> None:
    guard = Guard("127.0.0.1", ("fleet.example.com",), ())
    s = (
        scope(host, origin, kind="websocket")
        if kind == "websocket"
        else scope(host, origin, method=kind)
    )
    refusal = guard.check(s)
    assert (refusal is None) is ok
    if refusal is not None:
        assert refusal.status == 403
        assert refusal.refused == origin
        assert refusal.setting == "[hub] allowed_origins"
        assert "[hub] allowed_origins" in refusal.error


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_foreign_origin_may_read_over_plain_http(method: str) -> None:
    """Reading is not refused for the Origin (a browser keeps the answer from a foreign
    page anyway without CORS); the Host check still applies."""
    guard = Guard("127.0.0.1", (), ())
    assert guard.check(scope(origin="http://evil.example", method=method)) is None
    assert guard.check(scope("evil.example", "http://evil.example", method=method)) is not None


def test_no_origin_is_not_a_browser() -> None:
    guard = Guard("127.0.0.1", (), ())
    assert guard.check(scope(kind="websocket")) is None
    assert guard.check(scope(method="POST")) is None


def test_the_origin_may_match_the_forwarded_host() -> None:
    """A proxy that sets X-Forwarded-Host (Traefik, Caddy, Apache; nginx with
    ``proxy_set_header X-Forwarded-Host $host``) serves the page from that host."""
    guard = Guard("127.0.0.1", ("fleet.example.com",), ())
    s = scope("127.0.0.1:8000", "https://fleet.example.com", kind="websocket")
    assert guard.check(s) is not None
    s = scope(
        "127.0.0.1:8000",
        "https://fleet.example.com",
        kind="websocket",
        forwarded="fleet.example.com",
    )
    assert guard.check(s) is None


@pytest.mark.parametrize(
    ("allowed", "origin", "ok"),
    [
        (("https://fleet.example.com",), "https://fleet.example.com", True),
        (("https://fleet.example.com",), "https://FLEET.example.com:443", True),
        (("https://fleet.example.com",), "http://fleet.example.com", False),
        (("https://fleet.example.com",), "https://fleet.example.com:8443", False),
        (("https://*.example.com",), "https://a.example.com", True),
        (("https://*.example.com",), "https://a.example.org", False),
        (("null",), "null", True),
    ],
)
def test_allowed_origins(allowed: tuple[str, ...], origin: str, ok: bool) -> None:
    guard = Guard("127.0.0.1", (), allowed)
    assert (guard.check(scope("127.0.0.1:8000", origin, kind="websocket")) is None) is ok
