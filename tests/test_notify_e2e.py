"""Notifications end to end: a real hub process, the worker as its own process (`python -m hub
notifier`), one SQLite file between them, and the fake gateways of notifier/fakes as real HTTP
servers on 127.0.0.1 (eSMS; a web push service behind TLS).

The 30-number run and the `kill -9` run also go on the test Redis (hub and worker sharing it).

What is asserted is what the citizens' phones got: the fake eSMS records each message once per
RequestId (the outbox key), as the real one does (a repeat is answered 124 and not sent again), and
counts every request besides, so a re-send after a crash shows in `attempts` but never as a second SMS.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from hub.auth import Tokens
from hub.store import open_store
from notifier.fakes.esms import FakeEsms

import waiting
from conftest import SECRET, TUESDAY_9AM
from waiting import deadline

pytestmark = pytest.mark.anyio

STAFF = Tokens(SECRET).staff("2")
FIELD = "ho-tich"


@dataclass
class WorkerProcess:
    proc: subprocess.Popen
    log: Path

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)          # only the process this test started
        self.proc.wait(timeout=deadline(30))

    async def stop(self) -> int:
        """SIGTERM, then wait without blocking the loop the fake gateways answer on (a scaled 30 s,
        then SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                await waiting.until(lambda: self.proc.poll() is not None, "the worker to exit after SIGTERM",
                                    interval=0.1)
            except AssertionError:
                self.kill9()
        return self.proc.returncode


class Setup:
    """The hub, its environment, and the workers started for one test (stopped at its end)."""

    def __init__(self, hub_factory, hub_env: dict, tmp_path: Path, fake: FakeEsms, extra: dict | None = None):
        self.tmp, self.fake = tmp_path, fake
        self.env = {**hub_env, "QUEUECAST_NOTIFIER": "worker", "QUEUECAST_SMS_PROVIDER": "esms",
                    "QUEUECAST_SMS_URL": fake.url, "QUEUECAST_SMS_KEY": "esms-key",
                    "QUEUECAST_SMS_SECRET": "esms-secret", "QUEUECAST_SMS_SENDER": "QUEUECAST", **(extra or {})}
        self.db = self.env["QUEUECAST_DATABASE"]
        self.started = time.time()            # before the hub's clock starts at TUESDAY_9AM
        self.hub = hub_factory(self.env)
        self.workers: list[WorkerProcess] = []

    def worker(self, lease: float = 2.0, extra: dict | None = None) -> WorkerProcess:
        # The hub's clock started at 9:00 when it did; the worker's starts where the hub's is now
        # (a hair ahead: `started` was taken before the hub's), so items are due for both alike.
        clock = TUESDAY_9AM + timedelta(seconds=time.time() - self.started)
        log = self.tmp / f"worker-{len(self.workers)}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "hub", "notifier", "--lease", str(lease)],
                                    env={**os.environ, **self.env, "QUEUECAST_CLOCK": clock.isoformat(), **(extra or {})},
                                    stdout=out, stderr=subprocess.STDOUT)
        w = WorkerProcess(proc, log)
        self.workers.append(w)
        return w

    async def close(self) -> None:
        for w in self.workers:
            await w.stop()

    async def outbox(self) -> dict[str, str]:
        """Every item's status, by key, as the store has it."""
        async with open_store(self.db) as store:
            return {i.key: i.status for i in await store.outbox.recent(limit=10_000)}


@pytest.fixture
async def esms():
    async with FakeEsms() as fake:
        yield fake


@pytest.fixture
async def setup(hub_factory, hub_env, tmp_path, esms):
    s = Setup(hub_factory, hub_env, tmp_path, esms)
    try:
        yield s
    finally:
        await s.close()


async def until(what: str, check, timeout: float = 60.0, worker: WorkerProcess | None = None) -> None:
    """Poll `check()` (sync or async) every 0.1 s until true, within deadline(timeout) s; a worker
    that exits meanwhile fails it at once, with its log."""
    def look():
        if worker is not None and worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.proc.returncode}) before: {what}\n{worker.log.read_text()[-3000:]}")
        return check()

    def described() -> str:
        tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in ([worker.log] if worker else []))
        return f"{what}\n{tails}"
    await waiting.until(look, described, timeout, interval=0.1)


def phone(i: int) -> str:
    return f"09120000{i:02d}"


def sent(fake: FakeEsms) -> list[tuple[str, str]]:
    """(national phone, trigger) of every SMS the gateway took, in order."""
    return [(r.fields["Phone"], r.request_id.split(":")[1]) for r in fake.received]


async def issue_many(api: httpx.AsyncClient, n: int, first: int = 0) -> list[dict]:
    out = []
    for i in range(first, first + n):
        r = await api.post("/api/branches/2/tickets", json={"service": FIELD, "channel": "kiosk", "phone": phone(i)})
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


async def open_counter(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/branches/2/counters/1/open", json={"services": [FIELD]},
                       headers={"Authorization": f"Bearer {STAFF}"})
    assert r.status_code == 200, r.text


