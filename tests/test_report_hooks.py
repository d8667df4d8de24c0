"""Delivery reports (GET /hooks/esms, POST /hooks/twilio) against a real hub process and its real
store: the fake gateways of notifier/fakes call the hub's callback URL over 127.0.0.1 exactly as the
real ones would, after the real senders sent through them. The test plays the worker's part on the
store (add, claim, sent), reading and writing the same SQLite file or Redis as the hub."""
from __future__ import annotations

import aiohttp
import httpx
import pytest

from hub.domain.notifications.message import Message
from hub.store import open_store
from hub.store.outbox import DELIVERED, SENT, OutboxItem
from notifier.fakes.esms import FakeEsms
from notifier.fakes.twilio import FakeTwilio
from notifier.reports import callback_url, twilio_signature
from notifier.senders.esms import EsmsSender
from notifier.senders.twilio import TwilioSender

from conftest import TUESDAY_9AM, free_port
from waiting import deadline

pytestmark = pytest.mark.anyio

NOW = TUESDAY_9AM.timestamp()
PHONE = "+84912345678"
SID = "AC" + "1" * 32
AUTH = "twilio-auth-token"


def message(number: str = "1001") -> Message:
    return Message("1", f"20260519-{number}", "called", "sms", PHONE,
                   {"number": number, "counter": "5", "url": "http://127.0.0.1/t/x"})


async def owed_and_sent(store, sender, msg: Message) -> str:
    """What the worker does with one message: owe it, claim it, send it, record it sent. The provider id."""
    await store.outbox.add([OutboxItem(msg.key, msg.branch, msg.ticket, msg.trigger, msg.channel, msg.recipient,
                                       dict(msg.params), created=NOW, next_at=NOW, updated=NOW)])
    [claimed] = await store.outbox.claim(NOW, 10, 60)
    assert claimed.key == msg.key
    result = await sender.send(msg)
    assert result.outcome.value == "sent" and result.provider_id, result
    assert await store.outbox.sent(msg.key, NOW + 1, result.provider_id)
    return result.provider_id


def hub_with(hub_factory, hub_env, database: str | None = None, **env: str):
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    full = {**hub_env, "QUEUECAST_PUBLIC_URL": public, "QUEUECAST_NOTIFIER": "worker", **env}
    if database:
        full["QUEUECAST_DATABASE"] = database
    return hub_factory(full, port=port), full["QUEUECAST_DATABASE"], public


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def database(request, hub_env):
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return hub_env["QUEUECAST_DATABASE"]


async def test_esms_report_marks_the_message_delivered_once(hub_factory, hub_env, database):
    hub, db, public = hub_with(hub_factory, hub_env, database, QUEUECAST_SMS_PROVIDER="esms")
    async with FakeEsms() as esms, open_store(db) as store, aiohttp.ClientSession() as session:
        sender = EsmsSender(session, base_url=esms.url, api_key=esms.api_key, secret_key=esms.secret_key,
                            brandname="QUEUECAST", callback_url=callback_url(public, "esms"))
        msg = message()
        sms_id = await owed_and_sent(store, sender, msg)
        [received] = esms.received
        assert received.fields["CallbackUrl"] == f"{public}/hooks/esms" and received.request_id == msg.key

        assert await esms.report(received) == 200                  # eSMS GETs our CallbackUrl
        item = await store.outbox.get(msg.key)
        assert item.status == DELIVERED and item.provider_id == sms_id
        assert await esms.report(received) == 200                  # a repeat: harmless, nothing moves
        assert (await store.outbox.get(msg.key)).updated == item.updated


async def test_esms_reports_that_match_nothing_change_nothing(hub_factory, hub_env):
    hub, db, public = hub_with(hub_factory, hub_env, QUEUECAST_SMS_PROVIDER="esms")
    async with FakeEsms() as esms, open_store(db) as store, aiohttp.ClientSession() as session:
        sender = EsmsSender(session, base_url=esms.url, api_key=esms.api_key, secret_key=esms.secret_key,
                            brandname="QUEUECAST", callback_url=callback_url(public, "esms"))
        msg = message()
        sms_id = await owed_and_sent(store, sender, msg)
        before = await store.outbox.get(msg.key)
        delivered = {"SendStatus": "5", "SendSuccess": "1", "SendFailed": "0"}
        with httpx.Client(base_url=hub.url, timeout=deadline(30)) as api:
            for query in ({**delivered, "SMSID": "unknown-id"},                          # not ours
                          {**delivered, "SMSID": "unknown-id", "RequestId": msg.key},    # our key, not its id
                          {**delivered, "SMSID": sms_id, "RequestId": "1/20260519-1002:called:sms"},
                          {"SMSID": sms_id, "SendStatus": "5", "SendSuccess": "0", "SendFailed": "1"},  # failed
                          {"SMSID": sms_id, "SendStatus": "7"}):                         # not final yet
                r = api.get("/hooks/esms", params=query)
                assert r.status_code == 200 and r.json() == {"ok": True, "recorded": False}, (query, r.text)
            # SendSuccess and SendFailed are counts whatever the status (schemathesis found "many" taken
            # with SendStatus 7), and only ASCII digits (int() also reads " 1", "+1" and "١").
            for garbage in ({}, {"SendStatus": "5"}, {"SMSID": sms_id, "SendStatus": "5", "SendSuccess": "many"},
                            {"SMSID": sms_id, "SendStatus": "7", "SendSuccess": "many"},
                            {"SMSID": sms_id, "SendStatus": "5", "SendSuccess": "+1"},
                            {"SMSID": sms_id, "SendStatus": "4", "SendFailed": "\u0661"}):
                r = api.get("/hooks/esms", params=garbage)
                assert r.status_code == 400 and r.json()["error"]["code"] == "bad_report", r.text
        assert await store.outbox.get(msg.key) == before
        assert before.status == SENT


