"""Two real hub processes (`python -m hub serve`) on a real 3-master Redis Cluster
(`redis+cluster://`, store and broker): every branch's commands at one hub reach the live feeds of
the other, and the branches' keys really are spread over the masters, each branch on one.
"""
from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack

import httpx
import pytest
import redis as redis_sync
from websockets.asyncio.client import connect

from hub.domain.events import public
from hub.store import open_store

from conftest import replica_link, summary_lines
from waiting import deadline

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
WAIT = deadline(30)
PER_BRANCH = 3                  # tickets issued in each branch at hub A


async def recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


def keys_per_node(ports: list[int], prefix: str) -> dict[int, set[str]]:
    """The branches whose keys each node holds (asked of every node itself)."""
    found: dict[int, set[str]] = {}
    for port in ports:
        with redis_sync.Redis(port=port, decode_responses=True) as r:
            keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
        found[port] = {m.group(1) for k in keys if (m := re.search(r"\{b:([^}]*)\}", k))}
    return found


async def test_every_branch_at_one_hub_is_live_at_the_other(redis_cluster, redis_cluster_url, hub_factory, hub_env,
                                                           request):
    # The cluster's fixtures first: the hubs are stopped before the test's keys are deleted.
    env = {**hub_env, "QUEUECAST_DATABASE": redis_cluster_url}      # the broker: the same cluster
    a, b = hub_factory(env), hub_factory(env)
    timeout = httpx.Timeout(WAIT)
    async with httpx.AsyncClient(base_url=a.url, timeout=timeout) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=timeout) as cb, AsyncExitStack() as stack:
        branches = [x["id"] for x in (await cb.get("/api/branches")).json()["branches"]]
        assert len(branches) == 12, branches
        feeds = {}
        for branch in branches:               # B's live feed of every branch, from its snapshot
            ws = await stack.enter_async_context(connect(
                "ws" + b.url.removeprefix("http") + f"/ws/branches/{branch}", open_timeout=WAIT, ping_interval=None))
            snap = await recv(ws)
            assert snap["type"] == "snapshot" and snap["seq"] == 0, snap
            feeds[branch] = ws
        for branch in branches:               # the commands, all at A
            service = (await ca.get(f"/api/branches/{branch}")).json()["services"][0]["id"]
            for _ in range(PER_BRANCH):
                r = await ca.post(f"/api/branches/{branch}/tickets", json={"service": service, "channel": "kiosk"})
                assert r.status_code == 201, r.text
        frames = 0
        for branch in branches:
            got = [await recv(feeds[branch]) for _ in range(PER_BRANCH)]
            frames += len(got)
            assert [e["seq"] for e in got] == list(range(1, PER_BRANCH + 1)), (branch, got)
            assert {e["type"] for e in got} == {"ticket.issued"}, got
            async with open_store(redis_cluster_url) as store:
                assert got == [public(ev) for ev in await store.log.events_since(branch, 0)]
        # B's own state followed A's appends through the shard channels: its views are at the head.
        for branch in branches:
            assert (await cb.get(f"/api/branches/{branch}")).json()["seq"] == PER_BRANCH
        ready = (await cb.get("/readyz")).json()
        assert ready["status"] == "ready", ready
        metrics = (await cb.get("/metrics")).text
        assert re.search(r"^queuecast_broker_reconnects_total 0\.0$", metrics, re.M), \
            [line for line in metrics.splitlines() if "reconnects" in line]
        # The branches' keys are spread over the masters, and each branch's are on one master only
        # (a replica holds copies of its master's).
        prefix = redis_cluster_url.split("prefix=")[1]
        per_node = keys_per_node([n.port for n in redis_cluster.nodes if replica_link(n.port) is None], prefix)
        assert sum(1 for held in per_node.values() if held) > 1, per_node
        assert sorted(x for held in per_node.values() for x in held) == sorted(branches), per_node
        spread = sorted(len(held) for held in per_node.values())
        summary_lines(request.config).append(
            f"cluster, two hubs: {len(branches)} branches x {PER_BRANCH} events at A, {frames} frames on B's "
            f"feeds, branches per master {spread}")
        # The other way: a command at B reaches a feed of A.
        last = branches[-1]
        async with connect("ws" + a.url.removeprefix("http") + f"/ws/branches/{last}", open_timeout=WAIT,
                           ping_interval=None) as at_a:
            assert (await recv(at_a))["seq"] == PER_BRANCH
            service = (await cb.get(f"/api/branches/{last}")).json()["services"][0]["id"]
            r = await cb.post(f"/api/branches/{last}/tickets", json={"service": service, "channel": "kiosk"})
            assert r.status_code == 201, r.text
            assert (await recv(at_a))["seq"] == PER_BRANCH + 1
