"""The contract every Storage backend must pass, run unchanged against each one.

The backends and their storage are the fixtures of tests/store_backends.py (shared with
tests/test_outbox_contract.py): `store` is one opened instance, `open_instance()` opens another
one on the same storage (to test persistence after a close and conflicts between instances, as
between two hub processes).
"""
from __future__ import annotations

import asyncio
from datetime import date

import anyio
import pytest

from hub.store.errors import SeqConflict
from hub.store.eventlog import Idempotency, LogHead
from hub.store.storage import Storage

from store_backends import anyio_backend, open_instance, store, store_url, used_key_error  # noqa: F401 (fixtures)
from waiting import deadline

DAY = date(2026, 5, 19)


def issued(order: int, branch: str = "1", day: date = DAY, **extra) -> dict:
    number = str(1000 + order)
    ev = {"type": "ticket.issued", "t": f"{day.isoformat()}T08:{order % 60:02d}:12+07:00",
          "branch": branch, "day": day.isoformat(), "ticket": f"{day:%Y%m%d}-{number}",
          "number": number, "service": "dat-dai", "channel": "kiosk", "priority": False,
          "order": order}
    ev.update(extra)
    return ev


def called(order: int, counter: str = "3", branch: str = "1", day: date = DAY) -> dict:
    number = str(1000 + order)
    return {"type": "ticket.called", "t": f"{day.isoformat()}T09:{order % 60:02d}:40+07:00",
            "branch": branch, "day": day.isoformat(), "ticket": f"{day:%Y%m%d}-{number}",
            "number": number, "counter": counter}


def record(key: str = "b7f3c2a0-kiosk-1", status: int = 201) -> Idempotency:
    return Idempotency(key=key, fingerprint="sha256:9f86d081884c7d659a2feaa0c55ad015",
                       status=status, body='{"ticket":"20260519-1001","number":"1001"}')


def with_seqs(events: list[dict], first: int) -> list[dict]:
    return [{**ev, "seq": first + i} for i, ev in enumerate(events)]


pytestmark = pytest.mark.anyio


async def test_empty_log_head_is_zero_with_stable_epoch(open_instance):
    async with open_instance() as store:
        head = await store.log.head("1")
        assert isinstance(head, LogHead)
        assert head.seq == 0
        assert isinstance(head.epoch, str) and head.epoch
        assert await store.log.head("1") == head
        assert await store.log.events_since("1", 0) == []
    async with open_instance() as reopened:
        assert await reopened.log.head("1") == head


async def test_append_assigns_consecutive_seqs(store):
    events = [issued(1), issued(2), called(1)]
    appended = await store.log.append("1", 0, events)
    assert appended == with_seqs(events, 1)
    assert [ev["seq"] for ev in appended] == [1, 2, 3]
    assert await store.log.events_since("1", 0) == appended
    assert (await store.log.head("1")).seq == 3


async def test_second_append_continues_seq(store):
    first = await store.log.append("1", 0, [issued(1), issued(2)])
    epoch = (await store.log.head("1")).epoch
    second = await store.log.append("1", 2, [called(1)])
    assert second == with_seqs([called(1)], 3)
    assert await store.log.events_since("1", 0) == first + second
    assert await store.log.head("1") == LogHead(3, epoch)


@pytest.mark.parametrize("stale", [0, 1, 3, 7])
async def test_wrong_expected_seq_conflicts_and_writes_nothing(store, stale):
    before = await store.log.append("1", 0, [issued(1), issued(2)])
    head = await store.log.head("1")
    with pytest.raises(SeqConflict) as info:
        await store.log.append("1", stale, [issued(3)], record("retry-1"))
    assert (info.value.branch, info.value.expected, info.value.actual) == ("1", stale, 2)
    assert await store.log.head("1") == head
    assert await store.log.events_since("1", 0) == before
    assert await store.log.idempotency("1", "retry-1") is None


async def test_conflict_on_unknown_branch(store):
    with pytest.raises(SeqConflict) as info:
        await store.log.append("9", 4, [issued(1, branch="9")])
    assert (info.value.expected, info.value.actual) == (4, 0)
    assert (await store.log.head("9")).seq == 0
    assert await store.log.events_since("9", 0) == []


