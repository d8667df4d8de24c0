"""Server-rendered pages answer in Vietnamese first, from the same view as their JSON twin."""
from __future__ import annotations

import pytest

from conftest import bearer

pytestmark = pytest.mark.anyio


async def test_ticket_page_shows_the_ticket_and_its_json_twin_agrees(client):
    for _ in range(2):
        await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})
    token = (await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})).json()["token"]
    twin = (await client.get(f"/api/tickets/{token}")).json()
    page = await client.get(f"/t/{token}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'<div class="number" id="num">{twin["number"]}</div>' in page.text
    assert "Số người trước bạn" in page.text and f'<dd id="ahead">{twin["people_ahead"]}</dd>' in page.text
    assert "Đang chờ" in page.text and "Đất đai" in page.text


async def test_ticket_page_says_which_counter_when_called(client):
    token = (await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})).json()["token"]
    staff = bearer(client.app.state.tokens.staff("1"))
    await client.post("/api/branches/1/counters/2/open", json={"services": ["dat-dai"]}, headers=staff)
    await client.post("/api/branches/1/counters/2/call-next", headers=staff)
    page = await client.get(f"/t/{token}")
    assert "Số của bạn đang được gọi — mời đến quầy 2" in page.text


async def test_ticket_page_leave_by_with_travel_time(client):
    token = (await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})).json()["token"]
    twin = (await client.get(f"/api/tickets/{token}?travel_minutes=0")).json()
    page = await client.get(f"/t/{token}?travel_minutes=0")
    assert twin["leave_by"] and f'<dd id="leave">{twin["leave_by"][11:16]}</dd>' in page.text


async def test_forged_ticket_page_is_404_in_both_languages(client):
    page = await client.get("/t/bm90LWEtdGlja2V0.AAAAAAAAAAAAAAAAAAAAAA")
    assert page.status_code == 404
    assert "Không tìm thấy" in page.text and "No ticket" in page.text
