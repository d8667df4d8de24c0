"""What a hub process stores, by concern: the event log, the notification outbox and the recorded
ETA predictions, each behind its own protocol. One backend (one SQLite file, one Redis) holds all
three, so that an append can owe its messages in the same transaction (EventLog.append)."""
from __future__ import annotations

from dataclasses import dataclass

from hub.store.eventlog import EventLog
from hub.store.outbox import Outbox
from hub.store.predictions import Predictions


@dataclass(frozen=True)
class Storage:
    log: EventLog
    outbox: Outbox
    predictions: Predictions

    async def ping(self) -> None:
        """Raise if the backend cannot be reached (/readyz)."""
        await self.log.ping()
