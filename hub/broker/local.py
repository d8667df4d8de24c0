"""The in-process half of every broker: each subscriber of a branch gets its own queue."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class LocalSubscribers:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[bytes]]] = {}

    def deliver(self, branch: str, message: bytes) -> None:
        for q in self._queues.get(branch, ()):
            q.put_nowait(message)

    def deliver_all(self, message: bytes) -> None:
        for queues in self._queues.values():
            for q in queues:
                q.put_nowait(message)

    def has(self, branch: str) -> bool:
        """Whether anyone in this process still listens to `branch`."""
        return bool(self._queues.get(branch))

    @asynccontextmanager
    async def subscribe(self, branch: str) -> AsyncIterator[AsyncIterator[bytes]]:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        queues = self._queues.setdefault(branch, set())
        queues.add(q)
        try:
            yield _drain(q)
        finally:
            queues.discard(q)
            if not queues:
                self._queues.pop(branch, None)


async def _drain(q: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    while True:
        yield await q.get()
