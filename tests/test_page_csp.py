"""Every page under its Content-Security-Policy in a real Chromium, against a real hub process: the
headers are there, nothing the page does is refused by the policy (no `securitypolicyviolation`
event, no "Content Security Policy" console message, no script error), and the policy does refuse
what it is meant to (an inline script; a console in a frame), which shows the listeners listen."""
from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from hub.auth import Tokens

from conftest import PHONE, SECRET, TV, bearer
from waiting import deadline, page_sleep, wait_until

B = "1"
TOKENS = Tokens(SECRET)
CITIZEN_ID = "001090123456"
CSP = "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

# Installed before any of the page's own scripts, in every frame: the violations the page reports.
LISTEN = """() => {
  window.__csp = [];
  document.addEventListener("securitypolicyviolation",
    e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
}"""


def take_online_number(url: str, service: str = "dat-dai") -> dict:
    r = httpx.post(f"{url}/api/branches/{B}/tickets", json={"service": service, "channel": "online"},
                   headers=bearer(TOKENS.citizen(CITIZEN_ID)), timeout=deadline(30))
    assert r.status_code == 201, r.text
    return r.json()


class Watched:
    """A page with every CSP complaint and script error it raises recorded."""

    def __init__(self, new_page, viewport):
        self.page = new_page(viewport=viewport)
        self.console: list[str] = []
        self.errors: list[str] = []
        self.page.add_init_script(f"({LISTEN})()")
        self.page.on("console", lambda m: self.console.append(m.text) if "Content Security Policy" in m.text else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def violations(self) -> list[str]:
        reported = [v for f in self.page.frames if not f.is_detached()
                    for v in (f.evaluate("window.__csp || []") if f.url.startswith("http") else [])]
        return reported + self.console


# (path, viewport, a locator that shows the page's scripts have done their work)
def pages(ticket: dict, staff: str) -> list[tuple[str, dict, str | None]]:
    token = ticket["token"]
    return [
        ("/", TV, None),
        ("/api", TV, None),
        ("/branches", PHONE, "article.br"),
        (f"/display/{B}", TV, "body[data-feed=live]"),
        (f"/kiosk/{B}", TV, ".k-field"),
        (f"/kiosk/{B}/ticket?token={token}", PHONE, ".qr"),
        (f"/t/{token}", PHONE, "#live.is-live"),
        (f"/counter/{B}/1", TV, None),                          # the token screen
        (f"/counter/{B}/1?token={staff}", TV, "#app"),
        (f"/admin/{B}", TV, None),                              # the token screen (answered 401)
        (f"/admin/{B}?token={staff}", TV, "#conn.online"),
    ]


def test_every_page_runs_under_the_policy_without_a_violation(hub, new_page):
    ticket = take_online_number(hub.url)
    staff = TOKENS.staff(B)
    for path, viewport, ready in pages(ticket, staff):
        w = Watched(new_page, viewport)
        response = w.page.goto(hub.url + path)
        assert response is not None and response.status == (401 if path == f"/admin/{B}" else 200), path
        headers = response.headers
        framed_by_kiosk = path.startswith(f"/kiosk/{B}/ticket")
        assert headers["content-security-policy"] == (CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
                                                      if framed_by_kiosk else CSP), path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        if path.startswith(("/admin/", "/counter/")):
            assert headers["cache-control"] == "no-store", path
        if ready:
            expect(w.page.locator(ready).first).to_be_attached()
        w.page.wait_for_load_state("load")
        assert w.violations() == [], path
        assert w.errors == [], path
        w.page.context.close()


def test_the_listeners_see_what_the_policy_refuses(hub, new_page):
    """An inline script is refused and reported: the empty lists above mean something."""
    w = Watched(new_page, TV)
    w.page.goto(f"{hub.url}/display/{B}")
    w.page.evaluate("""() => { const s = document.createElement("script");
                               s.textContent = "window.__ran = true"; document.body.append(s); }""")
    wait_until(lambda: any("script-src" in v for v in w.violations()), "the inline script's violation reported",
               sleep=page_sleep(w.page))
    assert w.page.evaluate("window.__ran === undefined")


@pytest.mark.parametrize("console", [f"/admin/{B}", f"/counter/{B}/1", "/t/{token}"])
def test_no_page_can_be_framed_but_the_ticket_the_kiosk_prints(hub, new_page, console):
    """frame-ancestors 'none': not even a page of the hub's own origin may frame a console (a
    framing page could make staff click) or a tracking page; the kiosk frames its printable ticket."""
    ticket = take_online_number(hub.url)
    w = Watched(new_page, TV)
    w.page.goto(f"{hub.url}/kiosk/{B}")
    frame_in = """([id, src]) => { const f = document.createElement("iframe"); f.id = id; f.src = src;
                                   document.body.append(f); }"""
    w.page.evaluate(frame_in, ["printable", f"/kiosk/{B}/ticket?embed=1&token={ticket['token']}"])
    w.page.evaluate(frame_in, ["console", console.format(token=ticket["token"])])
    printable = w.page.frame_locator("#printable")
    expect(printable.locator(".qr")).to_be_attached()
    wait_until(lambda: any("frame-ancestors" in m for m in w.console), "the console's framing refused",
               sleep=page_sleep(w.page))
    framed = w.page.locator("#console").element_handle().content_frame()
    # Chromium shows its own error page in the refused frame: none of the console's document is there.
    assert framed is not None and not re.search(r"/(admin|counter|t)/", framed.url), framed and framed.url
    assert w.errors == []
