"""A holder's actions are bounded (issue 14, point 8): an opt-in that changes nothing appends
nothing, changes are paced per ticket (hub.domain.holder), and opt-ins, opt-outs and ratings never
reach the board feed, only the ticket's own. Measured before: 2,500 opt-ins in 42 s, each one
broadcast to every TV board of the branch."""
from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import connect

from hub.auth import Tokens
from hub.domain.events import CITIZEN_TYPES
from hub.domain.holder import MAX_CHANGES

from conftest import SECRET, bearer, push_subscription, running_app
from waiting import deadline

pytestmark = pytest.mark.anyio

PHONE = "0912345678"
WAIT = deadline(30)


async def issue(client, **body) -> dict:
    r = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk", **body})
    assert r.status_code == 201, r.text
    return r.json()


async def log(client) -> list[dict]:
    return await client.app.state.storage.log.events_since("1", 0)


async def opt_in(client, token: str, **body):
    return await client.post(f"/api/tickets/{token}/notifications", json=body)


# -- nothing changed, nothing appended --------------------------------------------------------------

async def test_an_opt_in_that_changes_nothing_appends_nothing(client):
    mine = await issue(client, phone=PHONE)
    token = mine["token"]
    view = (await client.get(f"/api/tickets/{token}")).json()
    before = await log(client)
    r = await opt_in(client, token, channel="sms")                     # the phone given at issue did it already
    assert r.status_code == 200 and r.json() == view
    assert await log(client) == before

    sub = push_subscription()
    steps = [  # (the body, whether it changes anything)
        ({"channel": "push", "subscription": sub, "ahead": 3}, True),
        ({"channel": "push", "subscription": sub, "ahead": 3}, False),
        ({"channel": "push", "subscription": {**sub, "junk": "x"}, "ahead": 3}, False),   # what is kept is the same
        ({"channel": "push", "subscription": sub, "ahead": 3, "travel_minutes": 20}, True),
        ({"channel": "push", "subscription": sub, "ahead": 3, "travel_minutes": 20, "lang": "vi"}, False),
        ({"channel": "push", "subscription": sub, "ahead": 3}, False),     # no travel given: the kept one stays
        ({"channel": "push", "subscription": sub, "ahead": 3, "lang": "en"}, True),
        ({"channel": "push", "subscription": sub}, True),                  # "ahead" back to the default
        ({"channel": "sms", "phone": "+84 912 345 678"}, False),            # the same number, written otherwise
    ]
    for body, changes in steps:
        before = await log(client)
        r = await opt_in(client, token, **body)
        assert r.status_code == 200, r.text
        after = await log(client)
        assert len(after) == len(before) + changes, body
        assert r.json()["notifications"] == (await client.get(f"/api/tickets/{token}")).json()["notifications"]


# -- paced per ticket -------------------------------------------------------------------------------

async def test_changes_are_paced_per_ticket_from_the_log(settings, clock):
    async with running_app(settings, clock) as client:
        token = (await issue(client))["token"]
        other = (await issue(client))["token"]
        for ahead in range(1, MAX_CHANGES + 1):
            assert (await opt_in(client, token, channel="sms", phone=PHONE, ahead=ahead)).status_code == 200
        before, view = await log(client), (await client.get(f"/api/tickets/{token}")).json()

        refused = [await opt_in(client, token, channel="sms", phone=PHONE, ahead=20),
                   await client.delete(f"/api/tickets/{token}/notifications/sms")]
        for r in refused:
            assert r.status_code == 429, r.text
            error = r.json()["error"]
            assert error["code"] == "too_many_changes" and error["message"] and error["message_vi"]
            assert error["retry_after"] == 60 and r.headers["Retry-After"] == "60"
        assert await log(client) == before
        assert (await client.get(f"/api/tickets/{token}")).json() == view
        # Asking for what is kept is no change: answered, not paced. Another ticket is not affected.
        assert (await opt_in(client, token, channel="sms", phone=PHONE, ahead=MAX_CHANGES)).status_code == 200
        assert (await opt_in(client, other, channel="sms", phone=PHONE)).status_code == 200

    # The pace is read from the ticket's own history in the log: a restarted hub agrees.
    clock.advance(seconds=30)
    async with running_app(settings, clock) as client:
        r = await opt_in(client, token, channel="sms", phone=PHONE, ahead=20)
        assert r.status_code == 429 and r.json()["error"]["retry_after"] == 30
        clock.advance(seconds=30)
        r = await opt_in(client, token, channel="sms", phone=PHONE, ahead=20)
        assert r.status_code == 200 and r.json()["notifications"] == {"sms": {"ahead": 20}}


# -- never on the board feed -------------------------------------------------------------------------

STAFF = bearer(Tokens(SECRET).staff("1"))


