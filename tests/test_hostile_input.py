"""Input nobody honest sends (issue 14): non-ASCII in tokens, lone surrogates and control characters
in JSON text, bodies that are not application/json. Each gets a 4xx in the contract's shape, never
a 5xx, and changes nothing: the log is the same after as before."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import httpx
import pytest
import websockets

from conftest import bearer, push_subscription
from waiting import deadline

pytestmark = pytest.mark.anyio

B, LAND = "1", "dat-dai"
KIOSK = {"service": LAND, "channel": "kiosk"}
# What a fuzzer or an attacker puts where a token goes: a letter with a diacritic, a lone
# surrogate percent-encoded as UTF-8 would have it (invalid), a NUL, an emoji.
TOKENS = ["bảo.x", "qc1.é.x", "%ED%A0%80.x", "a%00b.c", "\U0001f600.x"]


def shape(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str)
    if code is not None:
        assert err["code"] == code, err
    return err


async def log_of(client) -> list[dict]:
    return await client.app.state.storage.log.events_since(B, 0)


async def a_number(client) -> dict:
    r = await client.post(f"/api/branches/{B}/tickets", json=KIOSK)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("token", TOKENS)
async def test_a_ticket_token_that_is_not_ascii_is_not_found_on_every_ticket_endpoint(client, token):
    await a_number(client)
    before = await log_of(client)
    path = quote(token, safe="%.")
    for method, url, body in [("GET", f"/api/tickets/{path}", None), ("DELETE", f"/api/tickets/{path}", None),
                              ("POST", f"/api/tickets/{path}/notifications", {"channel": "sms", "phone": "0912345678"}),
                              ("DELETE", f"/api/tickets/{path}/notifications/sms", None),
                              ("POST", f"/api/tickets/{path}/rating", {"score": 5}),
                              ("GET", f"/kiosk/{B}/ticket?token={path}", None)]:
        r = await client.request(method, url, json=body)
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
        if r.headers.get("content-type", "").startswith("application/json"):
            shape(r, r.status_code)
    r = await client.get(f"/t/{path}", headers={"Accept": "text/html"})
    assert r.status_code == 404, r.text
    assert await log_of(client) == before


@pytest.mark.parametrize("header", ["Bearer qc1.bảo.x", "Bearer qc1.e30.\u00e9", "Bearer \u00ff\u00fe"])
async def test_a_bearer_token_that_is_not_ascii_is_unauthorized(client, header):
    before = await log_of(client)
    # httpx sends header values as latin-1 (or UTF-8 bytes), as a hostile client would
    raw = header.encode("utf-8")
    r = await client.post(f"/api/branches/{B}/counters/1/call-next", json={}, headers=[(b"Authorization", raw)])
    shape(r, 401, "invalid_token")
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"},
                          headers=[(b"Authorization", raw)])
    shape(r, 401, "invalid_token")
    r = await client.get(f"/counter/{B}/1?format=json&token={quote(header[7:])}")
    assert r.status_code in (401, 403), r.text
    assert await log_of(client) == before


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "bell\x07", "nul\x00", "esc\x1b[31m", "del\x7f"])
async def test_surrogates_and_control_characters_are_refused_where_they_come_in(client, tokens, text):
    mine = await a_number(client)
    before = await log_of(client)
    sub = {"endpoint": f"https://fcm.googleapis.com/fcm/send/{text}", "keys": {"p256dh": "x", "auth": "y"}}
    for url, body, headers in [
        (f"/api/tickets/{mine['token']}/rating", {"score": 4, "comment": f"quầy nhanh {text}"}, {}),
        (f"/api/tickets/{mine['token']}/notifications", {"channel": "push", "subscription": sub}, {}),
        (f"/api/tickets/{mine['token']}/notifications", {"channel": "sms", "phone": "0912345678", text: 1}, {}),
        (f"/api/branches/{B}/tickets", {**KIOSK, "lang": text}, {}),
        ("/api/outbox/redrive", {"key": f"1/x:issued:sms{text}"}, bearer(tokens.staff(B))),
    ]:
        # json.dumps writes the lone surrogate as the escape \\ud800, as a hostile client would
        r = await client.post(url, content=json.dumps(body), headers={"Content-Type": "application/json", **headers})
        shape(r, 422, "invalid_text")
    assert await log_of(client) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None, "application/jsonp", "text/json"])
async def test_mutating_calls_take_application_json_only(client, tokens, content_type):
    """A page on another site can POST text/plain or a form without a CORS preflight; it cannot
    send application/json. Measured before: the kiosk endpoint took text/plain."""
    mine = await a_number(client)
    before = await log_of(client)
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(KIOSK).encode()
    for url, extra in [(f"/api/branches/{B}/tickets", {}),
                       (f"/api/branches/{B}/counters/1/open", bearer(tokens.staff(B))),
                       (f"/api/tickets/{mine['token']}/rating", {}),
                       (f"/api/tickets/{mine['token']}/notifications", {})]:
        r = await client.post(url, content=body, headers={**headers, **extra})
        shape(r, 415, "unsupported_media_type")
    assert await log_of(client) == before
    # No body at all stays fine where none is needed (call-next), and JSON with a charset is JSON.
    r = await client.post(f"/api/branches/{B}/counters/1/open", headers=bearer(tokens.staff(B)))
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/branches/{B}/tickets", content=body,
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text


async def test_a_ticket_feed_named_by_a_token_that_is_not_ascii_is_refused_not_failed(hub):
    """Measured before: 503 on the SSE ticket feed, close 1013 on the WebSocket one."""
    ws_base = hub.url.replace("http", "ws")
    async with httpx.AsyncClient(base_url=hub.url, timeout=deadline(30)) as http:
        for token in TOKENS:
            path = quote(token, safe="%.")
            r = await http.get(f"/sse/tickets/{path}")
            assert r.status_code == 404, (token, r.status_code, r.text)
            shape(r, 404)
            try:
                async with websockets.connect(f"{ws_base}/ws/tickets/{path}", open_timeout=deadline(30)) as ws:
                    await asyncio.wait_for(ws.recv(), deadline(30))
                    raise AssertionError("a frame for a forged ticket")
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4404, (token, closed.rcvd)
            except websockets.InvalidStatus as refused:
                assert refused.response.status_code == 404, token


async def test_errors_quote_at_most_an_excerpt_of_the_input(client, tokens):
    """Measured before: an error echoing its input whole was 70 KB long."""
    huge, staff = "x" * 12_000, bearer(tokens.staff(B))
    answers = [await client.get(f"/api/branches/{huge}"),
               await client.post(f"/api/branches/{B}/tickets/1001/{huge}", json={}, headers=staff),
               await client.post(f"/api/branches/{B}/tickets", json={"service": huge, "channel": "kiosk"}),
               await client.post(f"/api/branches/{B}/counters/{huge}/open", json={}, headers=bearer(tokens.staff(B))),
               await client.post("/api/outbox/redrive", json={huge: 1}, headers=staff),
               await client.get(f"/ws/branches/{B}", params={"since": huge})]
    for r in answers:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
        assert len(r.content) < 1_000, (r.request.url.path[:60], len(r.content))


async def test_priority_is_for_staff_to_give(client, tokens):
    """Measured before: `priority: true` was honoured from an anonymous kiosk request and from an
    online citizen born in 1990. Staff (at the counter, or at a kiosk they enrolled) may give it;
    age gives it by itself (75+ by the CCCD)."""
    before = await log_of(client)
    young = bearer(tokens.citizen("001090123456"))
    for body, headers in [({**KIOSK, "priority": True}, {}),
                          ({"service": LAND, "channel": "online", "priority": True}, young)]:
        r = await client.post(f"/api/branches/{B}/tickets", json=body, headers=headers)
        shape(r, 403, "priority_not_allowed")
    assert await log_of(client) == before
    r = await client.post(f"/api/branches/{B}/tickets", json={**KIOSK, "priority": True},
                          headers=bearer(tokens.staff(B)))
    assert r.status_code == 201 and r.json()["priority"] is True, r.text
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"},
                          headers=bearer(tokens.citizen("001045012345")))          # born 1945
    assert r.status_code == 201 and r.json()["priority"] is True, r.text


async def test_a_number_too_large_for_a_double_is_refused_not_failed(client):
    """Found by schemathesis: a JSON integer of 400 digits reached float() (travel_minutes) and
    math.isfinite() (a push subscription's expirationTime), which raise OverflowError: a 500. Such a
    number is read as a double reads it (inf) and refused as out of range."""
    t = await a_number(client)
    huge = "1" + "0" * 400
    sub = json.dumps({**push_subscription(), "expirationTime": 0}).replace('"expirationTime": 0', f'"expirationTime": {huge}')
    before = await log_of(client)
    for body, code in [(f'{{"channel": "sms", "phone": "0912345678", "travel_minutes": {huge}}}', "invalid_travel_minutes"),
                       (f'{{"channel": "push", "subscription": {sub}}}', "invalid_subscription"),
                       (f'{{"channel": "sms", "phone": "0912345678", "ahead": {huge}}}', "invalid_field")]:
        r = await client.post(f"/api/tickets/{t['token']}/notifications", content=body,
                              headers={"Content-Type": "application/json"})
        shape(r, 422, code)
    assert await log_of(client) == before


async def test_a_whole_number_may_be_written_as_a_float(client):
    """JSON has numbers, not ints, and JSON Schema's "integer" takes 5.0: found by schemathesis, a
    schema-valid `"ahead": 5.0` was refused (422 invalid_field). 5.5 still is."""
    t = await a_number(client)
    r = await client.post(f"/api/tickets/{t['token']}/notifications",
                          json={"channel": "sms", "phone": "0912345678", "ahead": 5.0})
    assert r.status_code == 200 and r.json()["notifications"]["sms"]["ahead"] == 5, r.text
    before = await log_of(client)
    r = await client.post(f"/api/tickets/{t['token']}/notifications",
                          json={"channel": "sms", "phone": "0912345678", "ahead": 5.5})
    shape(r, 422, "invalid_field")
    assert await log_of(client) == before


@pytest.mark.parametrize("key", ["k\u00e9y", "\u00a0", "a\tb", "x" * 201])
async def test_an_idempotency_key_is_visible_ascii(client, key):
    """/openapi.json says ^[!-~]([ -~]*[!-~])?$ (at most 200): schemathesis sent what isprintable()
    took and the pattern does not (a Latin-1 letter); now the hub refuses what the document refuses."""
    before = await log_of(client)
    r = await client.post(f"/api/branches/{B}/tickets", json=KIOSK,
                          headers={"Idempotency-Key": key.encode("latin-1")})        # as it comes over the wire
    shape(r, 422, "invalid_idempotency_key")
    assert await log_of(client) == before
    r = await client.post(f"/api/branches/{B}/tickets", json=KIOSK, headers={"Idempotency-Key": "kiosk 3/0917 #1"})
    assert r.status_code == 201, r.text
