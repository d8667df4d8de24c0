"""A history never lies (DESIGN §7): a feed resumes at the head on every store; a Redis that is
wiped (FLUSHALL) or brought back from an older AOF while hubs run gets a new epoch, so no client
resumes over the changed history; an old tracking link never names the stranger who got the same
number afterwards; counters stay open. Real hub processes on a Redis server of each test's own.
"""
from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
import redis as redis_sync
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from hub.domain.errors import DomainError

from conftest import free_port, stop_process
from test_feeds import (
    CIVIL,
    LAND,
    B,
    branch_view,
    call_next,
    feed,
    http,
    issue,
    log_events,
    log_head,
    open_counter,
    recv,
    redis_env,
    sse,
    ws_url,
)
from waiting import deadline, until

pytestmark = pytest.mark.anyio


# -- resume at the head -------------------------------------------------------------------------------

@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_feed_resumes_at_the_head_on_every_store(store, hub_factory, hub_env, request):
    """A phone back after a blip, having missed nothing, asks for what follows the head: it gets the
    resume marker and then the live events, never a refusal (Redis refused XRANGE COUNT 0)."""
    env = hub_env if store == "sqlite" else redis_env(request.getfixturevalue("redis_url"), hub_env)
    hub = hub_factory(env)
    async with http(hub) as c:
        mine = await issue(c)
        await issue(c, CIVIL)
        async with feed(hub, f"/ws/branches/{B}") as ws:
            snap = await recv(ws)
        head, epoch = snap["seq"], snap["epoch"]
        assert head == 2

        for _ in range(3):                  # every time, not once
            async with feed(hub, f"/ws/branches/{B}?since={head}&epoch={epoch}") as ws:
                assert await recv(ws) == {"type": "resume", "seq": head, "epoch": epoch, "resumed": True}
                t = await issue(c)
                ev = await recv(ws)
                assert (ev["type"], ev["seq"], ev["number"]) == ("ticket.issued", head + 1, t["number"])
            head += 1

        async with feed(hub, f"/ws/tickets/{mine['token']}?since={head}&epoch={epoch}") as ws:
            assert await recv(ws) == {"type": "resume", "seq": head, "epoch": epoch, "resumed": True}
            await open_counter(c, "1", [LAND])
            ev = await recv(ws)
            assert (ev["type"], ev["seq"], ev["ticket"]["number"]) == ("counter.opened", head + 1, mine["number"])
        head += 1

        async with sse(hub, f"/sse/branches/{B}", headers={"Last-Event-ID": str(head)}, params={"epoch": epoch}) as (r, s):
            assert r.status_code == 200
            sid, marker = await s.next()
            assert marker == {"type": "resume", "seq": head, "epoch": epoch, "resumed": True} and sid == str(head)
            t = await issue(c)
            sid, ev = await s.next()
            assert (sid, ev["seq"], ev["number"]) == (str(head + 1), head + 1, t["number"])
        head += 1

        async with sse(hub, f"/sse/tickets/{mine['token']}", params={"since": str(head), "epoch": epoch}) as (r, s):
            assert r.status_code == 200
            _, marker = await s.next()
            assert marker == {"type": "resume", "seq": head, "epoch": epoch, "resumed": True}


# -- a client that comes back ---------------------------------------------------------------------------

