"""Accounts, passwords, tokens, the rate limiter and the audit trail, without a hub
(issue 11); the HTTP side is in tests/integration/test_security.py."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetwatch.accounts import (
    Principal,
    TokenStore,
    hash_password,
    required_role,
    role_at_least,
    source_of,
    verify_password,
    warn_weak_passwords,
)
from fleetwatch.audit import AuditLog
from fleetwatch.config import load_config
from fleetwatch.web.auth import RateLimiter


def test_passwords_argon2_multivisor_sha_and_plain() -> None:
    stored = hash_password("pa55-word")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "pa55-word")
    assert not verify_password(stored, "pa55-Word")
    sha = "{SHA}" + hashlib.sha1(b"admin").hexdigest()  # Multivisor's format
    assert verify_password(sha, "admin")
    assert not verify_password(sha, "admin ")
    assert verify_password("plain", "plain")
    assert not verify_password("plain", "plai")
    assert not verify_password(None, "anything")  # no such account: still False
    assert not verify_password("$argon2id$garbage", "x")


def test_hash_password_reads_stdin_and_prints_a_hash() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fleetwatch.cli", "hash-password"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stored = run.stdout.strip()
    assert verify_password(stored, "s3cret")
    assert "s3cret" not in run.stdout + run.stderr
    empty = subprocess.run(
        [sys.executable, "-m", "fleetwatch.cli", "hash-password"],
        input="\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert empty.returncode == 2
    assert "empty password" in empty.stderr


def test_multivisor_global_credentials_are_one_admin_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ini = tmp_path / "multivisor.conf"
    secret = hashlib.sha1(b"pw").hexdigest()
    ini.write_text(f"[global]\nusername=boss\npassword={{SHA}}{secret}\n\n[supervisor:a]\n")
    cfg = load_config(str(ini))
    (user,) = cfg.users
    assert (user.name, user.role, user.sources) == ("boss", "admin", ("*",))
    with caplog.at_level(logging.WARNING):
        warn_weak_passwords(cfg.users)
    assert "boss" in caplog.text
    assert "hash-password" in caplog.text
    assert secret not in caplog.text


def test_roles_and_the_action_table() -> None:
    assert required_role("stop") == "operator"
    assert required_role("block") == "operator"
    assert {required_role(a) for a in ("update", "reload", "shutdown", "reread")} == {"admin"}
    assert role_at_least("admin", "operator")
    assert not role_at_least("viewer", "operator")
    assert not role_at_least("nonsense", "viewer")


@pytest.mark.parametrize(
    ("id", "source"),
    [
        ("lid1", "lid1"),
        ("lid1/host-a", "lid1"),
        ("lid1:web:web_00", "lid1"),
        ("lid1#42", "lid1"),
        ("lid1:g:n/x#y", "lid1"),
    ],
)
def test_every_id_names_its_source(id: str, source: str) -> None:
    assert source_of(id) == source


def test_a_restricted_principal_sees_only_its_globs() -> None:
    p = Principal("lid", "operator", ("lid*", "x1"))
    assert p.restricted
    assert p.sees_id("lid7:web:web")
    assert p.sees_id("x1/host")
    assert not p.sees_id("x12/host")
    assert not p.sees_id("web2:lid:lid")
    assert not Principal("all", "viewer").restricted


def test_tokens_hashed_revoked_expired(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.db")
    assert store.list() == []
    info, token = store.create("alice", "operator", note="ci")
    assert (tmp_path / "t.db").stat().st_mode & 0o077 == 0
    assert token.startswith(f"fwt_{info.id}_")
    assert store.check(token) == info
    assert store.check(token + "x") is None
    assert store.check("fwt_" + info.id) is None
    assert store.check("garbage") is None
    secret = token.split("_", 2)[2]
    assert secret.encode() not in (tmp_path / "t.db").read_bytes()
    store.revoke(info.id)
    assert store.check(token) is None
    assert [t.state for t in store.list()] == ["revoked"]
    old, old_token = store.create("bob", "viewer", expires=time.time() - 1)
    assert old.state == "expired"
    assert store.check(old_token) is None
    assert "fwt_" not in repr(info)


def test_rate_limiter_per_account_per_address_and_window() -> None:
    now = [1000.0]
    limiter = RateLimiter(per_account=3, per_address=5, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("alice", "10.0.0.1") == 0
        limiter.failed("alice", "10.0.0.1")
    assert limiter.retry_after("alice", "10.0.0.2") == pytest.approx(60)
    assert limiter.retry_after("bob", "10.0.0.1") == 0
    limiter.failed("bob", "10.0.0.1")
    limiter.failed("carol", "10.0.0.1")
    assert limiter.retry_after("dave", "10.0.0.1") > 0  # the address's five
    now[0] += 61
    assert limiter.retry_after("alice", "10.0.0.1") == 0


def test_the_audit_trail_is_append_only(tmp_path: Path) -> None:
    trail = AuditLog(tmp_path / "a.db")
    trail.record(
        user="u",
        via="token",
        address="1.2.3.4",
        what="stop",
        target="process:a:b",
        result="ok",
        params={"signal": "TERM"},
    )
    trail.record(user="v", via="session", address="-", what="login", result="failed")
    entries = trail.entries()
    assert [(e.user, e.what, e.result) for e in entries] == [
        ("u", "stop", "ok"),
        ("v", "login", "failed"),
    ]
    assert entries[0].params == {"signal": "TERM"}
    assert [e.user for e in trail.entries(user="v")] == ["v"]
    trail.close()
    with sqlite3.connect(tmp_path / "a.db") as db:
        for statement in ("DELETE FROM audit", "UPDATE audit SET user = 'x'"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
    nowhere = AuditLog(None)
    nowhere.record(user="u", via="open", address="-", what="stop", result="ok")
    assert nowhere.entries() == []
