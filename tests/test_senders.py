"""The real senders against the fake gateways, over real sockets on 127.0.0.1 with one aiohttp session:
what goes out, and how every failure is classified (retry or permanent, never an exception)."""
from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from hub.auth import Tokens
from hub.domain.identity import mask_recipient, mask_text
from hub.domain.notifications.message import Message
from hub.domain.push import PushDestinations
from hub.logs import JsonFormatter
from notifier import templates
from notifier.fakes.esms import FakeEsms
from notifier.fakes.push import FakePushService
from notifier.fakes.twilio import FakeTwilio
from notifier.fakes.zalo import FakeZalo
from notifier.senders import protocol as errors
from notifier.senders.destinations import push_session
from notifier.senders.esms import EsmsSender
from notifier.senders.log import LogSender
from notifier.senders.protocol import Outcome, Result
from notifier.senders.twilio import TwilioSender
from notifier.senders.webpush import WebPushSender, vapid_public_key
from notifier.senders.zalo import ZaloSender

from conftest import SECRET, free_port
from tls import push_service_over_tls, self_signed
from waiting import deadline, until

pytestmark = pytest.mark.anyio

TOKENS_FOR_LOG = Tokens(SECRET)
VAPID_KEY = "fqixSeLZA6J7LS-o5u1R-6HcMNzuBbu6kx7xZM_AUEM"
PHONE = "+84912345678"
PARAMS = {"number": "2001", "service": "Hộ tịch", "branch": "Chi nhánh số 1", "counter": "5", "ahead": 5,
          "leave_at": "09:40", "call_at": "10:05", "minutes": 15, "url": "http://127.0.0.1:8000/t/abc"}
TIMEOUT = deadline(30)     # a sender's timeout where the fake answers: never reached, however busy the machine
HELD = deadline(1)         # where the fake holds its answer back ("timeout" mode): this timeout is the point
HOLD = deadline(600)       # how long the fakes hold such an answer (cut short when they close)


def message(trigger="called", channel="sms", recipient=PHONE, lang="vi", ticket="20260519-2001") -> Message:
    return Message(branch="1", ticket=ticket, trigger=trigger, channel=channel, recipient=recipient,
                   params=PARAMS, lang=lang)


def outcome(result: Result) -> tuple:
    return result.outcome, result.error


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:      # one session per process: every sender shares it
        yield s


# The fakes listen on 127.0.0.1: web push is let go there, by name, as a lab's settings would.
LOCAL_PUSH = PushDestinations(("127.0.0.1",), allow_private=True)


@pytest.fixture
async def pushing():
    async with push_session(LOCAL_PUSH) as s:     # web push's own, guarded session (notifier/channels.py)
        yield s


@pytest.fixture
async def esms():
    async with FakeEsms(hold_for=HOLD) as fake:
        yield fake


@pytest.fixture
async def twilio():
    async with FakeTwilio(hold_for=HOLD) as fake:
        yield fake


@pytest.fixture
async def zalo():
    async with FakeZalo(hold_for=HOLD) as fake:
        yield fake


@pytest.fixture
async def push():
    async with FakePushService(hold_for=HOLD) as fake:
        yield fake


def esms_sender(session, fake, timeout=TIMEOUT, **kw) -> EsmsSender:
    return EsmsSender(session, base_url=fake.url, api_key=fake.api_key, secret_key=fake.secret_key,
                      brandname="HANOI-HCC", timeout=timeout, **kw)


def twilio_sender(session, fake, timeout=TIMEOUT, **kw) -> TwilioSender:
    kw.setdefault("auth_token", fake.auth_token)
    return TwilioSender(session, base_url=fake.url, account_sid=fake.account_sid, sender="+15005550006",
                        timeout=timeout, **kw)


def zalo_sender(session, fake, timeout=TIMEOUT, **kw) -> ZaloSender:
    kw.setdefault("access_token", fake.access_token)
    return ZaloSender(session, base_url=fake.url, template_id=fake.template_id, timeout=timeout, **kw)


