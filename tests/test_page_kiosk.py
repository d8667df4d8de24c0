"""The kiosk page (/kiosk/{branch}) and its printable ticket (/kiosk/{branch}/ticket?token=), against
real hub processes in a real headless Chromium. A QR code is read back with zbarimg."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
from playwright.sync_api import expect

from hub.auth import Tokens

from conftest import SECRET
from waiting import PageRequests, deadline, wait_for_page

PORTRAIT = {"width": 1080, "height": 1920}
LANDSCAPE = {"width": 1920, "height": 1080}
B = "1"
FORGED = "bm90LWEtdGlja2V0.AAAAAAAAAAAAAAAAAAAAAA"
HTTP = deadline(30)           # seconds an HTTP request of the test may take


def branch(hub, b: str = B) -> dict:
    r = httpx.get(f"{hub.url}/api/branches/{b}", timeout=HTTP)
    assert r.status_code == 200, r.text
    return r.json()


def waiting(view: dict, service: str) -> int:
    return next(s["waiting"] for s in view["services"] if s["id"] == service)


def issue(hub, service: str = "dat-dai", b: str = B, **extra) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/branches/{b}/tickets", json={"service": service, "channel": "kiosk", **extra},
                      timeout=HTTP)


def field(page, service: str):
    return page.locator(f'.k-field[data-service="{service}"]')


def enrolled_kiosk(hub, page, b: str = B) -> None:
    """Open the kiosk page as a device the branch enrolled (its manager's token makes a device, the
    kiosk claims it with the one-time code): priority is offered there, not at a lobby's anonymous kiosk."""
    manager = {"Authorization": f"Bearer {Tokens(SECRET).staff(b)}"}
    made = httpx.post(f"{hub.url}/api/branches/{b}/kiosks", json={"name": "Sảnh"}, headers=manager, timeout=HTTP)
    assert made.status_code in (200, 201), made.text
    page.goto(f"{hub.url}/kiosk/{b}#enrol={made.json()['enrol_code']}")
    expect(page.locator("#device")).to_contain_text("Sảnh")


def zbar(png: Path) -> str:
    out = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, timeout=deadline(60))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()




# -- issuing ---------------------------------------------------------------------------------------

def test_touching_a_field_issues_a_number_and_shows_the_ticket(hub, new_page):
    page = new_page(viewport=PORTRAIT)
    page.goto(f"{hub.url}/kiosk/{B}?hold=3")
    expect(page.locator(".k-lead")).to_have_text("Chạm vào lĩnh vực cần giải quyết để lấy số")
    expect(page.locator("#priority")).to_contain_text("Người cao tuổi / ưu tiên")
    expect(field(page, "ho-tich").locator(".k-name")).to_have_text("Hộ tịch")
    before = branch(hub)

    field(page, "ho-tich").click()

    expect(page.locator("#issued")).to_be_visible()
    expect(page.locator("#t-number")).to_have_text("2001")          # Hộ tịch's block starts at 2001
    expect(page.locator("#t-service")).to_have_text("Hộ tịch")
    expect(page.locator("#t-ahead")).to_have_text("0")
    expect(page.locator("#t-eta")).to_contain_text("phút")
    ticket = page.frame_locator("#t-frame")
    expect(ticket.locator(".t-number")).to_have_text("2001")
    expect(ticket.locator(".t-branch")).to_have_text("Chi nhánh số 1")
    expect(ticket.locator(".t-date")).to_have_text("19/05/2026")
    expect(ticket.locator("#qr svg")).to_be_visible()

    after = branch(hub)
    assert after["seq"] == before["seq"] + 1
    assert waiting(after, "ho-tich") == waiting(before, "ho-tich") + 1

    # Back to the field buttons by itself (?hold=3 seconds), showing the new waiting count.
    expect(page.locator("#issued")).to_be_hidden()
    expect(field(page, "ho-tich").locator("[data-waiting]")).to_have_text("1")


def test_the_kiosk_fits_portrait_and_landscape_screens(hub, new_page):
    for viewport in (PORTRAIT, LANDSCAPE):
        page = new_page(viewport=viewport)
        enrolled_kiosk(hub, page)
        expect(page.locator(".k-field")).to_have_count(13)
        for locator in (page.locator(".k-field").last, page.locator("#priority"), page.locator("#checkin-open")):
            box = locator.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] + 1, (viewport, box)
            assert box["height"] >= 80                                   # big enough to touch
        # no field button has its text cut off
        clipped = page.evaluate("""[...document.querySelectorAll('.k-field')]
            .filter(b => b.scrollHeight > b.clientHeight + 1).map(b => b.dataset.service)""")
        assert clipped == [], (viewport, clipped)


