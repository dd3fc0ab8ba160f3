"""Login, roles, tokens, CSRF, restricted views and the audit trail (issue 11), against a
real hub (uvicorn) watching two real supervisords, with real HTTP and WebSocket clients.

The config is a real TOML file with ``[[users]]``; tokens are made and revoked with the
real ``fleetwatch token`` command, on the same files the running hub reads.
"""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from fleetwatch.accounts import hash_password
from fleetwatch.config import load_config
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program, free_port
from tests.conftest import HubServer, Stream, require, wait_for

PASSWORDS = {
    "root": "root-Secret-1",
    "oper": "oper-Secret-2",
    "view": "view-Secret-3",
    "lid": "lid-Secret-4",
}
ROLES = {"root": "admin", "oper": "operator", "view": "viewer", "lid": "operator"}
SV_PASSWORD = "sv-Secret-5"
_HASHES: dict[str, str] = {}


def hashes() -> dict[str, str]:
    if not _HASHES:
        _HASHES.update({u: hash_password(p) for u, p in PASSWORDS.items()})
    return _HASHES


class Fleet:
    """The hub, its config file, its two supervisords and a captured log."""

    def __init__(self, path: Path, hub: HubServer, svs: dict[str, Supervisord]) -> None:
        self.path = path
        self.hub = hub
        self.svs = svs
        self.url = hub.url
        self.clients: list[httpx.Client] = []

    def client(self, user: str | None = None) -> httpx.Client:
        """A client; with ``user``, logged in by session (``.csrf`` holds its token)."""
        c = self.new()
        if user is not None:
            r = c.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
            assert r.status_code == 200, r.text
            c.headers["X-CSRF-Token"] = r.json()["csrf"]
        return c

    def token(self, user: str, *extra: str) -> str:
        out = fleetwatch("token", "create", "-c", str(self.path), "--user", user, *extra)
        return out.strip()

    def new(self, **kw: Any) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=30, **kw)
        self.clients.append(c)
        return c

    def bearer(self, token: str) -> httpx.Client:
        return self.new(headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.hub.close()

    def state(self, source: str, process: str) -> str:
        return str(self.svs[source].call("supervisor.getProcessInfo", process)["statename"])


def fleetwatch(*args: str, code: int = 0) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "fleetwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    return run.stdout if code == 0 else run.stderr


@pytest.fixture
def hub_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    try:
        yield caplog
    finally:
        uvicorn_log.removeHandler(caplog.handler)


@pytest.fixture
def fleet(
    tmp_path: Path,
    supervisors: Callable[..., Supervisord],
    hub_log: pytest.LogCaptureFixture,
) -> Iterator[Fleet]:
    svs = {
        name: supervisors(
            name,
            [Program("web", demo_program("service", f"{name}-web"))],
            username="sv",
            password=SV_PASSWORD,
        )
        for name in ("lid1", "web2")
    }
    users = "".join(
        f'[[users]]\nname = "{u}"\npassword = "{hashes()[u]}"\nrole = "{ROLES[u]}"\n'
        + ('sources = ["lid*"]\n' if u == "lid" else "")
        for u in PASSWORDS
    )
    sources = "".join(
        f'[sources.{n}]\nkind = "supervisor"\nurl = "{sv.url}"\nusername = "sv"\n'
        f'password = "{SV_PASSWORD}"\npoll_interval = 0.5\n'
        for n, sv in svs.items()
    )
    path = tmp_path / "fleet.toml"
    path.write_text(f'[hub]\nlisten = "127.0.0.1:{free_port()}"\n{sources}{users}')
    hub = HubServer(load_config(str(path)))
    f = Fleet(path, hub, svs)
    c = f.client("root")
    wait_for(
        lambda: (
            {"lid1:web:web", "web2:web:web"}
            <= {p["id"] for p in c.get("/api/processes", params={"q": "state:running"}).json()}
        ),
        20,
        "both processes running",
    )
    try:
        yield f
    finally:
        f.close()


def stream(f: Fleet, headers: dict[str, str] | None = None) -> Stream:
    url = f"ws://127.0.0.1:{f.hub.port}/api/stream"
    return Stream(connect(url, open_timeout=10, additional_headers=headers, legacy=True))


def action(kind: str, id: str, name: str) -> dict[str, Any]:
    return {"target": {"kind": kind, "id": id}, "name": name, "params": {}}


# -- anonymous callers ---------------------------------------------------------------------------


def test_every_route_and_the_stream_refuse_an_anonymous_caller(
    fleet: Fleet, hub_log: pytest.LogCaptureFixture
) -> None:
    anon = fleet.client()
    schema = anon.get("/api/openapi.json").json()  # public: it names no source
    walked = []
    for path, operations in schema["paths"].items():
        url = re.sub(r"\{[^}]+\}", "lid1:web:web", path)
        for method in operations:
            body = {"username": "nobody", "password": "x"} if path == "/api/login" else {}
            r = anon.request(method.upper(), url, json=body)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert "error" in r.json()
            assert "lid1" not in r.text.replace(url, "")
            walked.append(f"{method.upper()} {path}")
    assert {"GET /api/fleet", "POST /api/actions", "GET /api/audit", "GET /api/me"} <= set(walked)
    for path in ("/multivisor/api/data", "/multivisor/api/process/list", "/api/nope"):
        assert anon.get(path).status_code == 401
    assert anon.post("/multivisor/api/process/stop", data={"uid": "*"}).status_code == 401
    with pytest.raises(InvalidStatus) as info:
        stream(fleet).close()
    assert info.value.response.status_code == 401
    bad = {"Authorization": "Bearer fwt_00000000_not-a-token"}
    with pytest.raises(InvalidStatus) as info:
        stream(fleet, bad).close()
    assert info.value.response.status_code == 401
    assert fleet.state("lid1", "web:web") == "RUNNING"
    assert not [r for r in hub_log.records if r.levelno >= logging.ERROR], hub_log.text


# -- roles ---------------------------------------------------------------------------------------


def test_a_viewer_acts_on_nothing_and_supervisord_is_unchanged(fleet: Fleet) -> None:
    viewer = fleet.client("view")
    assert viewer.get("/api/fleet").status_code == 200
    for name in ("stop", "restart", "update", "shutdown"):
        kind, target = (
            ("source", "lid1")
            if name in ("update", "shutdown")
            else (
                "process",
                "lid1:web:web",
            )
        )
        r = viewer.post("/api/actions", json=action(kind, target, name))
        assert r.status_code == 403, r.text
        assert r.json()["ok"] is False
        assert "viewer" in r.json()["error"]
    r = viewer.post("/multivisor/api/process/stop", data={"uid": "lid1:web:web"})
    assert r.status_code == 403
    assert fleet.state("lid1", "web:web") == "RUNNING"
    assert fleet.svs["lid1"].call("supervisor.getState")["statename"] == "RUNNING"


def test_an_operator_acts_on_processes_but_not_on_supervisord(fleet: Fleet) -> None:
    oper = fleet.client("oper")
    r = oper.post("/api/actions", json=action("process", "web2:web:web", "stop"))
    assert r.status_code == 200, r.text
    assert r.json()["ok"], r.text
    assert fleet.state("web2", "web:web") == "STOPPED"
    for name in ("update", "reload", "reread", "shutdown"):
        r = oper.post("/api/actions", json=action("source", "web2", name))
        assert r.status_code == 403, (name, r.text)
    assert fleet.svs["web2"].call("supervisor.getState")["statename"] == "RUNNING"
    admin = fleet.client("root")
    r = admin.post("/api/actions", json=action("source", "web2", "reread"))
    assert r.status_code == 200, r.text
    assert r.json()["ok"], r.text


# -- restricted accounts -------------------------------------------------------------------------


def test_a_restricted_account_sees_and_touches_only_its_sources(fleet: Fleet) -> None:
    lid = fleet.client("lid")
    answers = [lid.get("/api/fleet"), lid.get("/api/notifications")]
    answers += [lid.get(f"/api/{p}") for p in ("sources", "nodes", "processes", "jobs")]
    answers += [lid.get("/api/processes", params={"q": "web2"}), lid.get("/api/me")]
    assert all(a.status_code == 200 for a in answers)
    assert [p["id"] for p in lid.get("/api/processes").json()] == ["lid1:web:web"]
    assert all("web2" not in a.text for a in answers)
    for path in ("/api/sources/web2", "/api/processes/web2:web:web", "/api/nodes/web2/web2"):
        r = lid.get(path)
        assert r.status_code == 404, path
    assert lid.get("/api/processes/web2:web:web/log").status_code == 404
    r = lid.post("/api/actions", json=action("process", "web2:web:web", "stop"))
    assert r.status_code == 404
    assert r.json()["ok"] is False
    assert lid.get("/multivisor/api/data").status_code == 403  # it has no per-source view
    assert fleet.state("web2", "web:web") == "RUNNING"

    # The stream: its snapshot, deltas and notes hold only lid1, while both change.
    cookie = {"Cookie": f"fleetwatch_session={lid.cookies['fleetwatch_session']}"}
    s = stream(fleet, cookie)
    admin = fleet.client("root")
    try:
        s.hello()
        s.receive()
        assert s.snapshots == 1
        assert s.get("source", "lid1") is not None
        for target in ("web2:web:web", "lid1:web:web"):
            r = admin.post("/api/actions", json=action("process", target, "stop"))
            assert r.json()["ok"], r.text
        s.until(lambda s: (s.get("process", "lid1:web:web") or {}).get("state") == "STOPPED")
        r = lid.post("/api/actions", json=action("process", "lid1:web:web", "start"))
        assert r.json()["ok"], r.text
        s.until(lambda s: (s.get("process", "lid1:web:web") or {}).get("state") == "RUNNING")
        # Notes: web2 goes offline first (seen by the admin), then lid1.
        fleet.svs["web2"].kill()
        wait_for(
            lambda: admin.get("/api/sources/web2").json()["status"] == "offline",
            20,
            "web2 offline",
        )
        assert any(n["source"] == "web2" for n in admin.get("/api/notifications").json())
        assert all(n["source"] == "lid1" for n in lid.get("/api/notifications").json())
        fleet.svs["lid1"].kill()
        s.until(lambda s: any(n["source"] == "lid1" for n in s.notes), 30)
    finally:
        s.close()
    assert all(k[1].split(":")[0].split("/")[0] == "lid1" for k in s.entities)
    assert not [f for f in s.frames if "web2" in orjson.dumps(f).decode()]


# -- sessions and CSRF ---------------------------------------------------------------------------


def test_a_cookie_session_needs_its_csrf_token_and_ends_at_logout(fleet: Fleet) -> None:
    oper = fleet.client("oper")
    r = oper.post("/api/login", json={"username": "oper", "password": PASSWORDS["oper"]})
    set_cookie = r.headers.get_list("set-cookie")
    session = next(c for c in set_cookie if c.startswith("fleetwatch_session="))
    assert "HttpOnly" in session
    assert "SameSite=strict" in session
    assert "Max-Age=" in session
    oper.headers["X-CSRF-Token"] = r.json()["csrf"]
    csrf = oper.headers.pop("X-CSRF-Token")
    r = oper.post("/api/actions", json=action("process", "lid1:web:web", "stop"))
    assert r.status_code == 403
    assert "CSRF" in r.json()["error"]
    r = oper.post(
        "/api/actions",
        json=action("process", "lid1:web:web", "stop"),
        headers={"X-CSRF-Token": "0" * 64},
    )
    assert r.status_code == 403
    assert fleet.state("lid1", "web:web") == "RUNNING"
    assert oper.post("/api/logout").status_code == 403
    me = oper.get("/api/me").json()
    assert me["name"] == "oper"
    assert me["csrf"] == csrf  # the web app takes its token from here after a reload
    assert me["action_roles"] == {  # what the web app draws buttons for
        "*": "operator",
        "update": "admin",
        "reload": "admin",
        "shutdown": "admin",
        "reread": "admin",
    }
    r = oper.post("/api/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    old = session.split(";")[0].split("=", 1)[1]
    again = fleet.new(cookies={"fleetwatch_session": old})
    assert again.get("/api/me").status_code == 401  # the old cookie is dead too
    forged = fleet.new(cookies={"fleetwatch_session": old[:-2] + "xx"})
    assert forged.get("/api/fleet").status_code == 401


def test_login_failures_say_nothing_and_are_rate_limited(fleet: Fleet) -> None:
    anon = fleet.client()
    unknown = anon.post("/api/login", json={"username": "ghost", "password": "x"})
    wrong = anon.post("/api/login", json={"username": "oper", "password": "x"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == {"error": "wrong username or password"}
    for _ in range(4):  # five failures for oper in all
        anon.post("/api/login", json={"username": "oper", "password": "x"})
    r = anon.post("/api/login", json={"username": "oper", "password": PASSWORDS["oper"]})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert fleet.client("view").get("/api/me").json()["role"] == "viewer"  # others may
    for i in range(20):  # per address, whatever the names
        anon.post("/api/login", json={"username": f"guess{i}", "password": "x"})
    r = anon.post("/api/login", json={"username": "view", "password": PASSWORDS["view"]})
    assert r.status_code == 429


# -- tokens --------------------------------------------------------------------------------------


def test_tokens_work_until_revoked_or_expired(fleet: Fleet) -> None:
    token = fleet.token("oper", "--note", "ci")
    assert token.startswith("fwt_")
    c = fleet.bearer(token)
    me = c.get("/api/me").json()
    assert (me["name"], me["role"], me["via"]) == ("oper", "operator", "token")
    r = c.post("/api/actions", json=action("process", "lid1:web:web", "restart"))
    assert r.status_code == 200, r.text  # no CSRF token needed
    assert r.json()["ok"], r.text
    listed = fleetwatch("token", "list", "-c", str(fleet.path))
    assert "oper" in listed
    assert "active" in listed
    assert token not in listed
    token_id = token.split("_")[1]
    fleetwatch("token", "revoke", "-c", str(fleet.path), token_id)
    assert c.get("/api/fleet").status_code == 401  # the running hub sees it at once
    assert "revoked" in fleetwatch("token", "list", "-c", str(fleet.path))
    trail = fleetwatch("audit", "-c", str(fleet.path))
    assert f"token create token:{token_id}: ok" in trail
    assert f"token revoke token:{token_id}: ok" in trail

    short = fleet.bearer(fleet.token("root", "--expires", "1s"))
    wait_for(lambda: short.get("/api/me").status_code == 401, 15, "the token to expire")

    capped = fleet.bearer(fleet.token("root", "--role", "viewer"))
    r = capped.post("/api/actions", json=action("process", "lid1:web:web", "stop"))
    assert r.status_code == 403
    err = fleetwatch(
        "token", "create", "-c", str(fleet.path), "-u", "view", "--role", "admin", code=2
    )
    assert "viewer" in err
    assert "admin" in err


# -- audit ---------------------------------------------------------------------------------------


def test_the_audit_trail_has_actions_refusals_and_logins(fleet: Fleet) -> None:
    anon = fleet.client()
    forged = {"X-Forwarded-For": "203.0.113.9"}  # no [hub] trusted_proxies: not believed
    anon.post("/api/login", json={"username": "oper", "password": "nope"}, headers=forged)
    oper = fleet.client("oper")
    oper.post("/api/actions", json=action("process", "lid1:web:web", "stop"))
    oper.post("/api/actions", json=action("source", "lid1", "shutdown"))
    assert oper.get("/api/audit").status_code == 403
    entries = fleet.client("root").get("/api/audit").json()
    seen = {(e["user"], e["what"], e["target"], e["result"]) for e in entries}
    assert ("oper", "login", "", "failed") in seen
    assert ("oper", "login", "", "ok") in seen
    assert ("oper", "stop", "process:lid1:web:web", "ok") in seen
    assert ("oper", "shutdown", "source:lid1", "refused") in seen
    assert all(e["address"] == "127.0.0.1" for e in entries)
    text = fleetwatch("audit", "-c", str(fleet.path))
    assert "oper" in text
    assert "shutdown source:lid1: refused" in text
    db = fleet.path.parent / "fleet.audit.db"
    assert db.stat().st_mode & 0o077 == 0
    import sqlite3

    with sqlite3.connect(db) as con, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM audit")


# -- secrets -------------------------------------------------------------------------------------


def test_no_secret_in_any_answer_or_log_line(
    fleet: Fleet, hub_log: pytest.LogCaptureFixture
) -> None:
    token = fleet.token("root")
    admin = fleet.bearer(token)
    session = fleet.client("root")
    texts = []
    schema = admin.get("/api/openapi.json").json()
    for path, ops in schema["paths"].items():
        if "get" in ops and "{" not in path:
            texts.append(admin.get(path).text)
            texts.append(session.get(path).text)
    texts += [admin.get("/api/processes/lid1:web:web").text, admin.get("/multivisor/api/data").text]
    texts.append(fleet.client().post("/api/login", json={"username": "root", "password": "x"}).text)
    texts.append(fleetwatch("token", "list", "-c", str(fleet.path)))
    texts.append(fleetwatch("audit", "-c", str(fleet.path), "--json"))
    key = (fleet.path.parent / "fleet.secret").read_text().strip()
    assert (fleet.path.parent / "fleet.secret").stat().st_mode & 0o077 == 0
    secrets = [
        *PASSWORDS.values(),
        *hashes().values(),
        SV_PASSWORD,
        token,
        token.split("_")[2],
        key,
    ]
    everything = "\n".join(texts) + hub_log.text
    assert "root" in everything  # the answers were read
    for secret in secrets:
        assert secret not in everything


# -- transport -----------------------------------------------------------------------------------


def test_serve_refuses_a_public_listen_without_users(tmp_path: Path) -> None:
    path = tmp_path / "open.toml"
    path.write_text('[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9"\n')
    err = fleetwatch("serve", "-c", str(path), "--listen", f"0.0.0.0:{free_port()}", code=2)
    assert "no [[users]]" in err
    assert "--insecure-no-login" in err


@pytest.mark.real
@pytest.mark.timeout(240)
def test_schemathesis_with_a_token_finds_no_failure(fleet: Fleet) -> None:
    from tests.integration.test_openapi_conformance import run_schemathesis

    token = fleet.token("root")
    problems, tested, cases = run_schemathesis(fleet.url, {"Authorization": f"Bearer {token}"})
    assert not problems, f"{len(problems)} failures:\n\n" + "\n\n".join(problems[:20])
    assert {"GET /api/audit", "POST /api/actions", "GET /api/me"} <= tested
    assert cases > 300
    assert fleet.bearer(token).get("/api/health").json()["status"] == "ok"


def test_tls_from_the_config_and_secure_cookies(tmp_path: Path) -> None:
    openssl = require("openssl")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    path = tmp_path / "tls.toml"
    path.write_text(
        f'[hub]\nlisten = "127.0.0.1:{port}"\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n'
        f'[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9"\n'
        f'[[users]]\nname = "root"\npassword = "{hashes()["root"]}"\nrole = "admin"\n'
    )
    hub = HubServer(load_config(str(path)))
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False, timeout=30) as c:
            assert c.get("/api/fleet").status_code == 401
            r = c.post("/api/login", json={"username": "root", "password": PASSWORDS["root"]})
            assert r.status_code == 200
            cookies = r.headers.get_list("set-cookie")
            assert all("Secure" in cookie for cookie in cookies)
            assert c.get("/api/me").json()["name"] == "root"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/me", timeout=10)  # no plain HTTP
    finally:
        hub.close()
    half = tmp_path / "half.toml"
    half.write_text(
        '[hub]\ntls_cert = "cert.pem"\n[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9"\n'
    )
    err = fleetwatch("serve", "-c", str(half), code=2)
    assert "tls_cert and tls_key go together" in err


def test_the_cli_client_and_mirror_with_a_token(fleet: Fleet) -> None:
    import asyncio

    from fleetwatch.client import HubClient, HubError
    from fleetwatch.client.mirror import Mirror

    token = fleet.token("lid")
    client = HubClient(fleet.url, token=token)
    assert token not in repr(client)
    assert [p["id"] for p in client.rows("processes")] == ["lid1:web:web"]
    with HubClient(fleet.url) as anonymous, pytest.raises(HubError) as info:
        anonymous.fleet()
    assert info.value.status == 401
    assert token not in str(info.value)

    async def follow() -> list[str]:
        mirror = Mirror(client)
        task = asyncio.ensure_future(mirror.run())
        try:
            await mirror.wait_synced(15)
            return [p["id"] for p in mirror.all("process")]
        finally:
            await mirror.close()
            task.cancel()

    try:
        assert asyncio.run(follow()) == ["lid1:web:web"]
    finally:
        client.close()


def test_forwarded_headers_only_from_trusted_proxies(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "proxied.toml"
    path.write_text(
        f'[hub]\nlisten = "127.0.0.1:{port}"\ntrusted_proxies = ["127.0.0.1"]\n'
        f'[sources.a]\nkind = "supervisor"\nurl = "http://127.0.0.1:9"\n'
        f'[[users]]\nname = "root"\npassword = "{hashes()["root"]}"\nrole = "admin"\n'
    )
    hub = HubServer(load_config(str(path)))
    try:
        with httpx.Client(base_url=hub.url, timeout=30) as c:
            via = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
            body = {"username": "root", "password": PASSWORDS["root"]}
            r = c.post("/api/login", json=body, headers=via)
            assert r.status_code == 200
            assert all("Secure" in x for x in r.headers.get_list("set-cookie"))
            # A Secure cookie is not sent back over plain HTTP by httpx: send it by hand.
            cookie = {"Cookie": f"fleetwatch_session={r.cookies['fleetwatch_session']}"}
            entries = c.get("/api/audit", headers={**via, **cookie}).json()
        assert [(e["what"], e["address"]) for e in entries] == [("login", "203.0.113.9")]
    finally:
        hub.close()


def test_a_stream_ends_when_its_token_is_revoked(fleet: Fleet) -> None:
    from websockets.exceptions import ConnectionClosed

    token = fleet.token("view")
    s = stream(fleet, {"Authorization": f"Bearer {token}"})
    admin = fleet.client("root")
    try:
        s.hello()
        assert s.receive()["t"] == "snapshot"
        fleetwatch("token", "revoke", "-c", str(fleet.path), token.split("_")[1])
        deadline = time.monotonic() + 30
        with pytest.raises(ConnectionClosed) as info:  # noqa: PT012 - changes until closed
            for name in itertools.cycle(("stop", "start")):
                assert time.monotonic() < deadline, "the stream was not closed"
                r = admin.post("/api/actions", json=action("process", "web2:web:web", name))
                assert r.json()["ok"], r.text
                while True:  # read what the action changed, then act again
                    try:
                        s.receive(timeout=0.5)
                    except TimeoutError:
                        break
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4401
        seen = [f for f in s.frames if f["t"] == "delta"]
    finally:
        s.close()
    # Only what went out within the recheck interval (1 s) after the revocation.
    assert len(seen) <= 8


def test_metrics_need_a_login_and_a_restricted_account_scrapes_only_its_sources(
    fleet: Fleet,
) -> None:
    """Issue 13: /metrics is behind login when login is on; a token works."""
    anon = fleet.client()
    r = anon.get("/metrics")
    assert r.status_code == 401
    assert "lid1" not in r.text
    viewer = fleet.bearer(fleet.token("view"))
    full = viewer.get("/metrics")
    assert full.status_code == 200, full.text
    assert 'fleetwatch_source_up{kind="supervisor",source="web2"} 1.0' in full.text
    lid = fleet.client("lid").get("/metrics")
    assert lid.status_code == 200
    assert 'source="lid1"' in lid.text
    assert 'source="web2"' not in lid.text
    assert "fleetwatch_hub_seq" in lid.text  # the hub's own series name no source
