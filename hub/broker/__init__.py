"""Brokers, chosen by URL; a backend's module is imported only when its scheme is used."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hub.broker.base import Broker
from hub.redis_url import FORMS, is_redis

__all__ = ["Broker", "open_broker"]


@asynccontextmanager
async def open_broker(url: str) -> AsyncIterator[Broker]:
    if url == "memory://":
        from hub.broker.memory import MemoryBroker
        yield MemoryBroker()
    elif is_redis(url):
        from hub.broker.redis import RedisBroker
        async with RedisBroker.open(url) as broker:
            yield broker
    else:
        raise ValueError(f"unsupported broker URL {url!r}: use memory://, {FORMS}")