def test_priority_toggle_issues_a_priority_number(hub, new_page):
    page = new_page(viewport=LANDSCAPE)
    page.goto(f"{hub.url}/kiosk/{B}")
    expect(page.locator("#priority")).to_be_hidden()          # the lobby's anonymous kiosk offers none
    r = issue(hub, priority=True)
    assert r.status_code == 403 and r.json()["error"]["code"] == "priority_not_allowed", r.text
    enrolled_kiosk(hub, page)
    page.locator("#priority").click()
    expect(page.locator("#priority")).to_have_attribute("aria-pressed", "true")
    field(page, "dat-dai").click()
    expect(page.locator("#t-number")).to_have_text("1001")
    expect(page.locator("#t-priority")).to_be_visible()
    expect(page.frame_locator("#t-frame").locator(".t-priority")).to_have_text("ƯU TIÊN")
    page.locator("#t-done").click()
    expect(page.locator("#priority")).to_have_attribute("aria-pressed", "false")   # not left on for the next one


def test_a_double_tap_issues_one_number(hub, new_page):
    page = new_page(viewport=PORTRAIT)
    page.goto(f"{hub.url}/kiosk/{B}")
    before = branch(hub)
    sent = PageRequests(page, lambda r: r.method == "POST" and r.url.endswith(f"/api/branches/{B}/tickets"))

    field(page, "dat-dai").dblclick()

    expect(page.locator("#t-number")).to_have_text("1001")
    assert len(sent.settled()) == 1                                  # one request, answered: nothing more to land
    after = branch(hub)
    assert after["seq"] == before["seq"] + 1
    assert waiting(after, "dat-dai") == waiting(before, "dat-dai") + 1

    # Two touches that both reach the button (a bouncing touch screen), before any overlay is drawn.
    page.locator("#t-done").click()
    expect(page.locator("#issued")).to_be_hidden()
    field(page, "dat-dai").evaluate("b => { b.click(); b.click(); }")
    expect(page.locator("#t-number")).to_have_text("1002")
    assert len(sent.settled()) == 2
    assert branch(hub)["seq"] == before["seq"] + 2
    assert issue(hub).json()["number"] == "1003"                    # the next number really is the third


# -- the printed ticket -----------------------------------------------------------------------------

