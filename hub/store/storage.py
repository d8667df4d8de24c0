"""What a hub process stores, by concern: the event log, the notification outbox, the recorded
ETA predictions, the per-citizen limits' reservations and the branch snapshots, each behind its own protocol. One backend
(one SQLite file, one Redis) holds all four, so that an append can owe its messages in the same
transaction (EventLog.append), and the reservations live and go with the log they guard."""
from __future__ import annotations

from dataclasses import dataclass

from hub.store.eventlog import EventLog
from hub.store.outbox import Outbox
from hub.store.predictions import Predictions
from hub.store.quotas import Quotas
from hub.store.snapshots import Snapshots


@dataclass(frozen=True)
class Storage:
    log: EventLog
    outbox: Outbox
    predictions: Predictions
    quotas: Quotas
    snapshots: Snapshots

    async def ping(self) -> None:
        """Raise if the backend cannot be reached (/readyz)."""
        await self.log.ping()
