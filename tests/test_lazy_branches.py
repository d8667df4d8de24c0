"""A hub process holds a branch only when it has a reason to (issue 16, point 1): it loads a branch
at its first command, feed or view, follows (subscribes to) only the branches it holds, and lets an
idle one go; a command or a feed on a branch let go loads it again, at the log's head. Real hub
processes (`python -m hub serve`) over real sockets, on a real Redis (store and broker) or SQLite.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from datetime import timedelta

import httpx
import pytest
import redis as redis_sync
from websockets.asyncio.client import connect

from hub import views
from hub.auth import Tokens
from hub.domain.state import BranchState

from conftest import SECRET, TUESDAY_9AM, assert_error, bearer, replica_link, running_app
from waiting import deadline, until

pytestmark = pytest.mark.anyio
WAIT = deadline(30)
KIOSK = {"service": "dat-dai", "channel": "kiosk"}     # branch 1's first field; every branch has it


async def metrics(c: httpx.AsyncClient) -> str:
    r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    return r.text


def sample(text: str, name: str) -> float:
    m = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.M)
    assert m, f"no sample {name}"
    return float(m.group(1))


async def held(c: httpx.AsyncClient) -> set[str]:
    """The branches the hub holds: the ones it exports a seq for (hub.metrics), checked against
    its count of branches held."""
    text = await metrics(c)
    branches = set(re.findall(r'^queuecast_branch_seq\{branch="([^"]+)"\}', text, re.M))
    assert sample(text, "queuecast_branches_held") == len(branches), text
    return branches


async def loads(c: httpx.AsyncClient) -> float:
    return sample(await metrics(c), "queuecast_branch_loads")


async def let_goes(c: httpx.AsyncClient) -> float:
    return sample(await metrics(c), "queuecast_branch_let_goes")


async def recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


def ws_url(base: str, path: str) -> str:
    return "ws" + base.removeprefix("http") + path


class Channels:
    """The test's branch channels on the Redis server, as Redis itself counts their subscribers."""

    def __init__(self, port: int, prefix: str):
        self.redis = redis_sync.Redis(port=port, decode_responses=True)
        self.prefix = prefix

    def of(self, branch: str) -> str:
        return f"{self.prefix}{{b:{branch}}}:events"

    def subscribed(self) -> set[str]:
        """The branches with a subscriber (PUBSUB CHANNELS)."""
        return {re.search(r"\{b:([^}]*)\}", ch).group(1) for ch in self.redis.pubsub_channels(f"{self.prefix}*")}

    def subscribers(self, branch: str) -> int:
        return int(dict(self.redis.pubsub_numsub(self.of(branch)))[self.of(branch)])


async def test_an_asked_hub_loads_and_follows_only_the_branches_it_is_asked_about(
        redis_server, redis_url, hub_factory, hub_env):
    hub = hub_factory({**hub_env, "QUEUECAST_DATABASE": redis_url, "QUEUECAST_HOLD_BRANCHES": "asked"})
    channels = Channels(redis_server.port, redis_url.split("prefix=")[1])
    async with httpx.AsyncClient(base_url=hub.url, timeout=WAIT) as c:
        assert await held(c) == set() and await loads(c) == 0
        assert channels.subscribed() == set()
        assert_error(await c.get("/api/branches/nope"), 404, "branch_not_found")      # the configuration says
        assert_error(await c.post("/api/branches/nope/tickets", json=KIOSK), 404, "branch_not_found")
        assert await loads(c) == 0

        r = await c.post("/api/branches/2/tickets", json=KIOSK)          # a command
        assert r.status_code == 201, r.text
        assert await held(c) == {"2"} and await loads(c) == 1
        await until(lambda: channels.subscribed() == {"2"}, lambda: f"only branch 2 followed: {channels.subscribed()}")

        async with connect(ws_url(hub.url, "/ws/branches/3"), open_timeout=WAIT, ping_interval=None) as ws:
            snap = await recv(ws)                                          # a watcher
            assert snap["type"] == "snapshot" and snap["seq"] == 0, snap
        assert (await c.get("/api/branches/5")).json()["seq"] == 0         # a view
        assert await held(c) == {"2", "3", "5"} and await loads(c) == 3
        await until(lambda: channels.subscribed() == {"2", "3", "5"},
                    lambda: f"branches 2, 3, 5 followed: {channels.subscribed()}")
        # Asked again: nothing is loaded twice.
        assert (await c.post("/api/branches/2/tickets", json=KIOSK)).status_code == 201
        assert (await c.get("/api/branches/2")).json()["seq"] == 2
        assert await loads(c) == 3


