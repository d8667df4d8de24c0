"""The event log on SQLite (hub.store.eventlog).

Several processes may open the same file. Appends stay correct because each one checks the branch
head and writes inside a single `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock up
front: a second writer waits (busy_timeout) and then sees the first one's head, so it gets
SeqConflict instead of writing a gap or a fork. The outbox items owed by an append are written in
its transaction (hub.store.sqlite_outbox.insert).
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import date
from typing import Any

from hub.domain.events import Event
from hub.store.errors import SeqConflict
from hub.store.eventlog import Idempotency, LogHead
from hub.store.outbox import OutboxItem, check_keys
from hub.store.sqlite_db import Database, dumps
from hub.store.sqlite_outbox import insert


class SQLiteEventLog:
    # One hub process appends; another writer on the file (the notifier) is met by the seq check.
    shared = False

    def __init__(self, db: Database):
        self._db = db

    async def _read_head(self, branch: str) -> LogHead | None:
        rows = list(await self._db.conn.execute_fetchall(
            "SELECT seq, epoch FROM branches WHERE branch = ?", (branch,)))
        return LogHead(rows[0][0], rows[0][1]) if rows else None

    async def _create_branch(self, branch: str) -> None:
        # A fresh epoch for a branch we have no history of: clients that cached an older log
        # (say, before the file was lost) see a new epoch and resynchronise from scratch.
        # OR IGNORE: another process may have created it meanwhile; its epoch wins.
        await self._db.conn.execute("INSERT OR IGNORE INTO branches(branch, seq, epoch) VALUES (?, 0, ?)",
                                    (branch, secrets.token_hex(8)))

    async def head(self, branch: str) -> LogHead:
        async with self._db.lock:
            head = await self._read_head(branch)
            if head is None:  # autocommit: the new epoch is durable before anyone sees it
                await self._create_branch(branch)
                head = await self._read_head(branch)
        assert head is not None
        return head

    async def new_epoch(self, branch: str, seen: str) -> LogHead:
        # The file keeps no base: a log found behind on SQLite (a file restored under a running
        # hub) starts its new epoch with base 0, so nothing is re-recorded into it (hub.service.branches).
        async with self._db.lock:
            await self._db.conn.execute("UPDATE branches SET epoch = ? WHERE branch = ? AND epoch = ?",
                                        (secrets.token_hex(8), branch, seen))
        return await self.head(branch)

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
                await self._db.conn.executemany(
                    "INSERT INTO events(branch, seq, day, body) VALUES (?, ?, ?, ?)",
                    [(branch, ev["seq"], ev.get("day"), dumps(ev)) for ev in stored])
                await self._db.conn.execute("UPDATE branches SET seq = ? WHERE branch = ?",
                                            (stored[-1]["seq"], branch))
            if idempotency is not None:
                # Plain INSERT: a key already answered must never be overwritten; a duplicate
                # raises IntegrityError and rolls the whole append back.
                await self._db.conn.execute(
                    "INSERT INTO idempotency(branch, key, fingerprint, status, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (branch, idempotency.key, idempotency.fingerprint, idempotency.status,
                     idempotency.body))
            await insert(self._db, outbox)
            return stored

        return await self._db.write(write)

    async def _select_events(self, sql: str, params: tuple[Any, ...]) -> list[Event]:
        return [json.loads(body) for (body,) in await self._db.select(sql, params)]

    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        if limit is not None and limit <= 0:
            return []           # as on Redis; SQLite would read LIMIT -1 as "no limit"
        return await self._select_events(
            "SELECT body FROM events WHERE branch = ? AND seq > ? ORDER BY seq LIMIT ?",
            (branch, after_seq, -1 if limit is None else limit))  # LIMIT -1: no limit

    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        return await self._select_events(
            "SELECT body FROM events WHERE branch = ? AND day = ? ORDER BY seq",
            (branch, day.isoformat()))

    async def trim(self, branch: str, through_seq: int, days: Sequence[date]) -> None:
        async def write() -> None:          # the day index is the rows themselves: nothing else to forget
            await self._db.conn.execute("DELETE FROM events WHERE branch = ? AND seq <= ?", (branch, through_seq))

        await self._db.write(write)

    async def idempotency(self, branch: str, key: str) -> Idempotency | None:
        rows = await self._db.select(
            "SELECT fingerprint, status, body FROM idempotency WHERE branch = ? AND key = ?", (branch, key))
        if not rows:
            return None
        fingerprint, status, body = rows[0]
        return Idempotency(key=key, fingerprint=fingerprint, status=status, body=body)

    async def ping(self) -> None:
        await self._db.ping()
