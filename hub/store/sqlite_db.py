"""The SQLite database behind the embedded store: one file, one aiosqlite connection per process,
durable on acknowledgement. The event log, the outbox and the recorded predictions
(sqlite_eventlog.py, sqlite_outbox.py, sqlite_predictions.py) share it, and its transactions.

Several stores (in one process or in several) may open the same file. Appends stay correct
because each one checks the branch head and writes inside a single `BEGIN IMMEDIATE`
transaction, which takes SQLite's write lock up front: a second writer waits (busy_timeout)
and then sees the first one's head, so it gets SeqConflict instead of writing a gap or a fork.
The outbox rides on the same lock: an append writes its messages in its own transaction, and a
claim selects and leases in one, so two workers on one file never take the same message.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from hub.store.errors import StoreUnavailable

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

SCHEMA_VERSION = 5  # kept in PRAGMA user_version; bump it with a migration in _ensure_schema
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
    # Version 2: the notification outbox. recipient and params are JSON text. Claims read the
    # two "due" indexes (queued by next_at, sending by lease_until); reports find provider_id.
    "CREATE TABLE IF NOT EXISTS outbox(key TEXT PRIMARY KEY, branch TEXT NOT NULL,"
    " ticket TEXT NOT NULL, trigger TEXT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL,"
    " params TEXT NOT NULL, lang TEXT NOT NULL, created REAL NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, next_at REAL NOT NULL, lease_until REAL NOT NULL,"
    " provider_id TEXT, error TEXT, detail TEXT NOT NULL, updated REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_at)",
    "CREATE INDEX IF NOT EXISTS outbox_lease ON outbox(status, lease_until)",
    "CREATE INDEX IF NOT EXISTS outbox_provider ON outbox(provider_id)",
    "CREATE INDEX IF NOT EXISTS outbox_updated ON outbox(updated)",
    # Version 3: recorded ETA predictions (hub.store.predictions). `at` is the instant of `t` in
    # unix seconds: a point is (branch, at, ticket), and lines are read in the order of instants,
    # then of insertion (rowid).
    "CREATE TABLE IF NOT EXISTS predictions(branch TEXT NOT NULL, day TEXT NOT NULL, at REAL NOT NULL,"
    " ticket TEXT NOT NULL, body TEXT NOT NULL, UNIQUE(branch, at, ticket))",
    "CREATE INDEX IF NOT EXISTS predictions_day ON predictions(branch, day, at)",
    # Version 4: the per-citizen limits' reservations (hub.store.quotas). `expires` in unix seconds.
    "CREATE TABLE IF NOT EXISTS quotas(citizen TEXT NOT NULL, day TEXT NOT NULL, id TEXT NOT NULL,"
    " branch TEXT NOT NULL, field TEXT NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY(citizen, day, id))",
    "CREATE INDEX IF NOT EXISTS quotas_expires ON quotas(expires)",
    # Version 5: branch snapshots (hub.store.snapshots), one row per branch.
    "CREATE TABLE IF NOT EXISTS snapshots(branch TEXT PRIMARY KEY, seq INTEGER NOT NULL, epoch TEXT NOT NULL,"
    " tip TEXT NOT NULL, data TEXT NOT NULL)",
)



def dumps(value: Any) -> str:
    # default=dict: a recipient or params given as another Mapping (say, a MappingProxyType)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=dict)


class Database:
    """One connection and the one transaction at a time it allows."""

    def __init__(self, db: aiosqlite.Connection):
        self.conn = db
        # One connection means one transaction state shared by every coroutine using it: without
        # the lock a read could see another coroutine's uncommitted (maybe rolled back) append,
        # and two appends would nest BEGINs. SQLite serialises processes; this, coroutines.
        self.lock = asyncio.Lock()
        self._writes: set[asyncio.Task[Any]] = set()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | Path) -> AsyncIterator[Database]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # we issue BEGIN IMMEDIATE ourselves.
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            for pragma in PRAGMAS:  # fetched, so no statement is left open holding a lock
                await conn.execute_fetchall(pragma)
            db = cls(conn)
            await db._ensure_schema()
            try:
                yield db
            finally:  # let shielded transactions finish before the connection goes
                await asyncio.gather(*db._writes, return_exceptions=True)

    async def write(self, body: Callable[[], Awaitable[T]]) -> T:
        """Runs `body` in one BEGIN IMMEDIATE ... COMMIT transaction, rolled back on any error.

        The transaction runs as its own task, shielded from the caller's cancellation (a client
        disconnect, a timeout): stopped half-way it would leave the write lock held and block
        every other writer on the file. So it always ends in COMMIT or ROLLBACK, and a cancelled
        caller cannot know which, as with any lost reply; idempotency keys cover the retry."""
        async def transaction() -> T:
            async with self.lock:
                try:  # BEGIN inside: if it was queued at all, the ROLLBACK is queued after it
                    await self.conn.execute("BEGIN IMMEDIATE")
                    result = await body()
                    await self.conn.commit()
                except sqlite3.OperationalError as e:   # locked past busy_timeout, disk I/O error
                    await self.conn.rollback()
                    raise StoreUnavailable(f"sqlite: {e}") from e
                except BaseException:
                    await self.conn.rollback()  # a no-op if no transaction is open
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
            [(version,)] = await self.conn.execute_fetchall("PRAGMA user_version")
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"store schema {version} is newer than this code ({SCHEMA_VERSION})")
            for statement in _SCHEMA:
                await self.conn.execute(statement)
            await self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        await self.write(migrate)

    async def select(self, sql: str, params: tuple[Any, ...] | list[Any]) -> list[Any]:
        """Rows of one read, between transactions."""
        async with self.lock:
            return list(await self.conn.execute_fetchall(sql, params))

    async def ping(self) -> None:
        await self.select("SELECT 1", ())
