"""The outbox on SQLite (hub.store.outbox): a table in the event log's file.

It rides on the log's write lock: an append writes its messages in its own transaction, and a claim
selects and leases in one, so two workers on one file never take the same message.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from hub.store.outbox import (
    DEAD_LETTERS,
    DELIVERED,
    DONE,
    FAILURES,
    QUEUED,
    SENDING,
    SENT,
    STATUSES,
    OutboxItem,
    check_keys,
)
from hub.store.sqlite_db import Database, dumps

_OUTBOX_COLUMNS = ("key, branch, ticket, trigger, channel, recipient, params, lang, created, status,"
                   " attempts, next_at, lease_until, provider_id, error, detail, updated")


def _outbox_row(item: OutboxItem) -> tuple[Any, ...]:
    return (item.key, item.branch, item.ticket, item.trigger, item.channel, dumps(item.recipient),
            dumps(item.params), item.lang, item.created, item.status, item.attempts, item.next_at,
            item.lease_until, item.provider_id, item.error, item.detail, item.updated)


def _outbox_item(row: Sequence[Any]) -> OutboxItem:
    (key, branch, ticket, trigger, channel, recipient, params, lang, created, status, attempts,
     next_at, lease_until, provider_id, error, detail, updated) = row
    return OutboxItem(key=key, branch=branch, ticket=ticket, trigger=trigger, channel=channel,
                      recipient=json.loads(recipient), params=json.loads(params), lang=lang,
                      created=float(created), status=status, attempts=attempts,
                      next_at=float(next_at), lease_until=float(lease_until),
                      provider_id=provider_id, error=error, detail=detail, updated=float(updated))


async def insert(db: Database, items: Iterable[OutboxItem]) -> int:
    """Inside a write transaction (an append's, or add's). OR IGNORE: a message already owed keeps
    its row, whatever became of it, so a rule that finds it due again cannot send it twice."""
    added = 0
    for item in items:
        cursor = await db.conn.execute(
            f"INSERT OR IGNORE INTO outbox({_OUTBOX_COLUMNS}) VALUES ({', '.join('?' * 17)})",
            _outbox_row(item))
        added += cursor.rowcount
    return added


class SQLiteOutbox:
    def __init__(self, db: Database):
        self._db = db

    async def _transition(self, sql: str, params: tuple[Any, ...]) -> bool:
        """One guarded UPDATE (its WHERE names the states it starts from): True if it moved a row."""
        async def write() -> bool:
            cursor = await self._db.conn.execute(sql, params)
            return cursor.rowcount > 0
        return await self._db.write(write)

    async def _select_outbox(self, where: str, params: tuple[Any, ...], tail: str = "") -> list[OutboxItem]:
        rows = await self._db.select(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {where} {tail}", params)
        return [_outbox_item(row) for row in rows]

    async def add(self, items: list[OutboxItem]) -> int:
        check_keys(items)
        return await self._db.write(lambda: insert(self._db, items))

    async def claim(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:  # and SQLite reads LIMIT -1 as "no limit"
            return []

        async def write() -> list[OutboxItem]:
            # Two selects, each down its own index, merged: one OR over both would scan the table.
            queued = await self._db.conn.execute_fetchall(
                "SELECT next_at, key FROM outbox WHERE status = ? AND next_at <= ?"
                " ORDER BY next_at, key LIMIT ?", (QUEUED, now, limit))
            expired = await self._db.conn.execute_fetchall(
                "SELECT lease_until, key FROM outbox WHERE status = ? AND lease_until <= ?"
                " ORDER BY lease_until, key LIMIT ?", (SENDING, now, limit))
            due = sorted([*queued, *expired])[:limit]
            if not due:
                return []
            keys = [key for _, key in due]
            marks = ", ".join("?" * len(keys))
            await self._db.conn.execute(
                f"UPDATE outbox SET status = ?, lease_until = ?, attempts = attempts + 1, updated = ?"
                f" WHERE key IN ({marks})", (SENDING, now + lease, now, *keys))
            rows = await self._db.conn.execute_fetchall(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key IN ({marks})", keys)
            by_key = {row[0]: _outbox_item(row) for row in rows}
            return [by_key[key] for key in keys]

        return await self._db.write(write)

    async def sent(self, key: str, now: float, provider_id: str | None) -> bool:
        return await self._transition(
            "UPDATE outbox SET status = ?, provider_id = ?, lease_until = 0, updated = ?"
            " WHERE key = ? AND status = ?", (SENT, provider_id, now, key, SENDING))

    async def retry(self, key: str, now: float, next_at: float, error: str, detail: str = "") -> bool:
        return await self._transition(
            "UPDATE outbox SET status = ?, next_at = ?, lease_until = 0, error = ?, detail = ?,"
            " updated = ? WHERE key = ? AND status = ?",
            (QUEUED, next_at, error, detail, now, key, SENDING))

    async def fail(self, key: str, now: float, status: str, error: str, detail: str = "") -> bool:
        if status not in FAILURES:
            raise ValueError(f"fail: {status!r} is not one of {FAILURES}")
        return await self._transition(
            "UPDATE outbox SET status = ?, lease_until = 0, error = ?, detail = ?, updated = ?"
            " WHERE key = ? AND status = ?", (status, error, detail, now, key, SENDING))

    async def delivered(self, provider_id: str, now: float) -> bool:
        return await self._transition(
            "UPDATE outbox SET status = ?, updated = ? WHERE provider_id = ? AND status = ?",
            (DELIVERED, now, provider_id, SENT))

    async def redrive(self, now: float, key: str | None = None) -> int:
        async def write() -> int:
            which, params = ("", ()) if key is None else (" AND key = ?", (key,))
            cursor = await self._db.conn.execute(
                "UPDATE outbox SET status = ?, attempts = 0, next_at = ?, lease_until = 0,"
                f" updated = ? WHERE status IN (?, ?){which}",
                (QUEUED, now, now, *DEAD_LETTERS, *params))
            return cursor.rowcount
        return await self._db.write(write)

    async def get(self, key: str) -> OutboxItem | None:
        found = await self._select_outbox("key = ?", (key,))
        return found[0] if found else None

    async def recent(self, status: str | None = None, branch: str | None = None,
                          limit: int = 100) -> list[OutboxItem]:
        where = " AND ".join(["1"] + [f"{column} = ?" for column, value in
                                      (("status", status), ("branch", branch)) if value is not None])
        params = tuple(value for value in (status, branch) if value is not None)
        return await self._select_outbox(where, (*params, limit), "ORDER BY updated DESC, key DESC LIMIT ?")

    async def counts(self) -> dict[str, int]:
        rows = await self._db.select("SELECT status, count(*) FROM outbox GROUP BY status", ())
        return {status: 0 for status in STATUSES} | dict(rows)

    async def prune(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        marks = ", ".join("?" * len(DONE))

        async def write() -> int:
            cursor = await self._db.conn.execute(
                f"DELETE FROM outbox WHERE key IN (SELECT key FROM outbox WHERE status IN ({marks})"
                " AND updated < ? ORDER BY updated, key LIMIT ?)", (*DONE, before, limit))
            return cursor.rowcount
        return await self._db.write(write)
