"""The HTTP API (README "HTTP API", /openapi.json), in-process against the real app (lifespan, SQLite file).

Every refusal is checked for its status, the `{"error": {"code", "message"}}` shape and its code,
and for leaving the branch exactly as it was.
"""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

import pytest

from hub.auth import Tokens

from conftest import TUESDAY_9AM, assert_error, bearer, running_app

B = "1"                       # branch 1: counters 1-5 dat-dai, 6-7 ho-tich, policy absent = "hold"
LAND, CIVIL = "dat-dai", "ho-tich"
# Marked here as well as by conftest's hook: a parametrized coroutine test marked only by the hook
# (pytest_collection_modifyitems) loses its parameters under anyio's plugin.
pytestmark = pytest.mark.anyio

CITIZEN_ID = "001090123456"   # born 1990: no age priority
ELDER_ID = "001045123456"     # born 1945: 81 on the test day, served first

# The app's routes that /openapi.json knowingly leaves out, each with why; every other route must be
# documented, method by method, and every documented operation must be a route (test below).
NOT_IN_OPENAPI = {
    "/": "HTML page: every branch at a glance (its JSON twin, /api/branches, is documented)",
    "/api": "HTML page: this document, rendered for people",
    "/openapi.json": "the document itself",
    "/branches": "HTML page: the citizen's branch chooser",
    "/display/{branch}": "HTML page: the lobby TV board (fed by the documented board feeds)",
    "/kiosk/{branch}": "HTML page: the kiosk (it issues through the documented API)",
    "/kiosk/{branch}/ticket": "HTML page: the printable ticket",
    "/counter/{branch}/{counter}": "HTML page: the counter console (it acts through the documented API)",
    "/admin/{branch}": "HTML page: the branch manager's figures",
    "/sw.js": "a static script: the citizen page's service worker",
    "/static": "static files (CSS, scripts, audio clips)",
}


# -- helpers ---------------------------------------------------------------------------------------


async def view(client, branch: str = B) -> dict:
    r = await client.get(f"/api/branches/{branch}")
    assert r.status_code == 200, r.text
    return r.json()


def svc(v: dict, service: str) -> dict:
    return next(s for s in v["services"] if s["id"] == service)


def counter(v: dict, cid: str) -> dict:
    return next(c for c in v["counters"] if c["id"] == cid)


async def issue(client, service: str = LAND, branch: str = B, **body) -> dict:
    r = await client.post(f"/api/branches/{branch}/tickets", json={"service": service, "channel": "kiosk", **body})
    assert r.status_code == 201, r.text
    return r.json()


async def open_counter(client, tokens, cid: str, services=None, branch: str = B) -> dict:
    body = {} if services is None else {"services": services}
    r = await client.post(f"/api/branches/{branch}/counters/{cid}/open", json=body,
                          headers=bearer(tokens.staff(branch)))
    assert r.status_code == 200, r.text
    return r.json()


async def call_next(client, tokens, cid: str, branch: str = B, **headers):
    return await client.post(f"/api/branches/{branch}/counters/{cid}/call-next",
                             headers=bearer(tokens.staff(branch), **headers))


async def act(client, tokens, number: str, action: str, body=None, token=None, branch: str = B):
    return await client.post(f"/api/branches/{branch}/tickets/{number}/{action}",
                             json=body if body is not None else {},
                             headers=bearer(token or tokens.staff(branch)))


async def ticket(client, token: str, **params) -> dict:
    r = await client.get(f"/api/tickets/{token}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def at(iso: str) -> datetime:
    t = datetime.fromisoformat(iso)
    assert t.utcoffset() == timedelta(hours=7), iso
    return t


def assert_eta(eta: dict) -> None:
    assert set(eta) >= {"p10", "p50", "p90"}, eta
    assert all(isinstance(eta[k], (int, float)) for k in ("p10", "p50", "p90")), eta
    assert 0 <= eta["p10"] <= eta["p50"] <= eta["p90"], eta


# -- issuing ---------------------------------------------------------------------------------------

async def test_kiosk_issue_answers_the_contract_fields(client):
    before = await view(client)
    first = await issue(client, LAND)
    second = await issue(client, LAND)

    for t in (first, second):
        assert {"number", "service", "token", "tracking_url", "issued_at", "position", "eta"} <= set(t)
        assert t["service"] == LAND
        assert t["tracking_url"].endswith(t["token"])
        assert at(t["issued_at"]) == TUESDAY_9AM
        assert_eta(t["eta"])
    assert (first["number"], second["number"]) == ("1001", "1002")      # dat-dai's block starts at 1001
    assert (first["position"], second["position"]) == (1, 2)
    assert second["eta"]["p50"] > first["eta"]["p50"]
    assert first["token"] != second["token"]

    after = await view(client)
    assert after["seq"] == before["seq"] + 2
    assert svc(after, LAND)["waiting"] == svc(before, LAND)["waiting"] + 2 == 2
    assert svc(after, LAND)["numbers_left"] == svc(before, LAND)["numbers_left"] - 2 == 400 - 2   # branch cap 400
    assert after["waiting"] == 2


async def test_issue_with_phone_never_shows_the_phone(client):
    t = await issue(client, CIVIL, phone="0912345678")
    assert t["number"] == "2001"
    for r in (await client.get(f"/api/branches/{B}"), await client.get("/api/branches"),
              await client.get(f"/api/tickets/{t['token']}")):
        assert r.status_code == 200
        assert "912345678" not in r.text


async def test_online_issue_needs_a_citizen_token(client, tokens):
    before = await view(client)
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"})
    assert_error(r, 401, "citizen_token_required")
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"},
                          headers=bearer(tokens.staff(B)))                # a kiosk device is not a citizen
    assert_error(r, 401, "citizen_token_required")
    assert await view(client) == before

    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"},
                          headers=bearer(tokens.citizen(CITIZEN_ID, "0987654321")))
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["number"] == "1001" and t["position"] == 1 and t["service"] == LAND
    assert_eta(t["eta"])
    got = await ticket(client, t["token"])
    assert got["state"] == "waiting" and got["channel"] == "online" and got["checked_in"] is False
    assert "987654321" not in (await client.get(f"/api/branches/{B}")).text


