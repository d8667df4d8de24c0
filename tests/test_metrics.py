"""/metrics: Prometheus text that moves with what the hub does."""
from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from websockets.asyncio.client import connect

from conftest import bearer
from waiting import deadline, until

pytestmark = pytest.mark.anyio


def value(text: str, name: str, **labels) -> float:
    """The sample `name{labels}` in a Prometheus exposition (labels in any order)."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if found == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    raise AssertionError(f"no sample {name}{labels}")


async def test_commands_are_counted_by_outcome(client):
    for _ in range(2):
        assert (await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})).status_code == 201
    staff = bearer(client.app.state.tokens.staff("1"))
    assert (await client.post("/api/branches/1/counters/1/call-next", headers=staff)).status_code == 409
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert value(r.text, "queuecast_command_seconds_count", command="issue", outcome="ok") == 2
    assert value(r.text, "queuecast_command_seconds_count", command="call-next", outcome="counter_closed") == 1
    assert value(r.text, "queuecast_branch_seq", branch="1") == 2
    assert value(r.text, "queuecast_branch_waiting", branch="1") == 2


async def test_feed_connections_and_starts_over_a_real_socket(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    ws_url = hub.url.replace("http", "ws") + "/ws/branches/1"
    wait = deadline(30)
    async with httpx.AsyncClient(base_url=hub.url, timeout=wait) as c:
        async with connect(ws_url, open_timeout=wait) as ws:
            snap = json.loads(await asyncio.wait_for(ws.recv(), wait))
            async with connect(f"{ws_url}?since={snap['seq']}&epoch={snap['epoch']}", open_timeout=wait) as ws2:
                assert json.loads(await asyncio.wait_for(ws2.recv(), wait))["type"] == "resume"
                await c.post("/api/branches/1/tickets", json={"service": "ho-tich", "channel": "kiosk"})
                await asyncio.wait_for(ws.recv(), wait)
                await asyncio.wait_for(ws2.recv(), wait)
                text = (await c.get("/metrics")).text
                assert value(text, "queuecast_feed_connections", feed="board") == 2
                assert value(text, "queuecast_feed_starts_total", how="snapshot") == 1
                assert value(text, "queuecast_feed_starts_total", how="resume") == 1
                assert value(text, "queuecast_feed_deliveries_total") == 2
                assert value(text, "queuecast_feed_direct_total") == 2     # uvicorn under `serve`

        async def connections() -> float:            # the server notices the closes shortly after
            return value((await c.get("/metrics")).text, "queuecast_feed_connections", feed="board")

        async def none_left() -> bool:
            return await connections() == 0
        await until(none_left, "no board connection counted once both are closed")
