"""The branch manager's page /admin/{branch}: staff only, figures equal to day_stats of the day's
log, charts as labelled SVG, ratings with their comments (never public), live without reload.

The in-process tests run the app on an event loop of their own thread (`inproc`): once a test of
the session has started the shared sync Playwright browser, the main thread counts as running a
loop, and an anyio test there could not start one (see the report on tests/conftest.py)."""
from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from displays.stats import day_stats
from hub.clock import ManualClock
from hub.settings import Settings

from conftest import SECRET, TUESDAY_9AM, bearer, running_app
from waiting import deadline, wait_for_page

TEST_SECONDS = deadline(60)      # one in-process test body, scaled




@pytest.fixture
def inproc(tmp_path, lobby_config):
    """inproc(body): runs `async body(client, clock)` against the real app in-process (lifespan and
    all, a real SQLite file, a ManualClock at Tuesday 09:00) on a fresh event loop in a thread."""
    def run(body) -> None:
        settings = Settings(database=f"sqlite:///{tmp_path}/queuecast.db", secret=SECRET, issue_rate="1000/60",
                            notifier="worker", config=lobby_config)

        async def main() -> None:
            clock = ManualClock(TUESDAY_9AM)
            async with running_app(settings, clock) as client:
                await asyncio.wait_for(body(client, clock), TEST_SECONDS)

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, main()).result(timeout=TEST_SECONDS + deadline(10))
    return run

COMMENT = "Cán bộ hướng dẫn nhiệt tình"


def staff(client, branch: str = "1", counter: str | None = None) -> dict:
    return bearer(client.app.state.tokens.staff(branch, counter))


async def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


async def scripted_morning(client, clock) -> dict:
    """Two counters, seven numbers (one online), calls, a served number, a no-show, a rating."""
    h = staff(client)
    await ok(await client.post("/api/branches/1/counters/1/open", json={"services": ["dat-dai"]}, headers=h))
    await ok(await client.post("/api/branches/1/counters/6/open", json={"services": ["ho-tich"]}, headers=h))
    tickets = {}
    for service in ("dat-dai", "dat-dai", "ho-tich", "dat-dai", "ho-tich", "dat-dai"):
        body = await ok(await client.post("/api/branches/1/tickets", json={"service": service, "channel": "kiosk"}), 201)
        tickets[body["number"]] = body["token"]
        clock.advance(minutes=2)
    citizen = bearer(client.app.state.tokens.citizen("001085123456"))
    body = await ok(await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "online"},
                                      headers=citizen), 201)
    tickets[body["number"]] = body["token"]
    clock.advance(minutes=3)
    assert (await ok(await client.post("/api/branches/1/counters/1/call-next", headers=h)))["ticket"]["number"] == "1001"
    clock.advance(minutes=9)
    await ok(await client.post("/api/branches/1/counters/1/call-next", headers=h))           # 1001 served, 1002 called
    clock.advance(minutes=2)
    await ok(await client.post("/api/branches/1/tickets/1002/skip", headers=h))               # a kiosk no-show
    await ok(await client.post("/api/branches/1/counters/6/call-next", headers=h))           # 2001
    clock.advance(minutes=4)
    await ok(await client.post("/api/branches/1/counters/1/call-next", headers=h))           # 1003
    await ok(await client.post("/api/branches/1/tickets/2001/complete", headers=h))
    clock.advance(minutes=1)
    await ok(await client.post(f"/api/tickets/{tickets['1001']}/rating", json={"score": 4, "comment": COMMENT}))
    return tickets


def cell(html: str, attr: str, key: str) -> str:
    m = re.search(rf'{attr}="{re.escape(key)}"[^>]*>([^<]*)<', html)
    assert m, f"{attr}={key} not in page"
    return m.group(1).strip()


# -- who may look ---------------------------------------------------------------------------------

def test_without_a_token_the_twin_is_401_and_the_page_asks_for_a_staff_code(inproc):
    async def body(client, clock):
        twin = await client.get("/admin/1?format=json")
        assert twin.status_code == 401 and twin.json()["error"]["code"] == "token_required"
        assert twin.headers["www-authenticate"] == "Bearer"
        page = await client.get("/admin/1")
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        assert "Cần mã cán bộ" in page.text and 'name="token"' in page.text
        assert 'data-reason="missing"' in page.text
        assert "Staff code needed" in (await client.get("/admin/1?lang=en")).text
        assert (await client.get("/admin/1", headers={"Accept": "application/json"})).status_code == 401

    inproc(body)


