"""The SQLite store: one file, one aiosqlite connection per store, durable on acknowledgement.

Several stores (in one process or in several) may open the same file. Appends stay correct
because each one checks the branch head and writes inside a single `BEGIN IMMEDIATE`
transaction, which takes SQLite's write lock up front: a second writer waits (busy_timeout)
and then sees the first one's head, so it gets SeqConflict instead of writing a gap or a fork.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import aiosqlite

from hub.domain.events import Event
from hub.store.base import Idempotency, LogHead, SeqConflict, StoreUnavailable

# Connection settings, reused verbatim by bench/call_next.py so that it measures what we run.
# busy_timeout first, so the journal_mode switch waits for another process instead of failing.
# WAL: readers never block the writer. synchronous=FULL: in WAL mode this fsyncs the WAL on every
# COMMIT, so an acknowledged command survives kill -9 *and* power loss (NORMAL only survives
# kill -9). synchronous is per connection, not stored in the file, hence set on every open.
PRAGMAS: tuple[str, ...] = (
    "PRAGMA busy_timeout=5000",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
)

SCHEMA_VERSION = 1  # kept in PRAGMA user_version; bump it with a migration in _ensure_schema
T = TypeVar("T")

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS branches(branch TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " epoch TEXT NOT NULL)",
    # WITHOUT ROWID: the (branch, seq) key is the storage order, so reading a range is one scan.
    "CREATE TABLE IF NOT EXISTS events(branch TEXT, seq INTEGER, day TEXT, body TEXT,"
    " PRIMARY KEY(branch, seq)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS events_branch_day ON events(branch, day)",
    "CREATE TABLE IF NOT EXISTS idempotency(branch TEXT, key TEXT, fingerprint TEXT,"
    " status INTEGER, body TEXT, PRIMARY KEY(branch, key))",
)


def _dumps(ev: Event) -> str:
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":"))


class SQLiteStore:
    def __init__(self, db: aiosqlite.Connection):
        self._db = db
        # One connection means one transaction state shared by every coroutine using this store:
        # without the lock a read could see another coroutine's uncommitted (maybe rolled back)
        # append, and two appends would nest BEGINs. SQLite serialises processes; this, coroutines.
        self._lock = asyncio.Lock()
        self._writes: set[asyncio.Task] = set()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | Path) -> AsyncIterator[SQLiteStore]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # we issue BEGIN IMMEDIATE ourselves.
        async with aiosqlite.connect(path, isolation_level=None) as db:
            for pragma in PRAGMAS:  # fetched, so no statement is left open holding a lock
                await db.execute_fetchall(pragma)
            store = cls(db)
            await store._ensure_schema()
            try:
                yield store
            finally:  # let shielded transactions finish before the connection goes
                await asyncio.gather(*store._writes, return_exceptions=True)

    async def _write(self, body: Callable[[], Awaitable[T]]) -> T:
        """Runs `body` in one BEGIN IMMEDIATE ... COMMIT transaction, rolled back on any error.

        The transaction runs as its own task, shielded from the caller's cancellation (a client
        disconnect, a timeout): stopped half-way it would leave the write lock held and block
        every other writer on the file. So it always ends in COMMIT or ROLLBACK, and a cancelled
        caller cannot know which, as with any lost reply; idempotency keys cover the retry."""
        async def transaction() -> T:
            async with self._lock:
                try:  # BEGIN inside: if it was queued at all, the ROLLBACK is queued after it
                    await self._db.execute("BEGIN IMMEDIATE")
                    result = await body()
                    await self._db.commit()
                except sqlite3.OperationalError as e:   # locked past busy_timeout, disk I/O error
                    await self._db.rollback()
                    raise StoreUnavailable(f"sqlite: {e}") from e
                except BaseException:
                    await self._db.rollback()  # a no-op if no transaction is open
                    raise
                return result

        task = asyncio.ensure_future(transaction())
        self._writes.add(task)  # a strong reference until done; open() waits for these on exit
        task.add_done_callback(self._writes.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
        return await asyncio.shield(task)

    async def _ensure_schema(self) -> None:
        # In a write transaction so two processes starting together do not both migrate.
        async def migrate() -> None:
            [(version,)] = await self._db.execute_fetchall("PRAGMA user_version")
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"store schema {version} is newer than this code ({SCHEMA_VERSION})")
            for statement in _SCHEMA:
                await self._db.execute(statement)
            await self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        await self._write(migrate)

    async def _read_head(self, branch: str) -> LogHead | None:
        rows = await self._db.execute_fetchall(
            "SELECT seq, epoch FROM branches WHERE branch = ?", (branch,))
        return LogHead(rows[0][0], rows[0][1]) if rows else None

    async def _create_branch(self, branch: str) -> None:
        # A fresh epoch for a branch we have no history of: clients that cached an older log
        # (say, before the file was lost) see a new epoch and resynchronise from scratch.
        # OR IGNORE: another process may have created it meanwhile; its epoch wins.
        await self._db.execute("INSERT OR IGNORE INTO branches(branch, seq, epoch) VALUES (?, 0, ?)",
                               (branch, secrets.token_hex(8)))

    async def head(self, branch: str) -> LogHead:
        async with self._lock:
            head = await self._read_head(branch)
            if head is None:  # autocommit: the new epoch is durable before anyone sees it
                await self._create_branch(branch)
                head = await self._read_head(branch)
        assert head is not None
        return head

    async def append(self, branch: str, expected_seq: int, events: list[Event],
                     idempotency: Idempotency | None = None) -> list[Event]:
        async def write() -> list[Event]:
            head = await self._read_head(branch)
            if head is None:
                await self._create_branch(branch)
                head = LogHead(0, "")
            # Checked even when only an idempotency record is stored: that answer (say, a refusal)
            # was computed from the state at expected_seq and is stale if the log moved.
            if head.seq != expected_seq:
                raise SeqConflict(branch, expected_seq, head.seq)  # rolls back: nothing written
            stored = [{**ev, "seq": expected_seq + i} for i, ev in enumerate(events, start=1)]
            if stored:
                await self._db.executemany(
                    "INSERT INTO events(branch, seq, day, body) VALUES (?, ?, ?, ?)",
                    [(branch, ev["seq"], ev.get("day"), _dumps(ev)) for ev in stored])
                await self._db.execute("UPDATE branches SET seq = ? WHERE branch = ?",
                                       (stored[-1]["seq"], branch))
            if idempotency is not None:
                # Plain INSERT: a key already answered must never be overwritten; a duplicate
                # raises IntegrityError and rolls the whole append back.
                await self._db.execute(
                    "INSERT INTO idempotency(branch, key, fingerprint, status, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (branch, idempotency.key, idempotency.fingerprint, idempotency.status,
                     idempotency.body))
            return stored

        return await self._write(write)

    async def _select_events(self, sql: str, params: tuple) -> list[Event]:
        async with self._lock:
            rows = await self._db.execute_fetchall(sql, params)
        return [json.loads(body) for (body,) in rows]

    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        return await self._select_events(
            "SELECT body FROM events WHERE branch = ? AND seq > ? ORDER BY seq LIMIT ?",
            (branch, after_seq, -1 if limit is None else limit))  # LIMIT -1: no limit

    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        return await self._select_events(
            "SELECT body FROM events WHERE branch = ? AND day = ? ORDER BY seq",
            (branch, day.isoformat()))

    async def idempotency(self, branch: str, key: str) -> Idempotency | None:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT fingerprint, status, body FROM idempotency WHERE branch = ? AND key = ?",
                (branch, key))
        if not rows:
            return None
        fingerprint, status, body = rows[0]
        return Idempotency(key=key, fingerprint=fingerprint, status=status, body=body)

    async def ping(self) -> None:
        async with self._lock:
            await self._db.execute_fetchall("SELECT 1")