def test_printed_ticket_qr_decodes_to_the_tracking_url_which_opens_the_citizen_page(hub, new_page, tmp_path):
    for _ in range(2):
        issue(hub)
    answer = issue(hub).json()
    token, number = answer["token"], answer["number"]
    assert answer["tracking_url"] == f"{hub.url}/t/{token}"

    page = new_page(viewport={"width": 302, "height": 1100}, device_scale_factor=2)   # 80 mm at 96 dpi
    page.goto(f"{hub.url}/kiosk/{B}/ticket?token={token}")
    page.emulate_media(media="print")
    ticket = page.locator(".ticket")
    expect(ticket.locator(".t-number")).to_have_text(number)
    expect(ticket.locator(".t-service")).to_have_text("Đất đai")
    expect(ticket.locator(".t-branch")).to_have_text("Chi nhánh số 1")
    expect(ticket.locator(".t-date")).to_have_text("19/05/2026")
    expect(ticket.locator(".t-time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))
    expect(ticket.locator(".t-ahead")).to_have_text("2")
    expect(ticket.locator(".t-eta")).to_contain_text("phút")
    expect(page.locator("#print-again")).to_be_hidden()             # no buttons on paper
    expect(page.locator(".lang-switch")).to_be_hidden()
    width = page.evaluate("document.querySelector('.ticket').getBoundingClientRect().width")
    assert abs(width - 80 / 25.4 * 96) < 2                           # 80 mm
    colours = page.evaluate("""(() => { const s = getComputedStyle(document.querySelector('.t-number'));
        return [s.color, getComputedStyle(document.body).backgroundColor]; })()""")
    assert colours == ["rgb(0, 0, 0)", "rgb(255, 255, 255)"]

    png = tmp_path / "qr.png"
    page.locator("#qr").screenshot(path=str(png))
    url = zbar(png)
    assert url == f"{hub.url}/t/{token}"

    # One page of 80 mm roll, as long as the ticket.
    pdf = page.pdf(prefer_css_page_size=True)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)", pdf)
    assert box and abs(float(box.group(1)) - 80 / 25.4 * 72) < 1.5 and float(box.group(2)) < 200 / 25.4 * 72

    citizen = new_page()
    response = citizen.goto(url)
    assert response.status == 200
    expect(citizen.locator("body")).to_contain_text(number)
    expect(citizen.locator("body")).to_contain_text("Đất đai")


def test_printable_ticket_needs_the_ticket_token(hub):
    token = issue(hub).json()["token"]
    ok = httpx.get(f"{hub.url}/kiosk/{B}/ticket", params={"token": token}, timeout=HTTP)
    assert ok.status_code == 200 and "<svg" in ok.text and ok.headers["cache-control"] == "no-store"
    for params in ({}, {"token": ""}, {"token": FORGED}, {"token": token[:-1] + ("A" if token[-1] != "A" else "B")},
                   {"token": "x" * 500}):
        r = httpx.get(f"{hub.url}/kiosk/{B}/ticket", params=params, timeout=HTTP)
        assert r.status_code == 404, params
        assert "Không tìm thấy" in r.text and token not in r.text
    # a real token of branch 1 prints nothing at another branch's kiosk, nor at an unknown one
    assert httpx.get(f"{hub.url}/kiosk/2/ticket", params={"token": token}, timeout=HTTP).status_code == 404
    assert httpx.get(f"{hub.url}/kiosk/99/ticket", params={"token": token}, timeout=HTTP).status_code == 404
    assert httpx.get(f"{hub.url}/kiosk/99", timeout=HTTP).status_code == 404


def test_kiosk_autoprint_prints_the_ticket(hub, new_page):
    page = new_page(viewport=LANDSCAPE)
    # window.print is replaced before any script runs, in the page and in its ticket frame
    page.add_init_script("window.__printed = 0; window.print = () => { window.__printed += 1; };")
    page.goto(f"{hub.url}/kiosk/{B}?autoprint=1")
    field(page, "cu-tru").click()
    expect(page.locator("#t-number")).to_have_text(re.compile(r"^\d+$"))
    frame = page.frame_locator("#t-frame")
    expect(frame.locator(".t-number")).to_have_text(page.locator("#t-number").inner_text())
    wait_for_page(page, "document.querySelector('#t-frame').contentWindow.__printed === 1")
    assert page.evaluate("window.__printed") == 0                   # the kiosk screen itself is not printed


# -- refusals ---------------------------------------------------------------------------------------

def test_daily_cap_refusal_is_explained_in_vietnamese(hub_factory, hub_env, new_page, tmp_path):
    config = Path(hub_env["QUEUECAST_CONFIG"]).read_text(encoding="utf-8")     # the tests' lobby configuration
    small, n = re.subn(r'(id = "y-te"\n(?:[^\[\n].*\n)*?daily_cap = )\d+', r"\g<1>1", config)
    assert n == 1
    path = tmp_path / "small.toml"
    path.write_text(small, encoding="utf-8")
    hub = hub_factory({**hub_env, "QUEUECAST_CONFIG": str(path)})
    assert issue(hub, "y-te").status_code == 201
    refusal = issue(hub, "y-te")
    assert refusal.status_code == 409
    err = refusal.json()["error"]
    assert err["code"] == "daily_cap_reached" and err["next_working_day"] == "2026-05-20"

    page = new_page(viewport=PORTRAIT)
    page.goto(f"{hub.url}/kiosk/{B}")
    expect(field(page, "y-te")).to_have_class(re.compile(r"\bsold-out\b"))
    expect(field(page, "y-te").locator(".k-soldout")).to_have_text("Đã hết số hôm nay")
    before = branch(hub)
    field(page, "y-te").click()

    expect(page.locator("#refusal")).to_be_visible()
    expect(page.locator("#r-title")).to_have_text("Đã hết số hôm nay")
    expect(page.locator("#r-message")).to_have_text(err["message_vi"])
    expect(page.locator("#r-detail")).to_have_text("Ngày làm việc tiếp theo: 20/05/2026")
    assert branch(hub)["seq"] == before["seq"]
    page.locator("#r-ok").click()
    expect(page.locator("#refusal")).to_be_hidden()
    field(page, "dat-dai").click()                                  # other fields still issue
    expect(page.locator("#t-number")).to_have_text("1001")


def test_outside_hours_refusal_says_when_issuing_opens(hub_factory, hub_env, new_page):
    hub = hub_factory({**hub_env, "QUEUECAST_CLOCK": "2026-05-19T16:30:00+07:00"})
    page = new_page(viewport=LANDSCAPE)
    page.goto(f"{hub.url}/kiosk/{B}")
    expect(page.locator("#closed-banner")).to_be_visible()
    expect(page.locator("#closed-banner")).to_contain_text("08:00–16:00")
    field(page, "dat-dai").click()
    expect(page.locator("#r-title")).to_have_text("Ngoài giờ cấp số")
    expect(page.locator("#r-message")).to_contain_text("Ki-ốt cấp số từ 08:00–16:00")
    expect(page.locator("#r-detail")).to_have_text("Ki-ốt cấp số lại vào lúc 08:00 20/05/2026")


def test_staff_token_exempts_the_kiosk_from_the_address_rate_limit(hub_factory, hub_env, new_page):
    hub = hub_factory({**hub_env, "QUEUECAST_ISSUE_RATE": "2/600"})
    page = new_page(viewport=LANDSCAPE)
    page.goto(f"{hub.url}/kiosk/{B}")
    for number in ("1001", "1002"):
        field(page, "dat-dai").click()
        expect(page.locator("#t-number")).to_have_text(number)
        page.locator("#t-done").click()
    field(page, "dat-dai").click()
    expect(page.locator("#r-message")).to_contain_text("Quá nhiều yêu cầu")
    page.locator("#r-ok").click()

    staff = Tokens(SECRET).staff(B)
    page.goto(f"{hub.url}/kiosk/{B}?token={staff}&hold=5")
    assert "token" not in page.url                                  # kept in localStorage, not in the address bar
    assert page.evaluate(f"localStorage.getItem('qc.kiosk.token.{B}')") == staff
    assert staff not in page.content()
    expect(page.locator(".lang-switch")).to_have_attribute("href", f"/kiosk/{B}?hold=5&lang=en")
    expect(page.locator("#device")).to_contain_text("Ki-ốt đã đăng ký")
    for number in ("1003", "1004"):
        field(page, "dat-dai").click()
        expect(page.locator("#t-number")).to_have_text(number)
        page.locator("#t-done").click()


# -- online holders check in ------------------------------------------------------------------------

def test_online_holder_checks_in_at_the_kiosk(hub, new_page):
    citizen = Tokens(SECRET).citizen("001090123456")
    r = httpx.post(f"{hub.url}/api/branches/{B}/tickets", json={"service": "ho-tich", "channel": "online"},
                   headers={"Authorization": f"Bearer {citizen}"}, timeout=HTTP)
    assert r.status_code == 201, r.text
    online = r.json()

    page = new_page(viewport=PORTRAIT)
    page.goto(f"{hub.url}/kiosk/{B}")                               # no device token: explain, do not pretend
    page.locator("#checkin-open").click()
    expect(page.locator("#c-title")).to_have_text("Xác nhận có mặt cho số đặt trực tuyến")
    expect(page.locator("#c-nodevice")).to_be_visible()
    expect(page.locator("#c-nodevice")).to_contain_text("chưa được cài mã thiết bị")
    page.locator("#c-back").click()

    page.goto(f"{hub.url}/kiosk/{B}?token={Tokens(SECRET).staff(B)}")
    page.locator("#checkin-open").click()
    expect(page.locator("#c-nodevice")).to_be_hidden()
    page.locator("#c-input").fill(FORGED)
    page.locator("#c-input").press("Enter")
    expect(page.locator("#c-result")).to_contain_text("Không tìm thấy số thứ tự")
    page.locator("#c-input").fill(online["tracking_url"])          # what a scanner types from the QR
    page.locator("#c-input").press("Enter")
    expect(page.locator("#c-result")).to_contain_text("Đã xác nhận có mặt")
    expect(page.locator("#c-result .big")).to_have_text(online["number"])
    view = httpx.get(f"{hub.url}/api/tickets/{online['token']}", timeout=HTTP).json()
    assert view["checked_in"] is True
    page.locator("#c-input").fill(online["token"])                  # again: the hub says it is done already
    page.locator("#c-input").press("Enter")
    expect(page.locator("#c-result")).to_contain_text("đã xác nhận có mặt")


def test_english_labels_with_lang_en(hub, new_page):
    page = new_page(viewport=LANDSCAPE)
    page.goto(f"{hub.url}/kiosk/{B}?lang=en")
    expect(page.locator(".k-lead")).to_have_text("Touch the field of your matter to take a number")
    expect(page.locator("#priority")).to_contain_text("Elderly / priority")
    expect(field(page, "dat-dai").locator(".k-name")).to_have_text("Đất đai")       # Vietnamese name first
    expect(field(page, "dat-dai").locator(".k-name-en")).to_have_text("Land")
    with page.expect_request(lambda r: r.url.endswith("/tickets") and r.method == "POST") as sent:
        field(page, "dat-dai").click()
    assert sent.value.post_data_json.get("lang") == "en"     # the number's later messages in English
    page.goto(f"{hub.url}/kiosk/{B}?lang=vi")
    expect(page.locator(".k-lead")).to_have_text("Chạm vào lĩnh vực cần giải quyết để lấy số")