class Watcher:
    """A feed client as the phones and boards run one: it comes back after every close with the
    seq and epoch it reached, and stops for good on 4404 (no such ticket). Records, per epoch, the
    events it was given, and how each connection started."""

    def __init__(self, hub, path: str, name: str):
        self.hub, self.path, self.name = hub, path, name
        self.seq: int | None = None
        self.epoch: str | None = None
        self.starts: list[tuple[str, int, str]] = []          # (snapshot | resume, seq, epoch)
        self.events: dict[str, list[dict]] = {}               # epoch → the events given in it, in order
        self.closes: list[int | None] = []
        self.problems: list[str] = []
        self.task: asyncio.Task | None = None
        self.gone = asyncio.Event()                           # closed with 4404: the link names nothing

    def start(self) -> Watcher:
        self.task = asyncio.create_task(self._run(), name=self.name)
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        for _ in range(1000):                  # reconnections; the test stops the watcher long before
            query = "" if self.seq is None else f"?since={self.seq}&epoch={self.epoch}"
            try:
                async with connect(ws_url(self.hub, self.path + query), open_timeout=deadline(5),
                                   close_timeout=deadline(1), ping_interval=None) as ws:
                    async for raw in ws:
                        self._take(json.loads(raw))
                    self.closes.append(ws.close_code)
            except ConnectionClosed as e:
                self.closes.append(e.rcvd.code if e.rcvd is not None else None)
            except (TimeoutError, OSError, InvalidHandshake):
                self.closes.append(None)
            if self.closes and self.closes[-1] == 4404:
                self.gone.set()
                return
            await asyncio.sleep(0.2)           # a real client's reconnect delay, not a wait for anything

    def _take(self, m: dict) -> None:
        if m["type"] in ("snapshot", "resume"):
            self.starts.append((m["type"], m["seq"], m["epoch"]))
            if m["type"] == "resume" and (m["seq"], m["epoch"]) != (self.seq, self.epoch):
                self.problems.append(f"resume marker {m} for since={self.seq} epoch={self.epoch}")
            self.seq, self.epoch = m["seq"], m["epoch"]
            self.events.setdefault(m["epoch"], [])
            return
        # A ticket feed names the message before (`prev`) and skips what left its view as it was.
        if not m.get("prev", m["seq"] - 1) <= (self.seq or 0) < m["seq"]:
            self.problems.append(f"seq {m['seq']} (prev {m.get('prev')}) after {self.seq} in epoch {self.epoch}")
        assert self.epoch is not None
        self.events[self.epoch].append(m)
        self.seq = m["seq"]


def called_twice(events: list[dict]) -> list[str]:
    """Numbers called more than once in one history, besides recalls: what no screen may show."""
    n = Counter(e["number"] for e in events if e["type"] == "ticket.called")
    return sorted(k for k, v in n.items() if v > 1)


def in_step(w: Watcher, head: int, epoch: str) -> bool:
    """A board has every event up to the head; a ticket feed, started in the epoch, sends only
    what changes its ticket's view (docs/feeds.md), so it may stand anywhere up to the head."""
    if w.epoch != epoch or w.seq is None:
        return False
    return w.seq == head if "/branches/" in w.path else w.seq <= head and any(s[2] == epoch for s in w.starts)


async def at_head(watchers: list[Watcher], url: str, epoch: str | None = None) -> int:
    head = await log_head(url)
    await until(lambda: all(in_step(w, head.seq, epoch or head.epoch) for w in watchers),
                lambda: f"every watcher at seq {head.seq} of epoch {epoch or head.epoch}: "
                        f"{[(w.name, w.seq, w.epoch, w.closes) for w in watchers]}")
    return head.seq


async def counters(c: httpx.AsyncClient) -> dict[str, tuple[bool, list[str]]]:
    return {x["id"]: (x["open"], x["services"]) for x in (await branch_view(c))["counters"] if x["open"]}


# -- a wiped Redis --------------------------------------------------------------------------------------

