"""The outbox contract (hub.store.outbox) every Storage backend must pass, run unchanged against each
one on the storage of tests/store_backends.py: real SQLite files, the real Redis of the test setup.

Times are passed in (the store reads no clock), so "later" is just a bigger number here and no
test waits.
"""
from __future__ import annotations

import asyncio
import json
import random
from datetime import date

import pytest

from hub.domain.notifications.message import Message
from hub.store.errors import SeqConflict
from hub.store.outbox import (
    DEAD,
    DEAD_LETTERS,
    DELIVERED,
    DONE,
    DROPPED,
    FAILED,
    FAILURES,
    QUEUED,
    SENDING,
    SENT,
    STATUSES,
    OutboxItem,
)
from hub.store.storage import Storage
from notifier.senders.protocol import INVALID_NUMBER, RATE_LIMITED, TIMEOUT

from store_backends import anyio_backend, open_instance, store, store_url, used_key_error  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

DAY = date(2026, 5, 19)
T0 = 1779156000.25          # 2026-05-19 09:00:00.25 +07:00; the fraction checks times are kept exactly
LEASE = 30.0


def item(n: int, branch: str = "1", trigger: str = "issued", channel: str = "sms", *,
         recipient=None, at: float = T0, **changes) -> OutboxItem:
    """The n-th ticket's message, owed (created, due, updated) at `at`; its key is Message.key."""
    ticket = f"{DAY:%Y%m%d}-{1000 + n}"
    recipient = f"+8491234{n:04d}" if recipient is None else recipient
    params = {"number": str(1000 + n), "service": "Đất đai", "url": f"https://q.example.vn/t/{n}"}
    msg = Message(branch, ticket, trigger, channel, recipient, params)
    made = OutboxItem(key=msg.key, branch=branch, ticket=ticket, trigger=trigger, channel=channel,
                      recipient=recipient, params=params, created=at, next_at=at, updated=at)
    return made.with_(**changes)


def issued(order: int, branch: str = "1") -> dict:
    number = str(1000 + order)
    return {"type": "ticket.issued", "t": f"{DAY.isoformat()}T08:{order % 60:02d}:12+07:00",
            "branch": branch, "day": DAY.isoformat(), "ticket": f"{DAY:%Y%m%d}-{number}",
            "number": number, "service": "dat-dai", "channel": "online", "priority": False,
            "order": order}


def keys(items: list[OutboxItem]) -> list[str]:
    return [i.key for i in items]


async def everything(store: Storage) -> dict[str, OutboxItem]:
    return {i.key: i for i in await store.outbox.recent(limit=10_000)}


# -- written with the events, or not at all ----------------------------------------------------------


async def test_append_writes_events_and_outbox_together(store):
    owed = [item(1), item(1, channel="push", recipient={"endpoint": "https://push.example/1"})]
    appended = await store.log.append("1", 0, [issued(1)], outbox=owed)
    assert [ev["seq"] for ev in appended] == [1]
    assert await store.log.events_since("1", 0) == appended
    for i in owed:
        assert await store.outbox.get(i.key) == i
    assert (await store.outbox.counts())[QUEUED] == 2


async def test_conflicting_append_writes_neither(store):
    await store.log.append("1", 0, [issued(1)])
    with pytest.raises(SeqConflict):
        await store.log.append("1", 0, [issued(2)], outbox=[item(2)])
    assert await store.outbox.get(item(2).key) is None
    assert await store.outbox.counts() == {s: 0 for s in STATUSES}
    assert len(await store.log.events_since("1", 0)) == 1


async def test_append_refused_for_a_used_idempotency_key_writes_no_outbox(store, used_key_error):
    from hub.store.eventlog import Idempotency
    rec = Idempotency(key="k-1", fingerprint="sha256:00", status=201, body="{}")
    await store.log.append("1", 0, [issued(1)], rec, outbox=[item(1)])
    with pytest.raises(used_key_error):  # the backend's own error, as in test_store_contract.py
        await store.log.append("1", 1, [issued(2)], rec, outbox=[item(2)])
    assert await store.outbox.get(item(2).key) is None
    assert await store.outbox.get(item(1).key) == item(1)


