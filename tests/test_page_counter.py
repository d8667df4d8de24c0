"""The counter console (/counter/{branch}/{counter}), against real hub processes in a real headless
Chromium: the staff token gate, the JSON twin's authorisation, one number per press, shortcuts."""
from __future__ import annotations

import json
import re

import httpx
from playwright.sync_api import expect

from hub.auth import Tokens

from conftest import SECRET
from waiting import PageRequests, deadline

DESK = {"width": 1280, "height": 800}
TABLET = {"width": 800, "height": 1280}
B = "1"
TOKENS = Tokens(SECRET)
HTTP = deadline(30)           # seconds an HTTP request of the test may take




def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def issue(hub, service: str = "dat-dai") -> dict:
    r = httpx.post(f"{hub.url}/api/branches/{B}/tickets", json={"service": service, "channel": "kiosk"}, timeout=HTTP)
    assert r.status_code == 201, r.text
    return r.json()


def branch(hub) -> dict:
    return httpx.get(f"{hub.url}/api/branches/{B}", timeout=HTTP).json()


def counter_of(view: dict, counter: str) -> dict:
    return next(c for c in view["counters"] if c["id"] == counter)


def ticket(hub, token: str) -> dict:
    return httpx.get(f"{hub.url}/api/tickets/{token}", timeout=HTTP).json()


def twin(hub, counter: str, token: str) -> dict:
    r = httpx.get(f"{hub.url}/counter/{B}/{counter}", params={"format": "json"}, headers=bearer(token), timeout=HTTP)
    assert r.status_code == 200, r.text
    return r.json()


def board_events(hub, since: int, epoch: str, upto: int) -> list[dict]:
    """The branch's events after `since` up to seq `upto`, read back from the SSE feed (bounded)."""
    out = []
    with httpx.stream("GET", f"{hub.url}/sse/branches/{B}", params={"since": since, "epoch": epoch},
                      timeout=HTTP) as r:
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            ev = json.loads(line[5:])
            if ev["type"] == "resume":
                continue
            assert ev["type"] != "snapshot", "expected an exact resume"
            out.append(ev)
            if ev["seq"] >= upto:
                break
    return out


def console(new_page, hub, counter: str, token: str | None, viewport=DESK, lang: str | None = None):
    page = new_page(viewport=viewport)
    query = []
    if token:
        query.append(f"token={token}")
    if lang:
        query.append(f"lang={lang}")
    page.goto(f"{hub.url}/counter/{B}/{counter}" + ("?" + "&".join(query) if query else ""))
    return page


def ready(page):
    expect(page.locator("#app")).to_be_visible()
    return page


def calls_sent(page) -> PageRequests:
    """The console's call-next requests, from now on."""
    return PageRequests(page, lambda r: r.method == "POST" and r.url.endswith("/call-next"))


# -- the token ---------------------------------------------------------------------------------------

def test_without_a_token_the_console_asks_for_one_and_shows_nothing(hub, new_page):
    issue(hub)
    page = console(new_page, hub, "1", None)
    expect(page.locator("#gate")).to_be_visible()
    expect(page.locator("#gate-title")).to_have_text("Cần mã cán bộ")
    expect(page.locator("#app")).to_be_hidden()
    html = page.content()
    assert "1001" not in html and "Đất đai" not in html             # neither numbers nor fields leak

    url = f"{hub.url}/counter/{B}/1"
    r = httpx.get(url, params={"format": "json"}, timeout=HTTP)
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_required"
    assert "1001" not in r.text
    r = httpx.get(url, headers={"Accept": "application/json"}, timeout=HTTP)
    assert r.status_code == 401
    r = httpx.get(url, params={"format": "json"}, headers=bearer("qc1.forged.token"), timeout=HTTP)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    r = httpx.get(url, params={"format": "json"}, headers=bearer(TOKENS.citizen("001090123456")), timeout=HTTP)
    assert r.status_code == 403 and r.json()["error"]["code"] == "staff_only"
    r = httpx.get(url, params={"format": "json"}, headers=bearer(TOKENS.staff("2")), timeout=HTTP)
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_branch"
    r = httpx.get(url, params={"format": "json", "token": TOKENS.staff(B)}, timeout=HTTP)     # ?token= works too
    assert r.status_code == 200 and r.json()["counter"]["id"] == "1"
    assert httpx.get(f"{hub.url}/counter/{B}/99", timeout=HTTP).status_code == 404

    # A token pasted at the gate is used and kept.
    page.locator("#gate-input").fill(TOKENS.staff(B))
    page.locator("#gate-input").press("Enter")
    ready(page)
    expect(page.locator("#status-pill")).to_have_text("Đang đóng")


