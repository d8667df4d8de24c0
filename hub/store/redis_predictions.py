"""Recorded ETA predictions on Redis (hub.store.predictions); the keys are listed in hub/store/redis.py."""
from __future__ import annotations

import json
from datetime import date
from typing import Any

from hub.store.predictions import instant, point_key
from hub.store.redis_keys import Client, Keys, dumps, reachable

# KEYS: the day's seen set, its list, the branch's days index. ARGV: the day, its ordinal, then pairs.
_PREDICTIONS_ADD = """
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
for i = 3, #ARGV, 2 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[i + 1]) end
end
return 0
"""


class RedisPredictions:
    def __init__(self, client: Client, keys: Keys):
        self._r, self._k = client, keys
        self._add = client.register_script(_PREDICTIONS_ADD)

    @reachable
    async def add(self, branch: str, day: date, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        key = self._k.branch(branch, f"pred:{day.isoformat()}")
        await self._add(keys=[f"{key}:seen", key, self._k.branch(branch, "pred:days")],
                        args=[day.isoformat(), day.toordinal(),
                              *(arg for line in lines for arg in (point_key(line), dumps(line)))])

    @reachable
    async def of_day(self, branch: str, day: date) -> list[dict[str, Any]]:
        raw = await self._r.lrange(self._k.branch(branch, f"pred:{day.isoformat()}"), 0, -1)
        lines = [json.loads(line) for line in raw]
        # Stable: lines of one instant stay in the order they were added (processes may add out of order).
        return sorted(lines, key=instant)

    @reachable
    async def prune(self, branch: str, before: date) -> int:
        index = self._k.branch(branch, "pred:days")
        days = await self._r.zrangebyscore(index, "-inf", f"({before.toordinal()}")
        if days:
            keys = [self._k.branch(branch, f"pred:{d.decode() if isinstance(d, bytes) else d}") for d in days]
            async with self._r.pipeline(transaction=True) as pipe:      # one slot: the branch's tag
                pipe.delete(*keys, *(f"{k}:seen" for k in keys))
                pipe.zrem(index, *days)
                await pipe.execute()
        return len(days)