async def test_append_keeps_a_message_already_owed(store):
    await store.outbox.add([item(1)])
    [claimed] = await store.outbox.claim(T0, 10, LEASE)
    await store.outbox.sent(claimed.key, T0 + 1, "pid-1")
    before = await store.outbox.get(item(1).key)
    await store.log.append("1", 0, [issued(1)], outbox=[item(1, params={"again": True}), item(2)])
    assert await store.outbox.get(item(1).key) == before      # still sent, not queued again
    assert await store.outbox.get(item(2).key) == item(2)


async def test_append_with_only_outbox_items(store):
    # The time-driven rules have no event to write; an empty append still checks the head.
    assert await store.log.append("1", 0, [], outbox=[item(1)]) == []
    assert await store.outbox.get(item(1).key) == item(1)
    with pytest.raises(SeqConflict):
        await store.log.append("1", 5, [], outbox=[item(2)])
    assert await store.outbox.get(item(2).key) is None


@pytest.mark.parametrize("bad", [
    dict(key="2/20260519-1001:issued:sms"),           # another branch's key
    dict(key="20260519-1001:issued:sms"),             # no branch at all
    dict(branch="1/2", key="1/2/20260519-1001:issued:sms"),
])
async def test_a_key_must_start_with_its_branch(store, bad):
    wrong = item(1).with_(**bad)
    with pytest.raises(ValueError):
        await store.outbox.add([item(2), wrong])
    with pytest.raises(ValueError):
        await store.log.append("1", 0, [issued(1)], outbox=[wrong])
    assert await store.outbox.counts() == {s: 0 for s in STATUSES}
    assert (await store.log.head("1")).seq == 0


async def test_append_takes_only_its_branch_messages(store):
    with pytest.raises(ValueError):
        await store.log.append("1", 0, [issued(1)], outbox=[item(1), item(1, branch="2")])
    assert await store.outbox.counts() == {s: 0 for s in STATUSES}
    assert (await store.log.head("1")).seq == 0


# -- insert if absent ----------------------------------------------------------------------------------


async def test_add_is_insert_if_absent(store):
    assert await store.outbox.add([item(1), item(2)]) == 2
    assert await store.outbox.add([item(1, params={"changed": 1}, at=T0 + 5), item(3)]) == 1
    assert await store.outbox.get(item(1).key) == item(1)
    assert await store.outbox.add([item(4), item(4, lang="en")]) == 1      # twice in one batch: the first
    assert await store.outbox.get(item(4).key) == item(4)
    assert await store.outbox.add([]) == 0
    assert sorted(await everything(store)) == sorted(keys([item(1), item(2), item(3), item(4)]))


async def test_a_dead_letter_is_not_owed_again_by_adding_it(store):
    await store.outbox.add([item(1)])
    await store.outbox.claim(T0, 1, LEASE)
    await store.outbox.fail(item(1).key, T0 + 1, DEAD, TIMEOUT)
    assert await store.outbox.add([item(1)]) == 0
    assert (await store.outbox.get(item(1).key)).status == DEAD


async def test_get_unknown_key(store):
    assert await store.outbox.get("1/20260519-9999:issued:sms") is None
    assert await store.outbox.get("no-branch-here") is None


# -- claims ---------------------------------------------------------------------------------------------


async def test_claim_takes_the_oldest_due_first_up_to_the_limit(store):
    owed = [item(1, at=T0 + 3), item(2, at=T0 + 1), item(3, at=T0 + 2), item(4, at=T0 + 35),
            item(5, at=T0 + 1, trigger="called")]   # the same due time as item 2: the smaller key first
    await store.outbox.add(owed)
    now = T0 + 10
    first = await store.outbox.claim(now, 2, LEASE)
    assert keys(first) == sorted([item(2).key, item(5, trigger="called").key])
    for got in first:
        assert (got.status, got.attempts, got.lease_until, got.updated) == (SENDING, 1, now + LEASE, now)
        assert got == (await store.outbox.get(got.key))
    second = await store.outbox.claim(now, 5, LEASE)
    assert keys(second) == keys([item(3), item(1)])          # not item 4: due later
    assert await store.outbox.claim(now, 5, LEASE) == []
    assert keys(await store.outbox.claim(T0 + 35, 5, LEASE)) == [item(4).key]      # leases run to T0+40