@pytest.mark.slow
async def test_a_wiped_redis_gets_a_new_epoch_no_old_link_names_a_stranger_and_counters_stay_open(
        hub_factory, redis_factory, tmp_path, hub_env):
    port = free_port()
    server = redis_factory(tmp_path / "redis", port=port, appendonly=True)
    url = f"redis://127.0.0.1:{port}/0?prefix=qc-wipe:"
    a, b = hub_factory(redis_env(url, hub_env)), hub_factory(redis_env(url, hub_env))
    async with http(a, 10) as ca, http(b, 10) as cb:
        await open_counter(ca, "1", [LAND])
        await open_counter(cb, "6", [CIVIL])
        old = [await issue((ca, cb)[i % 2], LAND if i < 4 else CIVIL) for i in range(6)]
        await call_next(ca, "1")
        open_before = await counters(ca)
        assert set(open_before) == {"1", "6"}
        watchers = [Watcher(h, f"/ws/branches/{B}", f"board-{n}").start() for h, n in ((a, "a"), (b, "b"))]
        watchers += [Watcher(h, f"/ws/tickets/{t['token']}", f"ticket-{n}").start()
                     for h, n, t in ((a, "a", old[1]), (b, "b", old[4]))]
        before = await log_head(url)
        await at_head(watchers, url)

        client = redis_sync.Redis(port=server.port)
        try:
            client.flushall()
        finally:
            client.close()
        # New numbers, more than before: the same ids (day-number) come round again, to other people.
        new = [await issue((cb, ca)[i % 2], LAND if i < 6 else CIVIL) for i in range(9)]
        assert {t["ticket"] for t in old} <= {t["ticket"] for t in new}

        head = await log_head(url)
        assert head.epoch != before.epoch
        boards = watchers[:2]
        await at_head(boards, url, head.epoch)
        await until(lambda: all(w.gone.is_set() for w in watchers[2:]),
                    lambda: f"old ticket feeds told the link names nothing: {[(w.name, w.closes) for w in watchers[2:]]}")
        for w in watchers:
            await w.stop()
        log = await log_events(url)
        for w in boards:
            assert w.problems == [], (w.name, w.problems)
            assert w.starts[-1][2] == head.epoch, (w.name, w.starts)
            kind, seq, _ = next(s for s in w.starts if s[2] == head.epoch)
            assert kind == "snapshot", (w.name, w.starts)
            assert w.events[head.epoch] == log[seq:], w.name
        for w in watchers[2:]:
            assert 4009 in w.closes and w.closes[-1] == 4404, (w.name, w.closes)
            assert set(w.events) == {before.epoch}, (w.name, list(w.events))

        # An old link, on either hub, in the API, its page and its feeds: never the stranger's ticket.
        for t in old:
            for c in (ca, cb):
                r = await c.get(f"/api/tickets/{t['token']}")
                assert r.status_code == 404 and r.json()["error"]["code"] == "ticket_not_found", (t["number"], r.text)
                assert (await c.get(f"/t/{t['token']}")).status_code == 404
            async with sse(a, f"/sse/tickets/{t['token']}") as (r, _):
                assert r.status_code == 404
        for t in new:
            r = await cb.get(f"/api/tickets/{t['token']}")
            assert r.status_code == 200 and r.json()["number"] == t["number"], r.text

        # The counters are open as their staff left them, on both hubs, and call-next works at once.
        assert await counters(ca) == await counters(cb) == open_before
        restored = [ev for ev in log if ev.get("restored")]
        assert sorted(ev["counter"] for ev in restored) == ["1", "6"] and restored[0]["seq"] == 1
        assert (await call_next(cb, "1"))["ticket"]["number"] == new[0]["number"]


# -- Redis brought back from an older AOF ---------------------------------------------------------------