def push_sender(session, key=VAPID_KEY, timeout=TIMEOUT) -> WebPushSender:
    return WebPushSender(session, vapid_private_key=key, subject="mailto:hotro@hanoi.gov.vn", timeout=timeout)


# -- eSMS -------------------------------------------------------------------------------------------

async def test_esms_sends_plain_letters_with_the_outbox_key_as_request_id(session, esms):
    result = await esms_sender(session, esms, callback_url="http://hub.test/hooks/esms").send(message())
    assert result == Result.sent(esms.received[0].provider_id)
    sent = esms.received[0].fields
    assert sent == {"ApiKey": esms.api_key, "SecretKey": esms.secret_key, "Phone": "0912345678",
                    "Content": "Moi cong dan co so 2001 den quay so 5.", "Brandname": "HANOI-HCC", "SmsType": "2",
                    "IsUnicode": "0", "RequestId": "1/20260519-2001:called:sms",
                    "CallbackUrl": "http://hub.test/hooks/esms"}


async def test_esms_with_unicode_keeps_the_diacritics(session, esms):
    assert (await esms_sender(session, esms, unicode=True).send(message())).outcome is Outcome.SENT
    sent = esms.received[0].fields
    assert (sent["Content"], sent["IsUnicode"]) == ("Mời công dân có số 2001 đến quầy số 5.", "1")


async def test_esms_retry_after_a_timeout_is_not_a_second_sms(session, esms):
    """eSMS took the message but answered too late; the retry carries the same RequestId, eSMS answers
    124 (already taken), and that is a success: one SMS, never two."""
    esms.fail_next(1, "timeout")
    sender = esms_sender(session, esms, timeout=HELD)
    assert sender.idempotent
    assert outcome(await sender.send(message())) == (Outcome.RETRY, errors.TIMEOUT)
    await until(lambda: esms.received, "eSMS to have taken the message it holds the answer to")
    assert (await esms_sender(session, esms).send(message())).outcome is Outcome.SENT     # the retry
    assert len(esms.received) == 1 and esms.attempts == 2


@pytest.mark.parametrize("mode, expected", [
    ("500", (Outcome.RETRY, errors.GATEWAY_ERROR)),
    ("429", (Outcome.RETRY, errors.RATE_LIMITED)),
    ("invalid_number", (Outcome.PERMANENT, errors.INVALID_NUMBER)),
    ("opted_out", (Outcome.PERMANENT, errors.OPTED_OUT)),
])
async def test_esms_failures(session, esms, mode, expected):
    esms.fail_next(1, mode)
    result = await esms_sender(session, esms).send(message())
    assert outcome(result) == expected
    assert result.retry_after == (1.0 if mode == "429" else None)
    assert esms.received == []
    assert (await esms_sender(session, esms).send(message())).outcome is Outcome.SENT    # one failure only


async def test_esms_wrong_credentials_are_permanent(session, esms):
    sender = esms_sender(session, esms)
    esms.secret_key = "rotated"
    result = await sender.send(message())
    assert outcome(result) == (Outcome.PERMANENT, errors.AUTH_FAILED) and "101" in result.detail


# -- Twilio -----------------------------------------------------------------------------------------

async def test_twilio_posts_the_form_with_basic_auth(session, twilio):
    result = await twilio_sender(session, twilio, status_callback="http://hub.test/hooks/twilio").send(message())
    assert result == Result.sent(twilio.received[0].provider_id) and result.provider_id.startswith("SM")
    assert twilio.received[0].fields == {"To": PHONE, "From": "+15005550006",
                                         "Body": "Mời công dân có số 2001 đến quầy số 5.",
                                         "StatusCallback": "http://hub.test/hooks/twilio"}


async def test_twilio_without_unicode_sends_plain_letters(session, twilio):
    await twilio_sender(session, twilio, unicode=False).send(message(lang="en"))
    assert twilio.received[0].fields["Body"] == "Number 2001, please come to counter 5."
    await twilio_sender(session, twilio, unicode=False).send(message(trigger="ahead"))
    assert twilio.received[1].fields["Body"] == "So 2001: con 5 nguoi truoc ban tai Chi nhanh so 1."