async def test_claim_keeps_everything_but_the_lease(store):
    push = {"endpoint": "https://push.example/s/Ωmega", "keys": {"p256dh": "BNc…", "auth": "tBH"}}
    owed = item(7, channel="push", recipient=push, lang="en")
    await store.outbox.add([owed])
    [got] = await store.outbox.claim(T0, 1, LEASE)
    assert got == owed.with_(status=SENDING, attempts=1, lease_until=T0 + LEASE, updated=T0)


async def test_claim_with_nothing_to_take(store):
    assert await store.outbox.claim(T0, 10, LEASE) == []
    await store.outbox.add([item(1)])
    assert await store.outbox.claim(T0, 0, LEASE) == []
    assert await store.outbox.claim(T0 - 1, 10, LEASE) == []
    assert (await store.outbox.get(item(1).key)).status == QUEUED


async def test_claim_across_branches(store):
    await store.outbox.add([item(1, branch="1", at=T0 + 2), item(1, branch="2", at=T0 + 1),
                            item(2, branch="3", at=T0 + 3), item(3, branch="2", at=T0 + 4)])
    got = await store.outbox.claim(T0 + 10, 3, LEASE)
    assert [(i.branch, i.ticket) for i in got] == [("2", "20260519-1001"), ("1", "20260519-1001"),
                                                  ("3", "20260519-1002")]
    assert [i.branch for i in await store.outbox.claim(T0 + 10, 3, LEASE)] == ["2"]


async def test_concurrent_claims_never_share_an_item(store, open_instance):
    # Like several notifier workers on one storage: claims race, each item goes to exactly one.
    owed = [item(n, at=T0 + n / 100) for n in range(1, 21)]
    await store.outbox.add(owed)
    async with open_instance() as other, open_instance() as third:
        workers = [store, other, third, store, other, third]
        got = await asyncio.gather(*(w.outbox.claim(T0 + 1, 4, LEASE) for w in workers))
    claimed = [k for batch in got for k in keys(batch)]
    assert all(len(batch) <= 4 for batch in got)
    assert len(claimed) == len(set(claimed))                  # disjoint
    assert set(claimed) == set(keys(owed))                    # and together everything due
    assert {i.attempts for batch in got for i in batch} == {1}


async def test_concurrent_claims_across_branches(store, open_instance):
    owed = [item(n, branch=str(n % 3 + 1), at=T0 + n) for n in range(1, 16)]
    await store.outbox.add(owed)
    async with open_instance() as other:
        for _ in range(3):  # rounds: each racing pair takes what is due, never the same item
            got = await asyncio.gather(*(w.outbox.claim(T0 + 100, 15, LEASE) for w in (store, other)))
            a, b = (set(keys(batch)) for batch in got)
            assert not a & b and a | b == set(keys(owed))
            await asyncio.gather(*(store.outbox.retry(k, T0 + 1, T0 + 2, RATE_LIMITED) for k in a | b))


async def test_an_expired_lease_is_claimed_again(store):
    await store.outbox.add([item(1)])
    [first] = await store.outbox.claim(T0, 1, LEASE)
    assert await store.outbox.claim(T0 + LEASE - 0.5, 1, LEASE) == []       # the lease still holds
    [again] = await store.outbox.claim(T0 + LEASE, 1, LEASE)                # the worker died
    assert (again.key, again.status, again.attempts) == (first.key, SENDING, 2)
    assert again.lease_until == T0 + 2 * LEASE
    assert await store.outbox.sent(first.key, T0 + LEASE + 1, "pid-1")     # whoever finishes


async def test_expired_leases_and_due_items_in_due_order(store):
    await store.outbox.add([item(1, at=T0), item(2, at=T0 + 20)])
    await store.outbox.claim(T0, 1, LEASE)                     # item 1: lease until T0 + 30
    got = await store.outbox.claim(T0 + 40, 5, LEASE)          # item 2 due at T0+20, item 1 at T0+30
    assert [(i.key, i.attempts) for i in got] == [(item(2).key, 1), (item(1).key, 2)]


