"""The fast WebSocket path (hub.feeds.direct) needs a private uvicorn class; where the installed
uvicorn lacks it, `serve` says so and runs the feeds through plain ASGI, which still works."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn
import websockets
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from hub import server
from hub.app import create_app
from hub.feeds import direct

from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_uvicorn_takes_the_fast_path():
    ws, why = direct.protocol()
    assert why == "" and ws is not None and issubclass(ws, WebSocketsSansIOProtocol)
    assert server.config(object(), "127.0.0.1", 8000).ws is ws


@pytest.mark.parametrize("version", ["0.30.6", "0.35.0", "0.43.1"])
def test_an_older_uvicorn_is_refused_by_version(version):
    ws, why = direct.protocol(version=version)
    assert ws is None and version in why and "0.44" in why


def test_a_uvicorn_without_the_private_class_is_refused():
    def missing() -> type:
        raise ImportError("No module named 'uvicorn.protocols.websockets.websockets_sansio_impl'")

    ws, why = direct.protocol(version="9.0.0", load=missing)
    assert ws is None and "no sans-I/O WebSocket protocol" in why


def test_without_the_fast_path_the_feeds_still_work_through_asgi(settings, caplog):
    """A real uvicorn on 127.0.0.1, told the private class is missing: a warning, then a board feed
    whose snapshot arrives over a real WebSocket."""
    port = free_port()
    app = create_app(settings)
    with caplog.at_level(logging.WARNING, logger="queuecast.server"):
        config = server.config(app, "127.0.0.1", port, protocol=lambda: (None, "uvicorn 9.0 has no such class"))
    assert config.ws == "auto"
    assert any("fast WebSocket path off" in r.getMessage() for r in caplog.records)
    config.log_level = "warning"
    hub = uvicorn.Server(config)
    thread = threading.Thread(target=hub.run, daemon=True)
    thread.start()

    async def first_frame() -> dict:
        for _ in range(600):                               # bounded: about a minute on a busy machine
            if hub.started:
                break
            await asyncio.sleep(0.1)
        assert hub.started, "uvicorn did not start"
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/branches/1") as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 30))

    try:
        frame = asyncio.run(first_frame())
        assert frame["type"] == "snapshot" and frame["resumed"] is False and frame["seq"] == 0
    finally:
        hub.should_exit = True
        thread.join(30)
    assert not thread.is_alive()


def test_a_hub_on_the_oldest_uvicorn_allowed_takes_the_fast_path(hub_factory, hub_env):
    """pyproject.toml allows uvicorn from 0.44; scripts/setup.sh puts exactly that release in
    .venv/uvicorn-floor. A real hub on it uses the direct protocol, and its board feed works."""
    floor = ROOT / ".venv" / "uvicorn-floor"
    [dist] = floor.glob("uvicorn-*.dist-info")
    version = dist.name.removeprefix("uvicorn-").removesuffix(".dist-info")
    assert f'"uvicorn>={".".join(version.split(".")[:2])}"' in (ROOT / "pyproject.toml").read_text()
    hub = hub_factory({**hub_env, "PYTHONPATH": f"{floor}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    lines = [json.loads(line) for line in hub.log.read_text().splitlines() if line.startswith("{")]
    assert {"msg": "fast WebSocket path on", "uvicorn": version} in [
        {k: ln.get(k) for k in ("msg", "uvicorn")} for ln in lines]

    async def issue_and_watch() -> list[dict]:
        async with websockets.connect(f"{hub.url.replace('http', 'ws')}/ws/branches/1") as ws:
            got = [json.loads(await asyncio.wait_for(ws.recv(), 30))]
            async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
                r = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})
                assert r.status_code == 201, r.text
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            return got

    snapshot, issued = asyncio.run(issue_and_watch())
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == 0
    assert (issued["type"], issued["seq"], issued["number"]) == ("ticket.issued", 1, "1001")


def test_a_feed_declines_permessage_deflate(hub_factory, hub_env):
    """Browsers offer permessage-deflate; the hub says no (hub.server.WS_DEFLATE: its live frames
    are written uncompressed anyway, and each connection's zlib contexts would cost ~45 KiB), and
    the feed works as ever."""
    hub = hub_factory(hub_env)

    async def offered() -> tuple[str | None, dict]:
        async with websockets.connect(f"{hub.url.replace('http', 'ws')}/ws/branches/1", compression="deflate") as ws:
            assert ws.request.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
            return ws.response.headers.get("Sec-WebSocket-Extensions"), json.loads(await asyncio.wait_for(ws.recv(), 30))

    extensions, snapshot = asyncio.run(offered())
    assert extensions is None and snapshot["type"] == "snapshot"