async def test_twilio_wrong_auth_token_is_permanent(session, twilio):
    result = await twilio_sender(session, twilio, auth_token="wrong").send(message())
    assert outcome(result) == (Outcome.PERMANENT, errors.AUTH_FAILED) and "20003" in result.detail
    assert twilio.received == []


@pytest.mark.parametrize("mode, expected, code", [
    ("500", (Outcome.RETRY, errors.GATEWAY_ERROR), ""),
    ("429", (Outcome.RETRY, errors.RATE_LIMITED), ""),
    ("invalid_number", (Outcome.PERMANENT, errors.INVALID_NUMBER), "21211"),
    ("opted_out", (Outcome.PERMANENT, errors.OPTED_OUT), "21610"),
])
async def test_twilio_failures(session, twilio, mode, expected, code):
    twilio.fail_next(1, mode)
    result = await twilio_sender(session, twilio).send(message())
    assert outcome(result) == expected and code in result.detail
    assert result.retry_after == (1.0 if mode == "429" else None)
    assert twilio.received == []


async def test_twilio_retry_after_a_timeout_can_send_a_second_sms(session, twilio):
    """What a gateway without an idempotency key can duplicate: Twilio took the message but answered
    too late; the sender cannot know, says so (not idempotent, error `timeout`), and a retry makes a
    second message. The outbox chooses whether to retry such an unclear failure."""
    twilio.fail_next(1, "timeout")
    sender = twilio_sender(session, twilio, timeout=HELD)
    assert not sender.idempotent
    result = await sender.send(message())
    assert outcome(result) == (Outcome.RETRY, errors.TIMEOUT) and result.error in errors.UNCLEAR
    await until(lambda: twilio.received, "Twilio to have taken the message it holds the answer to")
    assert (await twilio_sender(session, twilio).send(message())).outcome is Outcome.SENT     # the retry
    assert [r.fields["Body"] for r in twilio.received] == ["Mời công dân có số 2001 đến quầy số 5."] * 2


# -- Zalo ZNS ---------------------------------------------------------------------------------------

async def test_zalo_sends_the_template_with_the_number_and_text(session, zalo):
    result = await zalo_sender(session, zalo).send(message(channel="zalo"))
    assert result == Result.sent(zalo.received[0].provider_id)
    assert zalo.received[0].fields == {
        "phone": "84912345678", "template_id": zalo.template_id, "tracking_id": "1/20260519-2001:called:zalo",
        "template_data": {"number": "2001", "content": "Mời công dân có số 2001 đến quầy số 5."}}


async def test_zalo_phone_without_zalo_is_permanent_so_sms_can_take_over(session, zalo):
    zalo.without_zalo.add("84912345678")
    result = await zalo_sender(session, zalo).send(message(channel="zalo"))
    assert outcome(result) == (Outcome.PERMANENT, errors.NO_ZALO) and "-118" in result.detail


@pytest.mark.parametrize("mode, expected", [
    ("500", (Outcome.RETRY, errors.GATEWAY_ERROR)),
    ("429", (Outcome.RETRY, errors.RATE_LIMITED)),
    ("timeout", (Outcome.RETRY, errors.TIMEOUT)),
    ("invalid_number", (Outcome.PERMANENT, errors.INVALID_NUMBER)),
    ("no_zalo", (Outcome.PERMANENT, errors.NO_ZALO)),
])
async def test_zalo_failures(session, zalo, mode, expected):
    zalo.fail_next(1, mode)
    sender = zalo_sender(session, zalo, timeout=HELD if mode == "timeout" else TIMEOUT)
    assert outcome(await sender.send(message(channel="zalo"))) == expected


async def test_zalo_expired_access_token_is_permanent(session, zalo):
    result = await zalo_sender(session, zalo, access_token="expired").send(message(channel="zalo"))
    assert outcome(result) == (Outcome.PERMANENT, errors.AUTH_FAILED) and "-124" in result.detail


# -- web push ---------------------------------------------------------------------------------------

