"""Background loops that survive their own failures: log, back off (up to 60 s), go on."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger("queuecast.loops")

MAX_BACKOFF = 60.0


async def every(seconds: float, step: Callable[[], Awaitable[object]], name: str) -> None:
    failures = 0
    while True:
        try:
            await step()
            failures = 0
            delay = seconds
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            delay = min(MAX_BACKOFF, seconds * 2 ** failures)
            log.exception("loop step failed", extra={"fields": {"loop": name, "failures": failures,
                                                                "retry_in": delay}})
        await asyncio.sleep(delay)


@asynccontextmanager
async def running(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutines as tasks for the lifetime of the context; cancel and await them on exit."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
