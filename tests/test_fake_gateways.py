"""The fake gateways speak the real APIs (spoken to here without our senders), hold to what the real
services check, and send delivery reports that notifier.reports reads: eSMS's GET callback and
Twilio's signed StatusCallback, whose signature is verified and a forgery refused."""
from __future__ import annotations

import asyncio
import base64
import time
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from py_vapid import Vapid

from hub.domain.notifications.message import Message
from notifier import reports
from notifier.fakes.esms import FakeEsms
from notifier.fakes.push import FakePushService
from notifier.fakes.twilio import FakeTwilio
from notifier.fakes.zalo import FakeZalo
from notifier.senders.esms import PATH as ESMS_PATH
from notifier.senders.twilio import TwilioSender
from notifier.senders.webpush import vapid_public_key

from waiting import deadline, until, within

pytestmark = pytest.mark.anyio

VAPID_KEY = "fqixSeLZA6J7LS-o5u1R-6HcMNzuBbu6kx7xZM_AUEM"


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@asynccontextmanager
async def hook_server():
    """A stand-in for the hub's report endpoints: records each request it gets."""
    seen: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "path": request.path, "query": dict(request.query),
                     "form": dict(await request.post()), "headers": dict(request.headers)})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/hooks/{gateway}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", seen
    finally:
        await runner.cleanup()


# -- what every fake shares -------------------------------------------------------------------------

async def test_each_fake_is_a_real_server_on_its_own_loopback_port():
    async with FakeEsms() as a, FakeTwilio() as b, FakeZalo() as c, FakePushService() as d:
        urls = [a.url, b.url, c.url, d.url]
    assert all(u.startswith("http://127.0.0.1:") for u in urls) and len(set(urls)) == 4


async def test_fail_next_knows_each_fakes_modes():
    for fake, mode in ((FakeEsms(), "gone"), (FakeTwilio(), "no_zalo"), (FakeZalo(), "opted_out"),
                       (FakePushService(), "invalid_number"), (FakeEsms(), "502")):
        with pytest.raises(ValueError, match="no failure mode"):
            fake.fail_next(1, mode)


async def test_a_held_answer_does_not_hold_up_closing(session):
    """The fake holds the answer for an hour; closing it while the answer is held back must end
    well within the (scaled, generous) deadline, which is far shorter than the hold."""
    held = None

    async def take_then_close() -> FakeEsms:
        nonlocal held
        async with FakeEsms(hold_for=deadline(3600)) as esms:
            esms.fail_next(1, "timeout")
            body = {"ApiKey": esms.api_key, "SecretKey": esms.secret_key, "Phone": "0912345678", "Content": "x",
                    "RequestId": "k"}
            held = asyncio.create_task(session.post(esms.url + ESMS_PATH, json=body))
            await until(lambda: esms.received, "eSMS to take the message")
            assert not held.done()              # taken, then the answer held back
        return esms

    esms = await within(take_then_close(), "the fake to close while it holds an answer back")
    assert len(esms.received) == 1
    # The held request ends with the server (answered or cut off); nothing of it is left running.
    for outcome in await within(asyncio.gather(held, return_exceptions=True), "the held request to end"):
        if isinstance(outcome, aiohttp.ClientResponse):
            outcome.release()


# -- eSMS -------------------------------------------------------------------------------------------

async def test_fake_esms_deduplicates_by_request_id(session):
    async with FakeEsms() as esms:
        body = {"ApiKey": esms.api_key, "SecretKey": esms.secret_key, "Phone": "84912345678", "Content": "Xin chao",
                "Brandname": "B", "SmsType": "2", "IsUnicode": "0", "RequestId": "1/20260519-2001:issued:sms"}
        answers = []
        for _ in range(2):
            async with session.post(esms.url + ESMS_PATH, json=body) as resp:
                answers.append(await resp.json(content_type=None))
        async with session.post(esms.url + ESMS_PATH, json={**body, "RequestId": ""}) as resp:
            answers.append(await resp.json(content_type=None))
    assert answers[0]["CodeResult"] == "100" and answers[0]["SMSID"] == esms.received[0].provider_id
    assert answers[1] == {"CodeResult": "124", "CountRegenerate": 0, "ErrorMessage": "Request exist 1",
                          "SendStatus": "5"}
    assert answers[2]["CodeResult"] == "100"          # no RequestId, no deduplication
    assert [r.request_id for r in esms.received] == ["1/20260519-2001:issued:sms", None]


