"""Storage, chosen by URL (`open_store`); a backend's modules are imported only when its scheme is
used. The protocols: hub.store.eventlog, hub.store.outbox, hub.store.predictions."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hub.redis_url import FORMS, is_redis
from hub.store.storage import Storage


@asynccontextmanager
async def open_store(url: str, *, min_replicas: int | None = None, wait_ms: int = 500) -> AsyncIterator[Storage]:
    """`min_replicas`, `wait_ms`: Redis only (hub.store.redis.open_redis)."""
    if url.startswith("sqlite:///"):
        from hub.store.sqlite import open_sqlite
        async with open_sqlite(url.removeprefix("sqlite:///")) as storage:
            yield storage
    elif is_redis(url):
        from hub.store.redis import open_redis
        async with open_redis(url, min_replicas, wait_ms) as storage:
            yield storage
    else:
        raise ValueError(f"unsupported store URL {url!r}: use sqlite:///PATH, {FORMS}")
