"""The history's two SQL backends: SQLite (the default, a file) and PostgreSQL (psycopg 3).

Both hold the same two tables and answer the same statements; the statements are
written with ``?`` placeholders, which the PostgreSQL backend turns into ``%s``:

* ``events (n, ts, seq, epoch, op, kind, id, source, state, value)``: one row per
  committed change (``op`` ``put``/``del``, ``kind`` an entity kind, ``value`` its JSON),
  and per notification (``kind`` ``note``) and action (``kind`` ``action``). ``n`` orders
  rows as they were written; ``seq`` is the hub's sequence number within ``epoch`` (one
  hub run); ``state`` is the value's ``state`` (``status`` for a source), for queries.
* ``snapshots (ts, seq, epoch, value)``: the whole fleet as of ``seq`` of ``epoch``.

Each backend has one connection for the writer thread and one, behind a lock, for
queries (SQLite in WAL mode: readers never wait for the writer).
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Backend", "PostgresBackend", "SqliteBackend", "open_backend"]

EventRow = tuple[float, int, str, str, str, str, str, str | None, str | None]
"""``(ts, seq, epoch, op, kind, id, source, state, value)``."""
SnapshotRow = tuple[float, int, str, str]
"""``(ts, seq, epoch, value)``."""

_INSERT_EVENT = (
    "INSERT INTO events (ts, seq, epoch, op, kind, id, source, state, value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SNAPSHOT = "INSERT INTO snapshots (ts, seq, epoch, value) VALUES (?, ?, ?, ?)"
FrameRow = tuple[float, str, str]
"""``(ts, epoch, frame)``: a delta's stream frame ``{"t": "delta", "seq", "changes"}``,
taken apart by the database (one statement per delta, no Python per change)."""
_SQLITE_FRAME = """INSERT INTO events (ts, seq, epoch, op, kind, id, source, state, value)
SELECT ?1, json_extract(?3, '$.seq') - json_array_length(?3, '$.changes') + key + 1, ?2,
  json_extract(value, '$.op'), json_extract(value, '$.kind'), json_extract(value, '$.id'),
  coalesce(json_extract(value, '$.value.source'), substr(json_extract(value, '$.id'), 1, min(
    coalesce(nullif(instr(json_extract(value, '$.id'), '/'), 0), 1000000000),
    coalesce(nullif(instr(json_extract(value, '$.id'), ':'), 0), 1000000000),
    coalesce(nullif(instr(json_extract(value, '$.id'), '#'), 0), 1000000000)) - 1)),
  coalesce(json_extract(value, '$.value.state'), json_extract(value, '$.value.status')),
  json_extract(value, '$.value')
FROM json_each(?3, '$.changes') ORDER BY key"""
_PG_FRAME = """INSERT INTO events (ts, seq, epoch, op, kind, id, source, state, value)
SELECT %s, (x.f->>'seq')::bigint - json_array_length(x.f->'changes') + e.o, %s,
  e.c->>'op', e.c->>'kind', e.c->>'id',
  coalesce(e.c->'value'->>'source', substring(e.c->>'id' from '^[^/:#]*')),
  coalesce(e.c->'value'->>'state', e.c->'value'->>'status'),
  CASE WHEN e.c->>'op' = 'del' THEN NULL ELSE (e.c->'value')::text END
FROM (SELECT %s::json AS f) AS x, json_array_elements(x.f->'changes') WITH ORDINALITY AS e(c, o)
ORDER BY e.o"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_kind_id_ts ON events (kind, id, ts)",
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
    "CREATE INDEX IF NOT EXISTS events_source_kind_ts ON events (source, kind, ts)",
    "CREATE INDEX IF NOT EXISTS snapshots_ts ON snapshots (ts)",
)


