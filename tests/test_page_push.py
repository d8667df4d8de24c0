"""Web push on the citizen's phone page, in a real Chromium against a real hub process.

Headless Chromium has service workers and PushManager but no push service to subscribe with (its
`subscribe` ends in "Registration failed"), so what runs here is everything around that one call:
the key the hub publishes, the service worker the page registers, the button and what it sends the
hub, and the worker's `push` handler fed through the DevTools protocol (ServiceWorker.deliverPushMessage,
the way a push service's message reaches it). One test stands in for the browser's push service (an
external gateway) with notifier/fakes/push.py served over TLS (the hub takes https endpoints only):
the page's subscribe call answers with that fake's subscription, the hub's own notifier (inline,
trusting the fake's certificate as a hub trusts a real push service's) pushes the message the opt-in
makes owed, a WebPushSender with the hub's VAPID key pushes another, the fake decrypts both, and the
worker shows exactly what was decrypted.
"""
from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import threading
from pathlib import Path

import httpx
from playwright.sync_api import expect

from conftest import PHONE
from tls import push_service_over_tls, self_signed
from waiting import deadline, page_sleep, wait_until

KEY_AS_B64URL = "k => btoa(String.fromCharCode.apply(null, new Uint8Array(k))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '')"

# The browser's push service, replaced by the fake's subscription (set in window.__sub before the click).
# The fake push service listens on 127.0.0.1, which web push may not reach by default: a lab's settings.
LOCAL_PUSH = {"QUEUECAST_PUSH_HOSTS": "127.0.0.1", "QUEUECAST_PUSH_ALLOW_PRIVATE": "on"}

FAKE_SUBSCRIBE = """
window.__keys = [];
PushManager.prototype.subscribe = function (options) {
  const key = options.applicationServerKey;
  window.__keys.push((KEY_AS_B64URL)(key.buffer || key));
  const sub = window.__sub;
  return Promise.resolve({endpoint: sub.endpoint, toJSON: () => sub});
};
""".replace("KEY_AS_B64URL", KEY_AS_B64URL)


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(api: httpx.Client) -> dict:
    r = api.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})
    assert r.status_code == 201, r.text
    return r.json()


def until(page, condition: str, what: str, timeout: float = 30) -> None:
    """Poll an asynchronous JS `condition` until it holds (within deadline(timeout) s). (Playwright's
    wait_for_function takes a returned promise itself as truthy, so it cannot wait on one.)"""
    def seen() -> str:
        shown = page.evaluate("""navigator.serviceWorker.getRegistration('/t/').then(r => r && r.getNotifications())
            .then(ns => ns && ns.map(n => [n.title, n.body, n.tag]))""")
        return f"{what}; notifications shown: {shown}"
    wait_until(lambda: page.evaluate(condition), seen, timeout, interval=0.1, sleep=page_sleep(page))


def open_ticket(new_page, hub, token: str, init: str | None = None, **context):
    page = new_page(PHONE, **context)
    if init:
        page.add_init_script(init)
    page.goto(f"{hub.url}/t/{token}")
    # The page registers its worker on load; wait until it runs.
    until(page, "navigator.serviceWorker.getRegistration('/t/').then(r => !!(r && r.active))", "an active worker")
    return page


class Worker:
    """The page's service worker (scope /t/) as DevTools sees it, to hand it push messages."""

    def __init__(self, page, origin: str):
        self.page, self.origin = page, origin
        self.cdp, self.registration = _registration(page)

    def push(self, data: str, arrived: str) -> None:
        """Hand the worker `data` until the JS condition `arrived` holds: DevTools now and then drops a
        message given to a worker that is being started or stopped (as a push service may redeliver),
        so a message is given again after a (scaled) 5 s of silence, at most 3 times. A message shown
        twice does no harm here: a tagged one replaces itself."""
        for attempt in range(3):
            self.cdp.send("ServiceWorker.deliverPushMessage", {"origin": self.origin,
                                                               "registrationId": self.registration, "data": data})
            try:
                until(self.page, arrived, "the message shown", timeout=5)
                return
            except AssertionError:
                if attempt == 2:
                    raise


def _registration(page):
    cdp = page.context.new_cdp_session(page)
    found: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: found.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")

    def registered():                                    # the event comes right after enable
        return next((r for r in found if r["scopeURL"].endswith("/t/") and not r["isDeleted"]), None)
    reg = wait_until(registered, lambda: f"DevTools to report the /t/ worker (got {found})",
                     interval=0.1, sleep=page_sleep(page))
    return cdp, reg["registrationId"]


def shown(page, count: int = 1) -> list[dict]:
    """The notifications the worker shows, once there are `count` (bounded wait)."""
    until(page, f"navigator.serviceWorker.ready.then(r => r.getNotifications()).then(n => n.length >= {count})",
          f"{count} notification(s)")
    return page.evaluate("""navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns =>
        ns.map(n => ({title: n.title, body: n.body, tag: n.tag, lang: n.lang, data: n.data})))""")


