"""The issue path under the store's reservations (hub.service.reserved), two hubs on one storage
(SQLite file or Redis, tests/store_backends.py), each with its own state and no broker between
them: the per-citizen limits hold across both, a number refused after its reservation gives it
back, a retried request (same Idempotency-Key) takes one reservation, a given-back number still
counts, and a store that cannot be reached answers 'unavailable'."""
from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date

import pytest

from hub.auth import Tokens
from hub.broker.memory import MemoryBroker
from hub.domain.errors import DomainError
from hub.service.pipeline import IdemRequest
from hub.service.queue import QueueService
from hub.store import open_store

from conftest import SECRET, stop_process
from store_backends import anyio_backend, open_instance, store, store_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

TOKENS = Tokens(SECRET)
CIVIL, LAND, RESIDENCE = "ho-tich", "dat-dai", "cu-tru"
DAY = date(2026, 5, 19)                 # TUESDAY_9AM's day


def citizen(n: int):
    """A verified citizen's claims, as the web layer hands them to the service."""
    return TOKENS.verify(TOKENS.citizen(f"0012030{n:05d}"))


@asynccontextmanager
async def two_hubs(url: str, centre, clock) -> AsyncIterator[tuple[QueueService, QueueService]]:
    async with open_store(url) as sa, open_store(url) as sb:
        hubs = [QueueService(centre, s.log, MemoryBroker(), clock, TOKENS, "http://hub.test", quotas=s.quotas)
                for s in (sa, sb)]
        for h in hubs:
            await h.load()
        yield hubs[0], hubs[1]


async def issued_to(hub: QueueService, claims) -> list[tuple[str, str]]:
    """(branch, field) of every number the citizen holds today, from every branch's log."""
    await hub.catch_up()
    pseudonym = TOKENS.pseudonym(claims.cccd)
    return sorted((st.id, t.service) for st in hub.states.values() for t in st.tickets.values()
                  if t.citizen == pseudonym)


async def test_two_hubs_issuing_at_once_hold_the_limits_and_keep_no_reservation_of_a_refusal(
        store_url, centre, clock):
    """12 citizens each ask 12 numbers at once (3 fields x 2 branches x both hubs)."""
    async with two_hubs(store_url, centre, clock) as (a, b):
        asks = [(hub, n, branch, field) for n in range(12) for field in (CIVIL, LAND, RESIDENCE)
                for branch in ("1", "2") for hub in (a, b)]
        results = await asyncio.gather(*(hub.issue(branch, service=field, channel="online", claims=citizen(n))
                                         for hub, n, branch, field in asks), return_exceptions=True)
        codes = collections.Counter(r.code if isinstance(r, DomainError) else "issued" for r in results)
        unexpected = [r for r in results if not isinstance(r, (dict, DomainError))]
        assert not unexpected, unexpected
        assert set(codes) <= {"issued", "field_limit_reached", "daily_limit_reached", "busy"}, codes
        assert codes["issued"] >= 12, codes         # at least one each (busy: a log changing too fast)
        for n in range(12):
            numbers = await issued_to(a, citizen(n))
            assert len(numbers) <= 2 and len({f for _, f in numbers}) == len(numbers), numbers
            held = await a.reserved.quotas.held(TOKENS.pseudonym(citizen(n).cccd), DAY)
            assert sorted((r.branch, r.field) for r in held) == numbers     # no reservation leaked


async def test_a_number_refused_after_its_reservation_gives_it_back(store_url, centre, clock):
    """Hub B does not know yet that A took the field's last number: B reserves, then the fresh log
    refuses (daily_cap_reached); the citizen can still take their two numbers of the day."""
    b1 = centre.branches["1"]
    small = dataclasses.replace(centre, branches={**centre.branches, "1": dataclasses.replace(
        b1, services={**b1.services, CIVIL: dataclasses.replace(b1.services[CIVIL], daily_cap=1)})})
    async with two_hubs(store_url, small, clock) as (a, b):
        await a.issue("1", service=CIVIL, channel="kiosk")              # the last one, anonymous
        y = citizen(7)
        with pytest.raises(DomainError) as refused:
            await b.issue("1", service=CIVIL, channel="online", claims=y)
        assert refused.value.code == "daily_cap_reached"
        assert await b.reserved.quotas.held(TOKENS.pseudonym(y.cccd), DAY) == []
        await b.issue("1", service=LAND, channel="online", claims=y)
        await a.issue("2", service=RESIDENCE, channel="online", claims=y)
        with pytest.raises(DomainError) as third:
            await b.issue("3", service=CIVIL, channel="online", claims=y)
        assert third.value.code == "daily_limit_reached"