async def call_next(api: httpx.AsyncClient) -> dict:
    r = await api.post("/api/branches/2/counters/1/call-next", headers={"Authorization": f"Bearer {STAFF}"})
    assert r.status_code == 200, r.text
    return r.json()["ticket"]


def expected_first_messages(n: int, ahead: int = 5) -> Counter:
    """Issued for each; "ahead" for those with at most `ahead` before them when taken."""
    return Counter([(phone(i), "issued") for i in range(n)] + [(phone(i), "ahead") for i in range(min(n, ahead + 1))])


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def either(request, hub_factory, hub_env, tmp_path, esms):
    """The setup on the embedded SQLite file, or on the test Redis shared by hub and worker."""
    extra = {}
    if request.param == "redis":
        extra = {"QUEUECAST_DATABASE": request.getfixturevalue("redis_url")}
    s = Setup(hub_factory, hub_env, tmp_path, esms, extra)
    try:
        yield s
    finally:
        await s.close()


@pytest.mark.slow
async def test_thirty_numbers_called_get_exactly_their_messages(either):
    setup = either
    fake = setup.fake
    worker = setup.worker()
    async with httpx.AsyncClient(base_url=setup.hub.url, timeout=deadline(30)) as api:
        await open_counter(api)
        tickets = await issue_many(api, 30)
        want = expected_first_messages(30)
        await until("issued + first aheads", lambda: Counter(sent(fake)) == want, worker=worker)
        for i, t in enumerate(tickets):
            called = await call_next(api)
            assert called["number"] == t["number"]
            # Called now; and the one now 5 places from the counter learns it is close.
            want[(phone(i), "called")] += 1
            if i + 6 < 30:
                want[(phone(i + 6), "ahead")] += 1
            await until(f"messages after calling {t['number']}", lambda: Counter(sent(fake)) == want, worker=worker)
        r = await api.post(f"/api/branches/2/tickets/{tickets[-1]['number']}/complete",
                           headers={"Authorization": f"Bearer {STAFF}"})
        assert r.status_code == 200, r.text
    # Every message recorded as sent: nothing is left that could still go out a second time.
    await until("all 90 recorded as sent", lambda: _all_sent(setup, 90), worker=worker)

    assert Counter(sent(fake)) == Counter({(phone(i), trig): 1 for i in range(30) for trig in ("issued", "ahead", "called")})
    assert len(fake.received) == 90 and fake.attempts == 90                # none twice, none retried
    # The words, byte for byte (eSMS takes them without diacritics by default).
    first = next(r.fields for r in fake.received if r.request_id == f"2/{tickets[0]['ticket']}:issued:sms")
    assert first["Content"] == f"So {tickets[0]['number']} (Ho tich) tai Chi nhanh so 2. Theo doi: {tickets[0]['tracking_url']}"
    assert first["Phone"] == phone(0) and first["Brandname"] == "QUEUECAST"
    outbox = await setup.outbox()
    assert len(outbox) == 90 and set(outbox.values()) == {"sent"}
    assert await worker.stop() == 0                                        # SIGTERM: a clean stop


async def test_a_gateway_failing_twice_still_delivers_once(setup):
    fake = setup.fake
    fake.fail_next(2, "500")
    worker = setup.worker()
    async with httpx.AsyncClient(base_url=setup.hub.url, timeout=deadline(30)) as api:
        [mine] = await issue_many(api, 1)
    key = f"2/{mine['ticket']}:issued:sms"
    await until("both messages delivered", lambda: len(fake.received) == 2, worker=worker)
    await until("both recorded as sent: nothing left to retry", lambda: _all_sent(setup, 2), worker=worker)
    assert Counter(sent(fake)) == Counter({(phone(0), "issued"): 1, (phone(0), "ahead"): 1})
    assert fake.attempts == 4                     # two refused with 500, then each taken once
    async with open_store(setup.db) as store:
        items = {i.key: i for i in await store.outbox.recent()}
    assert {k: i.status for k, i in items.items()} == {key: "sent", key.replace("issued", "ahead"): "sent"}
    assert sum(i.attempts for i in items.values()) == 4
    assert {i.error for i in items.values() if i.attempts > 1} == {"gateway_error"}   # what the retry was for


async def test_a_worker_killed_mid_run_sends_everything_still_owed_and_nothing_twice(either):
    setup = either
    fake = setup.fake
    fake.slow = 0.5                               # answers come late: killed, the worker has sent but not recorded
    first = setup.worker(lease=2.0)
    async with httpx.AsyncClient(base_url=setup.hub.url, timeout=deadline(30)) as api:
        await issue_many(api, 30)
    await until("some messages taken", lambda: len(fake.received) >= 5, worker=first)
    first.kill9()
    taken_before = len(fake.received)
    assert taken_before < 36
    # Still owed: what the gateway did not take, and what it took without the worker knowing.
    statuses = await setup.outbox()
    assert "sending" in statuses.values()
    fake.slow = 0.0
    second = setup.worker(lease=2.0)
    want = expected_first_messages(30)
    await until("every message owed", lambda: Counter(sent(fake)) == want, worker=second)
    await until("all recorded as sent", lambda: _all_sent(setup, 36), worker=second)
    assert len(fake.received) == 36               # each SMS once: the re-sent ones were answered 124
    assert fake.attempts > 36                     # ... and there were re-sends
    assert await second.stop() == 0