@pytest.mark.slow
async def test_idle_branches_are_let_go_and_held_again_at_the_head(redis_server, redis_url, hub_factory, hub_env):
    """A: `busy`, B: `asked`, both letting go after two idle seconds, on one Redis."""
    db = {**hub_env, "QUEUECAST_DATABASE": redis_url, "QUEUECAST_BRANCH_IDLE_SECONDS": "2"}
    a = hub_factory(db)
    b = hub_factory({**db, "QUEUECAST_HOLD_BRANCHES": "asked"})
    channels = Channels(redis_server.port, redis_url.split("prefix=")[1])
    async with httpx.AsyncClient(base_url=a.url, timeout=WAIT) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=WAIT) as cb:
        # A held every branch at start; none has work, so each is let go once idle.
        assert await loads(ca) == 12
        await until(lambda: _equals(held(ca), set()), "A lets every idle branch go")
        await until(lambda: channels.subscribed() == set(), lambda: f"no branch followed: {channels.subscribed()}")

        first = await cb.post("/api/branches/1/tickets", json=KIOSK)
        assert first.status_code == 201, first.text
        # B's number is work at branch 1: busy A holds it again (its log moved), and keeps it.
        await until(lambda: _equals(held(ca), {"1"}), "A holds branch 1 again")
        assert (await ca.get("/api/branches/1")).json()["waiting"] == 1
        # B, asked, lets it go once idle, waiting number or not, and unsubscribes from it.
        await until(lambda: _equals(held(cb), set()), "B lets branch 1 go")
        assert await let_goes(cb) == 1
        await until(lambda: channels.subscribers("1") == 1, "only A subscribed to branch 1")

        r = await ca.post("/api/branches/1/tickets", json=KIOSK)           # seq 2, written while B holds nothing
        assert r.status_code == 201, r.text
        r = await cb.post("/api/branches/1/tickets", json=KIOSK)           # B loads it again: seq 3, not 2
        assert r.status_code == 201, r.text
        assert await loads(cb) == 2
        view = (await cb.get("/api/branches/1")).json()
        assert view["seq"] == 3 and view["waiting"] == 3, view
        assert r.json()["number"] != first.json()["number"], r.json()
        await until(lambda: _seq(ca, "1", 3), "A follows B's command")

        # A feed on a branch let go: it is held (loaded, followed) for as long as it is watched.
        await until(lambda: _equals(held(cb), set()), "B lets branch 1 go again")
        token = first.json()["token"]
        async with connect(ws_url(b.url, "/ws/branches/1"), open_timeout=WAIT, ping_interval=None) as board, \
                connect(ws_url(b.url, f"/ws/tickets/{token}"), open_timeout=WAIT, ping_interval=None) as phone:
            snap = await recv(board)
            assert snap["type"] == "snapshot" and snap["seq"] == 3, snap
            mine = await recv(phone)
            assert mine["type"] == "snapshot" and mine["seq"] == 3 and mine["ticket"]["position"] == 1, mine
            assert (await cb.get("/api/branches/4")).json()["seq"] == 0       # held, watched by nobody
            assert "4" in await held(cb)
            await until(lambda: channels.subscribers("1") == 2, "B subscribed to branch 1 again")
            r = await ca.post("/api/branches/1/tickets", json=KIOSK)       # at A: reaches B's feeds
            assert r.status_code == 201, r.text
            ev = await recv(board)
            assert ev["type"] == "ticket.issued" and ev["seq"] == 4 and ev["number"] == r.json()["number"], ev
            # The phone's view did not move (a number behind it): its feed says nothing of seq 4,
            # but the holder giving the number back at A reaches it, naming its snapshot as prev.
            r = await ca.delete(f"/api/tickets/{token}")
            assert r.status_code == 200, r.text
            assert (await recv(board))["seq"] == 5
            mine = await recv(phone)
            assert mine["seq"] == 5 and mine.get("prev") == 3, mine
            # Branch 4 goes after its idle seconds; branch 1, watched since before, stays.
            await until(lambda: _not_in("4", held(cb)), "B lets branch 4 go")
            assert "1" in await held(cb)
        await until(lambda: _equals(held(cb), set()), "B lets branch 1 go once nobody watches it")
        # A let go nothing with work: branch 1 has three numbers waiting.
        assert await held(ca) == {"1"}


