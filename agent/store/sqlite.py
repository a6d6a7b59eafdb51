"""SQLite state store: one file in the data directory, WAL journal, one row per key.

Each put is a transaction of its own (or, within ``batch``, one with the others of the batch: a tick's
statuses), committed with ``synchronous=NORMAL``: in WAL mode a commit then
survives the agent's process dying (SIGKILL, out of memory) but not an OS crash or a power loss, which
may drop the last commits (never corrupt the file, and never a commit without the ones before it). That
is the right trade for what the store holds: hints the next tick checks against ECS (rollout records,
the revision index) and statuses the reporter sends again when their record is missing. A commit then
costs no fsync: 0.03 ms instead of 0.3 ms on this machine's disk, and a rollout of 1,000 services makes
about 5,000 of them.

A damaged store heals itself, since everything in it is either observable again or rewritten by the next
tick: a file that is not a SQLite database (or fails its integrity check) is moved aside to
``<path>.corrupt-<UTC time>`` and a fresh one is started, as if the store had been deleted; a row whose
value is not a JSON object is dropped. Each is one ``store.corrupt`` / ``store.bad_row`` log line and one
count in ``agent.store.RECOVERED``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from agent.store.recovery import RECOVERED, decode

log = structlog.get_logger()
T = TypeVar("T")
GET_MANY_CHUNK = 500  # keys per query: within SQLite's 999 bound variables before 3.32


class SqliteStore:
    """Key -> JSON object; each put is its own transaction, except within a batch (see the module
    docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # re-entered by the statements of a batch
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) or self.path == ":memory:":
                raise
            self._move_aside(e)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # see the module docstring
            db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            check = db.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _move_aside(self, error: Exception) -> None:
        """Rename the damaged file (and its WAL and shared-memory files) to ``<path>.corrupt-<time>``."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = f"{self.path}.corrupt-{stamp}"
        for suffix in ("", "-wal", "-shm"):
            source = Path(self.path + suffix)
            if source.exists():
                source.rename(aside + suffix)
        RECOVERED["sqlite_file"] += 1
        log.error(
            "store.corrupt",
            path=self.path,
            moved_to=aside,
            error=str(error),
            action="started an empty store; the next tick reads ECS again and rewrites what it needs",
        )

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The puts and deletes of this thread within, committed once at the end: 1,000 statuses of a tick
        cost 5 ms of CPU instead of 47 (a commit each). Other threads wait until the batch ends. What was
        written is committed even when the block raises, as it would have been one by one; a crash
        before the end loses the whole batch, which the next tick writes again (see the module
        docstring). A batch within a batch joins it."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                if self._db.in_transaction:  # not when a damaged file was replaced meanwhile
                    self._db.execute("COMMIT")

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` on the connection; a file found damaged while running is moved aside once, then retried
        on a fresh store."""
        with self._lock:
            try:
                return work(self._db)
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError) or self.path == ":memory:":
                    raise
                self._db.close()
                self._move_aside(e)
                self._db = self._open()
                return work(self._db)

    def _value(self, key: str, text: str) -> dict[str, Any] | None:
        value = decode(text, key, "sqlite")
        if value is None:
            self._run(lambda db: db.execute("DELETE FROM state WHERE key = ?", (key,)))
        return value

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._run(lambda db: db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone())
        return self._value(key, row[0]) if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``get`` of each key, ``GET_MANY_CHUNK`` keys per query: a tick reads its 1,000 rollout records in
        two queries, a tenth of the CPU of a query each."""
        wanted = sorted(set(keys))
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(wanted), GET_MANY_CHUNK):
            chunk = wanted[i : i + GET_MANY_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._run(
                lambda db, chunk=chunk, marks=marks: db.execute(
                    f"SELECT key, value FROM state WHERE key IN ({marks})", chunk
                ).fetchall()
            )
            for key, text in rows:
                value = self._value(key, text)
                if value is not None:
                    out[key] = value
        return out

    def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, sort_keys=True, default=str)
        self._run(
            lambda db: db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, text),
            )
        )

    def delete(self, key: str) -> None:
        self._run(lambda db: db.execute("DELETE FROM state WHERE key = ?", (key,)))

    def items(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix + "\uffff"),
            ).fetchall()
        )
        out = []
        for key, text in rows:
            value = self._value(key, text)
            if value is not None:
                out.append((key, value))
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
