"""The per-citizen limits' reservations on Redis (hub.store.quotas).

One hash per citizen and day, `{prefix}{c:<pseudonym>}:quota:<YYYY-MM-DD>`: reservation id →
`<field>\\t<branch>`. Its own hash tag (the pseudonym, never the CCCD) puts it on one Cluster shard,
and one script checks and counts on it atomically, whichever process or branch asks; it expires
by itself after the day (`lifetime`).
"""
from __future__ import annotations

from datetime import date, datetime

from hub.store.quotas import Limits, Reservation, lifetime
from hub.store.redis_keys import Client, Keys, reachable, text

# KEYS: the citizen's day hash. ARGV: id, field, branch, per_field, per_day, seconds to keep.
_RESERVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'held' end
local prefix = ARGV[2] .. '\\t'
local same, all = 0, 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  all = all + 1
  if string.sub(v, 1, #prefix) == prefix then same = same + 1 end
end
if same >= tonumber(ARGV[4]) then return 'field_limit_reached' end
if all >= tonumber(ARGV[5]) then return 'daily_limit_reached' end
redis.call('HSET', KEYS[1], ARGV[1], prefix .. ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 'taken'
"""


class RedisQuotas:
    def __init__(self, client: Client, keys: Keys):
        self._r, self._k = client, keys
        self._reserve = client.register_script(_RESERVE)

    def key(self, citizen: str, day: date) -> str:
        return f"{self._k.prefix}{{c:{citizen}}}:quota:{day.isoformat()}"

    @reachable
    async def reserve(self, r: Reservation, limits: Limits, now: datetime) -> str:
        answer = await self._reserve(keys=[self.key(r.citizen, r.day)],
                                     args=[r.id, r.field, r.branch, limits.per_field, limits.per_day,
                                           lifetime(r.day, now)])
        return text(answer)

    @reachable
    async def release(self, r: Reservation) -> bool:
        return bool(await self._r.hdel(self.key(r.citizen, r.day), r.id))

    @reachable
    async def held(self, citizen: str, day: date) -> list[Reservation]:
        entries = await self._r.hgetall(self.key(citizen, day))
        out = []
        for rid, value in entries.items():
            field, branch = text(value).split("\t", 1)
            out.append(Reservation(citizen, day, branch, field, text(rid)))
        return out
