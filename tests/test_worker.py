"""notifier.worker in-process, step by step, on a manual clock: the real app and SQLite store, the
fake gateways of notifier/fakes as real HTTP servers on 127.0.0.1.

The end-to-end tests (test_notify_e2e.py) run the worker as its own process; here each decision the
worker makes on a gateway's answer is driven one step at a time: retry only what is retryable, not
before the backoff or the gateway's Retry-After, dead after the last attempt, Zalo falling back to SMS,
the rate limit, and "leave home now" added when its time comes.
"""
from __future__ import annotations

import asyncio
import random
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import pytest

from hub.domain.eta.estimator import Forecast, Quantiles
from hub.ratelimit import RateLimiter
from hub.store.outbox import DEAD, DROPPED, FAILED, QUEUED, SENT
from notifier import backoff
from notifier.channels import open_senders
from notifier.fakes.esms import FakeEsms
from notifier.fakes.zalo import FakeZalo
from notifier.worker import Worker

from conftest import bearer, running_app
from waiting import until, within

pytestmark = pytest.mark.anyio

PHONE = "0912345678"


class TimedEsms(FakeEsms):
    """The fake eSMS, noting when (time.monotonic) each request reached it."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.arrivals: list[float] = []

    def take_failure(self):                   # called first thing for every request the fake gets
        self.arrivals.append(time.monotonic())
        return super().take_failure()


class Gate:
    """A clock for the worker's rate limiter that stands still until the test opens the gate, then
    leaps an hour at every reading: a message waits for its turn exactly until then."""

    def __init__(self):
        self.now, self.opened = 0.0, False

    def __call__(self) -> float:
        if self.opened:
            self.now += 3600.0
        return self.now


@asynccontextmanager
async def stack(settings, clock, *, gateway=FakeEsms, **worker):
    """The app (its service and store), a fake eSMS and Zalo, and a worker sending to them."""
    async with gateway() as esms, FakeZalo() as zalo:
        settings = replace(settings, sms_provider="esms", sms_url=esms.url, sms_key="esms-key", sms_secret="esms-secret",
                           sms_sender="QUEUECAST", zalo_url=zalo.url, zalo_token="zalo-token", zalo_template="246810")
        async with running_app(settings, clock) as client, open_senders(settings) as senders:
            service = client.app.state.service
            w = Worker(service, client.app.state.outbox, senders, rng=random.Random(7), sms_diacritics=settings.sms_diacritics, **worker)
            yield client, service, w, esms, zalo


async def issue(client, phone: str | None = PHONE) -> dict:
    body = {"service": "ho-tich", "channel": "kiosk", **({"phone": phone} if phone else {})}
    r = await client.post("/api/branches/2/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def statuses(worker) -> dict[str, tuple[str, int]]:
    return {i.key: (i.status, i.attempts) for i in await worker.outbox.recent(limit=1000)}


async def test_retryable_failures_wait_their_backoff_then_go_once(settings, clock):
    async with stack(settings, clock) as (client, service, worker, esms, _):
        mine = await issue(client)
        key = f"2/{mine['ticket']}:issued:sms"
        esms.fail_next(2, "500")                  # both messages of the number (issued, ahead) refused once
        assert await worker.step() == 2
        item = await worker.outbox.get(key)
        assert (item.status, item.error) == (QUEUED, "gateway_error")
        both = [await worker.outbox.get(k) for k in (key, key.replace("issued", "ahead"))]
        now = clock.now().timestamp()
        assert all(now < i.next_at <= now + backoff.BASE for i in both)     # full jitter under the first ceiling
        clock.advance(seconds=min(i.next_at for i in both) - now - 0.01)
        assert await worker.step() == 0                                     # not claimed before its time
        clock.advance(seconds=backoff.BASE)
        assert await worker.step() == 2
        assert {k: s for k, (s, _) in (await statuses(worker)).items()} == {key: SENT, key.replace("issued", "ahead"): SENT}
        assert len(esms.received) == 2 and esms.attempts == 4
        assert worker.counts["sms_parts"] == 2        # plain letters (eSMS's habit): one 160-character SMS each


async def test_a_429_is_not_retried_before_its_retry_after(settings, clock):
    async with stack(settings, clock) as (client, service, worker, esms, _):
        esms.retry_after = 90
        mine = await issue(client)
        esms.fail_next(2, "429")
        await worker.step()
        item = await worker.outbox.get(f"2/{mine['ticket']}:issued:sms")
        assert (item.status, item.error) == (QUEUED, "rate_limited")
        assert item.next_at == pytest.approx(clock.now().timestamp() + 90)
        clock.advance(seconds=89)
        assert await worker.step() == 0
        clock.advance(seconds=1)
        assert await worker.step() == 2 and len(esms.received) == 2


async def test_permanent_refusals_are_not_retried_and_retries_end_in_dead_letters(settings, clock):
    async with stack(settings, clock, max_attempts=3) as (client, service, worker, esms, _):
        bad = await issue(client)
        esms.fail_next(2, "invalid_number")
        await worker.step()
        assert (await statuses(worker))[f"2/{bad['ticket']}:issued:sms"] == (FAILED, 1)
        assert esms.attempts == 2

        other = await issue(client, "0987654321")
        key = f"2/{other['ticket']}:issued:sms"
        esms.fail_next(6, "500")
        for _ in range(3):                        # three attempts, each after its backoff
            await worker.step()
            clock.advance(seconds=backoff.CAP)
        item = await worker.outbox.get(key)
        assert (item.status, item.attempts, item.error) == (DEAD, 3, "gateway_error")
        assert not esms.received

        # A dead letter re-driven goes again, from its first attempt.
        r = await client.post("/api/outbox/redrive", json={"key": key}, headers=bearer(client.app.state.tokens.staff("2")))
        assert r.status_code == 200, r.text
        await worker.step()
        assert (await statuses(worker))[key] == (SENT, 1)


async def test_no_zalo_account_falls_back_to_one_sms(settings, clock):
    async with stack(settings, clock) as (client, service, worker, esms, zalo):
        mine = await issue(client, phone=None)
        r = await client.post(f"/api/tickets/{mine['token']}/notifications", json={"channel": "zalo", "phone": PHONE})
        assert r.status_code == 200, r.text
        zalo.fail_next(1, "no_zalo")
        await worker.step()                       # Zalo refuses for good: an SMS is owed instead
        await worker.step()                       # ... and sent
        got = await statuses(worker)
        assert got == {f"2/{mine['ticket']}:ahead:zalo": (FAILED, 1), f"2/{mine['ticket']}:ahead:sms": (SENT, 1)}
        [sms] = esms.received
        assert sms.fields["Phone"] == PHONE and sms.fields["RequestId"] == f"2/{mine['ticket']}:ahead:sms"


async def test_the_gateway_rate_limit_holds(settings, clock):
    """What the gateway sees: at 5 a second (bursts of one second) the k-th message (from 0) reaches
    it no sooner than (k - 4) / 5 s after the step began. A lower bound only: a busy machine makes
    messages later, never earlier, so it holds however loaded the machine is."""
    async with stack(settings, clock, rate=5, gateway=TimedEsms) as (client, service, worker, esms, _):
        assert (worker.limits.capacity, worker.limits.rate) == (5, 5)      # a second's worth at once
        for i in range(6):
            await issue(client, f"09120000{i:02d}")
        began = time.monotonic()
        assert await worker.step() == 12          # 6 issued + 6 ahead
        assert len(esms.received) == 12 and esms.attempts == len(esms.arrivals) == 12
        late = [(k, round(at - began, 3)) for k, at in enumerate(sorted(esms.arrivals)) if at - began < (k - 4) / 5 - 1e-3]
        assert late == [], f"messages at the gateway before their turn (k, seconds after the start): {late}"
        assert [s for s, _ in (await statuses(worker)).values()] == [SENT] * 12


def test_the_bucket_lets_a_seconds_worth_through_at_once_then_one_per_token():
    """The limiter the worker waits on (its own clock, by hand): full at the start, per gateway."""
    now = [100.0]
    limits = RateLimiter(5, 1.0, clock=lambda: now[0])
    assert [limits.reserve("sms") for _ in range(5)] == [0.0] * 5          # a burst of one second
    assert limits.reserve("sms") == pytest.approx(0.2)                      # then the next token's wait
    assert limits.reserve("sms") == pytest.approx(0.2)                      # asking took nothing
    now[0] += 0.2
    assert limits.reserve("sms") == 0.0
    assert limits.reserve("sms") == pytest.approx(0.2)
    assert limits.reserve("zalo") == 0.0                                    # another gateway, its own bucket


async def test_the_last_look_is_after_the_wait_for_the_gateway(settings, clock):
    """At 1 message a second the items queue for their turn: numbers called and served meanwhile
    must not be told "people ahead" or be sent their tracking link. The limiter's clock is the
    test's Gate: the turns come when the test is done changing the queue, however slow it is."""
    async with stack(settings, clock, rate=1) as (client, service, worker, esms, _):
        gate = Gate()
        worker.limits.clock = gate
        staff = bearer(client.app.state.tokens.staff("2"))
        mine = [await issue(client, f"09120000{i:02d}") for i in range(3)]
        step = asyncio.create_task(worker.step())
        await until(lambda: esms.received, "the first message at the gateway")   # it goes at once; the rest queue
        assert len(esms.received) == 1
        assert (await client.post("/api/branches/2/counters/1/open", json={"services": ["ho-tich"]},
                                  headers=staff)).status_code == 200
        for n in mine:                                 # each called in turn; the first two also served
            assert (await client.post("/api/branches/2/counters/1/call-next", headers=staff)).status_code == 200
            if n is not mine[-1]:
                r = await client.post(f"/api/branches/2/tickets/{n['number']}/complete", headers=staff)
                assert r.status_code == 200, r.text
        assert len(esms.received) == 1 and not step.done()          # the others still wait for their turn
        gate.opened = True
        assert await within(step, "the step to send or drop the queued items") == 6
        sent = {f.fields["RequestId"] for f in esms.received}
        last = mine[-1]["ticket"]
        # The first went before anything happened; of the rest, only the last number's link is still
        # true (it is being called, not served). Everything else was dropped, not sent.
        assert sent == {f"2/{mine[0]['ticket']}:ahead:sms", f"2/{last}:issued:sms"}
        dropped = {k for k, (s, _) in (await statuses(worker)).items() if s == DROPPED}
        assert len(dropped) == 4