async def test_branches_are_independent(store):
    a = await store.log.append("1", 0, [issued(1), issued(2)])
    b = await store.log.append("2", 0, [issued(1, branch="2")])
    assert [ev["seq"] for ev in b] == [1]
    assert (await store.log.head("1")).seq == 2
    assert (await store.log.head("2")).seq == 1
    assert (await store.log.head("3")).seq == 0
    assert await store.log.events_since("1", 0) == a
    assert await store.log.events_since("2", 0) == b
    with pytest.raises(SeqConflict):
        await store.log.append("2", 2, [issued(2, branch="2")])  # branch 1's head is not branch 2's


async def test_idempotency_record_stored_with_events(store):
    rec = record("kiosk-7:0001", status=201)
    await store.log.append("1", 0, [issued(1)], rec)
    assert await store.log.idempotency("1", rec.key) == rec
    assert await store.log.idempotency("1", "never-sent") is None
    assert await store.log.idempotency("2", rec.key) is None  # keys are per branch


async def test_empty_append_stores_only_the_record(store):
    await store.log.append("1", 0, [issued(1)])
    head = await store.log.head("1")
    rec = record("counter-3:call-42", status=409)
    assert await store.log.append("1", 1, [], rec) == []
    assert await store.log.head("1") == head
    assert await store.log.events_since("1", 0) == with_seqs([issued(1)], 1)
    assert await store.log.idempotency("1", rec.key) == rec


async def test_used_key_is_never_overwritten_and_failed_append_writes_nothing(store, used_key_error):
    rec = record("kiosk-7:0001", status=201)
    first = await store.log.append("1", 0, [issued(1)], rec)
    with pytest.raises(used_key_error):  # the backend's own error; the first answer must stay
        await store.log.append("1", 1, [issued(2), issued(3)], record("kiosk-7:0001", status=500))
    assert await store.log.idempotency("1", rec.key) == rec
    assert await store.log.events_since("1", 0) == first
    assert (await store.log.head("1")).seq == 1
    assert await store.log.append("1", 1, [issued(2)]) == with_seqs([issued(2)], 2)  # still usable


async def append_retrying(store: Storage, branch: str, events: list[dict], attempts: int = 1000) -> list[dict]:
    """What the hub does: read the head, append at it, on SeqConflict read again (a bounded number
    of times: each conflict means another writer made progress, so the racers here finish first)."""
    for _ in range(attempts):
        try:
            return await store.log.append(branch, (await store.log.head(branch)).seq, events)
        except SeqConflict:
            await anyio.sleep(0.001)
    raise AssertionError(f"{attempts} appends in a row conflicted on branch {branch}")


async def test_cancelled_append_leaves_storage_usable(store, open_instance):
    # A client disconnect cancels the request mid-append. The append may still happen (as when
    # the reply is lost), but all or nothing, and no lock may be left held.
    async with open_instance() as other:
        delays = [0.0001 * k for k in range(40)]  # to land in every step of an append
        for i, delay in enumerate(delays):
            batch = [issued(100 + i, note=f"cancelled-{i}"), called(100 + i)]
            with anyio.move_on_after(delay):
                await store.log.append("1", (await store.log.head("1")).seq, batch)
            # A leaked write lock fails these with StoreUnavailable after SQLite's busy_timeout;
            # the deadline only bounds a hang.
            with anyio.fail_after(deadline(30)):
                await append_retrying(other, "1", [called(1, counter="4")])
                await append_retrying(store, "1", [called(2, counter="5")])
        log = await store.log.events_since("1", 0)
        assert [ev["seq"] for ev in log] == list(range(1, len(log) + 1))
        for i in range(len(delays)):
            at = [k for k, ev in enumerate(log) if ev.get("note") == f"cancelled-{i}"]
            assert len(at) <= 1
            if at:
                assert log[at[0] + 1]["number"] == str(1100 + i)  # the batch stayed whole


async def test_events_since_with_limit(store):
    events = await store.log.append("1", 0, [issued(i) for i in range(1, 6)])
    assert await store.log.events_since("1", 0, limit=2) == events[:2]
    assert await store.log.events_since("1", 2, limit=2) == events[2:4]
    assert await store.log.events_since("1", 4, limit=10) == events[4:]
    assert await store.log.events_since("1", 3) == events[3:]
    assert await store.log.events_since("1", 5) == []


async def test_events_of_day_filters_by_day(store):
    next_day = date(2026, 5, 20)
    await store.log.append("1", 0, [issued(1), issued(2), called(1)])
    await store.log.append("1", 3, [issued(1, day=next_day), called(2)])
    await store.log.append("2", 0, [issued(1, branch="2")])
    days = [ev["day"] for ev in await store.log.events_since("1", 0)]
    assert days == ["2026-05-19"] * 3 + ["2026-05-20", "2026-05-19"]
    assert [ev["seq"] for ev in await store.log.events_of_day("1", DAY)] == [1, 2, 3, 5]
    assert await store.log.events_of_day("1", next_day) == with_seqs([issued(1, day=next_day)], 4)
    assert await store.log.events_of_day("1", date(2026, 5, 18)) == []


