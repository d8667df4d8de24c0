"""Running the ASGI app under uvicorn, the same way for `serve` and `demo`.

Proxy headers (X-Forwarded-For, X-Forwarded-Proto) are believed only from the peers in
QUEUECAST_TRUSTED_PROXIES; with none (the default) they are ignored, so a client cannot pick the
address its rate limits and feed cap are counted against. uvicorn's own default would trust
127.0.0.1, which is every client when the hub shares a host with anything that connects locally.
Tokens in request paths are redacted from uvicorn's logs (hub.logs); slow and stalled clients are
bounded by hub.connections.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import uvicorn

from hub import connections, logs
from hub.feeds import direct
from hub.settings import Settings

log = logging.getLogger("queuecast.server")

WS_MAX_SIZE = 64 * 1024        # bytes a client may send in one WebSocket message
WS_PING_SECONDS = 25.0         # protocol ping: a dead peer is noticed, idle proxies stay open
# permessage-deflate is declined: the fan-out writes every live frame uncompressed (hub.feeds.direct),
# so it would compress only a connection's first frames, and its zlib contexts cost ~45 KiB for
# each connection's whole life (bench/fanout.py --deflate: 57 KiB per idle board connection, not 13).
WS_DEFLATE = False
MAX_HEADER_BYTES = 16 * 1024   # a request's line and headers (h11's limit, said here): 400 past it


def config(app: Any, host: str, port: int,
           protocol: Callable[[], tuple[type | None, str]] = direct.protocol,
           settings: Settings | None = None) -> uvicorn.Config:
    settings = settings or Settings()
    ws, why = protocol()
    if ws is None:       # the feeds still work, through ASGI: slower fan-out, same frames
        log.warning("fast WebSocket path off, feeds go through ASGI",
                    extra={"fields": {"why": why, "uvicorn": uvicorn.__version__}})
    else:
        log.info("fast WebSocket path on", extra={"fields": {"uvicorn": uvicorn.__version__}})
    proxies = settings.proxies()
    made = uvicorn.Config(app, host=host, port=port, lifespan="on", ws=ws or "auto",
                          proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
                          http=connections.http_protocol(settings.request_timeout),
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                          ws_max_size=WS_MAX_SIZE, ws_ping_interval=WS_PING_SECONDS, ws_ping_timeout=20.0,
                          ws_per_message_deflate=WS_DEFLATE,
                          timeout_graceful_shutdown=5, log_level="info")
    logs.redact_uvicorn()            # uvicorn.Config has just (re)configured its loggers
    return made


def run(app: Any, host: str, port: int, settings: Settings | None = None) -> None:
    uvicorn.Server(config(app, host, port, settings=settings)).run()