def hub_ticket(api: httpx.Client, token: str) -> dict:
    return api.get(f"/api/tickets/{token}").json()


# -- what the hub publishes -----------------------------------------------------------------------

def test_the_key_and_the_worker_are_served(hub, api, hub_env):
    key = api.get("/api/push/key")
    assert key.status_code == 200
    point = unb64url(key.json()["key"])
    assert len(point) == 65 and point[0] == 4                   # an uncompressed P-256 point
    assert api.get("/api/push/key").json() == key.json()         # one key, kept
    vapid_file = Path(hub_env["QUEUECAST_DATABASE"].removeprefix("sqlite:///") + ".vapid")
    assert vapid_file.stat().st_mode & 0o777 == 0o600            # the private half stays beside the database

    sw = api.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert sw.headers["cache-control"] == "no-cache"
    assert "addEventListener(\"push\"" in sw.text and "showNotification" in sw.text


def test_the_page_registers_its_worker_and_offers_the_button(hub, api, new_page):
    mine = issue(api)
    page = open_ticket(new_page, hub, mine["token"])
    scope, script = page.evaluate("navigator.serviceWorker.getRegistration('/t/').then(r => [r.scope, r.active.scriptURL])")
    assert (scope, script) == (f"{hub.url}/t/", f"{hub.url}/sw.js")
    button = page.locator("#push")
    expect(button).to_be_visible()
    expect(button).to_be_enabled()
    expect(button).to_contain_text("Nhận thông báo trên điện thoại")
    data = json.loads(page.locator("#qc-data").text_content())
    assert data["vapid"] == api.get("/api/push/key").json()["key"]


def test_a_browser_that_cannot_subscribe_is_told_so_and_nothing_changes(hub, api, new_page):
    mine = issue(api)
    page = open_ticket(new_page, hub, mine["token"], permissions=["notifications"])
    page.click("#push")
    # Headless Chromium's own subscribe fails (no push service): a plain message, the button stays.
    expect(page.locator("#push-msg")).to_have_text(
        "Trình duyệt không bật được thông báo đẩy lúc này; hãy thử lại hoặc nhận tin nhắn SMS.")
    expect(page.locator("#push")).to_be_enabled()
    assert hub_ticket(api, mine["token"])["notifications"] == {}


def test_notifications_refused_by_the_citizen(hub, api, new_page):
    mine = issue(api)
    page = open_ticket(new_page, hub, mine["token"])      # no permission granted: headless answers "denied"
    page.click("#push")
    expect(page.locator("#push-msg")).to_contain_text("Bạn chưa cho phép trình duyệt gửi thông báo")
    assert hub_ticket(api, mine["token"])["notifications"] == {}


# -- the worker's push handler ----------------------------------------------------------------------

def test_the_worker_shows_the_payloads_title_and_body_one_per_ticket(hub, api, new_page):
    mine = issue(api)
    page = open_ticket(new_page, hub, mine["token"], permissions=["notifications"])
    worker = Worker(page, hub.url)
    tag = f"1/{mine['ticket']}"
    notes = "navigator.serviceWorker.ready.then(r => r.getNotifications())"
    worker.push(json.dumps({"title": f"Số {mine['number']}", "body": "Còn 5 người trước bạn.",
                            "url": mine["tracking_url"], "tag": tag, "lang": "vi"}), f"{notes}.then(ns => ns.length >= 1)")
    [n] = shown(page)
    assert (n["title"], n["body"], n["tag"], n["lang"]) == (f"Số {mine['number']}", "Còn 5 người trước bạn.", tag, "vi")
    assert n["data"]["url"] == mine["tracking_url"]

    # News about the same number replaces the notification instead of stacking a second one.
    worker.push(json.dumps({"title": f"Số {mine['number']}", "body": "Mời đến quầy số 5.",
                            "url": mine["tracking_url"], "tag": tag, "lang": "vi"}),
                f"{notes}.then(ns => ns.some(n => n.body === 'Mời đến quầy số 5.'))")
    assert [(n["body"], n["tag"]) for n in shown(page)] == [("Mời đến quầy số 5.", tag)]
    # A payload that is not JSON still shows, under the default title, beside the number's one.
    worker.push("Tin nhắn thử", f"{notes}.then(ns => ns.some(n => n.body === 'Tin nhắn thử'))")
    assert {(n["title"], n["body"], n["tag"]) for n in shown(page, 2)} == {
        ("Số thứ tự của bạn", "Tin nhắn thử", ""), (f"Số {mine['number']}", "Mời đến quầy số 5.", tag)}


# -- the whole way: page → hub → WebPushSender → push service → worker ------------------------------

class Loop:
    """An asyncio loop on a thread of its own, for the aiohttp parts beside Playwright's sync API."""

    def __enter__(self) -> Loop:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(deadline(timeout))

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(deadline(30))
        self.loop.close()


