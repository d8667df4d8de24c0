"""What the hub forgets (hub/retention.py): messages we are done with and old recorded predictions,
once an hour from its start; dead letters, owed messages and the event log are kept. Real SQLite
files and the real app; the stores' own pruning is in the contract suites (both backends)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from hub import retention
from hub.store import open_store
from hub.store.outbox import DEAD, DELIVERED, QUEUED, SENT, OutboxItem

from conftest import TUESDAY_9AM, running_app
from waiting import until

pytestmark = pytest.mark.anyio

NOW = TUESDAY_9AM.timestamp()
DAY = 86_400
TODAY = TUESDAY_9AM.date()


def item(n: int, status: str, age_days: float) -> OutboxItem:
    ticket = f"20260510-{1000 + n}"
    at = NOW - age_days * DAY
    return OutboxItem(f"1/{ticket}:called:sms", "1", ticket, "called", "sms", "+84912345678",
                      {"number": str(1000 + n)}, created=at, next_at=at, updated=at, status=status)


def prediction(day: date) -> dict:
    return {"t": f"{day.isoformat()}T09:05:00+07:00", "ticket": f"{day:%Y%m%d}-1001", "p10": 1.0, "p50": 2.0, "p90": 3.0}


async def test_the_hub_forgets_old_messages_and_predictions_from_its_start(settings, clock):
    settings = replace(settings, keep_outbox_days=3, keep_predictions_days=5)
    old_delivered, old_dead, old_queued, recent_sent = (
        item(1, DELIVERED, 4), item(2, DEAD, 40), item(3, QUEUED, 40), item(4, SENT, 2))
    async with open_store(settings.database) as store:
        await store.outbox.add([old_delivered, old_dead, old_queued, recent_sent])
        for age in (6, 5, 4):
            await store.predictions.add("1", TODAY - timedelta(days=age), [prediction(TODAY - timedelta(days=age))])

    async with running_app(settings, clock) as client:
        store = client.app.state.storage
        async def pruned() -> bool:                       # the first run starts with the hub
            return await store.outbox.get(old_delivered.key) is None
        await until(pruned, "the hub's first retention run to remove the old delivered message")
        kept = {i.key for i in await store.outbox.recent(limit=100)}
        assert kept == {old_dead.key, old_queued.key, recent_sent.key}    # dead letters, owed, recent
        days = [len(await store.predictions.of_day("1", TODAY - timedelta(days=age))) for age in (6, 5, 4)]
        assert days == [0, 1, 1]                          # older than 5 days: gone


async def test_a_backlog_goes_in_batches(tmp_path):
    async with open_store(f"sqlite:///{tmp_path / 'q.db'}") as store:
        await store.outbox.add([item(n, SENT, 31 + n / 10_000) for n in range(2 * retention.BATCH + 7)])
        await store.outbox.add([item(9_999, SENT, 29)])
        got = await retention.prune(store.outbox, store.predictions, ["1"], TUESDAY_9AM, keep_outbox_days=30, keep_predictions_days=90)
        assert got == {"outbox_items": 2 * retention.BATCH + 7, "prediction_days": 0}
        assert [i.key for i in await store.outbox.recent(limit=10)] == [item(9_999, SENT, 29).key]
