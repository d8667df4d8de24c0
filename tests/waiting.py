"""Waiting in tests: for a condition, never for a length of time, and never past a deadline.

Every deadline is a number of seconds times SLOW, this machine's slowness factor:
QUEUECAST_TEST_SLOWNESS if it is set (say 3 on a crowded CI runner), else measured once per test
session from the load average and the time a fixed piece of Python takes here, never below 1.
Deadlines are generous on purpose: a condition that holds returns as soon as it does, so a long
deadline costs a passing test nothing; only a failing one waits it out, then fails saying what it
waited for.

    wait_until(lambda: proc.poll() is not None, "the hub to exit")           # plain code, threads
    await until(lambda: len(fake.received) == 2, "both messages to arrive")    # coroutines (cond may be async)
    expect(locator).to_have_text("1001", timeout=ms(30))                      # Playwright takes milliseconds
    wait_for_page(page, "window.__said.length >= 1")                           # a page's own variables

Every loop here is bounded twice: by its deadline and by a count of tries.
"""
from __future__ import annotations

import asyncio
import inspect
import math
import os
import time
from collections.abc import Callable
from typing import Any

# Seconds this machine may take for the reference workload below before it counts as slow (a
# current laptop core takes ~0.1 s).
_REFERENCE_SECONDS = 0.2
_MAX_MEASURED = 8.0            # a bad measurement must not turn a hang into an hour's wait
WAIT = 30.0                    # the default deadline, in unscaled seconds
POLL = 0.05                    # seconds between two looks


def _measured() -> float:
    """How much slower than a quiet, ordinary machine this one is now (at least 1)."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:                                   # no load average on this platform
        load = 1.0
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i * i
    speed = (time.perf_counter() - started) / _REFERENCE_SECONDS
    return min(_MAX_MEASURED, max(1.0, load, speed))


def _slowness() -> tuple[float, str]:
    given = os.environ.get("QUEUECAST_TEST_SLOWNESS", "").strip()
    if given:
        value = float(given)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"QUEUECAST_TEST_SLOWNESS must be a positive number, got {given!r}")
        return value, "QUEUECAST_TEST_SLOWNESS"
    return round(_measured(), 2), "measured"


SLOW, SLOW_SOURCE = _slowness()


def deadline(seconds: float) -> float:
    """`seconds` on an ordinary quiet machine, scaled to this one."""
    return seconds * SLOW


def ms(seconds: float) -> float:
    """A scaled deadline in milliseconds, as Playwright takes its timeouts."""
    return deadline(seconds) * 1000.0


def _describe(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def _tries(limit: float, interval: float) -> int:
    """The count bound of a polling loop: enough looks to reach the deadline, and a few more."""
    return int(limit / interval) + 3


def wait_until(cond: Callable[[], Any], what: str | Callable[[], str], timeout: float = WAIT,
               interval: float = POLL, sleep: Callable[[float], Any] = time.sleep) -> Any:
    """Call `cond()` until it returns something true, and return that. After deadline(timeout)
    seconds raise AssertionError naming `what` (a string, or a function giving one, called only then).
    `sleep` pauses between looks: with Playwright's sync API pass `page_sleep(page)`, so that the
    browser's events keep being handled meanwhile."""
    limit = deadline(timeout)
    end = time.monotonic() + limit
    for _ in range(_tries(limit, interval)):
        got = cond()
        if got:
            return got
        if time.monotonic() >= end:
            break
        sleep(interval)
    raise AssertionError(f"not within {limit:.0f} s: {_describe(what)}")


def wait_for_page(page, expression: str, timeout: float | None = None) -> Any:
    """page.wait_for_function for the hub's own pages, which run under `script-src 'self'`:
    Playwright's evaluates the expression with eval() inside the page at every look after the
    first, and the policy refuses that (no 'unsafe-eval'); page.evaluate goes through DevTools,
    which the policy does not govern. `timeout` in milliseconds, as Playwright takes it (default
    ms(WAIT)); returns the expression's value once it is true."""
    limit = (ms(WAIT) if timeout is None else timeout) / 1000.0
    end = time.monotonic() + limit
    for _ in range(_tries(limit, POLL)):
        got = page.evaluate(expression)
        if got:
            return got
        if time.monotonic() >= end:
            break
        page.wait_for_timeout(POLL * 1000)
    raise AssertionError(f"not within {limit:.0f} s: {expression}")


def page_sleep(page) -> Callable[[float], None]:
    """A pause for wait_until that lets Playwright's sync API deliver the page's events."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


async def until(cond: Callable[[], Any], what: str | Callable[[], str], timeout: float = WAIT,
                interval: float = POLL) -> Any:
    """wait_until for coroutines: `cond` may be a plain function or return an awaitable; the event
    loop keeps running between looks."""
    limit = deadline(timeout)
    end = time.monotonic() + limit
    for _ in range(_tries(limit, interval)):
        got = cond()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() >= end:
            break
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {limit:.0f} s: {_describe(what)}")


async def within(awaitable, what: str, timeout: float = WAIT):
    """Await `awaitable` for at most deadline(timeout) seconds; past it, fail naming `what`."""
    limit = deadline(timeout)
    try:
        return await asyncio.wait_for(awaitable, limit)
    except TimeoutError:
        raise AssertionError(f"not within {limit:.0f} s: {what}") from None


class PageRequests:
    """The requests a Playwright page makes that `pick` selects (say, its POSTs to the API), for
    tests that assert what a page did NOT send: `settled()` proves the page has sent and finished
    everything it was going to send so far, instead of pausing and hoping a late one would show.

    It has the page fetch a marker URL and waits for that request to be reported: the page reports
    its requests in the order it makes them, so every request started before the marker (by the
    clicks and key presses before it) is known by then. It then waits until each of them is answered
    (or failed), so the hub has done whatever they asked of it."""

    def __init__(self, page, pick: Callable[[Any], bool]):
        self.page, self.pick = page, pick
        self.made: list = []
        self._ended: set[int] = set()
        page.on("request", lambda r: self.made.append(r) if pick(r) else None)
        page.on("requestfinished", lambda r: self._ended.add(id(r)))
        page.on("requestfailed", lambda r: self._ended.add(id(r)))
        self._markers = 0

    def settled(self) -> list:
        """Every picked request the page has made up to now, once all of them are answered."""
        self._markers += 1
        marker = f"/healthz?settled={self._markers}"
        with self.page.expect_request(lambda r: r.url.endswith(marker)):
            self.page.evaluate("url => fetch(url, {cache: 'no-store'}).then(r => r.status)", marker)
        wait_until(lambda: all(id(r) in self._ended for r in self.made),
                   lambda: f"the page's requests answered: {[(r.method, r.url) for r in self.made]}",
                   sleep=page_sleep(self.page))
        return list(self.made)
