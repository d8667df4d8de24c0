"""Forgetting what is no longer needed: the messages we are done with (they hold phone numbers)
and the recorded predictions of old days (some 20,000 lines a busy branch-day).

Every hub process runs `prune` once an hour, from its start; it is idempotent, so processes
sharing a store repeat each other's work at worst. The event log is the truth: it is trimmed
only with an archive to keep what it forgets (hub/service/trim.py, run beside this by hub.app).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from hub.store.outbox import Outbox
from hub.store.predictions import Predictions

log = logging.getLogger("queuecast.retention")

PRUNE_EVERY = 3600.0        # seconds
BATCH = 1000                # outbox items forgotten per store call: one short write at a time
MAX_BATCHES = 100           # per run; a backlog beyond 100,000 is taken over the next hours


async def prune(outbox: Outbox, predictions: Predictions, branches: Iterable[str], now: datetime, *,
                keep_outbox_days: int, keep_predictions_days: int) -> dict[str, int]:
    items = 0
    before = (now - timedelta(days=keep_outbox_days)).timestamp()
    for _ in range(MAX_BATCHES):
        gone = await outbox.prune(before, BATCH)
        items += gone
        if gone < BATCH:
            break
    cut = now.date() - timedelta(days=keep_predictions_days)
    days = 0
    for branch in branches:
        days += await predictions.prune(branch, cut)
    if items or days:
        log.info("pruned", extra={"fields": {"outbox_items": items, "prediction_days": days,
                                             "outbox_before": before, "predictions_before": cut.isoformat()}})
    return {"outbox_items": items, "prediction_days": days}