async def test_a_citizens_retry_key_is_kept_without_the_identity_number(client, tokens, settings):
    import sqlite3
    citizen = bearer(tokens.citizen(CITIZEN_ID), **{"Idempotency-Key": "app-retry-1"})
    body = {"service": LAND, "channel": "online"}
    r1 = await client.post(f"/api/branches/{B}/tickets", json=body, headers=citizen)
    r2 = await client.post(f"/api/branches/{B}/tickets", json=body, headers=citizen)
    assert r1.status_code == 201 and r2.json() == r1.json()          # the retry is the same number
    with sqlite3.connect(settings.database.removeprefix("sqlite:///")) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM idempotency")]
    assert len(keys) == 1 and keys[0].endswith("|app-retry-1"), keys
    assert CITIZEN_ID not in keys[0] and CITIZEN_ID[-6:] not in keys[0]   # a pseudonym, not the CCCD


async def test_online_citizen_limits_and_age_priority(client, tokens):
    citizen = bearer(tokens.citizen(CITIZEN_ID))
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"}, headers=citizen)
    assert r.status_code == 201
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"}, headers=citizen)
    assert_error(r, 409, "field_limit_reached")

    young = await issue(client, CIVIL)
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "online"},
                          headers=bearer(tokens.citizen(ELDER_ID)))
    assert r.status_code == 201, r.text
    elder = r.json()
    assert elder["position"] == 1                                     # 75+: ahead of the earlier number
    assert (await ticket(client, young["token"]))["position"] == 2
    await open_counter(client, tokens, "6")
    r = await call_next(client, tokens, "6")
    assert r.status_code == 200 and r.json()["ticket"]["number"] == elder["number"]


async def test_kiosk_idempotency_key_prints_one_number(client):
    body = {"service": LAND, "channel": "kiosk"}
    r1 = await client.post(f"/api/branches/{B}/tickets", json=body, headers={"Idempotency-Key": "kiosk-7-print-1"})
    r2 = await client.post(f"/api/branches/{B}/tickets", json=body, headers={"Idempotency-Key": "kiosk-7-print-1"})
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()
    v = await view(client)
    assert v["seq"] == 1 and svc(v, LAND)["waiting"] == 1


async def test_daily_cap_runs_out(client):
    field = "van-hoa-the-thao-du-lich"           # cap 60, numbers 4501-4560
    v = await view(client)
    assert svc(v, field)["numbers_left"] == 60
    numbers = [(await issue(client, field))["number"] for _ in range(60)]
    assert numbers == [str(n) for n in range(4501, 4561)]
    before = await view(client)
    assert svc(before, field)["numbers_left"] == 0
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": field, "channel": "kiosk"})
    err = assert_error(r, 409, "daily_cap_reached")
    assert err.get("next_working_day") == "2026-05-20"
    assert await view(client) == before


# -- counters and ticket actions -------------------------------------------------------------------

async def test_counter_open_call_next_close(client, tokens):
    a, b = await issue(client, LAND), await issue(client, LAND)
    r = await client.post(f"/api/branches/{B}/counters/1/open", json={"services": [LAND]},
                          headers=bearer(tokens.staff(B, "1")))
    assert r.status_code == 200, r.text
    assert r.json()["counter"] == {"id": "1", "open": True, "services": [LAND], "current": None}
    assert counter(await view(client), "1")["open"] is True

    v0 = await view(client)
    r = await call_next(client, tokens, "1")
    assert r.status_code == 200, r.text
    called = r.json()["ticket"]
    assert called["number"] == a["number"] and called["state"] == "called" and called["counter"] == "1"
    v1 = await view(client)
    assert v1["seq"] == v0["seq"] + 1
    assert svc(v1, LAND)["waiting"] == 1
    assert svc(v1, LAND)["now_serving"] == [{"number": a["number"], "counter": "1"}]
    assert counter(v1, "1")["current"] == {"number": a["number"], "service": LAND}
    # b is ahead of any number taken now: in every simulated future it is called first
    b_eta = (await ticket(client, b["token"]))["eta"]
    assert all(b_eta[q] <= svc(v1, LAND)["expected_wait"][q] for q in ("p10", "p50", "p90"))

    t = await ticket(client, a["token"])
    assert t["state"] == "called" and t["counter"] == "1" and t["position"] is None and t["people_ahead"] is None
    assert (await ticket(client, b["token"]))["position"] == 1

    r = await client.post(f"/api/branches/{B}/counters/1/close", headers=bearer(tokens.staff(B)))
    assert_error(r, 409, "counter_busy")
    r = await call_next(client, tokens, "1")                 # the next button completes the current number
    assert r.status_code == 200
    assert r.json()["ticket"]["number"] == b["number"] and r.json()["completed"] == [a["number"]]
    assert (await ticket(client, a["token"]))["state"] == "completed"
    before_empty = await view(client)
    assert_error(await call_next(client, tokens, "1"), 409, "queue_empty")
    assert await view(client) == before_empty

    assert (await act(client, tokens, b["number"], "complete")).status_code == 200
    r = await client.post(f"/api/branches/{B}/counters/1/close", headers=bearer(tokens.staff(B)))
    assert r.status_code == 200, r.text
    assert r.json()["counter"]["open"] is False
    assert counter(await view(client), "1")["open"] is False
    assert_error(await call_next(client, tokens, "1"), 409, "counter_closed")