def test_a_token_for_another_counter_is_refused_with_a_clear_message(hub, new_page):
    page = console(new_page, hub, "1", TOKENS.staff(B, "2"))
    expect(page.locator("#gate")).to_be_visible()
    expect(page.locator("#gate-title")).to_have_text("Mã cán bộ không dùng được cho quầy này")
    expect(page.locator("#gate-detail")).to_have_text("Mã xác thực dành cho quầy 2, không phải 1.")
    expect(page.locator("#app")).to_be_hidden()
    r = httpx.get(f"{hub.url}/counter/{B}/1", params={"format": "json"}, headers=bearer(TOKENS.staff(B, "2")), timeout=HTTP)
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_counter"
    # the same token is good at its own counter
    page.goto(f"{hub.url}/counter/{B}/2")
    ready(page)
    expect(page.locator("#who")).to_contain_text("Quầy 2")


# -- calling ----------------------------------------------------------------------------------------

def test_open_with_fields_and_call_next_and_a_double_click_calls_one_number(hub, new_page):
    staff = TOKENS.staff(B)
    page = ready(console(new_page, hub, "3", staff))
    assert "token=" not in page.url                                  # kept, not left in the address bar
    assert page.evaluate(f"localStorage.getItem('qc.staff.token.{B}')") == staff
    assert staff not in page.content()                               # nor in a link (the language switch)
    assert staff not in httpx.get(f"{hub.url}/counter/{B}/3", params={"token": staff}, timeout=HTTP).text
    expect(page.locator("#status-pill")).to_have_text("Đang đóng")
    expect(page.locator("#btn-call")).to_be_disabled()

    page.locator('#fields input[value="ho-tich"]').check()           # Đất đai (its plan) and Hộ tịch
    page.locator("#btn-open").click()
    expect(page.locator("#status-pill")).to_have_text("Đang mở")
    assert counter_of(branch(hub), "3") == {"id": "3", "open": True, "services": ["dat-dai", "ho-tich"], "current": None}

    first, second, civil = issue(hub), issue(hub), issue(hub, "ho-tich")
    expect(page.locator("#waiting-total")).to_have_text("3")          # live, from the board feed

    page.locator("#btn-call").click()
    expect(page.locator("#cur-number")).to_have_text(first["number"])
    expect(page.locator("#cur-service")).to_have_text("Đất đai")
    expect(page.locator("#cur-noshows")).to_have_text("0")
    expect(page.locator("#cur-called")).to_have_text(re.compile(r"^\d{2}:\d{2}:\d{2}$"))
    expect(page.locator("#message")).to_have_text(f"Đã gọi số {first['number']}")
    assert counter_of(branch(hub), "3")["current"] == {"number": first["number"], "service": "dat-dai"}

    before = twin(hub, "3", staff)
    sent = calls_sent(page)
    page.locator("#btn-call").dblclick()
    expect(page.locator("#cur-number")).to_have_text(second["number"])
    assert len(sent.settled()) == 1                                  # one request, answered: nothing more to land
    after = branch(hub)
    assert after["seq"] == before["seq"] + 2                        # completed (first) + called (second)
    events = board_events(hub, before["seq"], before["epoch"], after["seq"])
    assert [(e["type"], e["number"]) for e in events] == [("ticket.completed", first["number"]),
                                                          ("ticket.called", second["number"])]
    assert counter_of(after, "3")["current"]["number"] == second["number"]
    assert ticket(hub, civil["token"])["state"] == "waiting"
    expect(page.locator("#message")).to_have_text(f"Đã gọi số {second['number']} · Đã hoàn thành số {first['number']}")


