"""Background loops: a shutdown ends even when a task does not take its first cancellation."""
import asyncio
import logging

import pytest

from hub import loops

pytestmark = pytest.mark.anyio


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again(monkeypatch, caplog):
    monkeypatch.setattr(loops, "CANCEL_GRACE", 0.05)
    swallowed, ended = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()               # what a library catching CancelledError does
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    started = asyncio.Event()

    async def plain() -> None:
        started.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.WARNING, logger="queuecast.loops"):
        async with loops.running(stubborn(), plain()):
            await started.wait()
    assert swallowed.is_set() and ended.is_set()
    assert "cancelling it again" in caplog.text


async def test_a_task_that_failed_is_reported_and_the_others_still_stop(caplog):
    async def fails() -> None:
        raise RuntimeError("boom")

    stopped = asyncio.Event()

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    with caplog.at_level(logging.ERROR, logger="queuecast.loops"):
        async with loops.running(fails(), waits()):
            for _ in range(100):          # bounded: the failing task ends within a few loop turns
                await asyncio.sleep(0)
    assert stopped.is_set()
    assert "task ended with an error" in caplog.text and "boom" in caplog.text


async def test_a_task_that_never_ends_is_left_behind_with_an_error(monkeypatch, caplog):
    monkeypatch.setattr(loops, "CANCEL_GRACE", 0.01)
    monkeypatch.setattr(loops, "CANCEL_ROUNDS", 2)
    release, started = asyncio.Event(), asyncio.Event()

    async def immortal() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                pass

    with caplog.at_level(logging.WARNING, logger="queuecast.loops"):
        async with loops.running(immortal()):
            await started.wait()
    assert "task left running at shutdown" in caplog.text
    release.set()                         # the test's own task ends before the loop closes