async def test_counter_can_open_for_other_fields(client, tokens):
    civil = await issue(client, CIVIL)
    r = await client.post(f"/api/branches/{B}/counters/1/open", json={"services": [CIVIL, LAND]},
                          headers=bearer(tokens.staff(B)))
    assert r.status_code == 200 and r.json()["counter"]["services"] == [CIVIL, LAND]
    r = await call_next(client, tokens, "1")
    assert r.status_code == 200 and r.json()["ticket"]["number"] == civil["number"]


async def test_every_ticket_action(client, tokens, clock):
    a = await issue(client, LAND)
    b = await issue(client, LAND)
    c = await issue(client, LAND)
    await open_counter(client, tokens, "1")
    assert (await call_next(client, tokens, "1")).json()["ticket"]["number"] == a["number"]

    v = await view(client)
    r = await act(client, tokens, a["number"], "recall")
    assert r.status_code == 200, r.text
    assert r.json()["ticket"]["state"] == "called" and r.json()["ticket"]["counter"] == "1"
    assert (await view(client))["seq"] == v["seq"] + 1

    r = await act(client, tokens, a["number"], "skip")                 # a kiosk holder is present by design
    assert r.status_code == 200 and r.json()["ticket"]["state"] == "skipped"
    assert (await ticket(client, a["token"]))["state"] == "skipped"
    assert counter(await view(client), "1")["current"] is None

    clock.advance(minutes=5)
    r = await act(client, tokens, a["number"], "recall", {"counter": "1"})
    assert r.status_code == 200 and r.json()["ticket"]["state"] == "called"
    r = await act(client, tokens, a["number"], "complete")
    assert r.status_code == 200 and r.json()["ticket"]["state"] == "completed"
    assert_error(await act(client, tokens, a["number"], "complete"), 409, "invalid_state")

    assert (await call_next(client, tokens, "1")).json()["ticket"]["number"] == b["number"]
    civil_before = svc(await view(client), CIVIL)["waiting"]
    r = await act(client, tokens, b["number"], "transfer", {"service": CIVIL})
    assert r.status_code == 200, r.text
    assert r.json()["ticket"]["state"] == "waiting" and r.json()["ticket"]["service"] == CIVIL
    v = await view(client)
    assert svc(v, CIVIL)["waiting"] == civil_before + 1
    assert counter(v, "1")["current"] is None
    t = await ticket(client, b["token"])
    assert t["service"] == CIVIL and t["position"] == 1

    r = await act(client, tokens, c["number"], "cancel")
    assert r.status_code == 200 and r.json()["ticket"]["state"] == "cancelled"
    assert (await ticket(client, c["token"]))["state"] == "cancelled"
    assert svc(await view(client), LAND)["waiting"] == 0

    # check-in: an online holder arrives
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"},
                          headers=bearer(tokens.citizen(CITIZEN_ID)))
    online = r.json()
    assert (await ticket(client, online["token"]))["checked_in"] is False
    r = await act(client, tokens, online["number"], "check-in")
    assert r.status_code == 200, r.text
    assert r.json()["ticket"]["checked_in"] is True
    assert (await ticket(client, online["token"]))["checked_in"] is True
    assert_error(await act(client, tokens, online["number"], "check-in"), 409, "already_checked_in")


async def test_skipped_number_recall_window(client, tokens, clock):
    a = await issue(client, LAND)
    await open_counter(client, tokens, "1")
    await call_next(client, tokens, "1")
    assert (await act(client, tokens, a["number"], "skip")).status_code == 200
    clock.advance(minutes=16)                                          # recall_minutes = 15
    before = await view(client)
    assert_error(await act(client, tokens, a["number"], "recall"), 409, "recall_too_late")
    assert await view(client) == before


async def test_absent_online_number_is_held_then_checked_in(client, tokens, clock):
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "online"},
                          headers=bearer(tokens.citizen(CITIZEN_ID)))
    online = r.json()
    await open_counter(client, tokens, "1")
    await call_next(client, tokens, "1")
    r = await act(client, tokens, online["number"], "skip")            # branch 1 holds absent online numbers
    assert r.status_code == 200
    t = await ticket(client, online["token"])
    assert t["state"] == "held"
    assert at(t["held_until"]) == TUESDAY_9AM + timedelta(minutes=10)
    clock.advance(minutes=3)
    r = await client.post(f"/api/branches/{B}/check-in", json={"token": online["token"]},
                          headers=bearer(tokens.staff(B)))
    assert r.status_code == 200, r.text
    t = await ticket(client, online["token"])
    assert t["state"] == "waiting" and t["checked_in"] is True and t["position"] == 1


async def test_counter_bound_token_acts_only_on_its_own_tickets(client, tokens):
    a = await issue(client, LAND)
    await open_counter(client, tokens, "1")
    await call_next(client, tokens, "1")
    before = await view(client)
    r = await act(client, tokens, a["number"], "complete", token=tokens.staff(B, "2"))
    assert_error(r, 403, "out_of_scope")
    assert await view(client) == before
    r = await act(client, tokens, a["number"], "complete", token=tokens.staff(B, "1"))
    assert r.status_code == 200


@pytest.mark.parametrize("action, body", [("cancel", None), ("transfer", {"service": "ho-tich"}),
                                          ("skip", None), ("complete", None), ("recall", None)])