@pytest.mark.parametrize("delivered, status", [(True, reports.DELIVERED), (False, reports.FAILED)])
async def test_esms_delivery_report_is_read_back(session, delivered, status):
    async with FakeEsms() as esms, hook_server() as (hub, seen):
        body = {"ApiKey": esms.api_key, "SecretKey": esms.secret_key, "Phone": "0912345678", "Content": "x",
                "SmsType": "2", "RequestId": "1/20260519-2001:called:sms", "CallbackUrl": f"{hub}/hooks/esms"}
        async with session.post(esms.url + ESMS_PATH, json=body) as resp:
            sms_id = (await resp.json(content_type=None))["SMSID"]
        assert await esms.report(esms.received[0], delivered=delivered) == 200
    [call] = seen
    assert call["method"] == "GET"
    report = reports.esms_report(call["query"])
    assert report == reports.DeliveryReport(sms_id, "1/20260519-2001:called:sms", status,
                                            None if delivered else "not delivered")


@pytest.mark.parametrize("query, status", [
    ({"SMSID": "a", "SendStatus": "4"}, reports.FAILED),
    ({"SMSID": "a", "SendStatus": "7", "SendSuccess": "0"}, reports.PENDING),
    ({"SMSID": "a", "SendStatus": "2"}, reports.PENDING),
    ({"SMSID": "a", "SendStatus": "5", "SendSuccess": "1", "SendFailed": "0"}, reports.DELIVERED),
    ({"SMSID": "a", "SendStatus": "5", "SendSuccess": "0", "SendFailed": "1"}, reports.FAILED),
])
def test_esms_send_status_mapping(query, status):
    assert reports.esms_report(query).status == status


@pytest.mark.parametrize("query", [{}, {"SendStatus": "5"}, {"SMSID": "a", "SendStatus": "5", "SendSuccess": "x"}])
def test_esms_report_without_what_it_needs_is_refused(query):
    with pytest.raises(reports.BadReport):
        reports.esms_report(query)


# -- Twilio -----------------------------------------------------------------------------------------

async def test_fake_twilio_checks_basic_auth(session):
    async with FakeTwilio() as twilio:
        url = f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
        form = {"To": "+84912345678", "From": "+15005550006", "Body": "x"}
        async with session.post(url, data=form) as resp:
            assert resp.status == 401
            assert await resp.json() == {"code": 20003, "message": "Authenticate", "status": 401,
                                         "more_info": "https://www.twilio.com/docs/errors/20003"}
        good = base64.b64encode(f"{twilio.account_sid}:{twilio.auth_token}".encode()).decode()
        async with session.post(url, data=form, headers={"Authorization": f"Basic {good}"}) as resp:
            assert resp.status == 201 and (await resp.json())["sid"] == twilio.received[0].provider_id