async def test_persists_across_reopen(open_instance):
    rec = record()
    async with open_instance() as store:
        events = await store.log.append("1", 0, [issued(1), issued(2)], rec)
        head = await store.log.head("1")
    async with open_instance() as store:
        assert await store.log.head("1") == head == LogHead(2, head.epoch)
        assert await store.log.events_since("1", 0) == events
        assert await store.log.events_of_day("1", DAY) == events
        assert await store.log.idempotency("1", rec.key) == rec
        assert await store.log.append("1", 2, [called(1)]) == with_seqs([called(1)], 3)


async def test_concurrent_instances_one_wins(store, open_instance):
    # Like several hub processes on one storage: all read head n, all append at n.
    async with open_instance() as other, open_instance() as third:
        instances = [store, other, third]
        for round_ in range(5):
            n = (await store.log.head("1")).seq
            batches = [[issued(10 * round_ + i)] * (i + 1) for i in range(len(instances))]
            results = await asyncio.gather(
                *(s.log.append("1", n, batch) for s, batch in zip(instances, batches)),
                return_exceptions=True)
            won = [r for r in results if isinstance(r, list)]
            lost = [r for r in results if isinstance(r, SeqConflict)]
            assert len(won) == 1 and len(lost) == len(instances) - 1, results
            assert all(e.expected == n and e.actual == n + len(won[0]) for e in lost)
            log = await other.log.events_since("1", 0)
            assert [ev["seq"] for ev in log] == list(range(1, len(log) + 1))  # no gap
            assert log[n:] == won[0]
            assert (await third.log.head("1")).seq == len(log)


async def test_concurrent_appends_on_one_instance(store):
    results = await asyncio.gather(store.log.append("1", 0, [issued(1)]),
                                   store.log.append("1", 0, [issued(2), issued(3)]),
                                   return_exceptions=True)
    won = [r for r in results if isinstance(r, list)]
    assert len(won) == 1 and sum(isinstance(r, SeqConflict) for r in results) == 1, results
    assert await store.log.events_since("1", 0) == won[0]


async def test_vietnamese_text_round_trips(store, open_instance):
    ev = issued(1, service_name="Đất đai – Cấp giấy chứng nhận quyền sử dụng đất",
                note="Ưu tiên: người cao tuổi, phụ nữ mang thai 🤰")
    rec = Idempotency(key="khóa-1", fingerprint="sha256:ab", status=201,
                      body='{"message":"Đã cấp số 1001, vui lòng chờ gọi"}')
    appended = await store.log.append("1", 0, [ev], rec)
    assert appended == with_seqs([ev], 1)
    assert await store.log.events_since("1", 0) == appended
    async with open_instance() as other:
        assert await other.log.events_since("1", 0) == appended
        assert await other.log.idempotency("1", "khóa-1") == rec


async def test_ping(store):
    assert await store.log.ping() is None


async def test_events_since_with_limit_0_is_nothing_new(store):
    """A feed resuming at the head asks for at most 0 events: an answer, not an error (Redis's
    XRANGE refuses COUNT 0)."""
    await store.log.append("1", 0, [issued(i) for i in range(1, 4)])
    assert await store.log.events_since("1", 3, limit=0) == []
    assert await store.log.events_since("1", 1, limit=0) == []
    assert await store.log.events_since("1", 0, limit=-1) == []


async def test_new_epoch_is_minted_once_for_the_epoch_seen(store, open_instance):
    """Two processes find the log behind what they saw, both in epoch E: one new epoch, which both get."""
    await store.log.append("1", 0, [issued(i) for i in range(1, 4)])
    before = await store.log.head("1")
    first = await store.log.new_epoch("1", before.epoch)
    assert first.seq == 3 and first.epoch != before.epoch
    async with open_instance() as other:
        second = await other.log.new_epoch("1", before.epoch)      # too late: E is gone already
    assert second.epoch == first.epoch and await store.log.head("1") == first
    assert (await store.log.head("2")).epoch != first.epoch        # other branches keep theirs
    # Appends go on in the new epoch, from the same seq.
    assert [e["seq"] for e in await store.log.append("1", 3, [issued(4)])] == [4]
    assert (await store.log.head("1")).epoch == first.epoch