async def test_a_counter_bound_token_cannot_touch_a_number_its_counter_did_not_call(client, tokens, action, body):
    """Measured before: counter 2's token cancelled a waiting number of another field and transferred
    one it had not called (docs/rules.md says it acts only on its counter's numbers)."""
    waiting = await issue(client, LAND)
    before, log = await view(client), await client.app.state.storage.log.events_since(B, 0)
    r = await act(client, tokens, waiting["number"], action, body, token=tokens.staff(B, "2"))
    assert_error(r, 403, "out_of_scope")
    assert await view(client) == before
    assert await client.app.state.storage.log.events_since(B, 0) == log
    r = await act(client, tokens, waiting["number"], "check-in", token=tokens.staff(B, "2"))
    assert r.status_code != 403                # checking a holder in is anyone's at the branch


# -- reads -----------------------------------------------------------------------------------------

async def test_branches_list_and_one_branch(client):
    r = await client.get("/api/branches")
    assert r.status_code == 200
    branches = r.json()["branches"]
    assert [b["id"] for b in branches] == [str(i) for i in range(1, 13)]
    one = await view(client)
    assert one["id"] == B and one["seq"] == 0 and one["waiting"] == 0 and one["now_serving"] == []
    assert {s["id"] for s in one["services"]} >= {LAND, CIVIL, "tu-phap-chung-thuc"}
    for s in one["services"]:
        assert {"id", "waiting", "now_serving", "expected_wait", "numbers_left"} <= set(s)
        assert s["waiting"] == 0 and s["now_serving"] == [] and s["numbers_left"] > 0
        assert_eta(s["expected_wait"])
    assert {c["id"] for c in one["counters"]} == {str(i) for i in range(1, 17)}
    assert next(b for b in branches if b["id"] == B) == one
    assert_error(await client.get("/api/branches/13"), 404, "branch_not_found")


async def test_expected_wait_grows_with_the_queue(client):
    waits = []
    for _ in range(4):
        waits.append(svc(await view(client), LAND)["expected_wait"]["p50"])
        t = await issue(client, LAND)
        assert t["eta"]["p50"] == pytest.approx(waits[-1], abs=0.11)     # a new number's wait is the one shown
    assert waits == sorted(waits) and len(set(waits)) == 4


async def test_ticket_by_token_and_leave_by(client, tokens):
    issued = [await issue(client, LAND) for _ in range(11)]
    last = issued[-1]
    t = await ticket(client, last["token"])
    assert t["number"] == last["number"] and t["state"] == "waiting"
    assert t["position"] == 11 and t["people_ahead"] == 10
    assert_eta(t["eta"])
    assert t["leave_by"] is None

    now = TUESDAY_9AM
    near = await ticket(client, last["token"], travel_minutes="10")
    far = await ticket(client, last["token"], travel_minutes="600")
    assert near["eta"] == t["eta"]
    leave_near, leave_far = at(near["leave_by"]), at(far["leave_by"])
    assert now <= leave_far <= leave_near                       # further away: leave earlier (never before now)
    assert leave_near <= now + timedelta(minutes=t["eta"]["p10"] - 10)   # there before the earliest call
    assert leave_far == now                                     # 600 minutes away: leave at once

    waiting = await ticket(client, last["token"])
    await open_counter(client, tokens, "1")     # a counter opens (the others are late): sooner
    await call_next(client, tokens, "1")
    moved = await ticket(client, last["token"])
    assert moved["position"] == 10 and moved["people_ahead"] == 9
    assert moved["eta"]["p50"] < waiting["eta"]["p50"]
    assert moved["now_serving"] == [{"number": issued[0]["number"], "counter": "1"}]


async def test_give_back_by_token(client, tokens):
    a, b = await issue(client, LAND), await issue(client, LAND)
    before = await view(client)
    r = await client.delete(f"/api/tickets/{a['token']}")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    after = await view(client)
    assert after["seq"] == before["seq"] + 1
    assert svc(after, LAND)["waiting"] == svc(before, LAND)["waiting"] - 1
    assert (await ticket(client, a["token"]))["state"] == "cancelled"
    assert (await ticket(client, b["token"]))["position"] == 1
    assert_error(await client.delete(f"/api/tickets/{a['token']}"), 409, "invalid_state")
    assert await view(client) == after
    await open_counter(client, tokens, "1")
    assert (await call_next(client, tokens, "1")).json()["ticket"]["number"] == b["number"]


# -- idempotency -----------------------------------------------------------------------------------

async def test_repeated_call_next_with_the_same_key_calls_one_number(client, tokens):
    a, b, _ = await issue(client, LAND), await issue(client, LAND), await issue(client, LAND)
    await open_counter(client, tokens, "1")
    before = await view(client)
    r1 = await call_next(client, tokens, "1", **{"Idempotency-Key": "click-1"})
    r2 = await call_next(client, tokens, "1", **{"Idempotency-Key": "click-1"})
    assert r1.status_code == r2.status_code == 200
    assert r1.content == r2.content
    assert r1.json()["ticket"]["number"] == a["number"]
    after = await view(client)
    assert after["seq"] == before["seq"] + 1
    assert svc(after, LAND)["waiting"] == svc(before, LAND)["waiting"] - 1

    r3 = await call_next(client, tokens, "1", **{"Idempotency-Key": "click-2"})
    assert r3.status_code == 200 and r3.json()["ticket"]["number"] == b["number"]
    moved = await view(client)
    r4 = await call_next(client, tokens, "1", **{"Idempotency-Key": "click-1"})   # late retry: first answer
    assert r4.status_code == 200 and r4.content == r1.content
    assert await view(client) == moved


