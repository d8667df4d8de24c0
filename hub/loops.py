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


# A task that swallowed its cancellation (a library catching CancelledError, or wait_for on 3.11
# losing one that raced a result) would hold the shutdown forever: it is cancelled again, up to
# CANCEL_ROUNDS times, CANCEL_GRACE seconds apart, and then left behind with an error in the log.
CANCEL_GRACE = 5.0
CANCEL_ROUNDS = 6


@asynccontextmanager
async def running(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutines as tasks for the lifetime of the context; cancel and await them on exit."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        await stop(tasks)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for their end, cancelling again any that carries on."""
    pending = {t for t in tasks if not t.done()}
    for _ in range(CANCEL_ROUNDS):
        if not pending:
            break
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_GRACE)
        for t in pending:
            log.warning("task carried on after being cancelled; cancelling it again",
                        extra={"fields": {"task": t.get_name()}})
    for t in pending:
        log.error("task left running at shutdown", extra={"fields": {"task": t.get_name()}})
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("task ended with an error", exc_info=t.exception(),
                      extra={"fields": {"task": t.get_name()}})
