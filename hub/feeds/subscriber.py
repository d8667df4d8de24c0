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
# The WebSocket close of each reason a connection can be ended for by the hub (docs/feeds.md).
CLOSE_CODES = {SLOW: (4008, "too slow: resume with since"), RESYNC: (4009, "resync: history replaced"),
               TOO_BIG: (1009, "message too big"), SHUTDOWN: (1012, "restarting: resume with since")}


class Subscriber:
    # Thousands of these live as long as their connections: slots, and no queue or event until
    # one is needed (a direct connection that queued nothing while it started never needs them).
    __slots__ = ("skip_through", "closed", "_frames", "_max", "_ready", "on_close", "direct")

    def __init__(self, skip_through: int = 0, max_queue: int = MAX_QUEUE) -> None:
        self.skip_through = skip_through      # live frames at or below this seq were sent (or queued) already
        self.closed: str | None = None
        self._frames: deque[Frame] | None = None
        self._max = max_queue
        self._ready: asyncio.Event | None = None
        # Set by the fan-out (unregisters and counts), and once the start is sent on a direct link.
        self.on_close: Callable[[Subscriber, str], None] | None = None
        self.direct: DirectLink | None = None

    def starts_at(self, seq: int) -> None:
        """What the connection's first frames cover (read under the branch lock): live frames up to
        `seq`, queued while it was being read, are dropped, and later ones at or below it skipped."""
        self.skip_through = seq
        while self._frames and self._frames[0].seq <= seq:
            self._frames.popleft()

    def go_direct(self, link: DirectLink) -> None:
        """From now on write frames straight to the connection; first what queued meanwhile."""
        self.direct = link
        if self._frames and not self.closed:
            queued, self._frames = self._frames, None         # already counted in skip_through
            why = link.write(b"".join(f.wire for f in queued))
            if why is not None:
                self.close(why)

    def push(self, frame: Frame) -> None:
        if self.closed or frame.seq <= self.skip_through:
            return
        self.skip_through = frame.seq         # from here on: the last seq sent (or queued)
        if self.direct is not None:
            why = self.direct.write(frame.wire)
            if why is not None:
                self.close(why)
            return
        if self._frames is None:
            self._frames = deque()
        elif len(self._frames) >= self._max:
            self.close(SLOW)
            return
        self._frames.append(frame)
        if self._ready is not None:
            self._ready.set()

    def push_all(self, frames: list[Frame], joined: bytes) -> int:
        """Frames in seq order (`joined`: their wire encodings, end to end) in one write to a
        direct link, or one by one; those at or below `skip_through` are left out. The writes made."""
        if self.closed:
            return 0
        if self.direct is None or frames[0].seq <= self.skip_through:
            fresh = [f for f in frames if f.seq > self.skip_through]     # rare: started mid-command
            for frame in fresh:
                self.push(frame)
            return len(fresh) if self.direct is not None else 0
        self.skip_through = frames[-1].seq
        why = self.direct.write(joined)
        if why is not None:
            self.close(why)
        return 1

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self._frames = None
            if self._ready is not None:
                self._ready.set()
            if self.direct is not None and reason in CLOSE_CODES:
                self.direct.close(*CLOSE_CODES[reason])      # the connection's task only reads: tell the client here
            if self.on_close is not None:
                self.on_close(self, reason)

    async def next(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None once closed (see `closed`); raises TimeoutError after `timeout`.
        A direct subscriber queues nothing: this just waits for its end."""
        while not self._frames and self.closed is None:
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.clear()
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        if self.closed is not None or not self._frames:
            return None
        return self._frames.popleft()
