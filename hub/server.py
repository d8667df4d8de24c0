"""Running the ASGI app under uvicorn, the same way for `serve` and `demo`."""
from __future__ import annotations

import uvicorn

from hub.feeds.direct import DirectProtocol

WS_MAX_SIZE = 64 * 1024        # bytes a client may send in one WebSocket message
WS_PING_SECONDS = 25.0         # protocol ping: a dead peer is noticed, idle proxies stay open


def run(app, host: str, port: int) -> None:
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", proxy_headers=True, ws=DirectProtocol,
                            ws_max_size=WS_MAX_SIZE, ws_ping_interval=WS_PING_SECONDS, ws_ping_timeout=20.0,
                            timeout_graceful_shutdown=5, log_level="info")
    uvicorn.Server(config).run()