async def test_twilio_signed_report_is_checked_before_anything_moves(hub_factory, hub_env):
    hub, db, public = hub_with(hub_factory, hub_env, QUEUECAST_SMS_PROVIDER="twilio", QUEUECAST_SMS_KEY=SID,
                               QUEUECAST_SMS_SECRET=AUTH, QUEUECAST_SMS_SENDER="+15005550006")
    async with FakeTwilio(account_sid=SID, auth_token=AUTH) as twilio, \
            FakeTwilio(account_sid=SID, auth_token="not-the-auth-token") as forger, \
            open_store(db) as store, aiohttp.ClientSession() as session:
        sender = TwilioSender(session, base_url=twilio.url, account_sid=SID, auth_token=AUTH, sender="+15005550006",
                              status_callback=callback_url(public, "twilio"))
        msg = message()
        await owed_and_sent(store, sender, msg)
        [received] = twilio.received

        assert await forger.report(received, "delivered") == 403          # signed with another token
        assert (await store.outbox.get(msg.key)).status == SENT
        assert await twilio.report(received, "sent") == 200               # not final: nothing to record
        assert await twilio.report(received, "undelivered", "30003") == 200   # logged, stays "sent"
        assert (await store.outbox.get(msg.key)).status == SENT
        assert await twilio.report(received, "delivered") == 200
        assert (await store.outbox.get(msg.key)).status == DELIVERED
        assert await twilio.report(received, "failed", "30008") == 200    # late: never moves it back
        assert (await store.outbox.get(msg.key)).status == DELIVERED


async def test_twilio_garbage_and_missing_signatures(hub_factory, hub_env):
    hub, db, public = hub_with(hub_factory, hub_env, QUEUECAST_SMS_PROVIDER="twilio", QUEUECAST_SMS_KEY=SID,
                               QUEUECAST_SMS_SECRET=AUTH)
    url = callback_url(public, "twilio")
    form = {"MessageSid": "SMunknown", "MessageStatus": "delivered", "AccountSid": SID}
    signed = {"X-Twilio-Signature": twilio_signature(url, form, AUTH)}
    async with open_store(db) as store:
        before = await store.outbox.counts()
    with httpx.Client(base_url=hub.url, timeout=deadline(30)) as api:
        r = api.post("/hooks/twilio", data=form, headers=signed)
        assert r.status_code == 200 and r.json() == {"ok": True, "recorded": False}    # unknown id: harmless
        r = api.post("/hooks/twilio", data=form)
        assert r.status_code == 403 and r.json()["error"]["code"] == "bad_signature"
        r = api.post("/hooks/twilio", data={**form, "MessageStatus": "read"}, headers=signed)   # altered
        assert r.status_code == 403
        no_sid = {"MessageStatus": "delivered"}
        r = api.post("/hooks/twilio", data=no_sid, headers={"X-Twilio-Signature": twilio_signature(url, no_sid, AUTH)})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_report"
        r = api.post("/hooks/twilio", content=b"\xff\xfe not a form", headers={
            "Content-Type": "application/x-www-form-urlencoded", **signed})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_report"
        r = api.post("/hooks/twilio", content=b"MessageSid=" + b"x" * 20000, headers={
            "Content-Type": "application/x-www-form-urlencoded", **signed})
        assert r.status_code == 413
    async with open_store(db) as store:
        assert await store.outbox.counts() == before


async def test_twilio_reports_are_refused_when_the_hub_cannot_check_them(hub_factory, hub_env):
    """With eSMS configured there is no Twilio auth token: nothing posted there is believed."""
    hub, db, public = hub_with(hub_factory, hub_env, QUEUECAST_SMS_PROVIDER="esms", QUEUECAST_SMS_SECRET="esms-secret")
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    sig = twilio_signature(callback_url(public, "twilio"), form, "esms-secret")
    r = httpx.post(f"{hub.url}/hooks/twilio", data=form, headers={"X-Twilio-Signature": sig}, timeout=deadline(30))
    assert r.status_code == 403 and r.json()["error"]["code"] == "bad_signature"