async def _equals(got, want) -> bool:
    return await got == want


async def _not_in(x, got) -> bool:
    return x not in await got


async def _seq(c: httpx.AsyncClient, branch: str, seq: int) -> bool:
    return (await c.get(f"/api/branches/{branch}")).json()["seq"] == seq


async def test_a_busy_hub_keeps_the_branches_with_work_and_answers_the_chooser_without_loading(
        hub_factory, hub_env):
    """The default (`busy`), on SQLite: every branch held at start, the idle ones without work let
    go, the ones with a number waiting or a counter open kept; /api/branches answers for the ones
    let go from the view they had, loading nothing."""
    hub = hub_factory({**hub_env, "QUEUECAST_BRANCH_IDLE_SECONDS": "2"})
    async with httpx.AsyncClient(base_url=hub.url, timeout=WAIT) as c:
        assert await loads(c) == 12
        assert (await c.post("/api/branches/1/tickets", json=KIOSK)).status_code == 201
        staff = bearer(Tokens(SECRET).staff("2"))
        r = await c.post("/api/branches/2/counters/1/open", headers=staff)
        assert r.status_code == 200, r.text
        await until(lambda: _equals(held(c), {"1", "2"}), "the ten branches without work let go")
        # (1 and 2 may have been let go already before their commands, if the hub took its idle
        # second to answer the first: then held again.)
        assert await let_goes(c) == 10 + (await loads(c) - 12)
        before = await loads(c)
        listed = {x["id"]: x for x in (await c.get("/api/branches")).json()["branches"]}
        assert len(listed) == 12 and listed["1"]["waiting"] == 1 and listed["3"]["waiting"] == 0, listed
        assert any(x["open"] for x in listed["2"]["counters"]) and not any(x["open"] for x in listed["3"]["counters"])
        live = (await c.get("/api/branches/3")).json()                    # held again to answer
        assert listed["3"]["seq"] == live["seq"] == 0
        assert [(s["waiting"], s["numbers_left"]) for s in listed["3"]["services"]] == \
            [(s["waiting"], s["numbers_left"]) for s in live["services"]]
        assert await loads(c) == before + 1                                 # the one view of branch 3, no more
        page = await c.get("/branches")                                     # the chooser page, likewise
        assert page.status_code == 200
        assert await loads(c) == before + 1
        # Branch 3, used after them, is let go again: 1 and 2, idle longer, are kept for their work.
        await until(lambda: _not_in("3", held(c)), "branch 3 let go again")
        assert await held(c) == {"1", "2"}


def test_a_kept_view_is_brought_forward_on_the_clock(centre):
    """The view of a branch let go, served later: the time, the issuing day and whether issuing is
    open are the clock's now; on a new issuing day every number is left again."""
    b = centre.branches["3"]
    st = BranchState(b)
    kept = views.branch_view(st, TUESDAY_9AM)
    kept["services"][0]["numbers_left"] = 7                  # as if numbers had been issued that day
    same_day = views.brought_forward(kept, b, TUESDAY_9AM + timedelta(hours=1))
    assert same_day["now"] == (TUESDAY_9AM + timedelta(hours=1)).isoformat(timespec="seconds")
    assert same_day["day"] == kept["day"] and same_day["services"][0]["numbers_left"] == 7
    night = views.brought_forward(kept, b, TUESDAY_9AM.replace(hour=23))
    assert night["issuing"] == views.branch_view(st, TUESDAY_9AM.replace(hour=23))["issuing"]
    assert night["issuing"] != kept["issuing"]
    next_day = views.brought_forward(kept, b, TUESDAY_9AM + timedelta(days=1))
    assert next_day["day"] == "2026-05-20"
    assert next_day["services"][0]["numbers_left"] == next_day["services"][0]["daily_cap"]
    fresh = views.branch_view(st, TUESDAY_9AM + timedelta(days=1))
    assert {k: v for k, v in next_day.items() if k != "services"} == {k: v for k, v in fresh.items() if k != "services"}