async def test_push_is_encrypted_for_the_subscription_and_signed_with_vapid(pushing, push):
    subscription = push.subscription(application_server_key=vapid_public_key(VAPID_KEY))
    sender = push_sender(pushing)
    msg = message(channel="push", recipient=subscription)
    result = await sender.send(msg)
    assert result.outcome is Outcome.SENT and result.provider_id.startswith(push.url + "/message/")
    got = push.received[0].fields
    # The fake decrypted it with the subscription's own private key: the bytes are exactly ours.
    assert got["plaintext"] == sender.payload(msg).encode()
    assert got["message"] == {"title": "Số 2001", "body": "Mời công dân có số 2001 đến quầy số 5.",
                              "url": "http://127.0.0.1:8000/t/abc", "tag": "1/20260519-2001", "lang": "vi"}
    # and verified the VAPID JWT: signed by our key, for this push service, not expired.
    assert got["vapid_key"] == vapid_public_key(VAPID_KEY)
    assert got["claims"]["aud"] == push.url and got["claims"]["sub"] == "mailto:hotro@hanoi.gov.vn"
    assert (got["ttl"], got["urgency"]) == (600, "high")


async def test_push_ttl_and_urgency_follow_the_trigger(pushing, push):
    subscription = push.subscription()
    await push_sender(pushing).send(message(trigger="issued", channel="push", recipient=subscription))
    await push_sender(pushing).send(message(trigger="expired", channel="push", recipient=subscription, lang="en"))
    assert [(r.fields["ttl"], r.fields["urgency"]) for r in push.received] == [(3600, "normal"), (3600, "low")]
    assert push.received[1].fields["message"]["body"] == templates.render("expired", PARAMS, "en")


@pytest.mark.parametrize("mode, expected", [
    ("gone", (Outcome.PERMANENT, errors.SUBSCRIPTION_GONE)),
    ("not_found", (Outcome.PERMANENT, errors.SUBSCRIPTION_GONE)),
    ("500", (Outcome.RETRY, errors.GATEWAY_ERROR)),
    ("429", (Outcome.RETRY, errors.RATE_LIMITED)),
    ("timeout", (Outcome.RETRY, errors.TIMEOUT)),
])
async def test_push_failures(pushing, push, mode, expected):
    subscription = push.subscription()
    push.fail_next(1, mode)
    sender = push_sender(pushing, timeout=HELD if mode == "timeout" else TIMEOUT)
    result = await sender.send(message(channel="push", recipient=subscription))
    assert outcome(result) == expected
    assert result.retry_after == (1.0 if mode == "429" else None)


async def test_push_to_an_unsubscribed_browser_is_gone_and_only_that_one(pushing, push):
    dropped, kept = push.subscription(), push.subscription()
    push.unsubscribe(dropped)
    sender = push_sender(pushing)
    assert outcome(await sender.send(message(channel="push", recipient=dropped))) == (
        Outcome.PERMANENT, errors.SUBSCRIPTION_GONE)
    assert (await sender.send(message(channel="push", recipient=kept))).outcome is Outcome.SENT


async def test_push_signed_with_another_vapid_key_is_refused(pushing, push):
    subscription = push.subscription(application_server_key=vapid_public_key(VAPID_KEY))
    other_key = "Wq5zpgh8W3S-JtEFWqQ8Tt6Y6XQFqS1mRjzDo3dVCmQ"
    result = await push_sender(pushing, other_key).send(message(channel="push", recipient=subscription))
    assert outcome(result) == (Outcome.PERMANENT, errors.AUTH_FAILED)
    assert push.received == []


async def test_push_with_unusable_keys_is_gone(pushing, push):
    subscription = push.subscription()
    broken = {**subscription, "keys": {"p256dh": "AAAA", "auth": subscription["keys"]["auth"]}}
    result = await push_sender(pushing).send(message(channel="push", recipient=broken))
    assert outcome(result) == (Outcome.PERMANENT, errors.SUBSCRIPTION_GONE)


