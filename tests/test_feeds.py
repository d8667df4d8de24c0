"""Live feeds (CONTRACTS.md §4, DESIGN.md §3 and §7) against real `python -m hub serve` processes:
real WebSocket clients, SSE over httpx, a client that really stops reading (small TCP buffers),
and two hub processes on a real Redis that is stopped and restarted under traffic.

Every wait is bounded. Events are compared with the log itself, read through `hub.store.open_store`.
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from hub.auth import Tokens
from hub.domain.events import public
from hub.feeds.watch import eta_step, shown
from hub.store import open_store
from hub.web.feeds import MAX_CLIENT_MESSAGE

from conftest import SECRET, bearer, free_port, stop_process
from waiting import deadline, until, within

pytestmark = pytest.mark.anyio

B = "1"                               # branch 1: counters 1-5 dat-dai, 6-7 ho-tich, 8 dkkd+dau-tu, ...
LAND, CIVIL = "dat-dai", "ho-tich"
TOKENS = Tokens(SECRET)
STAFF = bearer(TOKENS.staff(B))
WAIT = deadline(30)                   # seconds: the bound of any single wait for a message
ALL_FIELDS = ["dat-dai", "ho-tich", "dang-ky-kinh-doanh", "dau-tu", "xay-dung", "van-hoa-the-thao-du-lich",
              "giao-thong-van-tai", "cu-tru", "lao-dong-viec-lam", "giao-duc", "nong-nghiep-moi-truong",
              "y-te", "tu-phap-chung-thuc"]


# -- helpers: HTTP ----------------------------------------------------------------------------------

def http(hub, timeout: float = 30.0) -> httpx.AsyncClient:
    """A client of `hub` whose requests give up after deadline(timeout) s."""
    return httpx.AsyncClient(base_url=hub.url, timeout=httpx.Timeout(deadline(timeout)))


async def issue(c: httpx.AsyncClient, service: str = LAND, headers: dict | None = None, **body) -> dict:
    r = await c.post(f"/api/branches/{B}/tickets", json={"service": service, "channel": "kiosk", **body},
                     headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def open_counter(c: httpx.AsyncClient, counter: str, services: list[str]) -> dict:
    r = await c.post(f"/api/branches/{B}/counters/{counter}/open", json={"services": services}, headers=STAFF)
    assert r.status_code == 200, r.text
    return r.json()


async def call_next(c: httpx.AsyncClient, counter: str) -> dict:
    r = await c.post(f"/api/branches/{B}/counters/{counter}/call-next", headers=STAFF)
    assert r.status_code == 200, r.text
    return r.json()


async def branch_view(c: httpx.AsyncClient) -> dict:
    r = await c.get(f"/api/branches/{B}")
    assert r.status_code == 200, r.text
    return r.json()


def state_of(view: dict) -> dict:
    """What a branch view says about the queue, without what depends on the process's own clock
    (each process's QUEUECAST_CLOCK starts at 09:00 when that process starts, then runs)."""
    out = {k: v for k, v in view.items() if k != "now"}
    out["services"] = [{k: v for k, v in svc.items() if k != "expected_wait"} for svc in view["services"]]
    return out


async def log_events(url: str, after: int = 0) -> list[dict]:
    """The branch's log straight from the store, as a board feed must show it."""
    async with open_store(url) as store:
        return [public(ev) for ev in await store.log.events_since(B, after)]


async def log_head(url: str):
    async with open_store(url) as store:
        return await store.log.head(B)


# -- helpers: WebSocket -----------------------------------------------------------------------------

def ws_url(hub, path: str) -> str:
    return "ws" + hub.url.removeprefix("http") + path


@asynccontextmanager
async def feed(hub, path: str, **kw):
    kw.setdefault("ping_interval", None)
    async with connect(ws_url(hub, path), open_timeout=WAIT, close_timeout=deadline(2), **kw) as ws:
        yield ws


async def recv(ws, timeout: float = WAIT) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def take(ws, n: int, timeout: float = WAIT) -> list[dict]:
    return [await recv(ws, timeout) for _ in range(n)]


async def until_closed(ws, timeout: float = WAIT) -> tuple[list[dict], int | None]:
    """Read until the server closes the connection: what was read, and the close code it sent."""
    got: list[dict] = []
    try:
        for _ in range(100_000):             # more than any test here sends
            got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except ConnectionClosed as e:
        return got, (e.rcvd.code if e.rcvd is not None else None)
    raise AssertionError(f"the server sent {len(got)} messages and did not close")


async def close_code(hub, path: str) -> int | None:
    async with feed(hub, path) as ws:
        got, code = await until_closed(ws)
    assert got == [], got
    return code


def assert_consecutive(events: list[dict], first: int) -> None:
    assert [e["seq"] for e in events] == list(range(first, first + len(events))), [e["seq"] for e in events]


# -- helpers: SSE -----------------------------------------------------------------------------------

class SSE:
    """Server-Sent Events parsed from an httpx streaming response: each event's id and JSON data."""

    def __init__(self, response: httpx.Response):
        self._lines = response.aiter_lines()
        self.retry: str | None = None

    async def next(self, timeout: float = WAIT) -> tuple[str | None, dict | str]:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self):
        fields: dict[str, str] = {}
        data: list[str] = []
        async for line in self._lines:
            if line == "":
                if data:
                    text = "\n".join(data)
                    if fields.get("event", "message") != "message":
                        return fields.get("id"), {"event": fields["event"], "data": text}
                    return fields.get("id"), json.loads(text)
                fields, data = {}, []
                continue
            if line.startswith(":"):
                continue                               # a comment (ping)
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "retry":
                self.retry = value
            else:
                fields[name] = value
        raise EOFError("the event stream ended")


@asynccontextmanager
async def sse(hub, path: str, headers: dict | None = None, params: dict | None = None):
    async with http(hub) as c:
        async with c.stream("GET", path, headers=headers, params=params) as r:
            yield r, SSE(r)


# -- privacy ----------------------------------------------------------------------------------------

FORBIDDEN_KEYS = {"citizen", "phone", "token", "cccd"}