async def _all_sent(setup: Setup, n: int) -> bool:
    statuses = await setup.outbox()
    return len(statuses) == n and set(statuses.values()) == {"sent"}


async def test_a_number_served_before_its_ahead_message_went_out_gets_none(setup):
    fake = setup.fake
    async with httpx.AsyncClient(base_url=setup.hub.url, timeout=deadline(30)) as api:
        await open_counter(api)
        tickets = await issue_many(api, 3)                     # no worker yet: all owed, none sent
        await call_next(api)                                   # the first is called...
        await call_next(api)                                   # ... and served (completed by the next call)
        worker = setup.worker()
        await until("the rest sent", lambda: _settled(setup), worker=worker)
    statuses = await setup.outbox()
    t0, t1, t2 = (t["ticket"] for t in tickets)
    assert statuses[f"2/{t0}:ahead:sms"] == "dropped"          # served before: never told "0 ahead"
    assert statuses[f"2/{t0}:issued:sms"] == "dropped"
    assert statuses[f"2/{t0}:called:sms"] == "dropped"         # ... nor "come to the counter" after it was served
    assert statuses[f"2/{t1}:ahead:sms"] == "dropped"          # at the counter now
    assert statuses[f"2/{t1}:called:sms"] == "sent"
    assert statuses[f"2/{t2}:ahead:sms"] == "sent"
    assert sorted(sent(fake)) == sorted([(phone(1), "issued"), (phone(1), "called"),
                                         (phone(2), "issued"), (phone(2), "ahead")])
    async with open_store(setup.db) as store:
        dropped = await store.outbox.get(f"2/{t0}:ahead:sms")
    assert dropped.error == "no_longer_true" and dropped.detail == "the number is already completed"


async def _settled(setup: Setup) -> bool:
    statuses = await setup.outbox()
    return bool(statuses) and not {"queued", "sending"} & set(statuses.values())


async def test_an_expired_push_subscription_is_removed(hub_factory, hub_env, tmp_path, esms):
    from tls import push_service_over_tls, self_signed

    server_tls, _ = self_signed(tmp_path)
    # The worker trusts the fake push service's certificate, as it trusts a real one's CA; the hub and
    # the worker let web push go to it on 127.0.0.1, as a lab's settings would (never production's).
    local_push = {"QUEUECAST_PUSH_HOSTS": "127.0.0.1", "QUEUECAST_PUSH_ALLOW_PRIVATE": "on"}
    setup = Setup(hub_factory, hub_env, tmp_path, esms, local_push)
    try:
        async with push_service_over_tls(server_tls) as push, \
                httpx.AsyncClient(base_url=setup.hub.url, timeout=deadline(30)) as api:
            key = (await api.get("/api/push/key")).json()["key"]
            r = await api.post("/api/branches/2/tickets", json={"service": FIELD, "channel": "kiosk"})
            mine = r.json()
            gone = push.subscription(application_server_key=key)
            push.unsubscribe(gone)                              # the browser dropped it: the service says 410
            r = await api.post(f"/api/tickets/{mine['token']}/notifications",
                               json={"channel": "push", "subscription": gone})
            assert r.status_code == 200, r.text
            # A second ticket's subscription still works: only the gone one is removed.
            other = (await api.post("/api/branches/2/tickets", json={"service": FIELD, "channel": "kiosk"})).json()
            alive = push.subscription(application_server_key=key)
            r = await api.post(f"/api/tickets/{other['token']}/notifications",
                               json={"channel": "push", "subscription": alive, "ahead": 3})
            assert r.status_code == 200, r.text
            worker = setup.worker(extra={"SSL_CERT_FILE": str(tmp_path / "push.pem")})

            async def removed():
                return (await api.get(f"/api/tickets/{mine['token']}")).json()["notifications"] == {}
            await until("the gone subscription removed", removed, worker=worker)
            await until("the other one pushed", lambda: len(push.received) == 1, worker=worker)
            assert (await api.get(f"/api/tickets/{other['token']}")).json()["notifications"] == {"push": {"ahead": 3}}
            body = push.received[0].fields["plaintext"].decode()
            assert f"Số {other['number']}: còn 1 người trước bạn" in body       # decrypted: it was for that key
        statuses = await setup.outbox()
        assert statuses[f"2/{mine['ticket']}:ahead:push"] == "failed"
        assert statuses[f"2/{other['ticket']}:ahead:push"] == "sent"
    finally:
        await setup.close()
