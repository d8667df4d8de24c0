"""Running the ASGI app under uvicorn, the same way for `serve` and `demo`."""
from __future__ import annotations

import uvicorn

WS_MAX_SIZE = 64 * 1024        # bytes a client may send in one WebSocket message


def run(app, host: str, port: int) -> None:
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", proxy_headers=True,
                            ws_max_size=WS_MAX_SIZE, timeout_graceful_shutdown=5, log_level="info")
    uvicorn.Server(config).run()
