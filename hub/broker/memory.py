"""In-memory broker: one process, no network."""
from __future__ import annotations

from hub.broker.local import LocalSubscribers


class MemoryBroker:
    def __init__(self) -> None:
        self._local = LocalSubscribers()
        self.subscribe = self._local.subscribe

    async def publish(self, branch: str, message: bytes) -> None:
        self._local.deliver(branch, message)

    async def ping(self) -> None:
        return None
