"""The per-citizen limits' reservations on SQLite (hub.store.quotas): a table in the event log's file.

Check and count run in one `BEGIN IMMEDIATE` transaction (Database.write), which takes the file's
write lock up front: every process sharing the file decides one reservation at a time.
"""
from __future__ import annotations

import time
from datetime import date, datetime

from hub.store.quotas import DAILY_LIMIT, FIELD_LIMIT, HELD, TAKEN, Limits, Reservation, lifetime
from hub.store.sqlite_db import Database


class SQLiteQuotas:
    def __init__(self, db: Database):
        self._db = db

    async def reserve(self, r: Reservation, limits: Limits, now: datetime) -> str:
        conn, day = self._db.conn, r.day.isoformat()

        async def write() -> str:
            # Forget what has expired (every citizen's: an indexed range, usually empty).
            await conn.execute("DELETE FROM quotas WHERE expires <= ?", (int(time.time()),))
            rows = list(await conn.execute_fetchall(
                "SELECT id, field FROM quotas WHERE citizen = ? AND day = ?", (r.citizen, day)))
            if any(rid == r.id for rid, _ in rows):
                return HELD
            if sum(1 for _, f in rows if f == r.field) >= limits.per_field:
                return FIELD_LIMIT
            if len(rows) >= limits.per_day:
                return DAILY_LIMIT
            await conn.execute("INSERT INTO quotas(citizen, day, id, branch, field, expires) VALUES (?, ?, ?, ?, ?, ?)",
                               (r.citizen, day, r.id, r.branch, r.field, int(time.time()) + lifetime(r.day, now)))
            return TAKEN

        return await self._db.write(write)

    async def release(self, r: Reservation) -> bool:
        async def write() -> bool:
            cur = await self._db.conn.execute("DELETE FROM quotas WHERE citizen = ? AND day = ? AND id = ?",
                                              (r.citizen, r.day.isoformat(), r.id))
            return cur.rowcount > 0

        return await self._db.write(write)

    async def held(self, citizen: str, day: date) -> list[Reservation]:
        rows = await self._db.select("SELECT branch, field, id FROM quotas WHERE citizen = ? AND day = ?"
                                     " AND expires > ? ORDER BY rowid", (citizen, day.isoformat(), int(time.time())))
        return [Reservation(citizen, day, branch, field, rid) for branch, field, rid in rows]