@pytest.mark.slow
async def test_redis_back_from_an_older_aof_gets_a_new_epoch_and_no_client_resumes_over_it(
        hub_factory, redis_factory, tmp_path, hub_env):
    workdir, port = tmp_path / "redis", free_port()
    server = redis_factory(workdir, port=port, appendonly=True)
    url = f"redis://127.0.0.1:{port}/0?prefix=qc-aof:"
    a, b = hub_factory(redis_env(url, hub_env)), hub_factory(redis_env(url, hub_env))
    async with http(a, 10) as ca, http(b, 10) as cb:
        await open_counter(ca, "1", [LAND])
        tickets = [await issue((ca, cb)[i % 2]) for i in range(8)]
        await call_next(ca, "1")
        watchers = [Watcher(h, f"/ws/branches/{B}", f"board-{n}").start() for h, n in ((a, "a"), (b, "b"))]
        watchers.append(Watcher(a, f"/ws/tickets/{tickets[2]['token']}", "ticket-3").start())
        saved = await log_head(url)
        await at_head(watchers, url)
        # The copy a lagging replica (or a backup) holds: appendfsync always, so it is whole.
        await asyncio.to_thread(shutil.copytree, workdir / "appendonlydir", tmp_path / "older")

        # What the older AOF will not have: numbers called, a counter opened, numbers issued.
        lost_calls = [(await call_next((cb, ca)[i % 2], "1"))["ticket"]["number"] for i in range(3)]
        await open_counter(cb, "6", [CIVIL])
        await issue(cb, CIVIL)
        seen = await at_head(watchers, url)
        old_log = await log_events(url)
        # A phone that leaves now and comes back once the store has gone back (below).
        returning = (seen, saved.epoch)

        await asyncio.to_thread(stop_process, server.proc)
        shutil.rmtree(workdir / "appendonlydir")
        shutil.copytree(tmp_path / "older", workdir / "appendonlydir")
        server = await asyncio.to_thread(redis_factory, workdir, port=port, appendonly=True)
        assert (await log_head(url)).seq < seen                         # the store went back

        # The hubs go on: the lost calls are made again (acknowledged twice, once in each history),
        # and the log grows past where the clients were, so seqs they saw now name other events.
        again = []
        for i in range(3):
            again.append((await call_next((ca, cb)[i % 2], "1"))["ticket"]["number"])
        assert again == lost_calls
        for i in range(seen - saved.seq):
            await issue((ca, cb)[i % 2])
        head = await log_head(url)
        assert head.epoch != saved.epoch and head.base == saved.seq and head.seq > seen
        await at_head(watchers, url, head.epoch)
        for w in watchers:
            await w.stop()
        new_log = await log_events(url)

        for w in watchers:
            assert w.problems == [], (w.name, w.problems)
            assert set(w.events) == {saved.epoch, head.epoch}, (w.name, w.starts)
            first_new = next(s for s in w.starts if s[2] == head.epoch)
            assert first_new[0] == "snapshot", (w.name, w.starts)
            for epoch, events in w.events.items():
                assert called_twice(events) == [], (w.name, epoch, called_twice(events))
            if w.name.startswith("board"):
                assert w.events[saved.epoch] == old_log[saved.seq:seen], w.name
                assert w.events[head.epoch] == new_log[first_new[1]:], w.name
            else:           # some of the events since its start, each as the log has it (prev: no gap)
                logged = {e["seq"]: e for e in new_log[first_new[1]:]}
                assert all(e["seq"] in logged and e["type"] in (logged[e["seq"]]["type"], "internal")
                           for e in w.events[head.epoch]), w.name

        # A phone that was away all along comes back with the seq and epoch it had: a snapshot of
        # the new epoch, never a resume (its seq is in the log again, with other events).
        since, epoch = returning
        for path, c in ((f"/ws/branches/{B}", a), (f"/ws/tickets/{tickets[2]['token']}", b)):
            async with feed(c, f"{path}?since={since}&epoch={epoch}") as ws:
                m = await recv(ws)
                assert (m["type"], m["epoch"], m["seq"]) == ("snapshot", head.epoch, head.seq), m
        async with sse(b, f"/sse/branches/{B}", headers={"Last-Event-ID": str(since)}, params={"epoch": epoch}) as (r, s):
            _, m = await s.next()
            assert (m["type"], m["epoch"]) == ("snapshot", head.epoch), m

        # The counter opened in the lost part is open again, recorded into the new epoch.
        assert await counters(ca) == await counters(cb) == {"1": (True, [LAND]), "6": (True, [CIVIL])}
        assert [ev["counter"] for ev in new_log if ev.get("restored")] == ["6"]


# -- a log that went back, seen by a process that has not looked yet -----------------------------------------

async def cut_log(redis_url: str, keep: int) -> None:
    """The branch's log as an older AOF has it: its first `keep` events (XDEL would keep the
    stream's last id, so the stream is written again)."""
    import redis.asyncio as aioredis

    from hub.store.redis_keys import Keys

    keys = Keys(redis_url.split("prefix=", 1)[1])
    raw = aioredis.from_url(redis_url.split("?", 1)[0], decode_responses=True)
    try:
        stream = keys.branch(B, "log")
        kept = await raw.xrange(stream, max=f"{keep}-1")
        await raw.delete(stream)
        for entry_id, fields in kept:
            await raw.xadd(stream, fields, id=entry_id)
        await raw.hset(keys.branch(B, "head"), "seq", keep)
    finally:
        await raw.aclose()


@asynccontextmanager
async def services(redis_url: str, centre, clock, n: int):
    """`n` queue services on one Redis, each with its own store client and (unlinked) broker, as
    hub processes that do not hear from each other."""
    from hub.auth import Tokens
    from hub.broker.memory import MemoryBroker
    from hub.service.queue import QueueService
    from hub.store import open_store

    from conftest import SECRET

    async with AsyncExitStack() as stack:
        out = []
        for _ in range(n):
            store = await stack.enter_async_context(open_store(redis_url))
            out.append(QueueService(centre, store.log, MemoryBroker(), clock, Tokens(SECRET), "http://hub.test"))
            await out[-1].load()
        yield out


