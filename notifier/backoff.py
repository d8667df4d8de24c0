"""How long a retryable failure waits: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many
messages that failed together, so a gateway that comes back is not hit by all of them at once. A
gateway's own Retry-After is a floor: it said when it wants to hear from us again.
"""
from __future__ import annotations

import random

BASE = 2.0               # seconds: the ceiling after the first failure
CAP = 600.0              # ten minutes at most between two attempts
MAX_ATTEMPTS = 8         # then the message is a dead letter (about 8 minutes of trying, on average)


def delay(attempts: int, rng: random.Random, retry_after: float | None = None,
          base: float = BASE, cap: float = CAP) -> float:
    """Seconds before the next attempt, after `attempts` attempts (1 after the first failure)."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    wait = rng.uniform(0, ceiling)
    return max(wait, min(retry_after, cap)) if retry_after is not None else wait