async def test_retry_waits_until_next_at(store):
    await store.outbox.add([item(1)])
    [claimed] = await store.outbox.claim(T0, 1, LEASE)
    assert await store.outbox.retry(claimed.key, T0 + 1, T0 + 60, RATE_LIMITED, "429 Too Many Requests")
    got = await store.outbox.get(claimed.key)
    assert (got.status, got.next_at, got.error, got.detail, got.updated, got.attempts) == (
        QUEUED, T0 + 60, RATE_LIMITED, "429 Too Many Requests", T0 + 1, 1)
    assert await store.outbox.claim(T0 + 59.75, 1, LEASE) == []
    [again] = await store.outbox.claim(T0 + 60, 1, LEASE)
    assert (again.status, again.attempts, again.error) == (SENDING, 2, RATE_LIMITED)


# -- status moves forward only -------------------------------------------------------------------------


async def put_in(store: Storage, status: str, n: int = 1) -> OutboxItem:
    """An item brought to `status` the legal way. Due before the others (at T0 - n), so that its
    claim takes it and not an item put in before."""
    owed = item(n, at=T0 - n)
    await store.outbox.add([owed])
    if status != QUEUED:
        [claimed] = await store.outbox.claim(T0, 1, LEASE)
        assert claimed.key == owed.key
    if status in (SENT, DELIVERED):
        assert await store.outbox.sent(owed.key, T0 + 1, f"pid-{n}")
    if status == DELIVERED:
        assert await store.outbox.delivered(f"pid-{n}", T0 + 2)
    if status in FAILURES:
        assert await store.outbox.fail(owed.key, T0 + 1, status, INVALID_NUMBER, "from put_in")
    got = await store.outbox.get(owed.key)
    assert got.status == status
    return got


