"""A web push subscription is checked before anything is stored (issue 14, point 4): the fields and
sizes of PushSubscription.toJSON(), an https endpoint on a push service of QUEUECAST_PUSH_HOSTS,
never an address of the hub's own networks. The rule first, then through the real app: every
refusal is a 422 in the contract's shape and leaves the log as it was."""
from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from hub.domain.errors import DomainError
from hub.domain.push import PushDestinations, subscription
from hub.settings import Settings, SettingsError

from conftest import push_subscription, running_app

DEFAULTS = PushDestinations()
LOCAL = PushDestinations(("127.0.0.1",), allow_private=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- the rule ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",   # cloud metadata
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1",       # 127.0.0.1 in IPv6 clothes
])
def test_no_private_loopback_link_local_multicast_or_reserved_address(address):
    assert not DEFAULTS.address_allowed(address)


@pytest.mark.parametrize("address", ["142.250.66.74", "2607:f8b0:4005:80a::200a", "::ffff:142.250.66.74"])
def test_public_addresses_are_allowed(address):
    assert DEFAULTS.address_allowed(address)


def test_allowing_private_addresses_still_refuses_multicast_and_unspecified():
    assert LOCAL.address_allowed("127.0.0.1") and LOCAL.address_allowed("::1") and LOCAL.address_allowed("10.0.0.7")
    assert not LOCAL.address_allowed("0.0.0.0") and not LOCAL.address_allowed("224.0.0.1")


@pytest.mark.parametrize("host, allowed", [
    ("fcm.googleapis.com", True), ("FCM.googleapis.com", True), ("updates.push.services.mozilla.com", True),
    ("web.push.apple.com", True), ("wns2-par02p.notify.windows.com", True),
    ("evilfcm.googleapis.com", False),            # a suffix matches at a dot, not inside a label
    ("fcm.googleapis.com.evil.test", False), ("googleapis.com", False), ("push.example.test", False),
    ("127.0.0.1", False), ("2130706433", False), ("localhost", False),
])
def test_hosts_match_the_push_services_as_suffixes(host, allowed):
    assert DEFAULTS.host_allowed(host) is allowed


def test_an_address_is_allowed_only_when_listed_as_itself():
    listed = PushDestinations(("127.0.0.1", "push.lab.test"), allow_private=True)
    assert listed.host_allowed("127.0.0.1") and not listed.host_allowed("127.0.0.2")
    assert not listed.host_allowed("0.0.1")                  # an address is never a suffix
    assert listed.endpoint_problem("https://127.0.0.1:8443/push/x") is None
    assert PushDestinations(("127.0.0.1",)).endpoint_problem("https://127.0.0.1/x") == \
        "the endpoint's address is not a public one"


def test_only_the_known_fields_are_kept_in_canonical_form():
    sub = push_subscription()
    padded = {**sub["keys"], "p256dh": sub["keys"]["p256dh"] + "=", "extra": "x"}
    kept = subscription({**sub, "keys": padded, "junk": "y" * 15000, "deep": json.loads("[" * 900 + "]" * 900)},
                        DEFAULTS)
    assert kept == sub                                        # unpadded keys, nothing else


@pytest.mark.parametrize("problem, field", [
    ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "subscription.endpoint"),
    ({"endpoint": "https://fcm.googleapis.com/" + "a" * 1024}, "subscription.endpoint"),
    ({"endpoint": "https://fcm.googleapis.com/fcm/send/ü"}, "subscription.endpoint"),
    ({"endpoint": "https://fcm.googleapis.com/fcm/send/\ud800"}, "subscription.endpoint"),    # a lone surrogate
    ({"endpoint": "https://fcm.googleapis.com/fcm send"}, "subscription.endpoint"),
    ({"endpoint": "https://user:pw@fcm.googleapis.com/x"}, "subscription.endpoint"),
    ({"endpoint": "https://fcm.googleapis.com:99999/x"}, "subscription.endpoint"),
    ({"endpoint": "https://fcm.googleapis.com./x"}, "subscription.endpoint"),
    ({"endpoint": ["https://fcm.googleapis.com/x"]}, "subscription.endpoint"),
    ({"keys": None}, "subscription.keys"),
    ({"keys": {"auth": b64(bytes(16))}}, "subscription.keys.p256dh"),
    ({"keys": {"p256dh": b64(b"\x04" + bytes(63)), "auth": b64(bytes(16))}}, "subscription.keys.p256dh"),
    ({"keys": {"p256dh": b64(b"\x04" + bytes(64)), "auth": b64(bytes(16))}}, "subscription.keys.p256dh"),  # off the curve
    ({"keys": {"p256dh": "A" * 5000, "auth": b64(bytes(16))}}, "subscription.keys.p256dh"),
    ({"keys": {"p256dh": "+/" * 43 + "A", "auth": b64(bytes(16))}}, "subscription.keys.p256dh"),  # not base64url
    ({"expirationTime": "tomorrow"}, "subscription.expirationTime"),
    ({"expirationTime": True}, "subscription.expirationTime"),
    ({"expirationTime": float("inf")}, "subscription.expirationTime"),
    ({"expirationTime": -1}, "subscription.expirationTime"),
])
def test_what_a_browser_never_sends_is_refused(problem, field):
    with pytest.raises(DomainError) as e:
        subscription({**push_subscription(), **problem}, DEFAULTS)
    assert (e.value.code, e.value.details["field"]) == ("invalid_subscription", field)


