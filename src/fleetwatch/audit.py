"""The audit trail: every action and every login, in an append-only SQLite file.

One row per event: when, who (account, and how: session, token or open), from where
(the client's address), what (an action's name, ``login``, ``logout``), on which target,
and the result (``ok``, ``failed``, ``refused``) with its error text. Triggers make the
table append-only: an ``UPDATE`` or ``DELETE`` aborts. Parameters are kept (they are
never secrets: signal names, log channels); passwords and tokens are never written.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["AuditEntry", "AuditLog"]

log = logging.getLogger("fleetwatch.audit")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    via TEXT NOT NULL,
    address TEXT NOT NULL,
    what TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    error TEXT,
    params TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts: float
    user: str
    via: str
    address: str
    what: str
    target: str
    result: str
    error: str | None
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "user": self.user,
            "via": self.via,
            "address": self.address,
            "what": self.what,
            "target": self.target,
            "result": self.result,
            "error": self.error,
            "params": self.params,
        }


class AuditLog:
    """The trail at ``path`` (created 0600 on first write). Thread-safe; writes are small.

    With ``path`` None (no ``[[users]]`` and no ``[hub] audit_log``) entries go to the
    ``fleetwatch.audit`` log only, as before login existed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def _open(self) -> sqlite3.Connection:
        assert self.path is not None
        if self._db is None:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def record(
        self,
        *,
        user: str,
        via: str,
        address: str,
        what: str,
        target: str = "",
        result: str,
        error: str | None = None,
        params: dict[str, Any] | None = None,
        echo: bool = True,
    ) -> None:
        """Append one entry; with ``echo`` also a line on the ``fleetwatch.audit`` log
        (the hub logs the actions it runs itself)."""
        if echo:
            log.info(
                "user=%s via=%s from=%s what=%s target=%s result=%s%s",
                user,
                via,
                address,
                what,
                target,
                result,
                f" error={error}" if error else "",
            )
        if self._broken or self.path is None:
            return
        encoded = orjson.dumps(params or {}, default=str).decode()
        try:
            with self._lock:
                db = self._open()
                db.execute(
                    "INSERT INTO audit (ts, user, via, address, what, target, result, error,"
                    " params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (time.time(), user, via, address, what, target, result, error, encoded),
                )
                db.commit()
        except (OSError, sqlite3.Error) as exc:
            self._broken = True
            log.error("cannot write the audit trail %s: %s", self.path, exc)

    def entries(
        self, *, limit: int = 100, user: str | None = None, since: float | None = None
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries (optionally of one user, after ``since``), oldest first."""
        if self.path is None or not self.path.exists():
            return []
        query = "SELECT id, ts, user, via, address, what, target, result, error, params FROM audit"
        where: list[str] = []
        args: list[Any] = []
        if user is not None:
            where.append("user = ?")
            args.append(user)
        if since is not None:
            where.append("ts > ?")
            args.append(since)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._open().execute(query, args).fetchall()
        return [
            AuditEntry(
                id=r[0],
                ts=r[1],
                user=r[2],
                via=r[3],
                address=r[4],
                what=r[5],
                target=r[6],
                result=r[7],
                error=r[8],
                params=orjson.loads(r[9]),
            )
            for r in reversed(rows)
        ]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
