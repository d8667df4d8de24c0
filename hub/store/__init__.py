"""Stores, chosen by URL; a backend's module is imported only when its scheme is used."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from hub.store.base import Idempotency, LogHead, SeqConflict, Store, StoreUnavailable

__all__ = ["Idempotency", "LogHead", "SeqConflict", "Store", "StoreUnavailable", "open_store"]


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    if url.startswith("sqlite:///"):
        from hub.store.sqlite import SQLiteStore
        async with SQLiteStore.open(url.removeprefix("sqlite:///")) as store:
            yield store
    elif url.startswith("redis://"):
        from hub.store.redis import RedisStore
        async with RedisStore.open(url) as store:
            yield store
    else:
        raise ValueError(f"unsupported store URL {url!r}: use sqlite:///PATH or redis://HOST:PORT/DB")
