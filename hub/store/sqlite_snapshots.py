"""Branch snapshots on SQLite (hub.store.snapshots): a table in the event log's file, one row per
branch, replaced in one statement unless the row kept is of the same epoch and a later seq."""
from __future__ import annotations

from hub.store.snapshots import Snapshot
from hub.store.sqlite_db import Database


class SQLiteSnapshots:
    def __init__(self, db: Database):
        self._db = db

    async def get(self, branch: str) -> Snapshot | None:
        rows = await self._db.select("SELECT seq, epoch, tip, data FROM snapshots WHERE branch = ?", (branch,))
        return Snapshot(*rows[0]) if rows else None

    async def put(self, branch: str, snap: Snapshot) -> bool:
        async def write() -> bool:
            cur = await self._db.conn.execute(
                "INSERT INTO snapshots(branch, seq, epoch, tip, data) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(branch) DO UPDATE SET seq = excluded.seq, epoch = excluded.epoch,"
                " tip = excluded.tip, data = excluded.data"
                " WHERE snapshots.epoch != excluded.epoch OR snapshots.seq <= excluded.seq",
                (branch, snap.seq, snap.epoch, snap.tip, snap.data))
            return cur.rowcount > 0

        return await self._db.write(write)