@asynccontextmanager
async def feed(hub, path: str):
    async with connect("ws" + hub.url.removeprefix("http") + path, open_timeout=WAIT, ping_interval=None,
                       close_timeout=deadline(2)) as ws:
        yield ws


async def recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def sse_events(c: httpx.AsyncClient, path: str, n: int) -> list[dict]:
    """The first `n` data events of an SSE stream."""
    got: list[dict] = []
    async with c.stream("GET", path) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line.removeprefix("data: ")))
                if len(got) == n:
                    return got
    raise AssertionError(f"the stream ended after {len(got)} events")


async def test_opt_ins_opt_outs_and_ratings_reach_the_ticket_feed_never_the_board(hub):
    async with httpx.AsyncClient(base_url=hub.url, timeout=WAIT) as c:
        assert (await c.post("/api/branches/1/counters/1/open", json={"services": ["dat-dai"]},
                             headers=STAFF)).status_code == 200
        mine = (await c.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})).json()
        neighbour = (await c.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})).json()
        token = mine["token"]
        async with feed(hub, "/ws/branches/1") as board, feed(hub, f"/ws/tickets/{token}") as own, \
                feed(hub, f"/ws/tickets/{neighbour['token']}") as theirs:
            snap = await recv(board)
            head, epoch = snap["seq"], snap["epoch"]
            assert (await recv(own))["type"] == "snapshot" and (await recv(theirs))["type"] == "snapshot"
            holder = [("POST", "notifications", {"channel": "sms", "phone": PHONE}),
                      ("POST", "notifications", {"channel": "sms", "phone": PHONE, "ahead": 3}),
                      ("DELETE", "notifications/sms", None)]
            for method, path, body in holder:
                r = await c.request(method, f"/api/tickets/{token}/{path}", json=body)
                assert r.status_code == 200, r.text
            assert (await c.post("/api/branches/1/counters/1/call-next", headers=STAFF)).status_code == 200
            assert (await c.post(f"/api/branches/1/tickets/{mine['number']}/complete",
                                 headers=STAFF)).status_code == 200
            assert (await c.post(f"/api/tickets/{token}/rating", json={"score": 5})).status_code == 200
            later = (await c.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})).json()

            # The ticket's own feed has all that is about it, its holder's doings included, each
            # naming the one before (`prev`); not the number issued after it was done (nothing changed).
            own_events = [await recv(own) for _ in range(6)]
            assert [e["seq"] for e in own_events] == list(range(head + 1, head + 7))
            assert [e.get("prev") for e in own_events] == list(range(head, head + 6))
            assert [e["type"] for e in own_events] == ["ticket.notify", "ticket.notify", "ticket.unsubscribed",
                                                       "ticket.called", "ticket.completed", "ticket.rated"]
            # Another holder's feed is not told who asked for what, nor even that someone did: it
            # gets what moved its own view (the call made it next, the completion freed the counter).
            their_events = []
            for _ in range(20):                       # bounded: a handful come
                e = await recv(theirs)
                assert e["type"] not in CITIZEN_TYPES | {"internal"}, e
                assert e["ticket"]["number"] == neighbour["number"]              # their own ticket's view
                assert e["prev"] == (their_events[-1]["seq"] if their_events else head)
                their_events.append(e)
                if e["type"] == "ticket.completed":
                    break
            called = [e for e in their_events if e["type"] == "ticket.called"]
            assert [e["number"] for e in called] == [mine["number"]]             # the queue's doings in full
            assert called[0]["ticket"]["position"] == 1
            # The board: what the queue did in full; of the holder's doings only an `internal` mark
            # at its seq (seq still rises by exactly one, CONTRACTS section 4), nothing of what it was.
            board_events = [await recv(board) for _ in range(7)]
            assert [(e["type"], e["seq"]) for e in board_events] == [
                ("internal", head + 1), ("internal", head + 2), ("internal", head + 3),
                ("ticket.called", head + 4), ("ticket.completed", head + 5), ("internal", head + 6),
                ("ticket.issued", head + 7)]
            for e in board_events:
                if e["type"] == "internal":
                    assert set(e) == {"type", "seq", "t", "branch", "day"}, e
            assert board_events[6]["number"] == later["number"]

        # A board resuming from before them gets the same, so do SSE boards; the log has it all.
        async with feed(hub, f"/ws/branches/1?since={head}&epoch={epoch}") as again:
            resumed = [await recv(again) for _ in range(8)]
        assert resumed[0]["type"] == "resume" and resumed[1:] == board_events
        sse = await sse_events(c, f"/sse/branches/1?since={head}&epoch={epoch}", 8)
        assert sse[1:] == board_events
        log = (await c.get("/api/branches/1")).json()["seq"]
        assert log == head + 7
    assert not CITIZEN_TYPES & {e["type"] for e in [*board_events, *resumed, *sse]}