async def test_same_key_for_another_request_is_refused(client, tokens):
    await issue(client, LAND)
    await issue(client, CIVIL)
    await open_counter(client, tokens, "1")
    await open_counter(client, tokens, "6")
    r = await call_next(client, tokens, "1", **{"Idempotency-Key": "k-1"})
    assert r.status_code == 200
    before = await view(client)
    other_path = await call_next(client, tokens, "6", **{"Idempotency-Key": "k-1"})
    assert_error(other_path, 409, "idempotency_key_reused")
    other_body = await client.post(f"/api/branches/{B}/counters/1/call-next", json={"note": "again"},
                                   headers=bearer(tokens.staff(B), **{"Idempotency-Key": "k-1"}))
    assert_error(other_body, 409, "idempotency_key_reused")
    assert await view(client) == before


async def test_double_click_calls_one_number(client, tokens):
    numbers = [(await issue(client, LAND))["number"] for _ in range(3)]
    await open_counter(client, tokens, "1")
    before = await view(client)
    r1, r2 = await asyncio.gather(call_next(client, tokens, "1", **{"Idempotency-Key": "dbl"}),
                                  call_next(client, tokens, "1", **{"Idempotency-Key": "dbl"}))
    assert r1.status_code == r2.status_code == 200
    assert r1.json() == r2.json()
    assert r1.json()["ticket"]["number"] == numbers[0]
    after = await view(client)
    assert after["seq"] == before["seq"] + 1
    assert svc(after, LAND)["waiting"] == 2


# -- bad input matrix ------------------------------------------------------------------------------

OTHER = Tokens("some-other-deployment")


def _forge_signature(token: str) -> str:
    version, body, mac = token.split(".")
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    return f"{version}.{body}.{flipped}"


def _forge_payload(token: str) -> str:
    """Another branch's staff token whose payload is edited to say branch 1; the signature is kept."""
    import base64
    import json
    version, body, mac = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["branch"] = B
    new = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":"), sort_keys=True).encode()).rstrip(b"=").decode()
    return f"{version}.{new}.{mac}"


def _forge_ticket(token: str) -> str:
    ref, mac = token.split(".")
    return f"{ref}.{('A' if mac[0] != 'A' else 'B') + mac[1:]}"


def _chunks(total: int):
    async def gen():
        sent = 0
        yield b'{"service": "dat-dai", "channel": "kiosk", "pad": "'
        while sent < total:
            yield b"x" * 1024
            sent += 1024
        yield b'"}'
    return gen()


ISSUE = f"/api/branches/{B}/tickets"
CALL1 = f"/api/branches/{B}/counters/1/call-next"
KIOSK = {"service": LAND, "channel": "kiosk"}
JSON = {"Content-Type": "application/json"}

