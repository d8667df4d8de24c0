"""The embedded store: the event log, the outbox, the recorded predictions and the
per-citizen limits' reservations in one SQLite file
(`sqlite:///PATH`), through one connection of this process."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from hub.store.sqlite_db import Database
from hub.store.sqlite_eventlog import SQLiteEventLog
from hub.store.sqlite_outbox import SQLiteOutbox
from hub.store.sqlite_predictions import SQLitePredictions
from hub.store.sqlite_quotas import SQLiteQuotas
from hub.store.sqlite_snapshots import SQLiteSnapshots
from hub.store.storage import Storage


@asynccontextmanager
async def open_sqlite(path: str | Path) -> AsyncIterator[Storage]:
    async with Database.open(path) as db:
        yield Storage(log=SQLiteEventLog(db), outbox=SQLiteOutbox(db), predictions=SQLitePredictions(db),
                      quotas=SQLiteQuotas(db), snapshots=SQLiteSnapshots(db))