def test_keyboard_shortcuts_call_next_and_a_held_key_calls_once(hub, new_page):
    staff = TOKENS.staff(B, "4")
    httpx.post(f"{hub.url}/api/branches/{B}/counters/4/open", json={"services": ["dat-dai"]}, headers=bearer(staff),
               timeout=HTTP).raise_for_status()
    numbers = [issue(hub)["number"] for _ in range(4)]
    page = ready(console(new_page, hub, "4", staff))
    expect(page.locator("#btn-call kbd").first).to_have_text("N")    # the shortcut is on the button

    page.keyboard.press("n")
    expect(page.locator("#cur-number")).to_have_text(numbers[0])
    page.keyboard.press(" ")
    expect(page.locator("#cur-number")).to_have_text(numbers[1])

    before = branch(hub)["seq"]
    sent = calls_sent(page)
    page.keyboard.down("n")                                          # held down: auto-repeat is one press
    for _ in range(5):
        page.keyboard.down("n")
    page.keyboard.up("n")
    expect(page.locator("#cur-number")).to_have_text(numbers[2])
    assert len(sent.settled()) == 1
    assert branch(hub)["seq"] == before + 2

    page.locator("#btn-call").focus()                                # Space on a focused button is still one press
    before = branch(hub)["seq"]
    page.keyboard.press(" ")
    expect(page.locator("#cur-number")).to_have_text(numbers[3])
    assert len(sent.settled()) == 2
    assert branch(hub)["seq"] == before + 2


def test_skip_recall_complete_transfer_cancel(hub, new_page):
    staff = TOKENS.staff(B)
    httpx.post(f"{hub.url}/api/branches/{B}/counters/5/open", json={"services": ["dat-dai"]}, headers=bearer(staff),
               timeout=HTTP).raise_for_status()
    a, b, c = issue(hub), issue(hub), issue(hub)
    page = ready(console(new_page, hub, "5", staff))
    page.keyboard.press("n")
    expect(page.locator("#cur-number")).to_have_text(a["number"])

    # skip (S) → a no-show the console can bring back
    page.locator("#btn-skip").click()
    expect(page.locator("#message")).to_have_text(f"Số {a['number']} vắng mặt")
    expect(page.locator("#cur-number")).to_have_text("—")
    assert ticket(hub, a["token"])["state"] == "skipped"
    expect(page.locator("#recallable li")).to_have_count(1)
    expect(page.locator("#recallable li")).to_contain_text(a["number"])

    # recall (R) → back at this counter
    page.keyboard.press("r")
    expect(page.locator("#cur-number")).to_have_text(a["number"])
    expect(page.locator("#message")).to_have_text(f"Đã gọi lại số {a['number']}")
    assert ticket(hub, a["token"])["state"] == "called"
    expect(page.locator("#recallable-panel")).to_be_hidden()
    page.keyboard.press("r")                                         # recall the called number: re-announced
    expect(page.locator("#cur-calls")).to_have_text("3")

    # complete (C)
    page.keyboard.press("c")
    expect(page.locator("#message")).to_have_text(f"Đã hoàn thành số {a['number']}")
    assert ticket(hub, a["token"])["state"] == "completed"
    expect(page.locator("#btn-complete")).to_be_disabled()

    # transfer (T) → pick a field
    page.keyboard.press("n")
    expect(page.locator("#cur-number")).to_have_text(b["number"])
    page.keyboard.press("t")
    expect(page.locator("#transfer-dialog")).to_be_visible()
    expect(page.locator("#transfer-title")).to_have_text(f"Chuyển số {b['number']} sang lĩnh vực")
    expect(page.locator('#transfer-list button[data-service="dat-dai"]')).to_have_count(0)
    page.locator('#transfer-list button[data-service="ho-tich"]').click()
    expect(page.locator("#transfer-dialog")).to_be_hidden()
    expect(page.locator("#message")).to_have_text(f"Đã chuyển số {b['number']} sang Hộ tịch")
    moved = ticket(hub, b["token"])
    assert moved["state"] == "waiting" and moved["service"] == "ho-tich"

    # cancel (X) → confirm
    page.keyboard.press("n")
    expect(page.locator("#cur-number")).to_have_text(c["number"])
    page.keyboard.press("x")
    expect(page.locator("#cancel-title")).to_have_text(f"Hủy số {c['number']}? Công dân sẽ phải lấy số mới.")
    page.keyboard.press("Escape")
    expect(page.locator("#cancel-dialog")).to_be_hidden()
    assert ticket(hub, c["token"])["state"] == "called"
    page.locator("#btn-cancel").click()
    page.locator("#cancel-yes").click()
    expect(page.locator("#message")).to_have_text(f"Đã hủy số {c['number']}")
    assert ticket(hub, c["token"])["state"] == "cancelled"

    # nobody left for Đất đai: said in Vietnamese, nothing changes
    before = branch(hub)["seq"]
    page.locator("#btn-call").click()
    expect(page.locator("#message")).to_have_text("Không còn ai chờ ở các lĩnh vực của quầy 5.")
    expect(page.locator("#message")).to_have_class("c-message err")
    assert branch(hub)["seq"] == before


