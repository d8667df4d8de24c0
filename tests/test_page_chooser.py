"""The branch chooser, /branches, in a real Chromium against a real hub process; the demo-only
citizen token route in-process."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
from playwright.sync_api import expect

from hub.auth import Tokens
from hub.domain import identity

from conftest import PHONE, SECRET, TV, running_app
from waiting import deadline

TOKENS = Tokens(SECRET)
CITIZEN = "001090123456"          # Hà Nội, male, born 1990

# What the page shows of each branch and field, read from the DOM (open or folded cards alike).
ROWS = """sel => [...document.querySelectorAll(sel)].map(li => ({
  branch: li.dataset.branch, service: li.dataset.service,
  waiting: li.querySelector('[data-k=waiting]').textContent,
  wait: (li.querySelector('[data-k=wait]') || {textContent: null}).textContent,
  left: li.querySelector('[data-k=left]').textContent}))"""








def issue(api: httpx.Client, branch: str, service: str = "dat-dai", n: int = 1) -> None:
    for _ in range(n):
        r = api.post(f"/api/branches/{branch}/tickets", json={"service": service, "channel": "kiosk"})
        assert r.status_code == 201, r.text


def branches(api: httpx.Client) -> list[dict]:
    return api.get("/api/branches").json()["branches"]


def minutes(s: dict) -> str | None:
    m = int(s["expected_wait"]["p50"] + 0.5)
    return str(m) if m >= 1 else None


def shown(s: dict) -> dict:
    return {"waiting": str(s["waiting"]), "wait": minutes(s), "left": str(s["numbers_left"])}


def sign_in(page, token: str) -> None:
    page.click("#login summary")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-sum")).to_contain_text("Đã đăng nhập")


def test_lists_every_branch_and_field_as_the_api_does(hub, api, new_page):
    issue(api, "1", n=4), issue(api, "3", "ho-tich", n=2), issue(api, "12", "cu-tru")
    before = branches(api)
    page = new_page(PHONE)
    page.goto(f"{hub.url}/branches")
    expect(page.locator("article.br")).to_have_count(12)
    rows = page.evaluate(ROWS, "article.br li.svc")
    after = branches(api)
    assert len(rows) == sum(len(b["services"]) for b in after)
    for b_before, b_after in zip(before, after):
        art = page.locator(f"article.br[data-branch='{b_after['id']}']")
        expect(art.locator("summary [data-k=waiting]")).to_have_text(str(b_after["waiting"]))
        expect(art.locator("summary")).to_contain_text(b_after["name"])
        for ch in ("kiosk", "online"):
            expect(art.locator(f"summary [data-k={ch}]")).to_have_attribute(
                "title", re.compile("đang cấp số" if b_after["issuing"][ch] else "ngoài giờ cấp số"))
        for s_before, s_after in zip(b_before["services"], b_after["services"]):
            row = next(r for r in rows if r["branch"] == b_after["id"] and r["service"] == s_after["id"])
            got = {k: row[k] for k in ("waiting", "wait", "left")}
            assert got in (shown(s_before), shown(s_after)), (b_after["id"], s_after["id"], got)
    one = next(r for r in rows if r["branch"] == "1" and r["service"] == "dat-dai")
    assert one["waiting"] == "4"
    twin = api.get("/branches?format=json").json()
    assert [b["id"] for b in twin["branches"]] == [b["id"] for b in after] and twin.keys() == {"branches"}


def test_refreshes_itself_from_its_json_twin(hub, api, new_page):
    page = new_page(PHONE)
    page.clock.install()
    page.goto(f"{hub.url}/branches")
    cell = page.locator("li.svc[data-branch='2'][data-service='dat-dai'] [data-k=waiting]")
    expect(cell).to_have_text("0")
    issue(api, "2", n=3)
    page.clock.run_for(16_000)                         # past one refresh period (15 s)
    expect(cell).to_have_text("3")
    expect(page.locator("article.br[data-branch='2'] summary [data-k=waiting]")).to_have_text("3")


def test_picking_a_field_ranks_branches_by_expected_wait(hub, api, new_page):
    issue(api, "1", n=6), issue(api, "3", n=2), issue(api, "7", n=9), issue(api, "2", n=1)
    page = new_page(PHONE)
    page.goto(f"{hub.url}/branches")
    page.select_option("#field", "dat-dai")
    rows = page.locator("ol.ranked li.svc")
    serving = [b for b in branches(api) if any(s["id"] == "dat-dai" for s in b["services"])]
    expect(rows).to_have_count(len(serving))
    assert page.url.endswith("/branches?field=dat-dai")
    order = page.evaluate("() => [...document.querySelectorAll('ol.ranked li.svc')].map(li => li.dataset.branch)")

    def wait_of(b):
        return next(s for s in b["services"] if s["id"] == "dat-dai")

    expected = sorted(serving, key=lambda b: (wait_of(b)["expected_wait"]["p50"], wait_of(b)["waiting"], int(b["id"])))
    assert order == [b["id"] for b in expected]
    waits = [wait_of(b)["expected_wait"]["p50"] for b in (next(x for x in serving if x["id"] == i) for i in order)]
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert set(order[-3:]) >= {"7"}                    # the busiest branch is among the longest waits
    expect(rows.first.locator("button.take")).to_have_text("Lấy số trực tuyến")

    page.reload()                                      # the choice survives in the address
    expect(page.locator("#field")).to_have_value("dat-dai")
    expect(page.locator("ol.ranked li.svc")).to_have_count(len(serving))
    page.select_option("#field", "")
    expect(page.locator("article.br")).to_have_count(12)


def test_take_a_number_online_with_a_pasted_token(hub, api, new_page):
    issue(api, "2", "ho-tich", n=2)
    page = new_page(PHONE)
    page.goto(f"{hub.url}/branches?field=ho-tich")
    row = page.locator("ol.ranked li.svc[data-branch='2']")

    row.locator("button.take").click()                 # not signed in yet: asked to sign in
    expect(page.locator("#login-msg")).to_have_text("Hãy đăng nhập trước khi lấy số trực tuyến.")
    page.fill("#token", "not-a-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-msg")).to_contain_text("Mã đăng nhập không đúng")
    page.fill("#token", TOKENS.staff("2"))
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-msg")).to_contain_text("không phải mã đăng nhập của công dân")

    page.fill("#token", TOKENS.citizen(CITIZEN))
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-sum")).to_contain_text("Đã đăng nhập · CCCD ••••3456")
    expect(page.locator("#who")).to_contain_text("hết hạn")
    row.locator("button.take").click()
    dialog = page.locator("#result")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Bạn đã lấy được số")
    number = page.locator("#res-num").inner_text()
    assert re.fullmatch(r"\d{4}", number)
    expect(dialog).to_contain_text("Số người trước bạn: 2")
    status = api.get("/api/branches/2").json()
    assert next(s for s in status["services"] if s["id"] == "ho-tich")["waiting"] == 3

    link = page.locator("#res-track")
    assert re.fullmatch(r"/t/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", link.get_attribute("href"))
    link.click()
    expect(page.locator("#num")).to_have_text(number)
    expect(page.locator("#field")).to_contain_text("Hộ tịch")
    token = page.url.rsplit("/t/", 1)[1]
    view = api.get(f"/api/tickets/{token}").json()
    assert view["channel"] == "online" and view["number"] == number and view["branch"] == "2"

    page.goto(f"{hub.url}/branches")                   # signed in and the number remembered
    expect(page.locator("#login-sum")).to_contain_text("Đã đăng nhập · CCCD ••••3456")
    expect(page.locator("#mine")).to_contain_text(number)


def test_refusals_show_the_hubs_vietnamese_message(hub, api, new_page):
    citizen = TOKENS.citizen(CITIZEN)
    r = api.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "online"},
                 headers={"Authorization": f"Bearer {citizen}"})
    assert r.status_code == 201, r.text
    page = new_page(TV)                                # a desktop: every branch's card is open
    page.goto(f"{hub.url}/branches")
    sign_in(page, citizen)
    page.locator("li.svc[data-branch='4'][data-service='dat-dai'] button.take").click()
    dialog = page.locator("#result")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Không lấy được số")
    expect(page.locator("#res-msg")).to_have_text("Bạn đã có số thứ tự lĩnh vực Đất đai ngày 19/05/2026.")
    page.click("#result button.close")
    expect(dialog).to_be_hidden()

    page.locator("li.svc[data-branch='4'][data-service='ho-tich'] button.take").click()   # the second of two
    expect(page.locator("#res-num")).to_be_visible()
    page.click("#result button.close")
    page.locator("li.svc[data-branch='5'][data-service='cu-tru'] button.take").click()    # a third: over the day's limit
    expect(page.locator("#res-msg")).to_have_text("Mỗi công dân được lấy tối đa 2 số thứ tự mỗi ngày làm việc.")


def test_outside_issuing_hours_says_when_booking_opens(hub_factory, hub_env, new_page):
    evening = hub_factory({**hub_env, "QUEUECAST_CLOCK": "2026-05-19T17:30:00+07:00"})
    page = new_page(PHONE)
    page.goto(f"{evening.url}/branches?field=cu-tru")
    row = page.locator("ol.ranked li.svc[data-branch='3']")
    for ch in ("kiosk", "online"):
        expect(row.locator(f"[data-k={ch}]")).to_have_class(re.compile(r"\boff\b"))
        expect(row.locator(f"[data-k={ch}]")).to_have_attribute("title", re.compile("ngoài giờ cấp số"))
    sign_in(page, TOKENS.citizen(CITIZEN))
    row.locator("button.take").click()
    expect(page.locator("#res-msg")).to_have_text("Hiện chưa cấp số trực tuyến; có thể đăng ký từ 20:00 19/05/2026.")


def test_demo_citizen_token_is_not_there_on_a_normal_hub(hub, api, new_page):
    r = api.post("/demo/citizen-token")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    page = new_page(PHONE)
    page.goto(f"{hub.url}/branches")
    expect(page.locator("#demo-login")).to_have_count(0)


def test_demo_citizen_token_in_the_demo(settings, clock):
    async def main():
        async with running_app(settings, clock, demo=True) as client:
            r = await client.post("/demo/citizen-token")
            assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
            claims = client.app.state.tokens.verify(r.json()["token"])
            assert claims.kind == "citizen" and identity.validate_cccd(claims.cccd)
            issued = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "online"},
                                       headers={"Authorization": f"Bearer {r.json()['token']}"})
            assert issued.status_code == 201, issued.text
            page = await client.get("/branches")
            assert "Đăng nhập thử (VNeID mô phỏng)" in page.text and 'id="demo-login"' in page.text
        async with running_app(settings, clock) as client:
            assert (await client.post("/demo/citizen-token")).status_code == 404
            assert 'id="demo-login"' not in (await client.get("/branches")).text

    # In a thread of its own: a Playwright test of this module may have its event loop open in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, main).result(timeout=deadline(60))


def test_english_labels(hub, new_page):
    page = new_page(PHONE)
    page.goto(f"{hub.url}/branches?lang=en")
    expect(page.locator("h1")).to_have_text("Choose a branch and take a number")
    expect(page.locator("#field option").first).to_have_text("All fields")
    expect(page.locator("article.br[data-branch='1'] summary")).to_contain_text("Branch No. 1")
