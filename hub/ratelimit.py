"""Token-bucket rate limits, in memory per process (issuing: per client address, per citizen; the
notifier: per gateway)."""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from hub.domain.errors import DomainError

_MAX_KEYS = 100_000      # forget the least recently seen keys past this: memory stays bounded


class RateLimiter:
    def __init__(self, count: int, per_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.capacity, self.rate, self.clock = float(count), count / per_seconds, clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()   # key → (tokens, at)

    def take(self, key: str) -> None:
        retry = self.reserve(key)
        if retry > 0:
            raise DomainError("rate_limited", "rate_limited",
                              f"Too many requests; try again in {retry:.0f} s.",
                              f"Quá nhiều yêu cầu; vui lòng thử lại sau {retry:.0f} giây.",
                              retry_after=max(1, round(retry)))

    def reserve(self, key: str) -> float:
        """Take a token for `key` if there is one (0.0); else the seconds until there is, taking none."""
        now = self.clock()
        tokens, at = self.buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[key] = (tokens - 1, now)
        while len(self.buckets) > _MAX_KEYS:
            self.buckets.popitem(last=False)
        return 0.0