def assert_private(messages: list, secrets: list[str], digit_secrets: list[str]) -> None:
    """No message carries a secret string, a phone/CCCD in any formatting, or a private key."""
    def walk(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                assert k.lower() not in FORBIDDEN_KEYS, f"private key {k!r} at {path}"
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        elif isinstance(value, str):
            digits = re.sub(r"\D", "", value)
            for d in digit_secrets:
                assert d not in digits, f"{d} (in some form) at {path}: {value!r}"
    for m in messages:
        text = m if isinstance(m, str) else json.dumps(m, ensure_ascii=False)
        for s in secrets:
            assert s not in text, f"{s!r} in a board message: {text[:300]}"
        walk(json.loads(text) if isinstance(m, str) else m, "$")


# == 1. the board feed ===============================================================================

async def test_board_feed_snapshot_then_every_event_in_order(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    async with http(hub) as c, feed(hub, f"/ws/branches/{B}") as ws:
        snap = await recv(ws)
        assert snap["type"] == "snapshot" and snap["seq"] == 0 and snap["resumed"] is False
        assert isinstance(snap["epoch"], str) and snap["epoch"]
        assert snap["id"] == B and {s["id"] for s in snap["services"]} >= {LAND, CIVIL}
        assert {c["id"] for c in snap["counters"]} >= {"1", "2", "6"} and snap["waiting"] == 0

        a = await issue(c)
        ev = await recv(ws)
        assert ev["type"] == "ticket.issued" and ev["seq"] == 1
        assert (ev["number"], ev["service"], ev["branch"]) == (a["number"], LAND, B) and ev["t"]
        b = await issue(c, CIVIL)
        await open_counter(c, "1", [LAND])
        await open_counter(c, "6", [CIVIL])
        called = await call_next(c, "1")
        assert called["ticket"]["number"] == a["number"]
        await call_next(c, "6")
        a2 = await issue(c)
        await call_next(c, "1")                 # completes a, calls a2
        evs = await take(ws, 8)
        assert_consecutive([ev, *evs], 1)
        assert [e["type"] for e in evs] == ["ticket.issued", "counter.opened", "counter.opened", "ticket.called",
                                            "ticket.called", "ticket.issued", "ticket.completed", "ticket.called"]
        call = evs[3]
        assert (call["number"], call["service"], call["counter"], call["branch"]) == (a["number"], LAND, "1", B)
        assert call["t"].startswith("2026-05-19T09:") and call["ticket"] == a["ticket"]
        assert (evs[4]["number"], evs[4]["counter"], evs[4]["service"]) == (b["number"], "6", CIVIL)
        assert (evs[6]["number"], evs[7]["number"], evs[7]["counter"]) == (a["number"], a2["number"], "1")
        assert evs == (await log_events(hub_env["QUEUECAST_DATABASE"]))[1:9]

        view = await branch_view(c)
        assert view["seq"] == 9
        # A board joining now starts from the state those events made.
        async with feed(hub, f"/ws/branches/{B}") as late:
            s2 = await recv(late)
            assert s2["type"] == "snapshot" and s2["seq"] == 9 and s2["epoch"] == snap["epoch"]
            assert sorted((x["number"], x["counter"]) for x in s2["now_serving"]) == \
                sorted([(a2["number"], "1"), (b["number"], "6")])
            assert {k: s2[k] for k in ("services", "counters", "waiting")} == \
                {k: view[k] for k in ("services", "counters", "waiting")}
            await issue(c, CIVIL)
            assert (await recv(late))["seq"] == (await recv(ws))["seq"] == 10


async def test_unknown_branch_and_bad_since_close_with_their_codes(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    assert await close_code(hub, "/ws/branches/nope") == 4404
    assert await close_code(hub, f"/ws/branches/{B}?since=abc") == 4400
    assert await close_code(hub, f"/ws/branches/{B}?since=1.5") == 4400
    async with http(hub) as c:
        r = await c.get(f"/sse/branches/{B}", headers={"Last-Event-ID": "abc"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_since"
        # Found by schemathesis: a bad Last-Event-ID beside a good ?since= was let through, and int()
        # read "+1", " 1" and "1_0" as seqs; /openapi.json says a seq is -?[0-9]+.
        for query, headers in [("?since=0", {"Last-Event-ID": "{}"}), ("?since=%2B1", {}), ("?since=1_0", {}),
                               ("?since=%201", {}), ("", {"Last-Event-ID": "+1"})]:
            r = await c.get(f"/sse/branches/{B}{query}", headers=headers)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_since", (query, headers, r.text)
        assert await close_code(hub, f"/ws/branches/{B}?since=%2B1") == 4400
        r = await c.get("/sse/branches/nope")
        assert r.status_code == 404


# == 2. resume =======================================================================================

async def test_resume_gives_exactly_the_missed_events(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    db = hub_env["QUEUECAST_DATABASE"]
    async with http(hub) as c, feed(hub, f"/ws/branches/{B}") as witness:
        snap = await recv(witness)
        epoch = snap["epoch"]
        await open_counter(c, "1", [LAND])
        async with feed(hub, f"/ws/branches/{B}") as ws:
            await recv(ws)
            await issue(c)
            await issue(c)
            seen = await take(ws, 2)
        last = seen[-1]["seq"]
        assert last == 3

        # While away: 7 events (4 issues, a call, a call that completes the first: 2 events).
        for _ in range(4):
            await issue(c, CIVIL if _ % 2 else LAND)
        await call_next(c, "1")
        await call_next(c, "1")
        assert (await branch_view(c))["seq"] == last + 7
        everything = await take(witness, 10)
        assert_consecutive(everything, 1)

        async with feed(hub, f"/ws/branches/{B}?since={last}&epoch={epoch}") as ws:
            marker = await recv(ws)
            assert marker == {"type": "resume", "seq": last, "epoch": epoch, "resumed": True}
            missed = await take(ws, 7)
            assert_consecutive(missed, last + 1)
            assert missed == everything[last:] == (await log_events(db, last))
            await issue(c)                      # then live
            live = await recv(ws)
            assert live == await recv(witness) and live["seq"] == last + 8
            head = live["seq"]

        # Without an epoch the client is trusted to mean the current history.
        async with feed(hub, f"/ws/branches/{B}?since={head - 2}") as ws:
            assert (await recv(ws))["type"] == "resume"
            assert [e["seq"] for e in await take(ws, 2)] == [head - 1, head]
        # since = head: nothing missed, a marker and then live events only.
        async with feed(hub, f"/ws/branches/{B}?since={head}&epoch={epoch}") as ws:
            assert (await recv(ws))["seq"] == head
            await issue(c)
            assert (await recv(ws))["seq"] == head + 1
            assert (await recv(witness))["seq"] == head + 1
        head += 1
        # since=0: the whole history (it is all retained).
        async with feed(hub, f"/ws/branches/{B}?since=0&epoch={epoch}") as ws:
            assert (await recv(ws))["resumed"] is True
            assert await take(ws, head) == await log_events(db)

        # A resume the hub cannot honour exactly is a snapshot, never a partial replay.
        for make in (lambda h: f"since={last}&epoch=not-{epoch}", lambda h: f"since=-1&epoch={epoch}",
                     lambda h: "since=-5", lambda h: f"since={h + 1}&epoch={epoch}", lambda h: f"since={h + 1}",
                     lambda h: f"since={h + 10**9}", lambda h: "since=99999999999999999999"):
            query = make(head)
            async with feed(hub, f"/ws/branches/{B}?{query}") as ws:
                m = await recv(ws)
                assert (m["type"], m["seq"], m["resumed"], m["epoch"]) == ("snapshot", head, False, epoch), query
                assert "services" in m and "counters" in m
                await issue(c, "cu-tru")
                assert (await recv(ws))["seq"] == head + 1, query
                assert (await recv(witness))["seq"] == head + 1
                head += 1


# == 3. SSE ==========================================================================================

async def test_sse_board_snapshot_and_last_event_id_resume(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    db = hub_env["QUEUECAST_DATABASE"]
    async with http(hub) as c:
        await open_counter(c, "1", [LAND])
        async with sse(hub, f"/sse/branches/{B}") as (r, stream):
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            sid, snap = await stream.next()
            assert snap["type"] == "snapshot" and snap["resumed"] is False and snap["seq"] == 1
            assert sid == "1" and stream.retry is not None and "services" in snap
            epoch = snap["epoch"]
            t = await issue(c)
            sid, ev = await stream.next()
            assert (sid, ev["type"], ev["seq"], ev["number"]) == ("2", "ticket.issued", 2, t["number"])
        for _ in range(3):
            await issue(c)
        await call_next(c, "1")
        # The browser reconnects with Last-Event-ID = the last id it saw.
        async with sse(hub, f"/sse/branches/{B}", headers={"Last-Event-ID": "2"}, params={"epoch": epoch}) as (r, s):
            sid, marker = await s.next()
            assert marker == {"type": "resume", "seq": 2, "epoch": epoch, "resumed": True} and sid == "2"
            missed = [await s.next() for _ in range(4)]
            assert [i for i, _ in missed] == ["3", "4", "5", "6"]
            assert [e for _, e in missed] == await log_events(db, 2)
            await call_next(c, "1")
            got = [await s.next() for _ in range(2)]
            assert [(i, e["type"]) for i, e in got] == [("7", "ticket.completed"), ("8", "ticket.called")]
        # ?since= works as Last-Event-ID; a wrong epoch gets a snapshot.
        async with sse(hub, f"/sse/branches/{B}", params={"since": "6"}) as (r, s):
            assert (await s.next())[1]["type"] == "resume"
            assert [(await s.next())[0] for _ in range(2)] == ["7", "8"]
        async with sse(hub, f"/sse/branches/{B}", headers={"Last-Event-ID": "2"}, params={"epoch": "other"}) as (r, s):
            sid, m = await s.next()
            assert (sid, m["type"], m["seq"], m["resumed"]) == ("8", "snapshot", 8, False)


async def test_sse_ticket_feed(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    async with http(hub) as c:
        await open_counter(c, "1", [LAND])
        a, b = await issue(c), await issue(c)
        async with sse(hub, f"/sse/tickets/{b['token']}") as (r, s):
            assert r.status_code == 200
            sid, snap = await s.next()
            assert snap["type"] == "snapshot" and sid == "3"
            assert (snap["ticket"]["number"], snap["ticket"]["position"], snap["ticket"]["state"]) == \
                (b["number"], 2, "waiting")
            await call_next(c, "1")
            sid, ev = await s.next()
            assert (sid, ev["type"], ev["number"], ev["ticket"]["position"]) == ("4", "ticket.called", a["number"], 1)
            await call_next(c, "1")
            evs = [await s.next() for _ in range(2)]
            assert [e["type"] for _, e in evs] == ["ticket.completed", "ticket.called"]
            assert (evs[1][1]["ticket"]["state"], evs[1][1]["ticket"]["counter"]) == ("called", "1")
        async with sse(hub, f"/sse/tickets/{b['token']}", headers={"Last-Event-ID": "4"}) as (r, s):
            assert (await s.next())[1]["type"] == "resume"
            assert [(await s.next())[0] for _ in range(2)] == ["5", "6"]
        r = await c.get(f"/sse/tickets/{b['token'][:-3]}xyz")
        assert r.status_code == 404


# == 4. the ticket feed ==============================================================================

async def test_ticket_feed_follows_the_ticket(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    async with http(hub) as c:
        for cid in ("1", "2", "3"):
            await open_counter(c, cid, [LAND])
        first = [await issue(c) for _ in range(3)]
        mine = await issue(c)
        async with feed(hub, f"/ws/tickets/{mine['token']}") as ws:
            snap = await recv(ws)
            assert (snap["type"], snap["resumed"], snap["seq"]) == ("snapshot", False, 7)
            t = snap["ticket"]
            assert (t["number"], t["state"], t["position"], t["people_ahead"]) == (mine["number"], "waiting", 4, 3)
            assert t["now_serving"] == [] and t["counter"] is None
            assert t["eta"]["p10"] <= t["eta"]["p50"] <= t["eta"]["p90"]

            positions, last = [], snap["seq"]
            for cid, ahead in zip(("1", "2", "3"), first):
                await call_next(c, cid)
                ev = await recv(ws)
                assert (ev["type"], ev["number"], ev["counter"]) == ("ticket.called", ahead["number"], cid)
                assert ev["prev"] == last, (ev["prev"], last)         # each move of the queue, none missed
                last = ev["seq"]
                positions.append((ev["ticket"]["position"], ev["ticket"]["people_ahead"]))
                assert ev["ticket"]["state"] == "waiting"
                assert {"number": ahead["number"], "counter": cid} in ev["ticket"]["now_serving"]
            assert positions == [(3, 2), (2, 1), (1, 0)]
            await call_next(c, "2")                       # completes first[1], calls mine
            done, called = await take(ws, 2)
            assert (done["type"], done["number"]) == ("ticket.completed", first[1]["number"])
            assert (done["prev"], called["prev"]) == (last, done["seq"])
            assert (called["type"], called["number"], called["counter"]) == ("ticket.called", mine["number"], "2")
            assert (called["ticket"]["state"], called["ticket"]["counter"]) == ("called", "2")
            assert called["ticket"]["position"] is None
            head = called["seq"]
        # A phone coming back resumes its ticket feed too.
        async with feed(hub, f"/ws/tickets/{mine['token']}?since={head - 2}&epoch={snap['epoch']}") as ws:
            assert (await recv(ws))["type"] == "resume"
            replay = await take(ws, 2)
            assert [e["seq"] for e in replay] == [head - 1, head]
            assert all(e["ticket"]["state"] == "called" for e in replay)

    forged = mine["token"][:-4] + ("AAAA" if not mine["token"].endswith("AAAA") else "BBBB")
    assert await close_code(hub, f"/ws/tickets/{forged}") == 4404
    assert await close_code(hub, "/ws/tickets/not-a-token") == 4404
    other_branch = TOKENS.ticket("2", mine["ticket"])      # well signed, but no such ticket there
    assert await close_code(hub, f"/ws/tickets/{other_branch}") == 4404


# == 5. privacy ======================================================================================

def news(ev: dict, seen: dict, seen_at: str) -> bool:
    """Whether a ticket feed's frame told the phone something since the view `seen` (of time
    `seen_at`): a field it shows changed, or the expected call time (t + p50) moved by the step
    hub.feeds.watch takes for news (less 6 s: `t` is the event's time, a little before the hub's now)."""
    if shown(ev["ticket"]) != shown(seen):
        return True
    was, now = seen["eta"], ev["ticket"]["eta"]
    if was is None or now is None:
        return was is not now
    moved = (datetime.fromisoformat(ev["t"]) + timedelta(minutes=now["p50"])) - \
        (datetime.fromisoformat(seen_at) + timedelta(minutes=was["p50"]))
    return abs(moved) >= eta_step(was) - timedelta(seconds=6)


async def frames_until(ws, kind: str, seen: dict, seen_at: str) -> tuple[list[dict], dict]:
    """A ticket feed's frames up to the next one of type `kind`: those before it (each must be
    news to a phone that had `seen` as of `seen_at`), and that one."""
    before: list[dict] = []
    for _ in range(20):                                   # far more than any step here makes
        ev = await recv(ws)
        if ev["type"] == kind:
            return before, ev
        assert news(ev, seen, seen_at), f"a frame that told the phone nothing new: {ev} after {seen}"
        before.append(ev)
        seen, seen_at = ev["ticket"], ev["t"]
    raise AssertionError(f"no {kind} in 20 frames")


async def test_ticket_feed_sends_only_what_changes_the_holders_view(hub_factory, hub_env):
    """Numbers issued behind the holder, or in another field, send the phone nothing; its queue
    moving does, and `prev` names the frame before, so the seqs skipped are no gap."""
    hub = hub_factory(hub_env)
    async with http(hub) as c:
        await open_counter(c, "1", [LAND])
        ahead, mine = await issue(c), await issue(c)
        async with feed(hub, f"/ws/tickets/{mine['token']}") as ws, feed(hub, f"/ws/branches/{B}") as board:
            snap = await recv(ws)
            assert (snap["type"], snap["ticket"]["position"]) == ("snapshot", 2)
            assert (await recv(board))["type"] == "snapshot"
            for service in (LAND, LAND, CIVIL):           # behind mine, and another field's queue
                await issue(c, service)
            await call_next(c, "1")                       # calls `ahead`: mine is next
            # The board has all four events, in order; the phone only the call, which moved it
            # (and any event that moved its ETA by a step worth telling: hub.feeds.watch).
            board_evs = await take(board, 4)
            assert_consecutive(board_evs, snap["seq"] + 1)
            skipped, called = await frames_until(ws, "ticket.called", snap["ticket"], snap["ticket"]["issued_at"])
            assert (called["seq"], called["number"]) == (snap["seq"] + 4, ahead["number"])
            assert called["prev"] == (skipped[-1]["seq"] if skipped else snap["seq"])
            assert (called["ticket"]["position"], called["ticket"]["people_ahead"]) == (1, 0)
            assert called["ticket"]["now_serving"] == [{"number": ahead["number"], "counter": "1"}]

            # Its own event always comes, with what changed: the holder's opt-in.
            r = await c.post(f"/api/tickets/{mine['token']}/notifications",
                             json={"channel": "sms", "phone": "0912345678", "ahead": 1})
            assert r.status_code in (200, 201), r.text
            skipped, notify = await frames_until(ws, "ticket.notify", called["ticket"], called["t"])
            assert not skipped and notify["prev"] == called["seq"]
            assert notify["ticket"]["notifications"] == {"sms": {"ahead": 1}}

            await issue(c, CIVIL)                         # nothing for the phone ...
            await call_next(c, "1")                       # ... then `ahead` completed, mine called
            skipped, done = await frames_until(ws, "ticket.completed", notify["ticket"], notify["t"])
            assert done["number"] == ahead["number"]
            # Both events are of one command: each carries the ticket as that command left it.
            assert done["ticket"]["now_serving"] == [{"number": mine["number"], "counter": "1"}]
            mine_called = await recv(ws)
            assert (mine_called["type"], mine_called["number"], mine_called["prev"]) == \
                ("ticket.called", mine["number"], done["seq"])
            assert (mine_called["ticket"]["state"], mine_called["ticket"]["counter"]) == ("called", "1")
            head = mine_called["seq"]

        # A phone resuming from a seq it had is not confused by those it never got: the replay
        # is every event since, each with the ticket as it is now.
        async with feed(hub, f"/ws/tickets/{mine['token']}?since={called['seq']}&epoch={snap['epoch']}") as ws:
            assert (await recv(ws))["type"] == "resume"
            replay = await take(ws, head - called["seq"])
            assert_consecutive(replay, called["seq"] + 1)
            assert all(e["ticket"]["state"] == "called" and "prev" not in e for e in replay)


async def test_a_call_next_reaches_each_board_in_one_write_and_every_event_once(hub_factory, hub_env):
    """A call-next's two events (the one served completed, the next called) go to every board
    connection in one write, still one message each, with no seq lost or repeated."""
    hub = hub_factory(hub_env)
    boards_n, rounds = 4, 6
    async with http(hub) as c:
        await open_counter(c, "1", [LAND])
        for _ in range(rounds + 1):
            await issue(c)
        await call_next(c, "1")                           # someone at the counter: each call completes them
        async with AsyncExitStack() as stack:
            boards = [await stack.enter_async_context(feed(hub, f"/ws/branches/{B}")) for _ in range(boards_n)]
            starts = [await recv(ws) for ws in boards]
            head = starts[0]["seq"]
            assert {s["seq"] for s in starts} == {head}
            before = await metric(c, "queuecast_feed_writes")
            assert before is not None
            for _ in range(rounds):
                await call_next(c, "1")
            got = [await take(ws, 2 * rounds) for ws in boards]
            after = await metric(c, "queuecast_feed_writes")
        logged = (await log_events(hub_env["QUEUECAST_DATABASE"]))[head:head + 2 * rounds]
        for evs in got:
            assert_consecutive(evs, head + 1)
            assert [e["type"] for e in evs] == ["ticket.completed", "ticket.called"] * rounds
            assert evs == logged
        assert after - before == boards_n * rounds, (before, after)     # not twice that


async def test_a_direct_connection_lives_on_without_a_task_of_its_own(hub_factory, hub_env):
    """Once its first frames are sent, a direct connection is left to uvicorn and the fan-out (its
    task ends: an idle feed holds no ASGI stack): its client's pings are still answered, what it
    says is size-checked (over MAX_CLIENT_MESSAGE: closed with 1009, its place under the address cap
    given back), its frames keep coming, and a hub that stops closes it with 1012."""
    hub = hub_factory({**hub_env, "QUEUECAST_MAX_FEEDS_PER_ADDRESS": "2"})
    async with http(hub) as c, feed(hub, f"/ws/branches/{B}") as a, feed(hub, f"/ws/branches/{B}") as b:
        assert (await recv(a))["type"] == (await recv(b))["type"] == "snapshot"

        async def both_direct() -> bool:
            return await metric(c, "queuecast_feed_direct") == 2
        await until(both_direct, "both connections direct")
        await a.send("still here")                       # small: read and let be, and reading goes on
        await within(await a.ping(), "the pong of a detached connection that spoke")
        await b.send("x" * (MAX_CLIENT_MESSAGE + 1))
        assert await until_closed(b) == ([], 1009)
        assert await metric(c, "queuecast_feed_connections", 'feed="board"') == 1
        async with feed(hub, f"/ws/branches/{B}") as third:      # b's place is free again
            assert (await recv(third))["type"] == "snapshot"
            ev = await issue(c)
            assert (await recv(a))["number"] == (await recv(third))["number"] == ev["number"]
            hub.proc.terminate()                         # our hub, by its pid; the fixture waits for it
            assert (await until_closed(a))[1] == (await until_closed(third))[1] == 1012


async def test_board_feed_never_carries_phones_ids_or_tokens(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    phone, cccd = "0912345678", "001090012345"
    citizens = [(cccd, "0987654321"), ("001085054321", "0911222333"), ("079190000111", None)]
    board: list[str] = []
    tokens: list[str] = []

    async def collect(ws):
        try:
            for _ in range(100_000):
                board.append(await ws.recv())
        except ConnectionClosed:
            pass

    async with http(hub) as c, feed(hub, f"/ws/branches/{B}") as ws, \
            sse(hub, f"/sse/branches/{B}") as (_, stream):
        reader = asyncio.create_task(collect(ws))
        await open_counter(c, "1", [LAND])
        await open_counter(c, "6", [CIVIL])
        for form in (phone, "+84912345678", "84912345678", "0912 345 678"):
            r = await c.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "kiosk", "phone": form})
            assert r.status_code in (201, 400), r.text          # a form the hub refuses is fine too
            if r.status_code == 201:
                tokens.append(r.json()["token"])
        assert tokens, "no kiosk number with a phone was issued"
        kiosk_with_phone = len(tokens)
        for who, ph in citizens:
            token = TOKENS.citizen(who, ph)
            for svc in (LAND, CIVIL):
                t = await issue(c, svc, headers=bearer(token), channel="online")
                tokens.append(t["token"])
        for cid in ("1", "6", "1", "6", "1"):
            await call_next(c, cid)
        head = (await branch_view(c))["seq"]
        # Every path to a board: live, a late snapshot, a replay of the whole history.
        extra: list[str] = []
        async with feed(hub, f"/ws/branches/{B}") as late:
            extra.append(await late.recv())
        async with feed(hub, f"/ws/branches/{B}?since=0") as again:
            extra.extend([await asyncio.wait_for(again.recv(), WAIT) for _ in range(head + 1)])
        sse_msgs = []
        for _ in range(head + 1):
            sid, m = await stream.next()
            sse_msgs.append(m)
        await until(lambda: len(board) >= head + 1, lambda: f"{head + 1} board messages, got {len(board)}")
        await ws.close()
        await within(reader, "the board reader to end after the close")

    assert len(board) == head + 1
    # Not vacuous: the log itself does hold the phones and citizens the feed must leave out.
    async with open_store(hub_env["QUEUECAST_DATABASE"]) as store:
        raw = await store.log.events_since(B, 0)
    with_phone = kiosk_with_phone + 2 * sum(1 for _, ph in citizens if ph)
    assert sum(1 for ev in raw if ev.get("phone")) == with_phone
    assert sum(1 for ev in raw if ev.get("citizen")) == 2 * len(citizens)
    board += extra
    live = [json.loads(m) for m in board]
    assert {m["type"] for m in live} >= {"snapshot", "resume", "ticket.issued", "ticket.called"}
    assert sum(1 for m in live if m["type"] == "ticket.issued" and m.get("channel") == "online") == 2 * 2 * len(citizens)
    pseudonyms = [TOKENS.pseudonym(who) for who, _ in citizens]
    secrets = [*tokens, *pseudonyms, *(t.split(".")[0] for t in tokens), "/t/"]
    digits = ["912345678", "987654321", "911222333", *(who for who, _ in citizens)]
    assert_private(board, secrets, digits)
    assert_private(sse_msgs, secrets, digits)


# == 6. a client that stops reading ==================================================================

def slow_socket(port: int) -> socket.socket:
    """A TCP connection whose receive side is tiny: a phone on a bad link that stops reading.
    The small MSS also keeps the server's send buffer small (Linux sizes it from the MSS)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if hasattr(socket, "TCP_MAXSEG"):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    s.settimeout(deadline(10))
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


async def metric(c: httpx.AsyncClient, name: str, labels: str = "") -> float | None:
    """One sample from /metrics (Prometheus text), None if the hub does not export it."""
    try:
        r = await c.get("/metrics")
    except httpx.HTTPError:
        return None
    pattern = rf"^{name}(?:_total)?" + (re.escape("{" + labels + "}") if labels else r"(?:\{[^}]*\})?") + r"\s+(\S+)$"
    m = re.search(pattern, r.text, re.M)
    return float(m.group(1)) if r.status_code == 200 and m else None


async def slow_cuts(c: httpx.AsyncClient) -> float | None:
    return await metric(c, "queuecast_feed_slow_cuts")


@pytest.mark.slow
async def test_a_client_that_stops_reading_is_cut_and_resumes_without_loss(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    db = hub_env["QUEUECAST_DATABASE"]
    port = int(hub.url.rsplit(":", 1)[1])
    sock = slow_socket(port)
    # compression=None: with permessage-deflate these repetitive frames shrink to a few bytes each.
    slow = await connect(ws_url(hub, f"/ws/branches/{B}"), sock=sock, max_queue=1, compression=None,
                         ping_interval=None, open_timeout=WAIT, close_timeout=deadline(2))
    try:
        snap = json.loads(await asyncio.wait_for(slow.recv(), WAIT))
        assert snap["type"] == "snapshot" and snap["seq"] == 0
        epoch = snap["epoch"]

        # Stop reading; counters toggle between two service lists: unlimited, distinct, ~300-byte events.
        async with http(hub) as c, feed(hub, f"/ws/branches/{B}") as healthy:
            assert (await recv(healthy))["type"] == "snapshot"
            made = 0
            limit = deadline(60)
            end = time.monotonic() + limit
            counters = [str(i) for i in range(1, 9)]

            async def toggle(cid: str, n: int):
                for k in range(n):
                    services = ALL_FIELDS if k % 2 == 0 else ALL_FIELDS[:-1]
                    r = await c.post(f"/api/branches/{B}/counters/{cid}/open", json={"services": services},
                                     headers=STAFF)
                    assert r.status_code == 200, r.text
            healthy_got: list[dict] = []

            async def read_healthy():
                for _ in range(100_000):
                    healthy_got.append(await recv(healthy, timeout=deadline(60)))
            reader = asyncio.create_task(read_healthy())
            for _ in range(100):                   # rounds of 400 events; the deadline comes first
                await asyncio.gather(*(toggle(cid, 50) for cid in counters))
                made += 50 * len(counters)
                cuts = await slow_cuts(c)
                if made >= 1200 and (cuts or 0) >= 1 or cuts is None and made >= 6000:
                    break
                if time.monotonic() >= end:
                    pytest.fail(f"{made} events in {limit:.0f} s did not fill the slow client's buffers")
            else:
                pytest.fail(f"{made} events did not fill the slow client's buffers")
            head = (await branch_view(c))["seq"]
            assert head == made
            # The healthy client on the same branch was never held back and saw everything.
            await until(lambda: len(healthy_got) >= head or reader.done(),
                        lambda: f"the healthy client to get {head} events, got {len(healthy_got)}")
            reader.cancel()
            assert len(healthy_got) == head
            assert_consecutive(healthy_got, 1)

            # Now read what reached the slow client: a prefix of the log, then "too slow".
            got, code = await until_closed(slow, timeout=WAIT)
            assert code == 4008, (code, len(got))
            assert got, "nothing reached the slow client before the cut"
            assert_consecutive(got, 1)
            last = got[-1]["seq"]
            assert last < head
            log = await log_events(db)
            assert got == log[:last]

            # It comes back with since = the last seq it read, and misses nothing.
            async with feed(hub, f"/ws/branches/{B}?since={last}&epoch={epoch}") as back:
                marker = await recv(back)
                assert marker == {"type": "resume", "seq": last, "epoch": epoch, "resumed": True}
                rest = await take(back, head - last)
                assert rest == log[last:]
                await issue(c)
                assert (await recv(back))["seq"] == head + 1
    finally:
        await slow.close()


# == 7. two hub processes on one Redis ===============================================================

def redis_env(url: str, hub_env: dict[str, str]) -> dict[str, str]:
    """hub_env (its clock, secret, rate and lobby configuration) on a Redis store."""
    return {**hub_env, "QUEUECAST_DATABASE": url}


async def test_two_processes_on_one_redis_show_the_same_feed(hub_factory, redis_url, hub_env):
    a, b = hub_factory(redis_env(redis_url, hub_env)), hub_factory(redis_env(redis_url, hub_env))
    async with http(a) as ca, http(b) as cb, feed(a, f"/ws/branches/{B}") as wa, feed(b, f"/ws/branches/{B}") as wb:
        sa, sb = await recv(wa), await recv(wb)
        assert sa["type"] == sb["type"] == "snapshot" and sa["seq"] == sb["seq"] == 0
        assert sa["epoch"] == sb["epoch"]
        issued = [await issue(ca) for _ in range(3)]
        issued.append(await issue(ca, CIVIL, phone="0912345678"))
        await open_counter(cb, "1", [LAND])
        await open_counter(ca, "6", [CIVIL])
        calls = [await call_next(cb, "1"), await call_next(ca, "6"), await call_next(cb, "1")]
        issued.append(await issue(cb))
        calls.append(await call_next(ca, "1"))
        assert [x["ticket"]["number"] for x in calls] == \
            [issued[0]["number"], issued[3]["number"], issued[1]["number"], issued[2]["number"]]
        head = (await log_head(redis_url)).seq
        assert head == 13
        ea, eb = await take(wa, head), await take(wb, head)
        assert_consecutive(ea, 1)
        assert ea == eb == await log_events(redis_url)
        assert [e["type"] for e in ea].count("ticket.called") == 4
        va, vb = await branch_view(ca), await branch_view(cb)
        assert state_of(va) == state_of(vb) and va["seq"] == head
        assert_private(ea + eb, [t["token"] for t in issued], ["912345678"])


@pytest.mark.slow
async def test_concurrent_call_next_on_two_processes_never_calls_a_number_twice(hub_factory, redis_url, hub_env):
    a, b = hub_factory(redis_env(redis_url, hub_env)), hub_factory(redis_env(redis_url, hub_env))
    counters = ["1", "2", "3", "4", "5", "6", "7"]
    async with http(a, 30) as ca, http(b, 30) as cb:
        for cid in counters:
            await open_counter(ca if int(cid) % 2 else cb, cid, [LAND])
        issued = [await issue(ca if i % 2 else cb) for i in range(100)]
        numbers = {t["number"] for t in issued}
        assert len(numbers) == 100
        gate = asyncio.Semaphore(24)

        async def press(i: int):
            cid, c = counters[i % len(counters)], (ca, cb)[i % 2]
            async with gate:
                return await c.post(f"/api/branches/{B}/counters/{cid}/call-next", headers=STAFF)

        answers = await asyncio.wait_for(asyncio.gather(*(press(i) for i in range(200))), 60)
        ok = [r.json() for r in answers if r.status_code == 200]
        for r in answers:
            if r.status_code != 200:
                assert r.status_code == 409 and r.json()["error"]["code"] in ("queue_empty", "busy"), r.text
        called = [x["ticket"]["number"] for x in ok]
        completed = [n for x in ok for n in x["completed"]]
        assert len(called) == len(set(called)), sorted(n for n in called if called.count(n) > 1)
        assert len(completed) == len(set(completed))
        assert set(called) <= numbers and set(completed) <= set(called)
        # Whatever a refusal left waiting is called now, once.
        for _ in range(len(numbers) + 1):
            r = await cb.post(f"/api/branches/{B}/counters/1/call-next", headers=STAFF)
            if r.status_code != 200:
                assert r.json()["error"]["code"] == "queue_empty", r.text
                break
            called.append(r.json()["ticket"]["number"])
        else:
            pytest.fail("call-next went on calling past the numbers issued")
        assert sorted(called) == sorted(numbers)
        log = await log_events(redis_url)
        assert_consecutive(log, 1)
        per_ticket: dict[str, int] = {}
        for ev in log:
            if ev["type"] == "ticket.called":
                per_ticket[ev["number"]] = per_ticket.get(ev["number"], 0) + 1
        assert per_ticket == {n: 1 for n in numbers}

        async def both_at_the_head():            # a follows b's last appends through Redis pub/sub
            views = await branch_view(ca), await branch_view(cb)
            return views if all(v["seq"] == len(log) for v in views) else None
        va, vb = await until(both_at_the_head, f"both processes' views at seq {len(log)}")
        assert state_of(va) == state_of(vb)


class BoardClient:
    """A board as a real client runs it: when its socket closes (or the hub says 4008/4009) it comes
    back with since = the last seq it saw and its epoch. Records every event once, in order."""

    def __init__(self, hub, name: str):
        self.hub, self.name = hub, name
        self.events: list[dict] = []
        self.base: int | None = None          # the seq of its first snapshot
        self.seq: int | None = None
        self.epoch: str | None = None
        self.problems: list[str] = []
        self.closes: list[int | None] = []
        self.connections = 0
        self.failures: list[str] = []        # connection attempts that did not get a feed
        self.attempts = 0
        self.task: asyncio.Task | None = None
        self._ws = None

    def start(self) -> BoardClient:
        self.task = asyncio.create_task(self._run(), name=self.name)
        return self

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    def drop(self) -> None:
        """The phone's network goes: the TCP connection is gone without a closing handshake."""
        if self._ws is not None:
            self._ws.transport.abort()

    @property
    def answered(self) -> int:
        """Connection attempts the hub answered: with a feed, or with a refusal."""
        return self.connections + len(self.failures)

    async def _run(self) -> None:
        for _ in range(10_000):              # reconnections; the test stops the client long before
            self.attempts += 1
            query = "" if self.seq is None else f"?since={self.seq}&epoch={self.epoch}"
            try:
                async with connect(ws_url(self.hub, f"/ws/branches/{B}{query}"), open_timeout=deadline(5),
                                   close_timeout=deadline(1), ping_interval=5, ping_timeout=deadline(5)) as ws:
                    self.connections += 1
                    self._ws = ws
                    async for raw in ws:
                        self._take(json.loads(raw))
                    self.closes.append(ws.close_code)
            except ConnectionClosed as e:
                self.closes.append(e.rcvd.code if e.rcvd is not None else None)
            except (TimeoutError, OSError, InvalidHandshake) as e:
                self.failures.append(f"{type(e).__name__}: {e}")
            self._ws = None
            await asyncio.sleep(0.2)         # a real board's reconnect delay, not a wait for anything
        self.problems.append("gave up after 10 000 connections")

    def _take(self, m: dict) -> None:
        if m["type"] == "snapshot":
            if self.seq is not None:
                self.problems.append(f"snapshot at {m['seq']} after seq {self.seq} (epoch {self.epoch} → {m['epoch']})")
            else:
                self.base = m["seq"]
            self.seq, self.epoch = m["seq"], m["epoch"]
        elif m["type"] == "resume":
            if (m["seq"], m["epoch"]) != (self.seq, self.epoch):
                self.problems.append(f"resume marker {m} for since={self.seq}")
        else:
            if m["seq"] != self.seq + 1:
                self.problems.append(f"got seq {m['seq']} after {self.seq}")
            self.events.append(m)
            self.seq = m["seq"]


async def readyz(c: httpx.AsyncClient) -> tuple[int, dict]:
    try:
        r = await c.get("/readyz", timeout=deadline(8))
        return r.status_code, r.json()
    except (httpx.HTTPError, ValueError) as e:
        return 0, {"error": repr(e)}


async def wait_ready(c: httpx.AsyncClient, status: int, timeout: float = 60) -> dict:
    """/readyz's body once it answers `status` (within deadline(timeout) s)."""
    last = [None]

    async def answers():
        last[0] = code, body = await readyz(c)
        return body if code == status else None
    return await until(answers, lambda: f"/readyz answering {status}; last answer {last[0]}", timeout, interval=0.25)


@pytest.mark.slow
async def test_redis_restart_under_traffic_loses_no_event_for_any_client(hub_factory, redis_factory, tmp_path, hub_env):
    workdir, port = tmp_path / "redis", free_port()
    server = redis_factory(workdir, port=port, appendonly=True)
    url = f"redis://127.0.0.1:{port}/0?prefix=qc-restart:"
    a, b = hub_factory(redis_env(url, hub_env)), hub_factory(redis_env(url, hub_env))
    async with http(a, 5) as ca, http(b, 5) as cb:
        await open_counter(ca, "1", [LAND])
        clients = [BoardClient(h, f"{n}{i}").start() for h, n in ((a, "A"), (b, "B")) for i in range(2)]
        ok = {"before": 0, "down": 0, "after": 0}
        failed = {"before": 0, "down": 0, "after": 0}
        phase = {"now": "before"}
        stop = asyncio.Event()
        fields = [LAND, CIVIL, "cu-tru", "tu-phap-chung-thuc"]

        async def traffic():
            for i in range(100_000):             # until stopped; bounded all the same
                if stop.is_set():
                    return
                c = (ca, cb)[i % 2]
                try:
                    if i % 5 == 4:
                        r = await c.post(f"/api/branches/{B}/counters/1/call-next", headers=STAFF)
                    else:
                        r = await c.post(f"/api/branches/{B}/tickets",
                                         json={"service": fields[i % 4], "channel": "kiosk"}, headers=STAFF)
                    if r.status_code in (200, 201):
                        ok[phase["now"]] += 1
                    elif r.json()["error"]["code"] != "queue_empty":
                        failed[phase["now"]] += 1
                except (httpx.HTTPError, ValueError, KeyError):
                    failed[phase["now"]] += 1          # Redis is down: failures are expected
                await asyncio.sleep(0.03)              # a kiosk's pace, not a wait for anything

        mover = asyncio.create_task(traffic())
        # Before: traffic flows and every board follows it live.
        await until(lambda: ok["before"] >= 20 and all(cl.events for cl in clients),
                    lambda: f"traffic and live boards before the stop: {ok}, {[len(cl.events) for cl in clients]}")

        await asyncio.to_thread(stop_process, server.proc)
        phase["now"] = "down"
        down = await wait_ready(ca, 503)
        assert down["status"] == "not_ready"
        assert down["store"].startswith("down") and down["broker"].startswith("down"), down
        dropped = [clients[0], clients[2]]
        answered = [cl.answered for cl in dropped]
        for cl in dropped:                   # two phones lose their link while Redis is down
            cl.drop()
        # ... and try to come back while it is still down, each answered by its hub one way or another.
        await until(lambda: failed["down"] >= 3 and all(cl.answered > n for cl, n in zip(dropped, answered)),
                    lambda: f"reconnections while Redis is down: {[cl.answered for cl in dropped]} "
                            f"after {answered}; failed {failed}")

        server = await asyncio.to_thread(redis_factory, workdir, port=port, appendonly=True)
        await wait_ready(ca, 200)
        await wait_ready(cb, 200)
        phase["now"] = "after"
        await until(lambda: ok["after"] >= 20, lambda: f"traffic after the restart: {ok}, {failed}")
        stop.set()
        await within(mover, "the traffic to stop")
        assert ok["before"] > 0 and ok["after"] > 0 and failed["down"] > 0, (ok, failed)
        assert a.proc.poll() is None and b.proc.poll() is None, "a hub process died with Redis"

        head = (await log_head(url)).seq
        await until(lambda: all(cl.seq == head for cl in clients),
                    lambda: f"every board at seq {head}: {[(cl.name, cl.seq, cl.closes) for cl in clients]}")
        for cl in clients:
            await cl.stop()
        log = await log_events(url)
        assert len(log) == head
        for cl in clients:
            assert cl.problems == [], (cl.name, cl.problems)
            assert cl.seq == head, (cl.name, cl.seq, head, cl.closes)
            mine = log[cl.base:]
            assert [e["seq"] for e in cl.events] == [e["seq"] for e in mine], cl.name
            assert [e.get("ticket") for e in cl.events] == [e.get("ticket") for e in mine], cl.name
            assert cl.events == mine, cl.name

        # Each process's state is still the fold of the log: a fresh process agrees with both.
        fresh = hub_factory(redis_env(url, hub_env))
        async with http(fresh) as cf:
            va, vb, vf = await branch_view(ca), await branch_view(cb), await branch_view(cf)
        assert va["seq"] == vb["seq"] == vf["seq"] == head
        assert state_of(va) == state_of(vf) and state_of(vb) == state_of(vf)


# == 8. /readyz names the part that is down ==========================================================

async def test_readyz_names_the_broker_when_only_the_broker_is_down(hub_factory, redis_factory, hub_env, tmp_path):
    workdir, port = tmp_path / "broker", free_port()
    server = redis_factory(workdir, port=port)
    hub = hub_factory({**hub_env, "QUEUECAST_BROKER": f"redis://127.0.0.1:{port}/0?prefix=qc-ready:"})
    async with http(hub, 5) as c:
        code, body = await readyz(c)
        assert code == 200 and body["store"] == "ok" and body["broker"] == "ok", body
        await asyncio.to_thread(stop_process, server.proc)
        body = await wait_ready(c, 503)
        assert body["status"] == "not_ready" and body["store"] == "ok", body
        assert body["broker"].startswith("down"), body
        # The process keeps serving what it has: its own boards still get its events.
        async with feed(hub, f"/ws/branches/{B}") as ws:
            snap = await recv(ws)
            t = await issue(c)
            ev = await recv(ws)
            assert (ev["type"], ev["number"], ev["seq"]) == ("ticket.issued", t["number"], snap["seq"] + 1)
        server = await asyncio.to_thread(redis_factory, workdir, port=port)
        body = await wait_ready(c, 200)
        assert body["store"] == body["broker"] == "ok"


@pytest.mark.slow
async def test_a_feed_that_cannot_start_while_redis_is_down_leaves_nothing_behind(hub_factory, redis_factory, tmp_path, hub_env):
    """A phone that comes back while Redis is down asks for what it missed; the hub cannot read the
    log then. Whatever it answers, the attempt must not stay registered as a watcher of the branch
    (counted as a connection, fed every event, and finally counted as a 'too slow' cut)."""
    from hub.feeds.subscriber import MAX_QUEUE

    workdir, port = tmp_path / "redis", free_port()
    server = redis_factory(workdir, port=port, appendonly=True)
    url = f"redis://127.0.0.1:{port}/0?prefix=qc-leak:"
    hub = hub_factory(redis_env(url, hub_env))
    async with http(hub, 5) as c, feed(hub, f"/ws/branches/{B}") as witness:
        snap = await recv(witness)
        await issue(c)
        assert (await recv(witness))["seq"] == snap["seq"] + 1
        assert await metric(c, "queuecast_feed_connections", 'feed="board"') == 1

        await asyncio.to_thread(stop_process, server.proc)
        await wait_ready(c, 503)
        for _ in range(3):
            try:
                async with feed(hub, f"/ws/branches/{B}?since={snap['seq']}&epoch={snap['epoch']}") as ws:
                    got, _code = await until_closed(ws)
                if got and got[0]["type"] == "resume":      # never a partial replay
                    assert_consecutive(got[1:], snap["seq"] + 1)
            except (InvalidHandshake, OSError):
                pass
        try:
            async with c.stream("GET", f"/sse/branches/{B}", params={"since": str(snap["seq"])}) as r:
                await asyncio.wait_for(r.aread(), deadline(10)) if r.status_code != 200 else None
        except (TimeoutError, httpx.HTTPError):
            pass

        server = await asyncio.to_thread(redis_factory, workdir, port=port, appendonly=True)
        await wait_ready(c, 200)
        connections = await metric(c, "queuecast_feed_connections", 'feed="board"')
        # More events than a connection's queue holds: a forgotten watcher would now be "too slow".
        made = 0

        async def toggle(cid: str, n: int):
            for k in range(n):
                await open_counter(c, cid, ALL_FIELDS if k % 2 == 0 else ALL_FIELDS[:-1])
        await asyncio.gather(*(toggle(cid, MAX_QUEUE // 4 + 2) for cid in ("1", "2", "3", "4")))
        made = 4 * (MAX_QUEUE // 4 + 2)
        got = await take(witness, made)
        assert_consecutive(got, snap["seq"] + 2)
        cuts = await slow_cuts(c)
        assert (connections, cuts) == (1, 0), (
            f"after the failed starts: {connections} board connections counted (1 is open), "
            f"{cuts} 'too slow' cuts after {made} events (no client was slow)")


async def test_readyz_names_the_store_when_only_the_store_is_down(hub_factory, redis_factory, tmp_path, hub_env):
    workdir, port = tmp_path / "store", free_port()
    server = redis_factory(workdir, port=port, appendonly=True)
    url = f"redis://127.0.0.1:{port}/0?prefix=qc-store:"
    hub = hub_factory({**redis_env(url, hub_env), "QUEUECAST_BROKER": "memory://"})
    async with http(hub, 5) as c:
        t = await issue(c)
        await asyncio.to_thread(stop_process, server.proc)
        body = await wait_ready(c, 503)
        assert body["status"] == "not_ready" and body["broker"] == "ok", body
        assert body["store"].startswith("down"), body
        # What the process holds it still serves: the board, and a new board's snapshot.
        view = await branch_view(c)
        assert view["seq"] == 1 and view["waiting"] == 1
        async with feed(hub, f"/ws/branches/{B}") as ws:
            snap = await recv(ws)
            assert (snap["type"], snap["seq"], snap["waiting"]) == ("snapshot", 1, 1)
        r = await c.get(f"/api/tickets/{t['token']}")
        assert r.status_code == 200 and r.json()["position"] == 1
        server = await asyncio.to_thread(redis_factory, workdir, port=port, appendonly=True)
        body = await wait_ready(c, 200)
        assert body["store"] == body["broker"] == "ok"
        t2 = await issue(c)
        assert t2["number"] != t["number"] and (await branch_view(c))["seq"] == 2


# -- a reload leaves no gap -------------------------------------------------------------------------

async def test_a_conflicting_append_passes_on_the_other_process_events_before_its_own(centre, clock, tmp_path):
    """Two hubs on one SQLite file and no broker between them: B appends without knowing of A's
    number, its append conflicts, and it rebuilds its state from the log. B's watchers must get A's
    event before B's own, not a jump from seq 0 to seq 2 (a lobby board would miss a number)."""
    from hub.broker.memory import MemoryBroker
    from hub.feeds.fanout import FeedHub
    from hub.service.queue import QueueService

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with open_store(url) as store_a, open_store(url) as store_b:
        a, b = (QueueService(centre, s.log, MemoryBroker(), clock, TOKENS, "http://hub.test") for s in (store_a, store_b))
        await a.load()
        await b.load()
        feeds = FeedHub(b)
        start, sub = await feeds.open_board(B, None, None)
        assert [f.seq for f in start] == [0]

        await a.issue(B, service=LAND, channel="kiosk")
        await b.issue(B, service=CIVIL, channel="kiosk")

        frames = [await sub.next(timeout=deadline(10)) for _ in range(2)]
        got = [json.loads(f.text) for f in frames]
        assert [(m["seq"], m["service"]) for m in got] == [(1, LAND), (2, CIVIL)]
        assert b.state(B).seq == 2