async def test_a_retried_issue_takes_one_reservation_at_either_hub(store_url, centre, clock):
    async with two_hubs(store_url, centre, clock) as (a, b):
        y = citizen(3)
        idem = IdemRequest("app-req-1", "fingerprint-1", 201)
        first = await a.issue("1", service=CIVIL, channel="online", claims=y, idem=idem)
        again = await a.issue("1", service=CIVIL, channel="online", claims=y, idem=idem)
        elsewhere = await b.issue("1", service=CIVIL, channel="online", claims=y, idem=idem)
        assert first == again == elsewhere
        assert len(await a.reserved.quotas.held(TOKENS.pseudonym(y.cccd), DAY)) == 1
        await b.issue("2", service=LAND, channel="online", claims=y)               # the second of the day
        with pytest.raises(DomainError) as third:
            await a.issue("3", service=RESIDENCE, channel="online", claims=y)
        assert third.value.code == "daily_limit_reached"


async def test_a_number_given_back_still_counts(store_url, centre, clock):
    async with two_hubs(store_url, centre, clock) as (a, b):
        y = citizen(4)
        taken = await a.issue("1", service=CIVIL, channel="online", claims=y)
        await a.give_back(taken["token"])
        with pytest.raises(DomainError) as refused:
            await b.issue("2", service=CIVIL, channel="online", claims=y)
        assert refused.value.code == "field_limit_reached"
        assert len(await b.reserved.quotas.held(TOKENS.pseudonym(y.cccd), DAY)) == 1


async def test_a_store_that_cannot_be_reached_answers_unavailable_and_issues_nothing(
        redis_factory, tmp_path, centre, clock):
    server = redis_factory(tmp_path / "redis")
    async with open_store(server.url) as s:
        hub = QueueService(centre, s.log, MemoryBroker(), clock, TOKENS, "http://hub.test", quotas=s.quotas)
        await hub.load()
        stop_process(server.proc)
        with pytest.raises(DomainError) as down:
            await hub.issue("1", service=CIVIL, channel="online", claims=citizen(5))
        assert (down.value.kind, down.value.code) == ("unavailable", "store_unavailable")
        assert not any(t.citizen for t in hub.state("1").tickets.values())


async def test_a_number_whose_store_could_not_confirm_it_keeps_its_reservation(redis_url, centre, clock):
    """WAIT short of replicas (one server, one replica required): the number is in the log but the
    command answers 503. Its reservation stays, so the citizen cannot get a second number in the
    field at the other hub, which never heard of the first (nothing was published)."""
    async with open_store(redis_url, min_replicas=1, wait_ms=10) as sa, open_store(redis_url) as sb:
        a = QueueService(centre, sa.log, MemoryBroker(), clock, TOKENS, "http://hub.test", quotas=sa.quotas)
        b = QueueService(centre, sb.log, MemoryBroker(), clock, TOKENS, "http://hub.test", quotas=sb.quotas)
        for h in (a, b):
            await h.load()
        with pytest.raises(DomainError) as refused:
            await a.issue("1", service=CIVIL, channel="online", claims=citizen(1))
        assert refused.value.code == "store_unavailable"
        assert len(await sb.log.events_since("1", 0)) == 1               # the number is in the log
        held = await sb.quotas.held(TOKENS.pseudonym(citizen(1).cccd), DAY)
        assert [(r.branch, r.field) for r in held] == [("1", CIVIL)]
        with pytest.raises(DomainError) as again:
            await b.issue("2", service=CIVIL, channel="online", claims=citizen(1))
        assert again.value.code == "field_limit_reached"
