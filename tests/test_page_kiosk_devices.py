"""Kiosk devices in a real headless Chromium against real hub processes on the bundled configuration
(no lobby network): an unenrolled kiosk says what to do, is enrolled by the admin page's one-time
link (which leaves no trace in the address bar), then issues numbers with its device token; a
revoked kiosk asks to be enrolled again. And the admin page enrols and revokes devices."""
from __future__ import annotations

import httpx
from playwright.sync_api import expect

from hub.auth import Tokens

from conftest import SECRET, bearer
from waiting import deadline

B = "1"
PORTRAIT = {"width": 1080, "height": 1920}
HTTP = deadline(30)
MANAGER = bearer(Tokens(SECRET).staff(B))
TOKEN_KEY = "qc.kiosk.token.1"


def bare_env(hub_env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in hub_env.items() if k != "QUEUECAST_CONFIG"}


def devices(api: httpx.Client) -> list[dict]:
    r = api.get(f"/api/branches/{B}/kiosks", headers=MANAGER)
    assert r.status_code == 200, r.text
    return r.json()["devices"]


def test_an_unenrolled_kiosk_says_what_to_do_then_enrols_by_its_one_time_link_and_issues(hub_factory, hub_env,
                                                                                           new_page):
    hub = hub_factory(bare_env(hub_env))
    with httpx.Client(base_url=hub.url, timeout=HTTP) as api:
        page = new_page(viewport=PORTRAIT)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{hub.url}/kiosk/{B}")
        enrol = page.locator("#enrol")
        expect(enrol).to_be_visible()
        text = enrol.inner_text()
        vi, en = text.find("Ki-ốt này chưa được đăng ký"), text.find("This kiosk is not enrolled")
        assert 0 <= vi < en, text                                         # Vietnamese first, English second
        assert "cán bộ quản lý chi nhánh" in text and "ask the branch manager" in text
        assert api.get(f"/api/branches/{B}").json()["seq"] == 0            # nothing issued, nothing logged

        # The branch manager enrols it on the admin page; the kiosk opens the one-time link.
        made = api.post(f"/api/branches/{B}/kiosks", json={"name": "Sảnh tầng 1"}, headers=MANAGER).json()
        assert made["enrol_url"].startswith(hub.url)
        page.goto(made["enrol_url"])
        expect(page.locator("#device")).to_have_text("● Ki-ốt đã đăng ký: Sảnh tầng 1")
        assert "enrol" not in page.url and page.evaluate("location.hash + location.search") == ""   # replaceState
        assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')").startswith("qc1.")
        expect(enrol).to_be_hidden()

        page.locator('.k-field[data-service="ho-tich"]').click()
        expect(page.locator("#t-number")).to_have_text("2001")
        [device] = devices(api)
        assert (device["device"], device["state"], device["issued_today"]) == (made["device"], "active", 1)

        # The link works once: another kiosk given it is told so, in words.
        other = new_page(viewport=PORTRAIT)
        other.goto(made["enrol_url"])
        expect(other.locator("#e-result")).to_contain_text("đã được sử dụng")
        expect(other.locator("#enrol")).to_be_visible()
        assert other.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None

        # Revoked: the next touch is refused, the token forgotten, the kiosk asks to be enrolled again.
        assert api.delete(f"/api/branches/{B}/kiosks/{made['device']}", headers=MANAGER).status_code == 200
        expect(page.locator("#issued")).to_be_hidden()
        page.locator('.k-field[data-service="ho-tich"]').click()
        expect(page.locator("#refusal")).to_be_visible()
        expect(page.locator("#r-message")).to_contain_text("thu hồi")
        expect(enrol).to_be_visible()
        assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None
        assert devices(api)[0]["issued_today"] == 1
        assert errors == []


def test_a_pasted_device_token_or_code_enrols_the_kiosk(hub_factory, hub_env, new_page):
    hub = hub_factory(bare_env(hub_env))
    with httpx.Client(base_url=hub.url, timeout=HTTP) as api:
        made = api.post(f"/api/branches/{B}/kiosks", json={}, headers=MANAGER).json()
        page = new_page(viewport=PORTRAIT)
        page.goto(f"{hub.url}/kiosk/{B}?lang=en")
        expect(page.locator("#enrol")).to_be_visible()
        page.fill("#e-input", "not a code")
        page.click("#e-submit")
        expect(page.locator("#e-result")).to_contain_text("not an enrolment code")
        page.fill("#e-input", made["enrol_code"])                          # scanned or pasted
        page.click("#e-submit")
        expect(page.locator("#device")).to_have_text("● Registered kiosk: Ki-ốt 1")
        expect(page.locator("#enrol")).to_be_hidden()
        page.locator('.k-field[data-service="dat-dai"]').click()
        expect(page.locator("#t-number")).to_have_text("1001")
        assert devices(api)[0]["issued_today"] == 1


def test_the_admin_page_enrols_and_revokes_kiosks(hub_factory, hub_env, new_page):
    hub = hub_factory(bare_env(hub_env))
    token = Tokens(SECRET).staff(B)
    with httpx.Client(base_url=hub.url, timeout=HTTP) as api:
        page = new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{hub.url}/admin/{B}?token={token}")
        expect(page.locator("#no-kiosks")).to_be_visible()
        page.fill("#kiosk-name", "Sảnh B")
        page.click("#kiosk-enrol button[type=submit]")
        expect(page.locator("#kiosk-enrolment")).to_be_visible()
        expect(page.locator("#kiosk-msg")).to_contain_text("Sảnh B")
        link = page.locator("#kiosk-link").inner_text()
        code = page.locator("#kiosk-code").inner_text()
        assert link.endswith(f"/kiosk/{B}#enrol={code}")
        expect(page.locator("#kiosk-qr svg")).to_be_visible()
        row = page.locator("#kiosks-table tbody tr")
        expect(row).to_have_attribute("data-state", "pending")

        r = api.post(f"/api/branches/{B}/kiosks/enrol", json={"code": code})      # the kiosk uses the link
        assert r.status_code == 200
        assert api.post(f"/api/branches/{B}/tickets", json={"service": "ho-tich", "channel": "kiosk"},
                        headers=bearer(r.json()["token"])).status_code == 201
        page.reload()
        expect(row).to_have_attribute("data-state", "active")
        expect(row.locator('[data-col="issued_today"]')).to_have_text("1")

        page.on("dialog", lambda d: d.accept())
        row.locator("button[data-revoke]").click()
        expect(row).to_have_attribute("data-state", "revoked")
        expect(page.locator("#kiosk-msg")).to_contain_text("Đã thu hồi ki-ốt Sảnh B")
        assert devices(api)[0]["state"] == "revoked"
        assert errors == []