async def test_a_log_that_went_back_and_grew_again_is_another_history(redis_url, centre, clock):
    """Redis loses a process's last writes (an older AOF), and another process, which never saw
    them, appends past where the first one was before it looks: the head is not behind it, yet the
    history changed under it. The first process finds another event at its own last seq: a new
    epoch, the state reloaded, its watchers reset; and the second process follows into that epoch."""
    async with services(redis_url, centre, clock, 1) as [a]:
        resets: list[str] = []
        a.on_reset.append(resets.append)
        mine = [await a.issue(B, service=LAND, channel="kiosk") for _ in range(5)]
        epoch = a.epochs[B]
        await cut_log(redis_url, 3)
        async with services(redis_url, centre, clock, 1) as [b]:
            others = [await b.issue(B, service=LAND, channel="kiosk") for _ in range(3)]
            assert [t["ticket"] for t in others[:2]] == [t["ticket"] for t in mine[3:]]

            await a.catch_up(B)
            assert a.epochs[B] != epoch and resets == [B]
            assert a.state(B).seq == 6 and set(a.state(B).tickets) == set(b.state(B).tickets)
            for t in mine[3:]:                      # lost; the same ids are someone else's now
                with pytest.raises(DomainError) as e:
                    a.ticket_view(t["token"])
                assert e.value.code == "ticket_not_found"
            assert a.ticket_view(others[0]["token"])["number"] == others[0]["number"]
            assert a.ticket_view(mine[0]["token"])["number"] == mine[0]["number"]     # kept: still theirs

            await b.catch_up(B)
            assert b.epochs[B] == a.epochs[B]


async def test_a_resume_through_a_process_that_has_not_looked_yet_is_a_snapshot_of_the_new_epoch(
        redis_url, centre, clock):
    """A phone comes back before its hub has noticed the store went back: the events it asks for
    are no longer in the log. Never a partial (or another history's) replay: the hub looks, mints
    the new epoch, and the phone gets a snapshot of it."""
    from hub.feeds.fanout import FeedHub

    async with services(redis_url, centre, clock, 1) as [a]:
        feeds = FeedHub(a)
        for _ in range(5):
            await a.issue(B, service=LAND, channel="kiosk")
        epoch = a.epochs[B]
        _, watcher = await feeds.open_board(B, None, None)
        await cut_log(redis_url, 3)

        frames, sub = await feeds.open_board(B, 4, epoch)
        [m] = [json.loads(f.text) for f in frames]
        assert (m["type"], m["seq"], m["resumed"]) == ("snapshot", 3, False) and m["epoch"] != epoch
        assert m["epoch"] == a.epochs[B] and watcher.closed == "resync" and sub.closed is None
        assert feeds.stats.connections["board"] == 1           # the failed resume left nothing behind

        # Again, and this time the log grew back past where the hub is: seq 3 names another event.
        second = a.epochs[B]
        await cut_log(redis_url, 2)
        async with services(redis_url, centre, clock, 1) as [b]:
            for _ in range(3):
                await b.issue(B, service=CIVIL, channel="kiosk")
        frames, _ = await feeds.open_board(B, 2, second)
        [m] = [json.loads(f.text) for f in frames]
        assert (m["type"], m["seq"]) == ("snapshot", 5) and m["epoch"] == a.epochs[B] not in (epoch, second)
        assert a.state(B).tickets["20260519-1001"].service == LAND and len(a.state(B).tickets) == 5


async def test_a_resume_over_a_log_that_grew_back_to_the_same_length_is_another_history(
        redis_url, centre, clock):
    """The log lost a process's last two events and another process, which never saw them, wrote
    two others: the heads are equal again, and only the events differ. A phone resuming through
    the first process is not replayed the other history: the hub compares its last event with the
    log's, mints a new epoch and rebuilds from the log, and the phone gets a snapshot of it."""
    from hub.feeds.fanout import FeedHub

    async with services(redis_url, centre, clock, 1) as [a]:
        feeds = FeedHub(a)
        for _ in range(5):
            await a.issue(B, service=LAND, channel="kiosk")
        epoch = a.epochs[B]
        await cut_log(redis_url, 3)
        async with services(redis_url, centre, clock, 1) as [b]:
            for _ in range(2):
                await b.issue(B, service=CIVIL, channel="kiosk")
        assert (await a.head(B)).seq == a.state(B).seq == 5 and (await a.head(B)).epoch == epoch

        frames, _ = await feeds.open_board(B, 3, epoch)
        [m] = [json.loads(f.text) for f in frames]
        assert (m["type"], m["seq"], m["resumed"]) == ("snapshot", 5, False)
        assert m["epoch"] == a.epochs[B] != epoch
        log = await a.branches.eventlog.events_since(B, 0)
        assert {ev["ticket"] for ev in log if ev["type"] == "ticket.issued"} == set(a.state(B).tickets)
