"""Recorded ETA predictions on SQLite (hub.store.predictions): a table in the event log's file.

`at` is the instant of `t` in unix seconds: a point is (branch, at, ticket), and lines are read in
the order of instants, then of insertion (rowid).
"""
from __future__ import annotations

import json
from datetime import date
from typing import Any

from hub.store.predictions import instant
from hub.store.sqlite_db import Database, dumps


class SQLitePredictions:
    def __init__(self, db: Database):
        self._db = db

    async def add(self, branch: str, day: date, lines: list[dict[str, Any]]) -> None:
        rows = [(branch, day.isoformat(), instant(line), line["ticket"], dumps(line)) for line in lines]
        if not rows:
            return

        async def write() -> None:
            # OR IGNORE: every hub process publishes the same points; the first line of a point stays.
            await self._db.conn.executemany(
                "INSERT OR IGNORE INTO predictions(branch, day, at, ticket, body) VALUES (?, ?, ?, ?, ?)", rows)

        await self._db.write(write)

    async def of_day(self, branch: str, day: date) -> list[dict[str, Any]]:
        rows = await self._db.select("SELECT body FROM predictions WHERE branch = ? AND day = ? ORDER BY at, rowid",
                                     (branch, day.isoformat()))
        return [json.loads(body) for (body,) in rows]

    async def prune(self, branch: str, before: date) -> int:
        async def write() -> int:
            [(days,)] = await self._db.conn.execute_fetchall(
                "SELECT COUNT(DISTINCT day) FROM predictions WHERE branch = ? AND day < ?",
                (branch, before.isoformat()))
            await self._db.conn.execute("DELETE FROM predictions WHERE branch = ? AND day < ?",
                                        (branch, before.isoformat()))
            return int(days)
        return await self._db.write(write)