TRANSITIONS = {
    # name: (the states it starts from, the call)
    "sent": ((SENDING,), lambda s, i: s.outbox.sent(i.key, T0 + 5, "pid-new")),
    "retry": ((SENDING,), lambda s, i: s.outbox.retry(i.key, T0 + 5, T0 + 9, TIMEOUT)),
    "failed": ((SENDING,), lambda s, i: s.outbox.fail(i.key, T0 + 5, FAILED, INVALID_NUMBER)),
    "dead": ((SENDING,), lambda s, i: s.outbox.fail(i.key, T0 + 5, DEAD, TIMEOUT)),
    "dropped": ((SENDING,), lambda s, i: s.outbox.fail(i.key, T0 + 5, DROPPED, "served", "served first")),
    "delivered": ((SENT,), lambda s, i: s.outbox.delivered(i.provider_id or "pid-1", T0 + 5)),
    "redrive": (DEAD_LETTERS, lambda s, i: s.outbox.redrive(T0 + 5, i.key)),
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("transition", TRANSITIONS)
async def test_status_moves_forward_only(store, status, transition):
    starts_from, call = TRANSITIONS[transition]
    before = await put_in(store, status)
    moved = await call(store, before)
    after = await store.outbox.get(before.key)
    if status in starts_from:
        assert moved in (True, 1)
        assert after.status == {"retry": QUEUED, "redrive": QUEUED}.get(transition, transition)
        assert after.updated == T0 + 5
    else:
        assert moved in (False, 0) and moved is not None
        assert after == before                                  # nothing changed


@pytest.mark.parametrize("transition", TRANSITIONS)
async def test_transitions_of_an_unknown_key(store, transition):
    _, call = TRANSITIONS[transition]
    ghost = item(9).with_(provider_id="pid-ghost")
    assert await call(store, ghost) in (False, 0)
    assert await store.outbox.get(ghost.key) is None


async def test_claim_takes_no_item_that_left_the_queue(store):
    for n, status in enumerate(STATUSES, start=1):
        if status not in (QUEUED, SENDING):                 # (an expired lease is claimable)
            await put_in(store, status, n)
    assert await store.outbox.claim(T0 + 10 * LEASE, 100, LEASE) == []


async def test_fail_with_each_ending(store):
    await store.outbox.add([item(1), item(2), item(3)])
    await store.outbox.claim(T0, 3, LEASE)
    assert await store.outbox.fail(item(1).key, T0 + 1, FAILED, INVALID_NUMBER, "Số điện thoại không hợp lệ")
    assert await store.outbox.fail(item(2).key, T0 + 2, DEAD, TIMEOUT)
    assert await store.outbox.fail(item(3).key, T0 + 3, DROPPED, "served", "số 1003 đã được phục vụ")
    got = [await store.outbox.get(i.key) for i in (item(1), item(2), item(3))]
    assert [(i.status, i.error, i.detail, i.updated, i.attempts) for i in got] == [
        (FAILED, INVALID_NUMBER, "Số điện thoại không hợp lệ", T0 + 1, 1),
        (DEAD, TIMEOUT, "", T0 + 2, 1),
        (DROPPED, "served", "số 1003 đã được phục vụ", T0 + 3, 1)]


@pytest.mark.parametrize("status", [QUEUED, SENDING, SENT, DELIVERED, "lost"])
async def test_fail_to_a_status_that_is_no_ending_is_refused(store, status):
    before = await put_in(store, SENDING)
    with pytest.raises(ValueError):
        await store.outbox.fail(before.key, T0 + 5, status, TIMEOUT)
    assert await store.outbox.get(before.key) == before


# -- delivery reports, dead letters ---------------------------------------------------------------------


async def test_delivered_is_found_by_provider_id(store):
    await store.outbox.add([item(1), item(2), item(3)])
    await store.outbox.claim(T0, 3, LEASE)
    assert await store.outbox.sent(item(1).key, T0 + 1, "SM-aaa")
    assert await store.outbox.sent(item(2).key, T0 + 1, "SM-bbb")
    assert await store.outbox.sent(item(3).key, T0 + 1, None)            # no id: no report will come
    assert (await store.outbox.get(item(1).key)).provider_id == "SM-aaa"
    assert (await store.outbox.get(item(3).key)).provider_id is None
    assert await store.outbox.delivered("SM-bbb", T0 + 4)
    assert not await store.outbox.delivered("SM-bbb", T0 + 5)             # a repeated report
    assert not await store.outbox.delivered("SM-zzz", T0 + 5)             # someone else's
    got = {i.key: i for i in await store.outbox.recent(limit=10)}
    assert (got[item(2).key].status, got[item(2).key].updated) == (DELIVERED, T0 + 4)
    assert got[item(1).key].status == got[item(3).key].status == SENT


async def test_a_report_before_the_sent_mark_finds_nothing(store):
    await store.outbox.add([item(1)])
    await store.outbox.claim(T0, 1, LEASE)
    assert not await store.outbox.delivered("SM-early", T0 + 1)
    assert await store.outbox.sent(item(1).key, T0 + 2, "SM-early")
    assert await store.outbox.delivered("SM-early", T0 + 3)


async def test_redrive_one_key_and_then_all(store):
    failed, dead, dropped, sent = [await put_in(store, s, n)
                                   for n, s in enumerate((FAILED, DEAD, DROPPED, SENT), start=1)]
    assert await store.outbox.redrive(T0 + 50, failed.key) == 1
    got = await store.outbox.get(failed.key)
    assert (got.status, got.attempts, got.next_at, got.updated) == (QUEUED, 0, T0 + 50, T0 + 50)
    assert (got.error, got.detail) == (INVALID_NUMBER, "from put_in")      # what went wrong, kept
    assert await store.outbox.redrive(T0 + 50, failed.key) == 0             # queued now: no dead letter
    assert await store.outbox.redrive(T0 + 60) == 1                          # only `dead` was left
    assert (await store.outbox.get(dead.key)).status == QUEUED
    assert await store.outbox.get(dropped.key) == dropped
    assert await store.outbox.get(sent.key) == sent
    assert await store.outbox.redrive(T0 + 70) == 0
    [first, second] = await store.outbox.claim(T0 + 70, 5, LEASE)          # due at T0+50, T0+60
    assert (first.key, first.attempts, second.key, second.attempts) == (failed.key, 1, dead.key, 1)


async def test_redrive_all_across_branches(store):
    await store.outbox.add([item(1, branch="1"), item(1, branch="2"), item(2, branch="2")])
    claimed = await store.outbox.claim(T0, 3, LEASE)
    for i in claimed:
        assert await store.outbox.fail(i.key, T0 + 1, DEAD, TIMEOUT)
    assert await store.outbox.redrive(T0 + 2) == 3
    assert (await store.outbox.counts())[QUEUED] == 3


# -- list and counts ------------------------------------------------------------------------------------


async def test_list_newest_updated_first_with_filters(store):
    await store.outbox.add([item(1, branch="1", at=T0 + 1), item(2, branch="1", at=T0 + 2),
                            item(1, branch="2", at=T0 + 3), item(3, branch="2", at=T0 + 3)])
    [claimed] = await store.outbox.claim(T0 + 1, 1, LEASE)                  # item 1 of branch 1
    await store.outbox.sent(claimed.key, T0 + 9, "pid")
    k11, k12, k21, k23 = item(1).key, item(2).key, item(1, branch="2").key, item(3, branch="2").key
    assert keys(await store.outbox.recent()) == [k11, k23, k21, k12]          # equal times: greater key first
    assert keys(await store.outbox.recent(limit=2)) == [k11, k23]
    assert keys(await store.outbox.recent(status=QUEUED)) == [k23, k21, k12]
    assert keys(await store.outbox.recent(branch="1")) == [k11, k12]
    assert keys(await store.outbox.recent(status=QUEUED, branch="1")) == [k12]
    assert keys(await store.outbox.recent(status=SENT, branch="2")) == []
    assert keys(await store.outbox.recent(branch="9")) == []
    assert await store.outbox.recent(status=DEAD) == []
    assert (await store.outbox.recent(status=SENT))[0] == await store.outbox.get(k11)


async def test_counts_every_status_zeros_included(store):
    assert await store.outbox.counts() == {s: 0 for s in STATUSES}
    for n, status in enumerate(STATUSES, start=1):
        await put_in(store, status, n)
    await store.outbox.add([item(20, branch="2")])
    assert await store.outbox.counts() == {s: 1 for s in STATUSES} | {QUEUED: 2}


# -- durable, and exact ---------------------------------------------------------------------------------


async def test_outbox_persists_across_reopen(open_instance):
    async with open_instance() as store:
        await store.log.append("1", 0, [issued(1)], outbox=[item(1), item(2)])
        await store.outbox.add([item(3, branch="2")])
        await store.outbox.claim(T0, 2, LEASE)
        await store.outbox.sent(item(1).key, T0 + 1, "SM-1")
        before = await everything(store)
        counts = await store.outbox.counts()
    async with open_instance() as store:
        assert await everything(store) == before
        assert await store.outbox.counts() == counts
        assert await store.outbox.claim(T0 + 1, 5, LEASE) == [before[item(3, branch="2").key].with_(
            status=SENDING, attempts=1, lease_until=T0 + 1 + LEASE, updated=T0 + 1)]   # item 2 is leased
        assert await store.outbox.delivered("SM-1", T0 + 2)


async def test_recipient_and_params_round_trip_exactly(store, open_instance):
    subscription = {"endpoint": "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91b…",
                    "expirationTime": None, "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQ",
                                                     "auth": "tBHItJI5svbpez7KI4CCXg"}}
    params = {"number": "1001", "service": "Đất đai – Cấp giấy chứng nhận quyền sử dụng đất",
              "counter": "Quầy 3", "note": "Ưu tiên: người cao tuổi 🤰 / \"trích dẫn\" \\ \n xuống dòng",
              "ahead": 5, "eta_minutes": 12.5, "priority": False, "extra": [], "nested": {"empty": {}},
              "big": 2 ** 53 + 1}
    push = item(1, channel="push", recipient=subscription, params=params, lang="en",
                at=T0 + 0.1 + 0.2)                                  # a float with a long repr
    sms = item(1, channel="sms", recipient="+84912345678", params=params)
    await store.outbox.add([push, sms])
    async with open_instance() as other:
        for owed in (push, sms):
            got = await other.outbox.get(owed.key)
            assert got == owed
            assert type(got.recipient) is type(owed.recipient)
            assert json.dumps(got.params, ensure_ascii=False) == json.dumps(params, ensure_ascii=False)
            assert json.dumps(got.recipient) == json.dumps(owed.recipient)
            assert got.created.hex() == owed.created.hex()
        claimed = {i.key: i for i in await other.outbox.claim(T0 + 1, 2, LEASE)}
        assert claimed[push.key] == push.with_(status=SENDING, attempts=1, lease_until=T0 + 1 + LEASE,
                                               updated=T0 + 1)
    await store.outbox.claim(T0 + 1 + LEASE, 2, LEASE)
    assert await store.outbox.fail(push.key, T0 + 99, FAILED, "subscription_gone", "410 Gone – đã hủy 🚫")
    assert (await store.outbox.get(push.key)).detail == "410 Gone – đã hủy 🚫"