class Backend:
    """What the history needs of a database; see the module docstring."""

    name = "?"

    def __init__(self) -> None:
        self._read_lock = threading.Lock()

    # -- the writer thread's side ------------------------------------------------

    def write(
        self,
        events: Sequence[EventRow],
        snapshots: Sequence[SnapshotRow],
        frames: Sequence[FrameRow] = (),
    ) -> None:
        """One transaction: the deltas' changes, then notes and actions, then snapshots."""
        raise NotImplementedError

    def size(self) -> int:
        """Bytes the store takes."""
        raise NotImplementedError

    def prune(self, cutoff: float | None, max_bytes: int | None) -> int:
        """Drop history older than ``cutoff`` and, while bigger than ``max_bytes``, the
        oldest stretches between snapshots. The newest snapshot at or before the cut is
        kept, so the fleet can still be rebuilt at every moment kept; the newest snapshot
        is always kept. Returns the events dropped."""
        dropped = 0
        if cutoff is not None:
            keep = self._snapshot_before(cutoff)
            if keep is not None:
                dropped += self._drop_before(keep)
        if max_bytes is not None:
            size = self.size()
            if size > max_bytes:
                dropped += self._drop_share((size - max_bytes) / size)
                self._compact()
        return dropped

    def _drop_share(self, share: float) -> int:
        """Drop the oldest stretches between snapshots holding ``share`` of the events
        (sizes are not measured again after a delete: PostgreSQL's do not shrink, they
        are reused)."""
        ((total,),) = self._writer_query("SELECT COUNT(*) FROM events", ())
        need = math.ceil(int(total) * share)
        cut: float | None = None
        for (ts,) in self._writer_query("SELECT ts FROM snapshots ORDER BY ts", ())[1:]:
            cut = float(ts)
            ((older,),) = self._writer_query("SELECT COUNT(*) FROM events WHERE ts < ?", (cut,))
            if int(older) >= need:
                break
        return 0 if cut is None else self._drop_before(cut)

    def _snapshot_before(self, ts: float) -> float | None:
        rows = self._writer_query(
            "SELECT ts FROM snapshots WHERE ts <= ? ORDER BY ts DESC LIMIT 1", (ts,)
        )
        return float(rows[0][0]) if rows else None

    def _drop_before(self, ts: float) -> int:
        raise NotImplementedError

    def _writer_query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _compact(self) -> None:
        """Give freed space back (SQLite's incremental vacuum)."""

    # -- queries (any thread) ----------------------------------------------------

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def glob(self, column: str, pattern: str) -> tuple[str, str]:
        """A condition that ``column`` matches the shell glob ``pattern`` (``*``, ``?``)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------- SQLite


class SqliteBackend(Backend):
    """A SQLite file (created 0600), WAL mode, incremental vacuum."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._writer = self._connect(new=True)
        self._writer.executescript(
            "CREATE TABLE IF NOT EXISTS events (n INTEGER PRIMARY KEY, ts REAL NOT NULL,"
            " seq INTEGER NOT NULL, epoch TEXT NOT NULL, op TEXT NOT NULL, kind TEXT NOT NULL,"
            " id TEXT NOT NULL, source TEXT NOT NULL, state TEXT, value TEXT);"
            "CREATE TABLE IF NOT EXISTS snapshots (ts REAL NOT NULL, seq INTEGER NOT NULL,"
            " epoch TEXT NOT NULL, value TEXT NOT NULL);" + ";".join(_INDEXES) + ";"
        )
        self._writer.commit()
        self._reader = self._connect()

    def _connect(self, *, new: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        if new:  # before WAL and the first table, or it is not taken (an old file keeps its own)
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA case_sensitive_like = ON")
        return db

    def write(
        self,
        events: Sequence[EventRow],
        snapshots: Sequence[SnapshotRow],
        frames: Sequence[FrameRow] = (),
    ) -> None:
        db = self._writer
        with db:
            if frames:  # one statement per delta: sqlite3 lets go of the GIL while it runs
                db.executemany(_SQLITE_FRAME, frames)
            if events:
                db.executemany(_INSERT_EVENT, events)
            if snapshots:
                db.executemany(_INSERT_SNAPSHOT, snapshots)

    def size(self) -> int:
        (pages,) = self._writer.execute("PRAGMA page_count").fetchone()
        (page,) = self._writer.execute("PRAGMA page_size").fetchone()
        return int(pages) * int(page)

    def _drop_before(self, ts: float) -> int:
        db = self._writer
        with db:
            dropped = db.execute("DELETE FROM events WHERE ts < ?", (ts,)).rowcount
            db.execute("DELETE FROM snapshots WHERE ts < ?", (ts,))
        return int(dropped)

    def _compact(self) -> None:
        # executescript runs it to the end (execute() frees one page: one step)
        self._writer.executescript("PRAGMA incremental_vacuum;")

    def _writer_query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._writer.execute(sql, tuple(args)).fetchall()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return self._reader.execute(sql, tuple(args)).fetchall()

    def glob(self, column: str, pattern: str) -> tuple[str, str]:
        return f"{column} GLOB ?", pattern

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        self._writer.close()


# ------------------------------------------------------------------------ PostgreSQL


class PostgresBackend(Backend):
    """A PostgreSQL database (psycopg 3); the tables are made when missing."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        try:
            self._writer = psycopg.connect(url, autocommit=False)
            self._reader = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            # The message may quote the URL (its password): say only what failed.
            raise HistoryUnavailable(
                f"cannot connect to the history's PostgreSQL: {type(exc).__name__}"
            ) from None
        with self._writer.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS events (n BIGSERIAL PRIMARY KEY,"
                " ts DOUBLE PRECISION NOT NULL, seq BIGINT NOT NULL, epoch TEXT NOT NULL,"
                " op TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, source TEXT NOT NULL,"
                " state TEXT, value TEXT)"
            )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS snapshots (ts DOUBLE PRECISION NOT NULL,"
                " seq BIGINT NOT NULL, epoch TEXT NOT NULL, value TEXT NOT NULL)"
            )
            for index in _INDEXES:
                cur.execute(index)
        self._writer.commit()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def write(
        self,
        events: Sequence[EventRow],
        snapshots: Sequence[SnapshotRow],
        frames: Sequence[FrameRow] = (),
    ) -> None:
        with self._writer.cursor() as cur:
            for ts, epoch, frame in frames:
                cur.execute(_PG_FRAME, (ts, epoch, frame))
            if events:
                cur.executemany(self._sql(_INSERT_EVENT), events)
            if snapshots:
                cur.executemany(self._sql(_INSERT_SNAPSHOT), snapshots)
        self._writer.commit()

    def size(self) -> int:
        rows = self._writer_query(
            "SELECT pg_total_relation_size('events') + pg_total_relation_size('snapshots')", ()
        )
        return int(rows[0][0])

    def _drop_before(self, ts: float) -> int:
        with self._writer.cursor() as cur:
            cur.execute(self._sql("DELETE FROM events WHERE ts < ?"), (ts,))
            dropped = cur.rowcount
            cur.execute(self._sql("DELETE FROM snapshots WHERE ts < ?"), (ts,))
        self._writer.commit()
        return int(dropped)

    def _compact(self) -> None:
        # A plain VACUUM frees dead rows for reuse; pg_total_relation_size shrinks only
        # when whole trailing pages are freed, so the size loop also stops at one snapshot.
        self._writer.commit()
        self._writer.autocommit = True
        try:
            self._writer.execute("VACUUM events")
            self._writer.execute("VACUUM snapshots")
        finally:
            self._writer.autocommit = False

    def _writer_query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._writer.cursor() as cur:
            cur.execute(self._sql(sql), tuple(args))
            rows = cur.fetchall()
        self._writer.commit()
        return rows

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock, self._reader.cursor() as cur:
            cur.execute(self._sql(sql), tuple(args))
            return cur.fetchall()

    def glob(self, column: str, pattern: str) -> tuple[str, str]:
        regex = "".join(
            ".*" if c == "*" else "." if c == "?" else ("\\" + c if not c.isalnum() else c)
            for c in pattern
        )
        return f"{column} ~ ?", f"^{regex}$"

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        self._writer.close()


class HistoryUnavailable(Exception):
    """The store cannot be opened (its message names no secret)."""


def open_backend(url: str) -> Backend:
    """``postgresql://...`` or ``postgres://...``: PostgreSQL; else a SQLite file
    (``sqlite:///PATH`` or a path)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url)
    path = Path(url.removeprefix("sqlite://")) if url.startswith("sqlite:///") else Path(url)
    try:
        return SqliteBackend(path)
    except (OSError, sqlite3.Error) as exc:
        raise HistoryUnavailable(f"cannot open the history {path}: {exc}") from None
