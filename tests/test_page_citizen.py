"""The citizen's phone page, /t/{token}, in a real Chromium against a real hub process.

Live updates come through the ticket feed (or polling when WebSockets fail), never a reload; the
holder's actions (give back, SMS opt-in, rating) go through the same API as any client.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from hub.auth import Tokens

from conftest import PHONE, SECRET
from waiting import PageRequests, deadline, ms, wait_for_page

TOKENS = Tokens(SECRET)
STAFF = {"Authorization": f"Bearer {TOKENS.staff('1')}"}
FORGED = "bm90LWEtdGlja2V0.AAAAAAAAAAAAAAAAAAAAAA"

# Records the "being called" hooks: vibration patterns and WebAudio beeps.
RECORD_ALERTS = """
window.__vibrations = [];
Object.defineProperty(Navigator.prototype, 'vibrate', {configurable: true, writable: true,
  value: function (p) { window.__vibrations.push(p); return true; }});
window.__beeps = 0;
const __start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function () { window.__beeps++; return __start.apply(this, arguments); };
"""

# A browser whose WebSockets never connect: the page must fall back to polling its JSON twin.
NO_WEBSOCKETS = """
window.__sockets = 0;
window.WebSocket = function () {
  window.__sockets++;
  const fake = {close() {}};
  setTimeout(() => fake.onclose && fake.onclose({code: 1006}), 10);
  return fake;
};
"""








def issue(api: httpx.Client, branch: str = "1", service: str = "dat-dai") -> dict:
    r = api.post(f"/api/branches/{branch}/tickets", json={"service": service, "channel": "kiosk"})
    assert r.status_code == 201, r.text
    return r.json()


def staff_post(api: httpx.Client, path: str, **kw) -> dict:
    r = api.post(path, headers=STAFF, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def ticket(api: httpx.Client, token: str, **params) -> dict:
    r = api.get(f"/api/tickets/{token}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def open_page(new_page, hub, token: str, *, script: str = RECORD_ALERTS, query: str = ""):
    page = new_page(PHONE)
    page.add_init_script(script)
    page.goto(f"{hub.url}/t/{token}{query}")
    return page


def wait_live(page, timeout: float | None = None) -> None:
    """Until the page says its feed is live (within the default deadline, or `timeout` ms)."""
    expect(page.locator("#live")).to_have_class(re.compile(r"\bis-live\b"), timeout=timeout)


def test_position_updates_live_and_the_call_vibrates_and_beeps(hub, api, new_page):
    issue(api), issue(api)
    mine = issue(api)
    page = open_page(new_page, hub, mine["token"])
    expect(page.locator("#num")).to_have_text(mine["number"])
    expect(page.locator("#ahead")).to_have_text("2")
    expect(page.locator("#state-title")).to_have_text("Đang chờ đến lượt")
    wait_live(page)
    page.evaluate("window.__sameDocument = true")

    staff_post(api, "/api/branches/1/counters/5/open", json={"services": ["dat-dai"]})
    first = staff_post(api, "/api/branches/1/counters/5/call-next")["ticket"]["number"]
    expect(page.locator("#ahead")).to_have_text("1")
    expect(page.locator("#serving")).to_have_text(f"{first} → quầy 5")
    staff_post(api, "/api/branches/1/counters/5/call-next")
    expect(page.locator("#ahead")).to_have_text("0")
    assert page.evaluate("window.__vibrations.length") == 0

    staff_post(api, "/api/branches/1/counters/5/call-next")
    title = page.locator("#state-title")
    expect(title).to_have_text("Số của bạn đang được gọi — mời đến quầy 5")
    expect(page.locator("#tk")).to_have_class(re.compile(r"\bst-called\b"))
    expect(page.locator("#f-ahead")).to_be_hidden()
    wait_for_page(page, "window.__vibrations.length > 0 && window.__beeps > 0")
    # One more event the page must show (a call at another counter) before counting: a second
    # alert for the same call would have come with an event before it.
    later = issue(api)
    staff_post(api, "/api/branches/1/counters/4/open", json={"services": ["dat-dai"]})
    staff_post(api, "/api/branches/1/counters/4/call-next")
    expect(page.locator("#serving")).to_contain_text(f"{later['number']} → quầy 4")
    assert page.evaluate("window.__sameDocument") is True                     # no reload happened
    assert page.evaluate("window.__vibrations.length") == 1                  # one call, one alert
    assert page.evaluate("document.documentElement.lang") == "vi"


@pytest.mark.slow              # a hub restart and the page's backoff
def test_reconnects_after_a_hub_restart_and_resumes_with_since_and_epoch(hub_factory, hub_env, new_page):
    first = hub_factory(hub_env)
    with httpx.Client(base_url=first.url, timeout=deadline(30)) as api:
        issue(api), issue(api)
        mine = issue(api)
    page = open_page(new_page, first, mine["token"])
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    wait_live(page)
    page.evaluate("window.__sameDocument = true")
    first.stop()                                       # the hub we started, by its pid
    expect(page.locator("#banner")).to_have_class(re.compile(r"\bshown\b"))
    expect(page.locator("#banner")).to_have_text("Mất kết nối — đang kết nối lại")

    again = hub_factory(hub_env, port=int(first.url.rsplit(":", 1)[1]))    # same port, same database
    with httpx.Client(base_url=again.url, timeout=deadline(30)) as api:
        wait_live(page, timeout=ms(60))                # after the page's reconnect backoff
        expect(page.locator("#banner")).not_to_have_class(re.compile(r"\bshown\b"))
        assert any("since=" in url and "epoch=" in url for url in sockets), sockets
        staff_post(api, "/api/branches/1/counters/2/open", json={"services": ["dat-dai"]})
        staff_post(api, "/api/branches/1/counters/2/call-next")
        expect(page.locator("#ahead")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True


@pytest.mark.slow              # the page polls every 10 s
def test_falls_back_to_polling_when_websockets_fail(hub, api, new_page):
    issue(api)
    mine = issue(api)
    page = open_page(new_page, hub, mine["token"], script=RECORD_ALERTS + NO_WEBSOCKETS)
    expect(page.locator("#live")).to_have_class(re.compile(r"\bis-poll\b"))
    staff_post(api, "/api/branches/1/counters/1/open", json={})
    staff_post(api, "/api/branches/1/counters/1/call-next")
    expect(page.locator("#ahead")).to_have_text("0", timeout=ms(60))      # at the next poll (every 10 s)
    assert page.evaluate("window.__sockets") >= 1                           # it did try the feed first


def test_travel_time_gives_leave_by_and_is_remembered(hub, api, new_page):
    for _ in range(6):
        issue(api)
    mine = issue(api)
    page = open_page(new_page, hub, mine["token"])
    expect(page.locator("#f-leave")).to_be_hidden()
    page.fill("#travel", "20")
    page.click("#travel-box button[type=submit]")
    leave = page.locator("#f-leave")
    expect(leave).to_be_visible()
    expect(leave).to_contain_text("Rời nhà lúc")
    shown = re.search(r"\d\d:\d\d", page.locator("#leave").inner_text()).group(0)
    hub_says = ticket(api, mine["token"], travel_minutes=20)["leave_by"][11:16]
    gap = abs(datetime.strptime(shown, "%H:%M") - datetime.strptime(hub_says, "%H:%M"))
    assert gap <= timedelta(minutes=1), (shown, hub_says)                    # the hub's rule, to the minute

    call = page.locator("#call").inner_text()
    assert re.fullmatch(r"\d\d:\d\d – \d\d:\d\d|\d\d:\d\d", call), call      # p10–p90 as clock times

    page.reload()
    expect(page.locator("#travel")).to_have_value("20")
    expect(page.locator("#f-leave")).to_be_visible()
    expect(page.locator("#f-leave")).to_contain_text("Rời nhà lúc")


def test_give_back_asks_first(hub, api, new_page):
    mine = issue(api)
    page = open_page(new_page, hub, mine["token"])
    wait_live(page)
    deletes = PageRequests(page, lambda r: r.method == "DELETE")

    messages = []

    def dismiss(dialog):
        messages.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#give-back")
    assert messages and mine["number"] in messages[0] and "trả lại số" in messages[0]
    assert deletes.settled() == []
    expect(page.locator("#tk")).to_have_class(re.compile(r"\bst-waiting\b"))
    assert ticket(api, mine["token"])["state"] == "waiting"

    page.once("dialog", lambda d: d.accept())
    page.click("#give-back")
    expect(page.locator("#state-title")).to_have_text("Số đã được trả lại hoặc đã hủy")
    expect(page.locator("#give-back")).to_be_hidden()
    expect(page.locator("#new-number")).to_be_visible()
    assert len(deletes.settled()) == 1
    assert ticket(api, mine["token"])["state"] == "cancelled"


def test_sms_opt_in_shows_the_hubs_vietnamese_refusal_then_success(hub, api, new_page):
    mine = issue(api)
    page = open_page(new_page, hub, mine["token"])
    push = page.locator("#push")
    expect(push).to_be_visible()                       # Chromium has service workers and PushManager
    expect(push).to_be_enabled()                       # (the rest of push: tests/test_page_push.py)
    expect(push).to_contain_text("Nhận thông báo trên điện thoại")

    page.fill("#travel", "15")
    page.click("#travel-box button[type=submit]")
    page.fill("#sms-phone", "12345")
    page.click("#sms-form button[type=submit]")
    expect(page.locator("#sms-msg")).to_have_text(
        "Số điện thoại di động không hợp lệ (ví dụ 0912345678 hoặc +84912345678).")
    assert ticket(api, mine["token"])["notifications"] == {}

    page.fill("#sms-phone", "0912 345 678")
    page.select_option("#sms-ahead", "3")
    page.click("#sms-form button[type=submit]")
    expect(page.locator("#sms-msg")).to_contain_text("Đã đăng ký")
    expect(page.locator("#notify-on")).to_contain_text("SMS")
    view = ticket(api, mine["token"])
    assert view["notifications"] == {"sms": {"ahead": 3}}
    assert view["travel_minutes"] == 15                                     # sent along with the opt-in


def test_rating_after_service_posts_once(hub, api, new_page):
    mine = issue(api)
    page = open_page(new_page, hub, mine["token"])
    wait_live(page)
    expect(page.locator("#rate-box")).to_be_hidden()
    posts = PageRequests(page, lambda r: r.method == "POST" and r.url.endswith("/rating"))

    staff_post(api, "/api/branches/1/counters/1/open", json={})
    staff_post(api, "/api/branches/1/counters/1/call-next")
    staff_post(api, f"/api/branches/1/tickets/{mine['number']}/complete")
    expect(page.locator("#state-title")).to_have_text("Đã phục vụ xong")
    expect(page.locator("#rate-box")).to_be_visible()
    expect(page.locator("#give-back")).to_be_hidden()

    page.fill("#rate-comment", "Cán bộ nhiệt tình")
    star = page.locator(".face[data-score='4']")
    star.dblclick()
    expect(page.locator("#thanks")).to_be_visible()
    expect(page.locator("#rate-box")).to_be_hidden()
    sent = [r.post_data for r in posts.settled()]
    assert len(sent) == 1 and '"score":4' in sent[0] and "Cán bộ nhiệt tình" in sent[0]
    assert ticket(api, mine["token"])["rated"] is True

    page.reload()                                      # the thank-you stays, no second chance to rate
    expect(page.locator("#thanks")).to_be_visible()
    expect(page.locator("#rate-box")).to_be_hidden()


def test_json_twin_is_the_api_ticket_view(hub, api):
    issue(api)
    mine = issue(api)
    time_dependent = {"eta", "expected_call", "leave_by"}
    for params in ({}, {"travel_minutes": "30"}):
        twin = api.get(f"/t/{mine['token']}", params={"format": "json", **params})
        assert twin.status_code == 200 and twin.headers["content-type"].startswith("application/json")
        view = ticket(api, mine["token"], **params)
        assert twin.json().keys() == view.keys()
        assert {k: v for k, v in twin.json().items() if k not in time_dependent} == \
               {k: v for k, v in view.items() if k not in time_dependent}
        assert twin.json()["eta"].keys() == view["eta"].keys()
    html = api.get(f"/t/{mine['token']}", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and html.headers["cache-control"] == "no-store"


def test_english_labels(hub, api, new_page):
    mine = issue(api)
    page = open_page(new_page, hub, mine["token"], query="?lang=en")
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.locator("#state-title")).to_have_text("Waiting for your turn")
    expect(page.locator("#f-ahead dt")).to_have_text("People ahead of you")
    expect(page.locator("#field")).to_contain_text("Land")
    expect(page.locator("#give-back")).to_have_text("Give the number back")
    expect(page.locator("#sms-form button")).to_have_text("Get an SMS")
    page.fill("#sms-phone", "0912 345 678")
    with page.expect_request(lambda r: r.url.endswith("/notifications") and r.method == "POST") as sent:
        page.click("#sms-form button[type=submit]")
    assert sent.value.post_data_json["lang"] == "en"          # so the messages come in English too
    page.goto(f"{hub.url}/t/{mine['token']}?lang=vi")
    expect(page.locator("#state-title")).to_have_text("Đang chờ đến lượt")


def test_forged_or_unknown_ticket_is_a_friendly_404(hub, api, new_page):
    page = new_page(PHONE)
    for token in (FORGED, TOKENS.ticket("1", "20260519-9999"), "x"):
        response = page.goto(f"{hub.url}/t/{token}")
        assert response.status == 404
        expect(page.locator("h1")).to_have_text("Không tìm thấy số thứ tự")
        expect(page.locator("h2")).to_have_text("No ticket for this link")
        expect(page.locator("a.btn")).to_have_attribute("href", "/branches")
    r = api.get(f"/t/{FORGED}?format=json")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ticket_not_found"


def test_page_is_small(hub, api):
    mine = issue(api)
    size = sum(len(api.get(path).content) for path in
               (f"/t/{mine['token']}", "/static/base.css", "/static/citizen.css", "/static/citizen.js",
                "/static/feed.js"))
    assert size < 50_000, size
