"""In-memory broker: one process, no network. Each subscriber has its own queue."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator


class MemoryBroker:
    def __init__(self):
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}

    async def publish(self, branch: str, message: bytes) -> None:
        for q in self._subscribers.get(branch, ()):
            q.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, branch: str) -> AsyncIterator[AsyncIterator[bytes]]:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        subs = self._subscribers.setdefault(branch, set())
        subs.add(q)
        try:
            yield _drain(q)
        finally:
            subs.discard(q)
            if not subs:
                self._subscribers.pop(branch, None)

    async def ping(self) -> None:
        return None


async def _drain(q: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    while True:
        yield await q.get()