@pytest.mark.slow
async def test_on_a_cluster_a_branch_let_go_leaves_its_shard_channel(redis_cluster, redis_cluster_url, hub_factory,
                                                                     hub_env):
    """Shard channels (SSUBSCRIBE) end with SUNSUBSCRIBE on the branch's master, which the broker
    does not take for a dropped subscription (no reconnect)."""
    hub = hub_factory({**hub_env, "QUEUECAST_DATABASE": redis_cluster_url, "QUEUECAST_HOLD_BRANCHES": "asked",
                       "QUEUECAST_BRANCH_IDLE_SECONDS": "2"})
    prefix = redis_cluster_url.split("prefix=")[1]
    masters = [n.port for n in redis_cluster.nodes if replica_link(n.port) is None]

    def shard_channels() -> set[str]:
        found = set()
        for port in masters:
            with redis_sync.Redis(port=port, decode_responses=True) as r:
                found |= set(r.execute_command("PUBSUB", "SHARDCHANNELS", f"{prefix}*"))
        return found

    async with httpx.AsyncClient(base_url=hub.url, timeout=WAIT) as c:
        assert shard_channels() == set()
        for branch in ("1", "7"):
            assert (await c.get(f"/api/branches/{branch}")).status_code == 200
        await until(lambda: shard_channels() == {f"{prefix}{{b:1}}:events", f"{prefix}{{b:7}}:events"},
                    lambda: f"branches 1 and 7 followed: {shard_channels()}")
        await until(lambda: _equals(held(c), set()), "both let go")
        await until(lambda: shard_channels() == set(), lambda: f"no shard channel left: {shard_channels()}")
        assert (await c.post("/api/branches/7/tickets", json=KIOSK)).status_code == 201      # held again
        await until(lambda: shard_channels() == {f"{prefix}{{b:7}}:events"}, "branch 7 followed again")
        assert sample(await metrics(c), "queuecast_broker_reconnects") == 0


async def test_a_process_never_asked_about_a_branch_does_no_forecast_work_for_it(settings, clock):
    """Two hubs on one SQLite file: A (busy) publishes the predictions of branch 1's numbers; B
    (asked), which only ever showed branch 2, holds no state of branch 1 and publishes nothing of it."""
    async with running_app(settings, clock) as a, \
            running_app(dataclasses.replace(settings, hold_branches="asked"), clock) as b:
        for _ in range(3):
            assert (await a.post("/api/branches/1/tickets", json=KIOSK)).status_code == 201
        assert (await b.get("/api/branches/2")).status_code == 200
        clock.advance(minutes=6)                             # past the issue points and a 5-minute boundary
        assert await a.app.state.predictions.step() == 6     # each number at its issue, then at 09:05
        assert await b.app.state.predictions.step() == 0
        assert set(b.app.state.service.states) == {"2"} and b.app.state.predictions.published == 0
        assert (await b.get("/api/branches/1")).json()["waiting"] == 3      # asked now: held, at the head
        clock.advance(minutes=5)
        assert await b.app.state.predictions.step() == 3     # from its next boundary on


async def test_a_history_that_went_back_while_let_go_gets_a_new_epoch(redis_server, redis_url, hub_factory,
                                                                     hub_env):
    """What a process knew of a branch it let go (epoch, seq, last event) is kept: held again on a
    log behind it in the same epoch (an older AOF), it mints a new epoch, so that clients that saw
    the lost events start afresh instead of resuming on another history."""
    hub = hub_factory({**hub_env, "QUEUECAST_DATABASE": redis_url, "QUEUECAST_HOLD_BRANCHES": "asked",
                       "QUEUECAST_BRANCH_IDLE_SECONDS": "2"})
    prefix = redis_url.split("prefix=")[1]
    async with httpx.AsyncClient(base_url=hub.url, timeout=WAIT) as c:
        for _ in range(2):
            assert (await c.post("/api/branches/1/tickets", json=KIOSK)).status_code == 201
        async with connect(ws_url(hub.url, "/ws/branches/1"), open_timeout=WAIT, ping_interval=None) as ws:
            seen = await recv(ws)
        assert seen["seq"] == 2
        await until(lambda: _equals(held(c), set()), "branch 1 let go")
        with redis_sync.Redis(port=redis_server.port) as r:        # the log loses its last event
            r.xdel(f"{prefix}{{b:1}}:log", "2-1")
            r.hset(f"{prefix}{{b:1}}:head", "seq", 1)
        async with connect(ws_url(hub.url, "/ws/branches/1"), open_timeout=WAIT, ping_interval=None) as ws:
            now = await recv(ws)
        assert now["type"] == "snapshot" and now["seq"] == 1 and now["epoch"] != seen["epoch"], (seen, now)
