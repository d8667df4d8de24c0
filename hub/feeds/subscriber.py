"""One connection's bounded queue of frames. A client that falls behind is cut, not waited for:
it resumes from its last seq, so a slow phone never holds up a branch's other watchers."""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from hub.feeds.direct import DirectLink
from hub.feeds.frames import Frame

MAX_QUEUE = 256            # frames waiting for one connection before it counts as too slow

SLOW, RESYNC, GONE, TOO_BIG, SHUTDOWN = "slow", "resync", "gone", "too_big", "shutdown"


class Subscriber:
    def __init__(self, skip_through: int = 0, max_queue: int = MAX_QUEUE) -> None:
        self.skip_through = skip_through      # live frames at or below this seq were sent already
        self.closed: str | None = None
        self._frames: deque[Frame] = deque()
        self._max = max_queue
        self._ready = asyncio.Event()
        # Set by the fan-out (unregisters and counts), and once the start is sent on a direct link.
        self.on_close: Callable[[Subscriber, str], None] | None = None
        self.direct: DirectLink | None = None

    def go_direct(self, link: DirectLink) -> None:
        """From now on write frames straight to the connection; first what queued meanwhile."""
        self.direct = link
        while self._frames and not self.closed:
            self.push(self._frames.popleft())

    def push(self, frame: Frame) -> None:
        if self.closed or frame.seq <= self.skip_through:
            return
        if self.direct is not None:
            why = self.direct.write(frame.wire)
            if why is not None:
                self.close(why)
            return
        if len(self._frames) >= self._max:
            self.close(SLOW)
            return
        self._frames.append(frame)
        self._ready.set()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self._frames.clear()
            self._ready.set()
            if self.on_close is not None:
                self.on_close(self, reason)

    async def next(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None once closed (see `closed`); raises TimeoutError after `timeout`.
        A direct subscriber queues nothing: this just waits for its end."""
        while not self._frames and self.closed is None:
            self._ready.clear()
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        if self.closed is not None:
            return None
        return self._frames.popleft()
