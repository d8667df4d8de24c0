"""Brokers, chosen by URL; a backend's module is imported only when its scheme is used."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hub.broker.base import Broker

__all__ = ["Broker", "open_broker"]


@asynccontextmanager
async def open_broker(url: str) -> AsyncIterator[Broker]:
    if url == "memory://":
        from hub.broker.memory import MemoryBroker
        yield MemoryBroker()
    elif url.startswith("redis://"):
        from hub.broker.redis import RedisBroker
        async with RedisBroker.open(url) as broker:
            yield broker
    else:
        raise ValueError(f"unsupported broker URL {url!r}: use memory:// or redis://HOST:PORT/DB")
