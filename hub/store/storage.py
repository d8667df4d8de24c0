"""What a hub process stores, by concern: the event log, the notification outbox, the recorded
ETA predictions and the per-citizen limits' reservations, each behind its own protocol. One backend
(one SQLite file, one Redis) holds all four, so that an append can owe its messages in the same
transaction (EventLog.append), and the reservations live and go with the log they guard."""
from __future__ import annotations

from dataclasses import dataclass

from hub.store.eventlog import EventLog
from hub.store.outbox import Outbox
from hub.store.predictions import Predictions
from hub.store.quotas import Quotas


@dataclass(frozen=True)
class Storage:
    log: EventLog
    outbox: Outbox
    predictions: Predictions
    quotas: Quotas

    async def ping(self) -> None:
        """Raise if the backend cannot be reached (/readyz)."""
        await self.log.ping()