@pytest.mark.parametrize("auth", [b64(bytes(15)), b64(bytes(17)), 16, None])
def test_the_auth_secret_is_16_bytes(auth):
    sub = push_subscription()
    with pytest.raises(DomainError) as e:
        subscription({**sub, "keys": {**sub["keys"], "auth": auth}}, DEFAULTS)
    assert e.value.details["field"] == "subscription.keys.auth"


# -- the settings -----------------------------------------------------------------------------------

def test_the_settings_default_to_the_real_push_services():
    rule = Settings.from_env({}).push_destinations
    assert rule == DEFAULTS and not rule.allow_private
    assert Settings.from_env({"QUEUECAST_PUSH_HOSTS": "*.notify.windows.com, push.lab.test"}).push_destinations \
        .hosts == ("notify.windows.com", "push.lab.test")


@pytest.mark.parametrize("env, says", [
    ({"QUEUECAST_PUSH_HOSTS": "push lab"}, "QUEUECAST_PUSH_HOSTS"),
    ({"QUEUECAST_PUSH_HOSTS": ",,"}, "QUEUECAST_PUSH_HOSTS"),
    ({"QUEUECAST_PUSH_HOSTS": "127.0.0.1"}, "QUEUECAST_PUSH_ALLOW_PRIVATE=on"),     # could never be reached
    ({"QUEUECAST_PUSH_ALLOW_PRIVATE": "sometimes"}, "QUEUECAST_PUSH_ALLOW_PRIVATE"),
])
def test_a_bad_push_setting_fails_at_start_naming_the_variable(env, says):
    with pytest.raises(SettingsError, match=says):
        Settings.from_env(env)


# -- through the app ------------------------------------------------------------------------------

async def issue(client) -> str:
    r = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def log(client) -> list[dict]:
    return await client.app.state.storage.log.events_since("1", 0)


@pytest.mark.anyio
async def test_junk_in_a_subscription_is_dropped_never_stored(client):
    token = await issue(client)
    sub = push_subscription()
    for junk in ({"junk": "x" * 15000}, {"deep": json.loads("[" * 900 + "]" * 900)},
                 {"keys": {**sub["keys"], "more": {"a": 1}}}):
        r = await client.post(f"/api/tickets/{token}/notifications",
                              json={"channel": "push", "subscription": {**sub, **junk}, "ahead": 2})
        assert r.status_code == 200, r.text
    [notify] = [e for e in await log(client) if e["type"] == "ticket.notify"]     # the repeats changed nothing
    assert notify["subscription"] == sub


REFUSED = [
    ({"endpoint": "https://127.0.0.1:8443/push/x"}, "unknown_push_service"),              # the SSRF of the issue
    ({"endpoint": "https://169.254.169.254/latest/meta-data"}, "unknown_push_service"),
    ({"endpoint": "https://[::1]/x"}, "unknown_push_service"),
    ({"endpoint": "https://push.example.test/send/abc"}, "unknown_push_service"),
    ({"endpoint": "https://fcm.googleapis.com.evil.test/x"}, "unknown_push_service"),
    ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "invalid_subscription"),
    ({"endpoint": "https://fcm.googleapis.com/" + "a" * 2000}, "invalid_subscription"),
    ({"endpoint": "https://fcm.googleapis.com/\ud800"}, "invalid_text"),        # refused at the door (hub.web.decode)
    ({"keys": {"p256dh": "BNcR-key", "auth": "tBHI-auth"}}, "invalid_subscription"),
    ({"keys": {"p256dh": b64(b"\x04" + bytes(64)), "auth": b64(bytes(16))}}, "invalid_subscription"),
    ({"expirationTime": "never"}, "invalid_subscription"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("change, code", REFUSED)
async def test_a_bad_subscription_is_refused_and_changes_nothing(client, change, code):
    token = await issue(client)
    before = await log(client)
    body = json.dumps({"channel": "push", "subscription": {**push_subscription(), **change}})
    r = await client.post(f"/api/tickets/{token}/notifications", content=body,
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["field"].startswith("subscription") and error["message_vi"]
    assert "127.0.0.1" not in error["message"] and "169.254" not in error["message"]    # the input is not echoed
    assert await log(client) == before
    assert (await client.get(f"/api/tickets/{token}")).json()["notifications"] == {}


@pytest.mark.anyio
async def test_a_lab_may_allow_its_own_push_service_by_setting(settings, clock):
    """What the tests and a lab do to push to a fake service on 127.0.0.1: name it, allow private
    addresses. The same subscription is refused with the defaults (above)."""
    local = replace(settings, push_hosts="127.0.0.1", push_allow_private="on")
    sub = push_subscription("https://127.0.0.1:8443/push/x")
    async with running_app(local, clock) as client:
        token = await issue(client)
        r = await client.post(f"/api/tickets/{token}/notifications", json={"channel": "push", "subscription": sub})
        assert r.status_code == 200 and r.json()["notifications"] == {"push": {"ahead": None}}