async def test_a_push_service_whose_certificate_is_not_trusted_is_a_retry_not_a_gone_subscription(pushing, tmp_path):
    """aiohttp's certificate errors are ValueErrors too: read as unusable keys, they made the worker
    delete the holder's subscription (the test_page_push.py flake)."""
    server_tls, _ = self_signed(tmp_path)
    async with push_service_over_tls(server_tls) as service:        # this session does not trust it
        subscription = service.subscription()
        result = await push_sender(pushing).send(message(channel="push", recipient=subscription))
        assert service.received == []
    assert outcome(result) == (Outcome.RETRY, errors.UNREACHABLE), result


# -- every sender alike -----------------------------------------------------------------------------

async def test_no_gateway_listening_is_a_retry_never_an_exception(session, pushing):
    url = f"http://127.0.0.1:{free_port()}"
    senders = [
        (EsmsSender(session, base_url=url, api_key="k", secret_key="s", brandname="B", timeout=TIMEOUT), message()),
        (TwilioSender(session, base_url=url, account_sid="AC1", auth_token="t", sender="+1500", timeout=TIMEOUT),
         message()),
        (ZaloSender(session, base_url=url, access_token="t", template_id="1", timeout=TIMEOUT), message(channel="zalo")),
        (push_sender(pushing), message(channel="push", recipient={
            "endpoint": f"{url}/push/x", "keys": {"p256dh": vapid_public_key(VAPID_KEY), "auth": "AAAAAAAAAAAAAAAAAAAAAA"}})),
    ]
    for sender, msg in senders:
        assert outcome(await sender.send(msg)) == (Outcome.RETRY, errors.UNREACHABLE), type(sender).__name__


async def test_log_sender_writes_one_json_line_with_the_phone_masked(caplog):
    with caplog.at_level(logging.INFO, logger="queuecast.notifier"):
        result = await LogSender().send(message(trigger="skipped"))
    assert result == Result.sent("1/20260519-2001:skipped:sms")
    [record] = [r for r in caplog.records if r.name == "queuecast.notifier"]
    line = JsonFormatter().format(record)
    assert "\n" not in line and "912345678" not in line
    fields = json.loads(line)
    assert fields["to"] == "+8491*****78" and fields["key"] == "1/20260519-2001:skipped:sms"
    assert fields["text"] == templates.render("skipped", PARAMS)


async def test_the_log_sender_keeps_the_holders_key_out_of_the_log(caplog):
    token = TOKENS_FOR_LOG.ticket("1", "20260519-2001")
    params = {**PARAMS, "url": f"http://127.0.0.1:8000/t/{token}"}
    with caplog.at_level(logging.INFO, logger="queuecast.notifier"):
        await LogSender().send(Message("1", "20260519-2001", "issued", "sms", PHONE, params))
    [record] = [r for r in caplog.records if r.name == "queuecast.notifier"]
    text = json.loads(JsonFormatter().format(record))["text"]
    signature = token.split(".")[1]
    assert signature not in text and text.endswith(f"/t/{token.split('.')[0]}.…")


def test_mask_text_masks_phones_and_link_signatures():
    said = "21211 The 'To' number +84912345678 is not valid; also 0912 345 678. See /t/MS8y.OhYRrf-_9"
    assert mask_text(said) == "21211 The 'To' number +8491*****78 is not valid; also 09123***78. See /t/MS8y.…"
    assert mask_recipient({"endpoint": "https://fcm.googleapis.com/fcm/send/x"}) == "push · fcm.googleapis.com"
    assert mask_recipient(PHONE) == "+8491*****78"


def test_a_message_knows_its_key_and_refuses_unknown_kinds():
    assert message().key == "1/20260519-2001:called:sms"
    assert message(channel="push", recipient={"endpoint": "https://x"}).subscription == {"endpoint": "https://x"}
    with pytest.raises(ValueError):
        message(trigger="thanks")
    with pytest.raises(ValueError):
        message(channel="fax")
    with pytest.raises(TypeError):
        _ = message(channel="push", recipient={"endpoint": "https://x"}).phone