# -- against a model ------------------------------------------------------------------------------------


class Model:
    """The contract written as plainly as possible, to run random operations against."""

    def __init__(self):
        self.items: dict[str, OutboxItem] = {}

    def add(self, items, now):
        new = 0
        for i in items:
            if i.key not in self.items:
                self.items[i.key], new = i, new + 1
        return new

    def claim(self, now, limit, lease):
        def due(i):
            return i.next_at if i.status == QUEUED else i.lease_until
        ready = sorted((i for i in self.items.values()
                        if i.status in (QUEUED, SENDING) and due(i) <= now), key=lambda i: (due(i), i.key))
        out = []
        for i in ready[:max(limit, 0)]:
            self.items[i.key] = i.with_(status=SENDING, attempts=i.attempts + 1, lease_until=now + lease,
                                        updated=now)
            out.append(self.items[i.key])
        return out

    def move(self, key, starts, **changes):
        i = self.items.get(key)
        if i is None or i.status not in starts:
            return False
        self.items[key] = i.with_(**changes)
        return True


@pytest.mark.parametrize("seed", [20260519, 1, 2])
async def test_random_operations_agree_with_the_model(store, seed):
    rng = random.Random(seed)
    model = Model()
    now = T0
    for step in range(250):
        now += rng.choice([0.0, 0.5, 7.25, LEASE])
        n, op = rng.randrange(1, 13), rng.randrange(9)
        key = item(n, branch=str(n % 2 + 1)).key
        if op <= 1:
            batch = [item(m, branch=str(m % 2 + 1), at=now) for m in rng.sample(range(1, 13), 3)]
            assert await store.outbox.add(batch) == model.add(batch, now), step
        elif op == 2:
            limit = rng.randrange(0, 5)
            assert await store.outbox.claim(now, limit, LEASE) == model.claim(now, limit, LEASE), step
        elif op == 3:
            pid = f"pid-{n}-{step}"
            assert await store.outbox.sent(key, now, pid) == model.move(
                key, (SENDING,), status=SENT, provider_id=pid, lease_until=0.0, updated=now), step
        elif op == 4:
            assert await store.outbox.retry(key, now, now + 5, TIMEOUT, "later") == model.move(
                key, (SENDING,), status=QUEUED, next_at=now + 5, lease_until=0.0, error=TIMEOUT,
                detail="later", updated=now), step
        elif op == 5:
            end = rng.choice(FAILURES)
            assert await store.outbox.fail(key, now, end, INVALID_NUMBER, end) == model.move(
                key, (SENDING,), status=end, lease_until=0.0, error=INVALID_NUMBER, detail=end,
                updated=now), step
        elif op == 6:
            sent = [i for i in model.items.values() if i.provider_id]
            pid = rng.choice(sent).provider_id if sent else "pid-none"
            target = next((i.key for i in model.items.values() if i.provider_id == pid), "")
            assert await store.outbox.delivered(pid, now) == model.move(
                target, (SENT,), status=DELIVERED, updated=now), step
        elif op == 7:
            which = key if rng.random() < 0.7 else None
            expected = sum(model.move(k, DEAD_LETTERS, status=QUEUED, attempts=0, next_at=now,
                                      lease_until=0.0, updated=now)
                           for k in ([which] if which else list(model.items)))
            assert await store.outbox.redrive(now, which) == expected, step
        else:
            assert await store.outbox.get(key) == model.items.get(key), step
    assert await everything(store) == model.items
    assert await store.outbox.counts() == {s: sum(i.status == s for i in model.items.values())
                                           for s in STATUSES}


