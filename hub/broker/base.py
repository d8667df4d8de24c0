"""The `Broker` protocol: fan-out of a branch's events to every hub process."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Broker(Protocol):
    async def publish(self, branch: str, message: bytes) -> None:
        """Deliver `message` (an event, JSON-encoded once) to every subscriber of `branch`."""

    def subscribe(self, branch: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Messages published to `branch` from the moment the context is entered."""

    async def ping(self) -> None:
        """Raise if the broker cannot be reached."""