def test_twilio_signature_matches_twilios_published_example():
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030",
              "To": "+18005551212"}
    assert reports.twilio_signature("https://mycompany.com/myapp.php?foo=1&bar=2", params, "12345") == (
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


async def twilio_callback(session, status: str, error_code: str | None = None):
    """Send one SMS through the real sender to the fake, and get the fake's signed status callback."""
    async with FakeTwilio() as twilio, hook_server() as (hub, seen):
        callback = f"{hub}/hooks/twilio?branch=1"
        sender = TwilioSender(session, base_url=twilio.url, account_sid=twilio.account_sid,
                              auth_token=twilio.auth_token, sender="+15005550006", status_callback=callback)
        result = await sender.send(Message("1", "20260519-2001", "called", "sms", "+84912345678",
                                           {"number": "2001", "counter": "5"}))
        assert await twilio.report(twilio.received[0], status, error_code) == 200
    [call] = seen
    return twilio, callback, call, result


async def test_twilio_status_callback_with_a_good_signature_is_read(session):
    twilio, url, call, result = await twilio_callback(session, "delivered")
    report = reports.twilio_report(url, call["form"], call["headers"]["X-Twilio-Signature"], twilio.auth_token)
    assert report == reports.DeliveryReport(result.provider_id, None, reports.DELIVERED)


async def test_twilio_status_callback_failure_carries_the_error_code(session):
    twilio, url, call, _ = await twilio_callback(session, "undelivered", "30003")
    report = reports.twilio_report(url, call["form"], call["headers"]["X-Twilio-Signature"], twilio.auth_token)
    assert (report.status, report.error) == (reports.FAILED, "30003")


async def test_twilio_status_callback_with_a_bad_signature_is_refused(session):
    twilio, url, call, _ = await twilio_callback(session, "delivered")
    signature = call["headers"]["X-Twilio-Signature"]
    forgeries = [
        (url, {**call["form"], "MessageStatus": "failed"}, signature, twilio.auth_token),   # altered field
        (url, call["form"], signature, "another-token"),                                     # not our account
        (url.replace("branch=1", "branch=2"), call["form"], signature, twilio.auth_token),   # another URL
        (url, call["form"], None, twilio.auth_token),                                        # unsigned
        (url, call["form"], "", twilio.auth_token),
    ]
    for args in forgeries:
        with pytest.raises(reports.BadSignature):
            reports.twilio_report(*args)


@pytest.mark.parametrize("state, status", [
    ("queued", reports.PENDING), ("sent", reports.PENDING), ("delivered", reports.DELIVERED),
    ("read", reports.DELIVERED), ("undelivered", reports.FAILED), ("failed", reports.FAILED),
    ("canceled", reports.FAILED),
])
def test_twilio_message_status_mapping(state, status):
    params = {"MessageSid": "SM1", "MessageStatus": state}
    assert reports.twilio_report("https://hub/x", params, reports.twilio_signature("https://hub/x", params, "t"),
                                 "t").status == status


# -- Zalo -------------------------------------------------------------------------------------------

async def test_fake_zalo_answers_with_zalo_error_codes(session):
    async with FakeZalo() as zalo:
        url, headers = f"{zalo.url}/message/template", {"access_token": zalo.access_token}
        body = {"phone": "84912345678", "template_id": zalo.template_id, "template_data": {"number": "2001"},
                "tracking_id": "t1"}
        answers = []
        for h, b in ((headers, body), ({"access_token": "old"}, body), (headers, {**body, "template_id": "1"}),
                     (headers, {**body, "phone": "0912345678"})):
            async with session.post(url, json=b, headers=h) as resp:
                assert resp.status == 200
                answers.append(await resp.json())
    assert answers[0]["error"] == 0 and answers[0]["data"]["msg_id"] == zalo.received[0].provider_id
    assert [a["error"] for a in answers[1:]] == [-124, -109, -108]
    assert [r.request_id for r in zalo.received] == ["t1"]


# -- web push ---------------------------------------------------------------------------------------

def vapid_header(claims: dict, key: str = VAPID_KEY) -> str:
    return Vapid.from_string(key).sign(claims)["Authorization"]


def tampered(header: str, *, claims_from: str | None = None) -> str:
    """The same header with one signature byte changed, or with the claims of another token."""
    token, key = header.removeprefix("vapid t=").split(",k=")
    head, claims, signature = token.split(".")
    if claims_from is not None:
        claims = claims_from.removeprefix("vapid t=").split(".")[1]
    else:
        signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    return f"vapid t={head}.{claims}.{signature},k={key}"


async def test_fake_push_service_verifies_vapid_before_taking_anything(session):
    async with FakePushService() as push:
        subscription = push.subscription()
        later = int(time.time()) + 3600
        good = {"aud": push.url, "exp": later, "sub": "mailto:hotro@hanoi.gov.vn"}
        cases = [
            ({}, 401),                                                                   # no Authorization
            ({"Authorization": "WebPush abc"}, 401),                                     # not the vapid scheme
            ({"Authorization": vapid_header({**good, "exp": int(time.time()) - 5})}, 401),       # expired
            ({"Authorization": vapid_header({**good, "exp": int(time.time()) + 25 * 3600})}, 401),  # > 24 h
            ({"Authorization": vapid_header({**good, "aud": "http://127.0.0.1:1"})}, 401),  # another origin
            ({"Authorization": tampered(vapid_header(good))}, 401),                      # signature altered
            ({"Authorization": tampered(vapid_header(good), claims_from=vapid_header(
                {**good, "sub": "mailto:other@example.org"}))}, 401),                   # claims swapped
            ({"Authorization": vapid_header(good)[:-4] + "AAAA"}, 401),                  # k is not the signer
            ({"Authorization": vapid_header(good)}, 400),                                # good, but no TTL
            ({"Authorization": vapid_header(good), "TTL": "60"}, 415),                   # not aes128gcm
            ({"Authorization": vapid_header(good), "TTL": "60", "Content-Encoding": "aes128gcm"}, 400),  # garbage
        ]
        for headers, status in cases:
            async with session.post(subscription["endpoint"], data=b"not encrypted", headers=headers) as resp:
                assert resp.status == status, (headers, await resp.text())
        assert push.received == [] and push.attempts == len(cases)


async def test_fake_push_service_binds_a_subscription_to_its_application_server_key(session):
    async with FakePushService() as push:
        subscription = push.subscription(application_server_key=vapid_public_key(VAPID_KEY))
        other = "Wq5zpgh8W3S-JtEFWqQ8Tt6Y6XQFqS1mRjzDo3dVCmQ"
        claims = {"aud": push.url, "exp": int(time.time()) + 600, "sub": "mailto:a@b.vn"}
        async with session.post(subscription["endpoint"], data=b"x",
                                headers={"Authorization": vapid_header(claims, other), "TTL": "60"}) as resp:
            assert resp.status == 403


async def test_fake_push_service_forgets_unknown_and_dropped_subscriptions(session):
    async with FakePushService() as push:
        subscription = push.subscription()
        push.unsubscribe(subscription)
        async with session.post(subscription["endpoint"], data=b"x") as resp:
            assert resp.status == 410
        async with session.post(f"{push.url}/push/unknown", data=b"x") as resp:
            assert resp.status == 404
