"""The SQLite store: one file, one aiosqlite connection per store, durable on acknowledgement.

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
import secrets
import sqlite3
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterable, Sequence, TypeVar

import aiosqlite

from hub.domain.events import Event
from hub.store.base import Idempotency, LogHead, SeqConflict, StoreUnavailable
from hub.store.outbox import (DEAD_LETTERS, DELIVERED, DONE, FAILURES, QUEUED, SENDING, SENT, STATUSES,
                              OutboxItem, check_keys)
from hub.store.predictions import instant

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

SCHEMA_VERSION = 3  # kept in PRAGMA user_version; bump it with a migration in _ensure_schema
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
)

_OUTBOX_COLUMNS = ("key, branch, ticket, trigger, channel, recipient, params, lang, created, status,"
                   " attempts, next_at, lease_until, provider_id, error, detail, updated")


def _dumps(value) -> str:
    # default=dict: a recipient or params given as another Mapping (say, a MappingProxyType)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=dict)


def _outbox_row(item: OutboxItem) -> tuple:
    return (item.key, item.branch, item.ticket, item.trigger, item.channel, _dumps(item.recipient),
            _dumps(item.params), item.lang, item.created, item.status, item.attempts, item.next_at,
            item.lease_until, item.provider_id, item.error, item.detail, item.updated)


def _outbox_item(row: Sequence) -> OutboxItem:
    (key, branch, ticket, trigger, channel, recipient, params, lang, created, status, attempts,
     next_at, lease_until, provider_id, error, detail, updated) = row
    return OutboxItem(key=key, branch=branch, ticket=ticket, trigger=trigger, channel=channel,
                      recipient=json.loads(recipient), params=json.loads(params), lang=lang,
                      created=float(created), status=status, attempts=attempts,
                      next_at=float(next_at), lease_until=float(lease_until),
                      provider_id=provider_id, error=error, detail=detail, updated=float(updated))


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
                     idempotency: Idempotency | None = None,
                     outbox: Sequence[OutboxItem] = ()) -> list[Event]:
        check_keys(outbox, branch)

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
            await self._insert_outbox(outbox)
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

    # -- the outbox (hub.store.outbox) ----------------------------------------------------------

    async def _insert_outbox(self, items: Iterable[OutboxItem]) -> int:
        """Inside a write transaction. OR IGNORE: a message already owed keeps its row, whatever
        became of it, so a rule that finds it due again cannot send it twice."""
        added = 0
        for item in items:
            cursor = await self._db.execute(
                f"INSERT OR IGNORE INTO outbox({_OUTBOX_COLUMNS}) VALUES ({', '.join('?' * 17)})",
                _outbox_row(item))
            added += cursor.rowcount
        return added

    async def _transition(self, sql: str, params: tuple) -> bool:
        """One guarded UPDATE (its WHERE names the states it starts from): True if it moved a row."""
        async def write() -> bool:
            cursor = await self._db.execute(sql, params)
            return cursor.rowcount > 0
        return await self._write(write)

    async def _select_outbox(self, where: str, params: tuple, tail: str = "") -> list[OutboxItem]:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {where} {tail}", params)
        return [_outbox_item(row) for row in rows]

    async def outbox_add(self, items: list[OutboxItem]) -> int:
        check_keys(items)
        return await self._write(lambda: self._insert_outbox(items))

    async def outbox_claim(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:  # and SQLite reads LIMIT -1 as "no limit"
            return []

        async def write() -> list[OutboxItem]:
            # Two selects, each down its own index, merged: one OR over both would scan the table.
            queued = await self._db.execute_fetchall(
                "SELECT next_at, key FROM outbox WHERE status = ? AND next_at <= ?"
                " ORDER BY next_at, key LIMIT ?", (QUEUED, now, limit))
            expired = await self._db.execute_fetchall(
                "SELECT lease_until, key FROM outbox WHERE status = ? AND lease_until <= ?"
                " ORDER BY lease_until, key LIMIT ?", (SENDING, now, limit))
            due = sorted(queued + expired)[:limit]
            if not due:
                return []
            keys = [key for _, key in due]
            marks = ", ".join("?" * len(keys))
            await self._db.execute(
                f"UPDATE outbox SET status = ?, lease_until = ?, attempts = attempts + 1, updated = ?"
                f" WHERE key IN ({marks})", (SENDING, now + lease, now, *keys))
            rows = await self._db.execute_fetchall(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key IN ({marks})", keys)
            by_key = {row[0]: _outbox_item(row) for row in rows}
            return [by_key[key] for key in keys]

        return await self._write(write)

    async def outbox_sent(self, key: str, now: float, provider_id: str | None) -> bool:
        return await self._transition(
            "UPDATE outbox SET status = ?, provider_id = ?, lease_until = 0, updated = ?"
            " WHERE key = ? AND status = ?", (SENT, provider_id, now, key, SENDING))

    async def outbox_retry(self, key: str, now: float, next_at: float, error: str, detail: str = "") -> bool:
        return await self._transition(
            "UPDATE outbox SET status = ?, next_at = ?, lease_until = 0, error = ?, detail = ?,"
            " updated = ? WHERE key = ? AND status = ?",
            (QUEUED, next_at, error, detail, now, key, SENDING))

    async def outbox_fail(self, key: str, now: float, status: str, error: str, detail: str = "") -> bool:
        if status not in FAILURES:
            raise ValueError(f"outbox_fail: {status!r} is not one of {FAILURES}")
        return await self._transition(
            "UPDATE outbox SET status = ?, lease_until = 0, error = ?, detail = ?, updated = ?"
            " WHERE key = ? AND status = ?", (status, error, detail, now, key, SENDING))

    async def outbox_delivered(self, provider_id: str, now: float) -> bool:
        return await self._transition(
            "UPDATE outbox SET status = ?, updated = ? WHERE provider_id = ? AND status = ?",
            (DELIVERED, now, provider_id, SENT))

    async def outbox_redrive(self, now: float, key: str | None = None) -> int:
        async def write() -> int:
            which, params = ("", ()) if key is None else (" AND key = ?", (key,))
            cursor = await self._db.execute(
                "UPDATE outbox SET status = ?, attempts = 0, next_at = ?, lease_until = 0,"
                f" updated = ? WHERE status IN (?, ?){which}",
                (QUEUED, now, now, *DEAD_LETTERS, *params))
            return cursor.rowcount
        return await self._write(write)

    async def outbox_get(self, key: str) -> OutboxItem | None:
        found = await self._select_outbox("key = ?", (key,))
        return found[0] if found else None

    async def outbox_list(self, status: str | None = None, branch: str | None = None,
                          limit: int = 100) -> list[OutboxItem]:
        where = " AND ".join(["1"] + [f"{column} = ?" for column, value in
                                      (("status", status), ("branch", branch)) if value is not None])
        params = tuple(value for value in (status, branch) if value is not None)
        return await self._select_outbox(where, (*params, limit), "ORDER BY updated DESC, key DESC LIMIT ?")

    async def outbox_counts(self) -> dict[str, int]:
        async with self._lock:
            rows = await self._db.execute_fetchall("SELECT status, count(*) FROM outbox GROUP BY status")
        return {status: 0 for status in STATUSES} | dict(rows)

    async def outbox_prune(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        marks = ", ".join("?" * len(DONE))

        async def write() -> int:
            cursor = await self._db.execute(
                f"DELETE FROM outbox WHERE key IN (SELECT key FROM outbox WHERE status IN ({marks})"
                " AND updated < ? ORDER BY updated, key LIMIT ?)", (*DONE, before, limit))
            return cursor.rowcount
        return await self._write(write)

    # -- recorded predictions (hub.store.predictions) -------------------------------------------

    async def predictions_add(self, branch: str, day: date, lines: list[dict]) -> None:
        rows = [(branch, day.isoformat(), instant(line), line["ticket"], _dumps(line)) for line in lines]
        if not rows:
            return

        async def write() -> None:
            # OR IGNORE: every hub process publishes the same points; the first line of a point stays.
            await self._db.executemany(
                "INSERT OR IGNORE INTO predictions(branch, day, at, ticket, body) VALUES (?, ?, ?, ?, ?)", rows)

        await self._write(write)

    async def predictions_of_day(self, branch: str, day: date) -> list[dict]:
        return await self._select_events(
            "SELECT body FROM predictions WHERE branch = ? AND day = ? ORDER BY at, rowid",
            (branch, day.isoformat()))

    async def predictions_prune(self, branch: str, before: date) -> int:
        async def write() -> int:
            days = await self._db.execute_fetchall(
                "SELECT COUNT(DISTINCT day) FROM predictions WHERE branch = ? AND day < ?",
                (branch, before.isoformat()))
            await self._db.execute("DELETE FROM predictions WHERE branch = ? AND day < ?",
                                   (branch, before.isoformat()))
            return days[0][0]
        return await self._write(write)
