"""The lobby TV board in a real Chromium against real hub processes: live calls, announcements,
surviving a hub restart without missing a call, zones, the JSON twin, unknown branches."""
from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from hub.auth import Tokens

from conftest import SECRET, TV, bearer
from waiting import deadline, ms, wait_for_page

STAFF = bearer(Tokens(SECRET).staff("1"))



# Listens before anything is called: every announcement the page starts and finishes, and every
# number the latest-call box flashes for (a live call; the flash itself lasts only a few seconds).
RECORD = """() => {
  window.__said = []; window.__done = []; window.__flashed = [];
  document.addEventListener("qc-announce", e => window.__said.push(e.detail));
  document.addEventListener("qc-announced", e => window.__done.push(e.detail));
  const box = document.getElementById("latest");
  new MutationObserver(() => {
    if (box.classList.contains("flash")) window.__flashed.push(document.getElementById("latest-number").textContent);
  }).observe(box, {attributes: true, attributeFilter: ["class"]});
}"""


class Desk:
    """Staff and kiosk of branch 1 over HTTP."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=deadline(30))

    def issue(self, service: str = "dat-dai", n: int = 1) -> list[str]:
        out = []
        for _ in range(n):
            r = self.http.post("/api/branches/1/tickets", json={"service": service, "channel": "kiosk"})
            assert r.status_code == 201, r.text
            out.append(r.json()["number"])
        return out

    def open(self, *counters: str) -> None:
        for c in counters:
            r = self.http.post(f"/api/branches/1/counters/{c}/open", headers=STAFF)
            assert r.status_code == 200, r.text

    def call(self, counter: str) -> str:
        r = self.http.post(f"/api/branches/1/counters/{counter}/call-next", headers=STAFF)
        assert r.status_code == 200, r.text
        return r.json()["ticket"]["number"]

    def recall(self, number: str) -> None:
        r = self.http.post(f"/api/branches/1/tickets/{number}/recall", headers=STAFF)
        assert r.status_code == 200, r.text

    def close(self) -> None:
        self.http.close()




@pytest.fixture
def desk(hub):
    d = Desk(hub.url)
    yield d
    d.close()


def open_board(new_page, url: str):
    page = new_page(TV)
    page.goto(url)
    page.evaluate(RECORD)
    expect(page.locator("body")).to_have_attribute("data-feed", "live")
    return page


def recent(page) -> list[tuple[str, str]]:
    return [(li.get_attribute("data-number"), li.get_attribute("data-counter"))
            for li in page.locator("#recent li").all()]


def said(page) -> list[dict]:
    return page.evaluate("window.__said")


# An announcement plays a chime and clips or a voice: it may take a while to end on a busy machine.
SAYING = ms(90)


def wait_said(page, count: int) -> list[dict]:
    wait_for_page(page, f"window.__said.length >= {count}", timeout=SAYING)
    return said(page)


def wait_said_number(page, number: str) -> list[dict]:
    wait_for_page(page, f"window.__said.some(d => d.number === '{number}')", timeout=SAYING)
    return said(page)


@pytest.mark.slow              # announcements are said at the pace of speech
def test_a_call_appears_live_and_is_announced(hub, desk, new_page):
    """Live: the call reaches the open page through its feed (it flashes, which the twin's periodic
    refresh never does, and the document is the same); no time limit is asserted."""
    desk.issue(n=2)
    desk.open("1")
    page = open_board(new_page, f"{hub.url}/display/1")
    expect(page.locator("#latest-number")).to_have_text("—")
    page.evaluate("window.__sameDocument = true")

    number = desk.call("1")
    assert number == "1001"
    expect(page.locator("#latest-number")).to_have_text("1001")
    expect(page.locator("#latest-counter")).to_have_text("1")
    expect(page.locator("#subtitle")).to_have_text("Mời công dân có số 1001 đến quầy số 1")
    assert recent(page)[0] == ("1001", "1")
    wait_for_page(page, "window.__flashed.includes('1001')")
    assert page.evaluate("window.__sameDocument") is True

    first = wait_said(page, 1)[0]
    assert first["text"] == "Mời công dân có số một nghìn không trăm linh một đến quầy số một"
    assert first["subtitle"] == "Mời công dân có số 1001 đến quầy số 1"
    assert (first["number"], first["counter"]) == ("1001", "1") and first["via"] in ("voice", "clips")
    wait_for_page(page, "window.__done.length >= 1", timeout=SAYING)   # it ends, too


@pytest.mark.slow              # announcements are said at the pace of speech
def test_the_board_survives_a_hub_restart_and_misses_no_call(hub_factory, hub_env, hub, desk, new_page):
    desk.issue(n=6)
    desk.open("1", "2")
    page = open_board(new_page, f"{hub.url}/display/1")
    before = desk.call("1")
    expect(page.locator("#latest-number")).to_have_text(before)
    banner = page.locator("#banner")
    expect(banner).to_be_hidden()

    port = int(hub.url.rsplit(":", 1)[1])
    hub.stop()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Mất kết nối")
    expect(page.locator("#last-update")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(page.locator("body")).to_have_attribute("data-feed", "down")

    hub2 = hub_factory(hub_env, port=port)       # same port, same database
    desk2 = Desk(hub2.url)
    try:
        missed = [desk2.call("2"), desk2.call("1")]

        expect(banner).to_be_hidden(timeout=ms(60))   # after its reconnect backoff (at most 10 s)
        for number in missed:
            expect(page.locator(f'#recent li[data-number="{number}"]')).to_have_count(1)
        assert [n for n, _ in recent(page)][:3] == [missed[1], missed[0], before]
        expect(page.locator("#latest-number")).to_have_text(missed[1])
        wait_said_number(page, missed[1])
        # One more call, live: announcements are said in order, so once it is said every
        # announcement the reconnection made (a duplicate included) has been said before it.
        sentinel = desk2.call("2")
        wait_said_number(page, sentinel)
    finally:
        desk2.close()
    # Both missed calls were said (at most the latest two after a gap), none twice.
    numbers = [d["number"] for d in said(page)]
    assert numbers.count(missed[1]) == 1 and numbers.count(missed[0]) <= 1 and numbers.count(before) == 1
    assert numbers[-1] == sentinel and numbers.count(sentinel) == 1


@pytest.mark.slow              # announcements are said at the pace of speech
def test_a_recall_is_announced_again(hub, desk, new_page):
    desk.issue(n=2)
    desk.open("1")
    page = open_board(new_page, f"{hub.url}/display/1")
    number = desk.call("1")
    wait_said(page, 1)
    desk.recall(number)
    again = wait_said(page, 2)              # waits for the first announcement to finish: never overlapping
    assert [d["number"] for d in again[:2]] == [number, number]
    assert again[1]["text"] == "Mời công dân có số một nghìn không trăm linh một đến quầy số một"
    done_before_second = page.evaluate("window.__done.length")
    assert done_before_second >= 1
    expect(page.locator("#latest-number")).to_have_text(number)
    assert recent(page) == [(number, "1")]


def test_a_zone_board_shows_only_its_fields(hub, desk, new_page):
    desk.issue("dat-dai", 1)
    desk.issue("ho-tich", 1)
    desk.issue("dang-ky-kinh-doanh", 1)
    desk.open("1", "6", "9")
    page = open_board(new_page, f"{hub.url}/display/1?fields=dat-dai,ho-tich")
    rows = page.locator("#fields tbody tr")
    expect(rows).to_have_count(2)
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.service)")) == ["dat-dai", "ho-tich"]
    expect(page.locator("#fields")).to_contain_text("Đất đai")
    expect(page.locator("#fields")).not_to_contain_text("Đăng ký kinh doanh")

    other = desk.call("9")                    # business registration: another floor's call
    mine = desk.call("6")                     # civil status: this zone's
    expect(page.locator("#latest-number")).to_have_text(mine)
    assert [n for n, _ in recent(page)] == [mine]
    # The other zone's call came first in the feed: had the board taken it, it would be said before mine.
    assert other not in [d["number"] for d in wait_said_number(page, mine)]

    twin = httpx.get(f"{hub.url}/display/1?fields=dat-dai,ho-tich&format=json", timeout=deadline(30)).json()
    assert [s["id"] for s in twin["services"]] == ["dat-dai", "ho-tich"]
    assert [c["number"] for c in twin["recent_calls"]] == [mine]
    assert twin["fields"] == ["dat-dai", "ho-tich"]
    bad = httpx.get(f"{hub.url}/display/1?fields=dat-dai,nope&format=json", timeout=deadline(30))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_field"


def test_the_json_twin_has_the_calls_the_page_shows(hub, desk, new_page):
    desk.issue("dat-dai", 8)
    desk.issue("ho-tich", 5)
    desk.open("1", "2", "6")
    for counter in ("1", "6", "2", "1", "6", "2", "1", "6", "2", "1", "6"):
        desk.call(counter)
    desk.recall("1006")                      # at counter 2 since its third call

    twin = desk.http.get("/display/1?format=json").json()
    page = new_page(TV)
    page.goto(f"{hub.url}/display/1")
    shown = recent(page)
    assert len(shown) == 10
    assert shown == [(c["number"], c["counter"]) for c in twin["recent_calls"]]
    assert shown[0] == ("1006", "2")          # the recall brought it back to the top
    assert page.locator("#latest-number").inner_text() == twin["latest_call"]["number"] == "1006"
    assert twin["epoch"] and twin["seq"] > 0 and twin["waiting"] == sum(s["waiting"] for s in twin["services"])

    # Live, the page and a fresh twin still agree.
    expect(page.locator("body")).to_have_attribute("data-feed", "live")
    desk.call("2")
    wait_for_page(page, "document.querySelector('#recent li').dataset.number !== '1006'")
    twin = desk.http.get("/display/1?format=json").json()
    assert recent(page) == [(c["number"], c["counter"]) for c in twin["recent_calls"]]
    waiting = {s["id"]: s["waiting"] for s in twin["services"]}
    wait_for_page(page,
        f"document.querySelector('#fields tr[data-service=\"dat-dai\"] .f-waiting').textContent === '{waiting['dat-dai']}'")


def test_an_unknown_branch_is_a_404_page(hub, new_page):
    page = new_page(TV)
    response = page.goto(f"{hub.url}/display/99")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Không có chi nhánh này")
    expect(page.locator("body")).to_contain_text("No branch '99'")
    twin = httpx.get(f"{hub.url}/display/99?format=json", timeout=deadline(30))
    assert twin.status_code == 404 and twin.json()["error"]["code"] == "branch_not_found"


def test_the_board_switches_to_english(hub, new_page):
    page = new_page(TV)
    page.goto(f"{hub.url}/display/1?lang=en&fields=ho-tich")
    expect(page.locator(".latest-label")).to_have_text("Now calling")
    expect(page.locator("#fields")).to_contain_text("Civil status")
    expect(page.locator("#clock-date")).to_have_text(re.compile(r"^(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, \d\d/\d\d/\d{4}$"))
    # The language switch keeps the board's zone.
    assert page.locator(".lang-switch").get_attribute("href") == "?fields=ho-tich&lang=vi"


# -- the view model, without a browser ---------------------------------------------------------------------

def _call(seq: int, number: str, counter: str, service: str = "dat-dai", type_: str = "ticket.called",
          day: str = "2026-05-19") -> dict:
    return {"type": type_, "seq": seq, "t": f"2026-05-19T09:{seq:02d}:00+07:00", "branch": "1", "day": day,
            "ticket": f"20260519-{number}", "number": number, "service": service, "counter": counter}


def test_recent_calls_from_the_log():
    from displays.board import recent_calls

    events = [_call(1, "1001", "1"), {"type": "ticket.completed", "seq": 2, "day": "2026-05-19", "number": "1001"},
              _call(3, "2001", "6", "ho-tich"), _call(4, "1002", "2"), _call(5, "1001", "3", type_="ticket.recalled"),
              _call(6, "1003", "1", day="2026-05-18")]
    calls = recent_calls(events, day="2026-05-19")
    assert [(c["number"], c["counter"], c["recall"]) for c in calls] == [
        ("1001", "3", True), ("1002", "2", False), ("2001", "6", False)]     # a recall moves it to the top, once
    assert [c["number"] for c in recent_calls(events, day="2026-05-19", services=frozenset({"ho-tich"}))] == ["2001"]
    many = [_call(i, str(1000 + i), "1") for i in range(1, 30)]
    assert [c["number"] for c in recent_calls(many, day="2026-05-19")] == [str(1000 + i) for i in range(29, 19, -1)]


def test_recent_calls_from_the_state_when_the_log_cannot_be_read(centre):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from displays.board import recent_calls_from_state
    from hub.domain.state import fold

    branch = centre.branches["1"]
    t = datetime(2026, 5, 19, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    evs = []
    for i, n in enumerate(("1001", "1002")):
        evs.append({"type": "ticket.issued", "seq": len(evs) + 1, "t": t.isoformat(), "branch": "1", "day": "2026-05-19",
                    "ticket": f"20260519-{n}", "number": n, "service": "dat-dai", "channel": "kiosk", "order": i + 1})
    evs.append({**_call(3, "1001", "1"), "t": "2026-05-19T09:03:00+07:00"})
    evs.append({**_call(4, "1002", "2"), "t": "2026-05-19T09:04:00+07:00"})
    st = fold(branch, evs)
    assert [(c["number"], c["counter"]) for c in recent_calls_from_state(st, day="2026-05-19")] == [
        ("1002", "2"), ("1001", "1")]