def test_a_bad_token_is_401_and_another_branchs_or_a_citizens_is_403(inproc):
    async def body(client, clock):
        bad = await client.get("/admin/1?format=json", headers={"Authorization": "Bearer qc1.forged.token"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_token"
        page = await client.get("/admin/1?token=qc1.forged.token")
        assert page.status_code == 401 and "không hợp lệ" in page.text and "set-cookie" not in page.headers
        other = await client.get("/admin/1?format=json", headers=staff(client, "2"))
        assert other.status_code == 403 and other.json()["error"]["code"] == "wrong_branch"
        other_page = await client.get("/admin/1", headers=staff(client, "2"))
        assert other_page.status_code == 403 and "chi nhánh khác" in other_page.text
        assert 'data-reason="other_branch"' in other_page.text and "Đang chờ" not in other_page.text
        citizen = bearer(client.app.state.tokens.citizen("001085123456"))
        assert (await client.get("/admin/1?format=json", headers=citizen)).status_code == 403
        assert (await client.get("/admin/99?format=json", headers=staff(client))).status_code == 404

    inproc(body)


def test_a_token_in_the_address_is_kept_in_an_httponly_cookie_for_this_page_only(inproc):
    async def body(client, clock):
        token = client.app.state.tokens.staff("1")
        first = await client.get(f"/admin/1?token={token}")
        assert first.status_code == 200
        cookie = first.headers["set-cookie"]
        assert "qc_staff=" in cookie and "HttpOnly" in cookie and "Path=/admin/1" in cookie
        assert "samesite=strict" in cookie.lower()
        assert first.headers["cache-control"] == "no-store"
        again = await client.get("/admin/1?format=json")                  # the client sends the cookie back
        assert again.status_code == 200 and again.json()["branch"]["id"] == "1"
        client.cookies.clear()
        assert (await client.get("/admin/1?format=json")).status_code == 401

    inproc(body)


def test_a_counter_token_of_the_branch_may_look(inproc):
    async def body(client, clock):
        assert (await client.get("/admin/1?format=json", headers=staff(client, "1", "5"))).status_code == 200

    inproc(body)


# -- what it shows --------------------------------------------------------------------------------

def test_the_page_shows_the_days_figures_as_day_stats_computes_them(inproc):
    async def body(client, clock):
        await scripted_morning(client, clock)
        h = staff(client)
        twin = await ok(await client.get("/admin/1?format=json", headers=h))
        service = client.app.state.service
        day = clock.now().date()
        expected = day_stats(service.state("1").config, await service.events_of_day("1", day), clock.now(), day=day)
        assert twin["stats"] == json.loads(json.dumps(expected))
        s = twin["stats"]
        land = next(f for f in s["fields"] if f["id"] == "dat-dai")
        civil = next(f for f in s["fields"] if f["id"] == "ho-tich")
        assert (land["issued"], land["served"], land["waiting"], land["noshows"], land["at_counter"]) == (5, 1, 2, 1, 1)
        assert (civil["issued"], civil["served"], civil["waiting"]) == (2, 1, 1)
        assert land["wait_by_channel"]["online"]["count"] == 0 and land["wait_by_channel"]["kiosk"]["count"] == 3
        assert s["ratings"]["count"] == 1 and s["ratings"]["comments"][0]["comment"] == COMMENT
        # The live part is the board's view of the branch, and agrees with the figures.
        live = twin["live"]
        assert {q["id"]: q["waiting"] for q in live["services"]}["dat-dai"] == land["waiting"]
        assert live["waiting"] == s["totals"]["waiting"]
        assert {c["id"]: c["current"]["number"] for c in live["counters"] if c["current"]} == {"1": "1003"}
        assert twin["outbox"]["available"] is True and twin["outbox"]["dead"] == []   # (tests/test_page_outbox.py)

        page = await client.get("/admin/1", headers=h)
        assert page.status_code == 200
        html = page.text
        assert cell(html, "data-waiting", "dat-dai") == "2" and cell(html, "data-waiting", "ho-tich") == "1"
        assert cell(html, "data-kpi", "served") == str(s["totals"]["served"]) == "2"
        assert cell(html, "data-kpi", "noshows") == "1" and cell(html, "data-kpi", "issued") == "7"
        row = re.search(r'<tr data-field="dat-dai">(.*?)</tr>', html, re.S).group(1)
        assert re.search(r'data-col="noshows">1<', row) and re.search(r'data-col="served">1<', row)
        assert cell(html, "data-rating", "count") == "1" and cell(html, "data-score", "4") == "1"
        assert COMMENT in html
        assert "Hộp thư thông báo (outbox)" in html
        assert "Quản lý chi nhánh" in html and "Hàng chờ theo lĩnh vực" in html

    inproc(body)


def test_charts_are_inline_svg_with_titles_and_labels(inproc):
    async def body(client, clock):
        await scripted_morning(client, clock)
        html = (await client.get("/admin/1", headers=staff(client))).text
        svgs = re.findall(r"<svg class=\"chart\".*?</svg>", html, re.S)
        assert len(svgs) == 4
        for svg in svgs:
            assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg and "aria-labelledby" in svg
        wait, channel, hours, ratings = svgs
        assert "Thời gian chờ theo lĩnh vực" in wait and ">Đất đai</text>" in wait and ">Hộ tịch</text>" in wait
        assert ">Ki-ốt</text>" in channel and ">Trực tuyến</text>" in channel
        assert re.search(r">09h\*?</text>", hours) and "<polyline" in hours and ">Quầy làm việc</text>" in hours
        assert ">4 ★</text>" in ratings and "1 lượt đánh giá" in ratings
        en = (await client.get("/admin/1?lang=en", headers=staff(client))).text
        assert "Wait by field (minutes)" in en and ">Land</text>" in en and "Branch management" in en
        assert "Queues by field" in en and "Notification outbox" in en

    inproc(body)


def test_comments_stay_off_every_public_view(inproc):
    async def body(client, clock):
        tickets = await scripted_morning(client, clock)
        assert COMMENT not in (await client.get("/api/branches/1")).text
        assert COMMENT not in (await client.get(f"/api/tickets/{tickets['1001']}")).text
        assert COMMENT not in (await client.get("/admin/1")).text
        assert COMMENT not in (await client.get("/admin/1", headers=staff(client, "2"))).text

    inproc(body)


def test_an_earlier_day_and_a_bad_day(inproc):
    async def body(client, clock):
        await scripted_morning(client, clock)
        h = staff(client)
        before = await ok(await client.get("/admin/1?format=json&day=2026-05-18", headers=h))
        assert before["day"] == "2026-05-18" and before["stats"]["totals"]["issued"] == 0 and not before["today"]
        bad = await client.get("/admin/1?format=json&day=yesterday", headers=h)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_day"

    inproc(body)


def test_figures_follow_new_events_between_reads(inproc):
    async def body(client, clock):
        """The page keeps the day's events between reads and adds only what is new: it never misses one."""
        await scripted_morning(client, clock)
        h = staff(client)
        first = await ok(await client.get("/admin/1?format=json", headers=h))
        await ok(await client.post("/api/branches/1/tickets", json={"service": "ho-tich", "channel": "kiosk"}), 201)
        clock.advance(minutes=1)
        await ok(await client.post("/api/branches/1/counters/6/call-next", headers=h))
        second = await ok(await client.get("/admin/1?format=json", headers=h))
        assert second["seq"] == first["seq"] + 2 == second["stats"]["seq"]
        assert second["stats"]["totals"]["issued"] == first["stats"]["totals"]["issued"] + 1
        service = client.app.state.service
        day = clock.now().date()
        fresh = day_stats(service.state("1").config, await service.events_of_day("1", day), clock.now(), day=day)
        assert second["stats"] == json.loads(json.dumps(fresh))

    inproc(body)


# -- in a browser, against a real hub -------------------------------------------------------------------

def test_the_page_updates_itself_after_a_call_and_keeps_the_token(hub_factory, hub_env, new_page):
    hub = hub_factory(hub_env)
    from hub.auth import Tokens

    from conftest import SECRET

    token = Tokens(SECRET).staff("1")
    h = bearer(token)
    with httpx.Client(base_url=hub.url, timeout=deadline(30)) as api:
        assert api.post("/api/branches/1/counters/1/open", json={"services": ["dat-dai"]}, headers=h).status_code == 200
        for _ in range(2):
            assert api.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"}).status_code == 201

        page = new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{hub.url}/admin/1?token={token}")
        page.wait_for_selector("#conn.online")
        assert "token=" not in page.url                                    # dropped from the address bar
        assert page.evaluate("localStorage.getItem('qc_staff_token:1')") == token
        waiting = page.locator('[data-waiting="dat-dai"]')
        assert waiting.inner_text() == "2"
        assert page.locator('#counters-table tr[data-counter="1"] .current').inner_text() == "—"
        page.evaluate("window.__notReloaded = true")

        assert api.post("/api/branches/1/counters/1/call-next", headers=h).status_code == 200
        wait_for_page(page, "document.querySelector('[data-waiting=\"dat-dai\"]').textContent.trim() === '1'")
        assert "1001" in page.locator('#counters-table tr[data-counter="1"] .current').inner_text()
        assert page.locator('[data-kpi="at_counter"]').inner_text() == "1"
        assert page.evaluate("window.__notReloaded === true")               # updated in place
        assert page.locator("svg.chart").count() == 4

        page.reload()                                                       # the cookie keeps it open
        page.wait_for_selector("#admin")
        assert page.locator('[data-waiting="dat-dai"]').inner_text() == "1"
        assert errors == []


def test_the_token_screen_takes_a_code_and_forgets_a_refused_one(hub_factory, hub_env, new_page):
    hub = hub_factory(hub_env)
    from hub.auth import Tokens

    from conftest import SECRET

    page = new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{hub.url}/admin/1")
    assert page.locator("h1").inner_text() == "Cần mã cán bộ"
    page.fill("#token", Tokens(SECRET).staff("1"))
    page.click("button[type=submit]")
    page.wait_for_selector("#admin")
    assert "token=" not in page.url and page.locator("h1").inner_text().startswith("Quản lý chi nhánh")

    other = new_page(viewport={"width": 1280, "height": 800})
    other.goto(f"{hub.url}/admin/1?token={Tokens(SECRET).staff('2')}")
    assert other.locator("h1").inner_text() == "Cần mã cán bộ"
    assert "chi nhánh khác" in other.locator(".alert").inner_text()
    assert other.evaluate("localStorage.getItem('qc_staff_token:1')") is None
