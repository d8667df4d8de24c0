"""What every fake gateway shares: a real aiohttp server on 127.0.0.1, a record of what it took, and
failures on demand.

`fail_next(n, mode)` makes the next n requests fail that way:
- "500": an HTTP 500 before anything is taken;
- "429": an HTTP 429 with Retry-After (`retry_after` seconds) before anything is taken;
- "timeout": the message IS taken (recorded, and deduplicated where the real API does), then the answer
  is held back past any reasonable client timeout - the case where the sender cannot know it went out;
- gateway-specific modes (an invalid number, an opted-out recipient, a gone subscription) answer as
  the real gateway does.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

COMMON_MODES = frozenset({"500", "429", "timeout"})


@dataclass
class Received:
    request_id: str | None            # the sender's request id, where the API has one
    provider_id: str                  # the id the fake answered with
    fields: dict[str, Any]            # what it was asked to deliver, as the gateway read it


class FakeGateway:
    modes: frozenset[str] = COMMON_MODES

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, retry_after: int = 1, hold_for: float = 30.0,
                 slow: float = 0.0):
        self.host, self.port = host, port        # port 0: the system picks a free one
        self.retry_after = retry_after
        self.slow = slow                         # seconds every answer to a taken message waits (a slow gateway)
        self.hold_for = hold_for                 # how long "timeout" holds the answer (cut short by close)
        self.received: list[Received] = []
        self.attempts = 0                        # every request, failed ones included
        self.url = ""
        self._failures: deque[str] = deque()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def fail_next(self, n: int = 1, mode: str = "500") -> None:
        if mode not in self.modes:
            raise ValueError(f"{type(self).__name__}: no failure mode {mode!r}; one of {sorted(self.modes)}")
        self._failures.extend([mode] * n)

    # -- lifetime -------------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeGateway:
        app = web.Application()
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()                      # held answers return now, so the server stops at once
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def client(self) -> aiohttp.ClientSession:
        """For the callbacks a gateway makes itself (delivery reports): one session per fake."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        return self._client

    # -- for the request handlers ---------------------------------------------------------------------

    def take_failure(self) -> str | None:
        self.attempts += 1
        return self._failures.popleft() if self._failures else None

    def refusal(self, mode: str | None) -> web.Response | None:
        """The answer of a failure that happens before anything is taken, if `mode` is one."""
        if mode == "500":
            return web.json_response({"error": "fake gateway failure"}, status=500)
        if mode == "429":
            return web.json_response({"error": "too many requests"}, status=429,
                                     headers={"Retry-After": str(self.retry_after)})
        return None

    async def hold(self, mode: str | None) -> None:
        if self.slow and mode != "timeout":
            await asyncio.sleep(self.slow)
        if mode == "timeout":
            try:
                async with asyncio.timeout(self.hold_for):
                    await self._closing.wait()
            except TimeoutError:
                pass