def test_subscribe_then_a_real_encrypted_push_is_shown(hub_factory, hub_env, new_page, tmp_path):
    """The hub is started trusting the fake push service's certificate (SSL_CERT_FILE), as a hub
    trusts a real push service's: its inline notifier pushes what the opt-in makes owed ("you are
    next": no one is ahead of the number) to the subscription the page handed it. Without that
    trust the hub could not reach the push service; until notifier/senders/webpush.py tells a certificate
    error from unusable keys, it then deleted the subscription (test_senders.py has the xfail), which
    is what made this test flaky: the page had said "on" and the hub, a moment later, had {}."""
    from hub.domain.notifications.message import Message
    from hub.domain.push import PushDestinations
    from notifier.senders.destinations import push_session
    from notifier.senders.webpush import WebPushSender

    db = hub_env["QUEUECAST_DATABASE"].removeprefix("sqlite:///")
    server_tls, client_tls = self_signed(tmp_path)
    with Loop() as loop:
        running = push_service_over_tls(server_tls)
        service = loop.run(running.__aenter__())
        try:
            hub = hub_factory({**hub_env, "SSL_CERT_FILE": str(tmp_path / "push.pem"), **LOCAL_PUSH})
            with httpx.Client(base_url=hub.url, timeout=deadline(30)) as api:
                mine = issue(api)
                key = api.get("/api/push/key").json()["key"]
                subscription = service.subscription(application_server_key=key)   # only the hub's key may push
                page = open_ticket(new_page, hub, mine["token"], FAKE_SUBSCRIBE, permissions=["notifications"])
                page.evaluate("sub => { window.__sub = sub; }", subscription)
                page.select_option("#sms-ahead", "3")
                page.click("#push")
                expect(page.locator("#push-msg")).to_have_text("Đã bật thông báo trên điện thoại này.")
                expect(page.locator("#notify-on")).to_contain_text("Đã bật thông báo đẩy")
                expect(page.locator("#push")).to_be_hidden()
                assert page.evaluate("window.__keys") == [key]         # subscribed with the hub's key

                assert hub_ticket(api, mine["token"])["notifications"] == {"push": {"ahead": 3}}
                with sqlite3.connect(db) as con:                      # the hub's log keeps it for the notifier
                    notify = [json.loads(b) for (b,) in con.execute("SELECT body FROM events ORDER BY seq")
                              if json.loads(b)["type"] == "ticket.notify"]
                assert [n["subscription"] for n in notify] == [subscription]

                # The hub's own notifier reaches the push service with the subscription.
                wait_until(lambda: service.received, "the hub's own push at the push service")
                [by_hub] = service.received
                assert by_hub.fields["vapid_key"] == key
                assert by_hub.fields["message"]["tag"] == f"1/{mine['ticket']}"
                assert by_hub.fields["message"]["url"] == mine["tracking_url"]
                hub_note = by_hub.fields["message"]["body"]
                assert mine["number"] in hub_note

                private = Path(db + ".vapid").read_text().strip()

                async def send():
                    local = PushDestinations(("127.0.0.1",), allow_private=True)
                    async with push_session(local, ssl=client_tls) as session:
                        sender = WebPushSender(session, vapid_private_key=private, subject="mailto:ops@example.org")
                        msg = Message("1", mine["ticket"], "called", "push", subscription,
                                      {"number": mine["number"], "counter": "5", "url": mine["tracking_url"]})
                        return await sender.send(msg)

                result = loop.run(send())
                assert result.outcome.value == "sent", result
                [first, received] = service.received
                assert first is by_hub
                plaintext = received.fields["plaintext"].decode()
                # The subscription is still the hub's: nothing the notifier met made it drop it.
                assert hub_ticket(api, mine["token"])["notifications"] == {"push": {"ahead": 3}}
        finally:
            loop.run(running.__aexit__(None, None, None))

        worker = Worker(page, hub.url)
        notes = "navigator.serviceWorker.ready.then(r => r.getNotifications())"
        # What the push service would hand the browser: the hub's message, then ours (same tag: replaced).
        worker.push(by_hub.fields["plaintext"].decode(), f"{notes}.then(ns => ns.length >= 1)")
        [n] = shown(page)
        assert (n["title"], n["body"]) == (f"Số {mine['number']}", hub_note)
        worker.push(plaintext, f"{notes}.then(ns => ns.some(n => n.body !== {json.dumps(hub_note)}))")
        [n] = shown(page)
        assert n["title"] == f"Số {mine['number']}"
        assert n["body"] == f"Mời công dân có số {mine['number']} đến quầy số 5."
        assert n["tag"] == f"1/{mine['ticket']}" and n["data"]["url"] == mine["tracking_url"]

        # Turned off from the page: the hub forgets it, the button comes back.
        page.click("#notify-on li[data-channel=push] button.off")
        expect(page.locator("#off-msg")).to_have_text("Đã tắt nhắc qua kênh này.")
        expect(page.locator("#push")).to_be_visible()
        with httpx.Client(base_url=hub.url, timeout=deadline(30)) as api:
            assert hub_ticket(api, mine["token"])["notifications"] == {}