# -- the SQLite file of before the outbox ---------------------------------------------------------------


async def test_a_sqlite_file_of_schema_1_gains_the_outbox(tmp_path):
    import sqlite3

    from hub.store import open_store
    from hub.store.sqlite_db import SCHEMA_VERSION
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE branches(branch TEXT PRIMARY KEY, seq INTEGER NOT NULL, epoch TEXT NOT NULL);
        CREATE TABLE events(branch TEXT, seq INTEGER, day TEXT, body TEXT, PRIMARY KEY(branch, seq)) WITHOUT ROWID;
        CREATE INDEX events_branch_day ON events(branch, day);
        CREATE TABLE idempotency(branch TEXT, key TEXT, fingerprint TEXT, status INTEGER, body TEXT,
                                 PRIMARY KEY(branch, key));
        INSERT INTO branches VALUES ('1', 1, 'e0e0e0e0e0e0e0e0');
        PRAGMA user_version=1;
    """)
    old.execute("INSERT INTO events VALUES ('1', 1, ?, ?)", (DAY.isoformat(), json.dumps({**issued(1), "seq": 1})))
    old.commit()
    old.close()
    async with open_store(f"sqlite:///{path}") as store:
        assert [ev["seq"] for ev in await store.log.events_since("1", 0)] == [1]
        await store.log.append("1", 1, [issued(2)], outbox=[item(2)])
        assert await store.outbox.get(item(2).key) == item(2)
        assert (await store.log.head("1")).epoch == "e0e0e0e0e0e0e0e0"
    with sqlite3.connect(path) as again:
        assert again.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)   # and every later table


# -- pruning what we are done with ------------------------------------------------------------------

OLD, NEW = T0 - 86_400, T0 + 60


async def test_prune_forgets_only_done_items_changed_before(store):
    old = {status: item(n, status=status, updated=OLD, next_at=OLD, lease_until=OLD + 1)
           for n, status in enumerate(STATUSES)}
    new = {status: item(50 + n, status=status, updated=NEW) for n, status in enumerate(DONE)}
    await store.outbox.add([*old.values(), *new.values()])
    assert await store.outbox.prune(T0, 100) == len(DONE)
    left = await everything(store)
    assert set(left) == {old[s].key for s in STATUSES if s not in DONE} | {i.key for i in new.values()}
    assert (await store.outbox.counts())[DEAD] == 1          # dead letters wait to be re-driven
    assert await store.outbox.prune(T0, 100) == 0


async def test_prune_takes_the_least_recently_changed_first_up_to_the_limit(store):
    items = [item(n, status=SENT, updated=T0 - 100 + n) for n in range(5)]
    await store.outbox.add(list(reversed(items)))
    assert await store.outbox.prune(T0, 0) == 0
    assert await store.outbox.prune(T0, 2) == 2
    assert set(await everything(store)) == set(keys(items[2:]))
    assert await store.outbox.prune(T0 - 100 + 3, 10) == 1        # `before` is exclusive: 3 stays
    assert set(await everything(store)) == set(keys(items[3:]))


async def test_prune_goes_through_every_branch(store):
    await store.outbox.add([item(1, "1", status=DELIVERED, updated=OLD), item(2, "2", status=DROPPED, updated=OLD),
                            item(3, "2", status=QUEUED, updated=OLD)])
    assert await store.outbox.prune(T0, 10) == 2
    assert set(await everything(store)) == {item(3, "2").key}


async def test_a_pruned_message_answers_no_delivery_report_and_may_be_owed_again(store):
    sent = await put_in(store, SENT)                          # provider id pid-1
    assert await store.outbox.prune(T0 + 10, 10) == 1
    assert await store.outbox.get(sent.key) is None
    assert await store.outbox.delivered("pid-1", T0 + 11) is False
    assert await store.outbox.counts() == dict.fromkeys(STATUSES, 0)
    # Why the hub prunes only well after a number's day is over: the key is free again.
    assert await store.outbox.add([item(1)]) == 1