async def test_an_item_claimed_too_often_is_a_dead_letter(settings, clock):
    """A message whose handling kept failing before an answer was recorded is not claimed forever."""
    async with stack(settings, clock) as (client, service, worker, esms, _):
        mine = await issue(client)
        stuck = (await worker.outbox.get(f"2/{mine['ticket']}:issued:sms")).with_(
            key=f"2/{mine['ticket']}:expired:sms", trigger="expired", attempts=backoff.MAX_ATTEMPTS)
        await worker.outbox.add([stuck])
        await worker.step()
        item = await worker.outbox.get(stuck.key)
        assert (item.status, item.error) == (DEAD, "too_many_attempts")
        assert stuck.key not in {f.fields["RequestId"] for f in esms.received}


def test_a_claim_never_holds_more_than_half_a_lease_of_sending(settings):
    assert Worker(_Service(), None, {}, rate=1, lease=60)._claim_size() == 30       # 30 s of sending at 1 a second
    assert Worker(_Service(), None, {}, rate=20, lease=60)._claim_size() == 50        # the batch
    assert Worker(_Service(), None, {}, rate=0.01, lease=60)._claim_size() == 1


class _Service:
    """What Worker's constructor reads, and nothing else (the tests above use the real service)."""
    rules = None


async def test_leave_home_is_owed_when_its_time_comes(settings, clock):
    async with stack(settings, clock) as (client, service, worker, esms, _):
        for i in range(3):
            await issue(client, f"09120000{i:02d}")
        mine = await issue(client, phone=None)
        r = await client.post(f"/api/tickets/{mine['token']}/notifications",
                              json={"channel": "sms", "phone": PHONE, "travel_minutes": 20, "ahead": 1})
        assert r.status_code == 200, r.text
        st = service.states["2"]
        st.tickets[mine["ticket"]].checked_in = False    # a kiosk number is at the branch; this one went home
        key = f"2/{mine['ticket']}:leave:sms"

        def fixed(p10: float):
            q = Quantiles(p10, p10 + 10, p10 + 30)
            st.eta._last = (st.eta.observed.version, Forecast(clock.now(), {mine["ticket"]: q}, {mine["ticket"]: q}, {}))
        fixed(40)                                  # leave by now + 15 min: not yet
        await worker.step()
        assert key not in await statuses(worker)
        clock.advance(minutes=16)
        fixed(24)                                  # leave by now − 1 min: now
        worker._leave_at = 0                       # the loop looks every LEAVE_EVERY s; look now
        await worker.step()
        assert (await statuses(worker))[key] == (SENT, 1)
        [leave] = [r for r in esms.received if r.request_id == key]
        at = clock.now()
        assert leave.fields["Content"] == (f"So {mine['number']}: hay roi nha luc {at:%H:%M} de kip luot, "
                                           f"du kien duoc goi khoang {at + timedelta(minutes=34):%H:%M}.")