# name → (request builder(tokens, ctx) → (method, url, httpx kwargs), status, code)
BAD = {
    "malformed json": (lambda tk, c: ("POST", ISSUE, {"content": b'{"service": "dat-dai", ', "headers": JSON}),
                       400, "malformed_json"),
    "json array": (lambda tk, c: ("POST", ISSUE, {"json": [LAND, "kiosk"]}), 400, "malformed_json"),
    "json string": (lambda tk, c: ("POST", ISSUE, {"json": "dat-dai"}), 400, "malformed_json"),
    "empty body": (lambda tk, c: ("POST", ISSUE, {"content": b"", "headers": JSON}), 400, "malformed_json"),
    "not utf-8": (lambda tk, c: ("POST", ISSUE, {"content": b'{"service": "\xff\xfe"}', "headers": JSON}),
                  400, "malformed_json"),
    "deeply nested json": (lambda tk, c: ("POST", ISSUE, {"content": b'{"service": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                                          "headers": JSON}), 400, "malformed_json"),
    "malformed json to staff": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/2/open",
                                               {"content": b"{services", "headers": bearer(tk.staff(B), **JSON)}),
                                400, "malformed_json"),
    "missing service": (lambda tk, c: ("POST", ISSUE, {"json": {"channel": "kiosk"}}), 422, "missing_field"),
    "missing channel": (lambda tk, c: ("POST", ISSUE, {"json": {"service": LAND}}), 422, "missing_field"),
    "priority not bool": (lambda tk, c: ("POST", ISSUE, {"json": {**KIOSK, "priority": "yes"}}), 422, "invalid_field"),
    "service not str": (lambda tk, c: ("POST", ISSUE, {"json": {"service": 1001, "channel": "kiosk"}}),
                        422, "invalid_field"),
    "phone not str": (lambda tk, c: ("POST", ISSUE, {"json": {**KIOSK, "phone": 912345678}}), 422, "invalid_field"),
    "bad phone": (lambda tk, c: ("POST", ISSUE, {"json": {**KIOSK, "phone": "12345"}}), 422, "invalid_phone"),
    "unknown branch issue": (lambda tk, c: ("POST", "/api/branches/13/tickets", {"json": KIOSK}),
                             404, "branch_not_found"),
    "unknown branch counter": (lambda tk, c: ("POST", "/api/branches/99/counters/1/call-next",
                                              {"headers": bearer(tk.staff("99"))}), 404, "branch_not_found"),
    "unknown field": (lambda tk, c: ("POST", ISSUE, {"json": {"service": "phong-thuy", "channel": "kiosk"}}),
                      422, "unknown_service"),
    "wrong channel": (lambda tk, c: ("POST", ISSUE, {"json": {"service": LAND, "channel": "sms"}}),
                      422, "invalid_channel"),
    "online without token": (lambda tk, c: ("POST", ISSUE, {"json": {"service": LAND, "channel": "online"}}),
                             401, "citizen_token_required"),
    "oversized body": (lambda tk, c: ("POST", ISSUE, {"json": {**KIOSK, "pad": "x" * (16 * 1024 + 1)}}),
                       413, "body_too_large"),
    "oversized body, chunked": (lambda tk, c: ("POST", ISSUE, {"content": _chunks(20 * 1024), "headers": JSON}),
                                413, "body_too_large"),
    "oversized body to staff": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/2/open",
                                               {"json": {"services": ["x" * 20000]},
                                                "headers": bearer(tk.staff(B))}), 413, "body_too_large"),
    "unknown counter open": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/99/open",
                                            {"json": {}, "headers": bearer(tk.staff(B))}), 404, "counter_not_found"),
    "unknown counter call": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/99/call-next",
                                            {"headers": bearer(tk.staff(B))}), 404, "counter_not_found"),
    "open with unknown field": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/2/open",
                                               {"json": {"services": ["phong-thuy"]}, "headers": bearer(tk.staff(B))}),
                                422, "unknown_service"),
    "open with services not a list": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/2/open",
                                                     {"json": {"services": LAND}, "headers": bearer(tk.staff(B))}),
                                      422, "invalid_field"),
    "open with a number as field": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/2/open",
                                                   {"json": {"services": [1]}, "headers": bearer(tk.staff(B))}),
                                    422, "invalid_field"),
    "open with no field": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/2/open",
                                          {"json": {"services": []}, "headers": bearer(tk.staff(B))}),
                           422, "invalid_services"),
    "missing token": (lambda tk, c: ("POST", CALL1, {}), 401, "token_required"),
    "not a bearer token": (lambda tk, c: ("POST", CALL1, {"headers": {"Authorization": "Basic dXNlcjpwdw=="}}),
                           401, "invalid_token"),
    "garbage token": (lambda tk, c: ("POST", CALL1, {"headers": bearer("not-a-token")}), 401, "invalid_token"),
    "forged signature": (lambda tk, c: ("POST", CALL1, {"headers": bearer(_forge_signature(tk.staff(B)))}),
                         401, "invalid_token"),
    "forged payload": (lambda tk, c: ("POST", CALL1, {"headers": bearer(_forge_payload(tk.staff("2")))}),
                       401, "invalid_token"),
    "another deployment's token": (lambda tk, c: ("POST", CALL1, {"headers": bearer(OTHER.staff(B))}),
                                   401, "invalid_token"),
    "expired token": (lambda tk, c: ("POST", CALL1, {"headers": bearer(tk.staff(B, ttl=-60))}), 401, "invalid_token"),
    "expired token via issue": (lambda tk, c: ("POST", CALL1, {"headers": bearer(
        tk.issue({"kind": "staff", "branch": B}, ttl=-1))}), 401, "invalid_token"),
    "expired citizen token": (lambda tk, c: ("POST", ISSUE, {"json": {"service": CIVIL, "channel": "online"},
                                                             "headers": bearer(tk.citizen(CITIZEN_ID, ttl=-5))}),
                              401, "invalid_token"),
    "citizen token on staff endpoint": (lambda tk, c: ("POST", CALL1, {"headers": bearer(tk.citizen(CITIZEN_ID))}),
                                        403, "staff_only"),
    "citizen token on ticket action": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/{c['waiting']}/cancel",
                                                      {"json": {}, "headers": bearer(tk.citizen(CITIZEN_ID))}),
                                       403, "staff_only"),
    "staff of another branch": (lambda tk, c: ("POST", CALL1, {"headers": bearer(tk.staff("2"))}), 403, "wrong_branch"),
    "staff of another branch, action": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/{c['waiting']}/cancel",
                                                       {"json": {}, "headers": bearer(tk.staff("2"))}),
                                        403, "wrong_branch"),
    "kiosk device of another branch": (lambda tk, c: ("POST", ISSUE, {"json": KIOSK, "headers": bearer(tk.staff("2"))}),
                                       403, "wrong_branch"),
    "counter token on another counter": (lambda tk, c: ("POST", CALL1, {"headers": bearer(tk.staff(B, "2"))}),
                                         403, "wrong_counter"),
    "counter token closes another counter": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/1/close",
                                                            {"headers": bearer(tk.staff(B, "2"))}),
                                             403, "wrong_counter"),
    "unknown ticket number": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/1399/complete",
                                             {"json": {}, "headers": bearer(tk.staff(B))}), 404, "ticket_not_found"),
    "unknown action": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/{c['called']}/finish",
                                      {"json": {}, "headers": bearer(tk.staff(B))}), 404, "unknown_action"),
    "transfer without field": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/{c['called']}/transfer",
                                              {"json": {}, "headers": bearer(tk.staff(B))}), 422, "missing_field"),
    "transfer to unknown field": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/{c['called']}/transfer",
                                                 {"json": {"service": "phong-thuy"}, "headers": bearer(tk.staff(B))}),
                                  422, "unknown_service"),
    "transfer to the same field": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/{c['called']}/transfer",
                                                  {"json": {"service": LAND}, "headers": bearer(tk.staff(B))}),
                                   422, "same_service"),
    "complete a waiting number": (lambda tk, c: ("POST", f"/api/branches/{B}/tickets/{c['waiting']}/complete",
                                                 {"json": {}, "headers": bearer(tk.staff(B))}), 409, "invalid_state"),
    "close a busy counter": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/1/close",
                                            {"headers": bearer(tk.staff(B))}), 409, "counter_busy"),
    "call at a closed counter": (lambda tk, c: ("POST", f"/api/branches/{B}/counters/3/call-next",
                                                {"headers": bearer(tk.staff(B))}), 409, "counter_closed"),
    "idempotency key too long": (lambda tk, c: ("POST", CALL1, {"headers": bearer(tk.staff(B), **{
        "Idempotency-Key": "k" * 201})}), 422, "invalid_idempotency_key"),
    "forged ticket token": (lambda tk, c: ("GET", f"/api/tickets/{_forge_ticket(c['token'])}", {}),
                            404, "ticket_not_found"),
    "made-up ticket token": (lambda tk, c: ("GET", "/api/tickets/MjAyNjA1MTktMTAwMQ.AAAAAAAAAAAAAAAAAAAAAA", {}),
                             404, "ticket_not_found"),
    "another deployment's ticket token": (lambda tk, c: ("GET", f"/api/tickets/{OTHER.ticket(B, c['ticket'])}", {}),
                                          404, "ticket_not_found"),
    "signed token of no ticket": (lambda tk, c: ("GET", f"/api/tickets/{tk.ticket(B, '20260519-1399')}", {}),
                                  404, "ticket_not_found"),
    "forged ticket token give-back": (lambda tk, c: ("DELETE", f"/api/tickets/{_forge_ticket(c['token'])}", {}),
                                      404, "ticket_not_found"),
    "travel minutes not a number": (lambda tk, c: ("GET", f"/api/tickets/{c['token']}?travel_minutes=soon", {}),
                                    422, "invalid_field"),
    "travel minutes negative": (lambda tk, c: ("GET", f"/api/tickets/{c['token']}?travel_minutes=-5", {}),
                                422, "invalid_field"),
    "travel minutes too large": (lambda tk, c: ("GET", f"/api/tickets/{c['token']}?travel_minutes=601", {}),
                                 422, "invalid_field"),
    "travel minutes nan": (lambda tk, c: ("GET", f"/api/tickets/{c['token']}?travel_minutes=nan", {}),
                           422, "invalid_field"),
    "travel minutes inf": (lambda tk, c: ("GET", f"/api/tickets/{c['token']}?travel_minutes=inf", {}),
                           422, "invalid_field"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_request_is_refused_and_changes_nothing(client, tokens, case):
    a = await issue(client, LAND)
    b = await issue(client, LAND)
    await open_counter(client, tokens, "1")
    assert (await call_next(client, tokens, "1")).json()["ticket"]["number"] == a["number"]
    ctx = {"called": a["number"], "waiting": b["number"], "token": b["token"], "ticket": b["ticket"]}

    before = {br: await view(client, br) for br in (B, "2")}
    ticket_before = await ticket(client, b["token"])
    build, status, code = BAD[case]
    method, url, kwargs = build(tokens, ctx)
    r = await client.request(method, url, **kwargs)
    assert_error(r, status, code)

    after = {br: await view(client, br) for br in (B, "2")}
    assert after[B]["seq"] == before[B]["seq"]
    assert [s["waiting"] for s in after[B]["services"]] == [s["waiting"] for s in before[B]["services"]]
    assert after == before
    assert await ticket(client, b["token"]) == ticket_before


async def test_unauthorized_answers_name_the_scheme(client):
    r = await client.post(CALL1)
    assert_error(r, 401, "token_required")
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


# -- rate limit ------------------------------------------------------------------------------------

async def test_issue_rate_limit_per_address(settings, clock):
    limited = dataclasses.replace(settings, issue_rate="3/60")
    async with running_app(limited, clock) as client:
        for _ in range(3):
            await issue(client, LAND)
        before = await view(client)
        r = await client.post(ISSUE, json=KIOSK)
        assert_error(r, 429, "rate_limited")
        retry = r.headers.get("retry-after")
        assert retry is not None and retry.isdigit() and 1 <= int(retry) <= 60
        assert await view(client) == before
        # a kiosk device sends its staff token and is exempt
        r = await client.post(ISSUE, json=KIOSK, headers=bearer(client.app.state.tokens.staff(B)))
        assert r.status_code == 201, r.text


# -- documentation and probes ----------------------------------------------------------------------

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def app_operations(routes, prefix: str = "") -> set[tuple[str, str]]:
    """(path, method) of every route of the app, mounts included; a WebSocket route is a GET (the
    upgrade), HEAD beside GET is Starlette's own, a mount of an app without routes (static files)
    is (its path, "*"), and a parameter's convertor ({device:kiosk_device}) is no part of its name."""
    import re

    from starlette.routing import Mount, WebSocketRoute

    out: set[tuple[str, str]] = set()
    for route in routes:
        path = prefix + re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        if isinstance(route, Mount):
            sub = getattr(route, "routes", None) or []
            out |= app_operations(sub, path) if sub else {(path, "*")}
        elif isinstance(route, WebSocketRoute):
            out.add((path, "get"))
        else:
            methods = {m.lower() for m in (route.methods or ())}
            if "get" in methods:
                methods.discard("head")
            out |= {(path, m) for m in methods}
    return out


async def test_openapi_documents_exactly_the_apps_routes(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, item in doc["paths"].items() for method in item if method in HTTP_METHODS}
    served = app_operations(client.app.routes)
    excluded = {(path, method) for path, method in served if path in NOT_IN_OPENAPI}

    assert sorted(served - excluded - documented) == [], "routes missing from /openapi.json"
    assert sorted(documented - served) == [], "documented operations the app does not serve"
    assert sorted(documented & excluded) == [], "documented, yet listed in NOT_IN_OPENAPI"
    assert sorted(set(NOT_IN_OPENAPI) - {path for path, _ in served}) == [], "NOT_IN_OPENAPI names a route that is gone"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("summary") and op.get("responses"), (path, method)


async def test_api_page_lists_every_documented_operation(client):
    doc = (await client.get("/openapi.json")).json()
    r = await client.get("/api")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for path, item in doc["paths"].items():
        assert path in r.text, path
        for method in item:
            assert method.upper() in r.text, (path, method)


async def test_health_and_readiness(client):
    r = await client.get("/healthz")
    assert r.status_code == 200
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["store"] == "ok" and r.json()["broker"] == "ok"


async def test_unknown_path_and_method_are_errors_in_shape(client):
    assert_error(await client.get("/api/nothing-here"), 404, "not_found")
    assert_error(await client.get("/no/such/page"), 404, "not_found")
    r = await client.put("/api/branches", json={})
    assert r.status_code == 405
    assert set(r.json()) == {"error"} and r.json()["error"]["code"] and r.json()["error"]["message"]


async def test_method_not_allowed_names_the_allowed_methods(client):
    r = await client.put("/api/branches", json={})
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers.get("allow", ""), r.headers          # RFC 9110 15.5.6: a 405 must send Allow


def allowed(r) -> set[str]:
    return {m.strip() for m in r.headers.get("allow", "").split(",")} - {""}


async def test_a_405_names_every_method_of_its_path(client):
    """Measured before (and by schemathesis, ST205): OPTIONS /api/tickets/{token} answered Allow: HEAD, GET,
    though the path takes DELETE too; its two routes came from one module, the kiosks' GET and POST from another."""
    t = await issue(client)
    for method, path, methods in [("OPTIONS", f"/api/tickets/{t['token']}", {"GET", "HEAD", "DELETE"}),
                                  ("PUT", f"/api/tickets/{t['token']}", {"GET", "HEAD", "DELETE"}),
                                  ("OPTIONS", f"/api/branches/{B}/kiosks", {"GET", "HEAD", "POST"}),
                                  ("PATCH", f"/api/branches/{B}/kiosks", {"GET", "HEAD", "POST"})]:
        r = await client.request(method, path)
        assert_error(r, 405, "method_not_allowed")
        assert allowed(r) == methods, (method, path, r.headers)
    assert (await ticket(client, t["token"]))["state"] == "waiting"         # nothing was given back


async def test_the_kiosk_paths_are_not_device_ids(client, tokens):
    """Found by schemathesis (ST204): DELETE /api/branches/1/kiosks/enrol was taken as revoking a device
    called "enrol" (401 without a token, 404 with one); it is the enrolment path, which takes POST only."""
    manager = bearer(tokens.staff(B))
    for path, methods in [(f"/api/branches/{B}/kiosks/enrol", {"POST"}), (f"/api/branches/{B}/kiosks/me", {"GET", "HEAD"})]:
        for headers in ({}, manager):
            r = await client.delete(path, headers=headers)
            assert_error(r, 405, "method_not_allowed")
            assert allowed(r) == methods, (path, r.headers)
    assert_error(await client.delete(f"/api/branches/{B}/kiosks/k0123456789", headers=manager), 404, "device_not_found")
    assert_error(await client.delete(f"/api/branches/{B}/kiosks/not-a-device", headers=manager), 404, "not_found")


async def test_a_plain_request_to_a_websocket_feed_is_told_to_upgrade(client):
    """A GET without Upgrade to a WebSocket feed: 426 and the Upgrade header (RFC 9110 15.5.22), in the
    contract's shape, where it was a 404 as if the path did not exist."""
    t = await issue(client)
    for path in (f"/ws/branches/{B}", f"/ws/tickets/{t['token']}", f"/ws/branches/{B}?since=3"):
        r = await client.get(path)
        err = assert_error(r, 426, "upgrade_required")
        assert err["message_vi"] and r.headers["upgrade"] == "websocket", r.headers


# -- time rules ------------------------------------------------------------------------------------

async def test_issuing_closes_at_16(client, tokens, clock):
    await issue(client, LAND)
    clock.advance(hours=6, minutes=59)                               # 15:59
    await issue(client, LAND)
    clock.advance(minutes=1)                                         # 16:00
    before = await view(client)
    assert before["issuing"] == {"kiosk": False, "online": False}
    err = assert_error(await client.post(ISSUE, json=KIOSK), 409, "issuing_closed")
    assert at(err["opens_at"]) == TUESDAY_9AM + timedelta(days=1, hours=-1)     # Wednesday 08:00
    r = await client.post(ISSUE, json={"service": LAND, "channel": "online"},
                          headers=bearer(tokens.citizen(CITIZEN_ID)))
    assert_error(r, 409, "issuing_closed")
    assert await view(client) == before


async def test_closing_expires_waiting_numbers(client, tokens, clock):
    a, b, c = await issue(client, LAND), await issue(client, LAND), await issue(client, CIVIL)
    await open_counter(client, tokens, "1")
    await call_next(client, tokens, "1")                             # a is at the counter
    clock.advance(hours=7, minutes=59)                               # 16:59: still open
    assert await client.app.state.service.tick() == 0
    assert (await ticket(client, b["token"]))["state"] == "waiting"

    clock.advance(minutes=1)                                         # 17:00
    before = await view(client)
    assert await client.app.state.service.tick() == 2
    for t in (b, c):
        assert (await ticket(client, t["token"]))["state"] == "expired"
    assert (await ticket(client, a["token"]))["state"] == "called"   # at a counter: not expired
    after = await view(client)
    assert after["seq"] == before["seq"] + 2
    assert after["waiting"] == 0
    assert await client.app.state.service.tick() == 0                # nothing twice
    assert_error(await client.delete(f"/api/tickets/{b['token']}"), 409, "invalid_state")


async def test_online_booking_for_the_next_day_opens_at_20(client, tokens, clock):
    clock.advance(hours=11)                                          # Tuesday 20:00
    r = await client.post(ISSUE, json={"service": LAND, "channel": "online"},
                          headers=bearer(tokens.citizen(CITIZEN_ID)))
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["number"] == "1001" and t.get("day", "2026-05-20") == "2026-05-20"
    assert_error(await client.post(ISSUE, json=KIOSK), 409, "issuing_closed")