def test_close_with_a_number_in_service_is_refused_in_vietnamese_then_closes(hub, new_page):
    staff = TOKENS.staff(B, "6")
    httpx.post(f"{hub.url}/api/branches/{B}/counters/6/open", headers=bearer(staff), timeout=HTTP).raise_for_status()
    t = issue(hub, "ho-tich")
    page = ready(console(new_page, hub, "6", staff, viewport=TABLET))
    page.keyboard.press("n")
    expect(page.locator("#cur-number")).to_have_text(t["number"])
    page.locator("#btn-close").click()
    expect(page.locator("#message")).to_contain_text(f"Quầy 6 đang phục vụ số {t['number']}")
    page.keyboard.press("c")
    expect(page.locator("#cur-number")).to_have_text("—")
    page.locator("#btn-close").click()
    expect(page.locator("#status-pill")).to_have_text("Đang đóng")
    assert counter_of(branch(hub), "6")["open"] is False


def test_live_updates_from_the_board_feed(hub, new_page):
    staff = TOKENS.staff(B)
    for counter in ("1", "2"):
        httpx.post(f"{hub.url}/api/branches/{B}/counters/{counter}/open", headers=bearer(staff),
                   timeout=HTTP).raise_for_status()
    page = ready(console(new_page, hub, "1", staff))
    expect(page.locator("#live")).to_have_class("c-live on")
    expect(page.locator("#waiting-total")).to_have_text("0")
    t = issue(hub)
    expect(page.locator("#waiting-total")).to_have_text("1")
    expect(page.locator("#activity")).to_contain_text(f"Cấp số {t['number']} (Đất đai)")
    httpx.post(f"{hub.url}/api/branches/{B}/counters/2/call-next", headers=bearer(staff), timeout=HTTP).raise_for_status()
    expect(page.locator("#activity li").first).to_contain_text(f"Quầy 2 gọi số {t['number']}")
    expect(page.locator("#waiting-total")).to_have_text("0")


def test_english_labels_with_lang_en(hub, new_page):
    page = ready(console(new_page, hub, "1", TOKENS.staff(B), lang="en"))
    expect(page.locator("#btn-call")).to_contain_text("Call next")
    expect(page.locator("#btn-skip")).to_contain_text("No-show")
    expect(page.locator("#status-pill")).to_have_text("Closed")
