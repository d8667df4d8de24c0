"""The event log on Redis (hub.store.eventlog); the keys are listed in hub/store/redis.py.

One Lua script per append checks the head and writes the events, the day index, the idempotency
record and the outbox items the events make owed, all under the branch's hash tag: atomically, and
on one Redis Cluster shard.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import date

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from hub.domain.events import Event
from hub.store.errors import SeqConflict
from hub.store.eventlog import Idempotency, LogHead
from hub.store.outbox import OutboxItem, check_keys
from hub.store.redis_keys import Keys, dumps, reachable, text
from hub.store.redis_outbox_scripts import OUTBOX_LUA, encode_item

# KEYS: head, log, idem, one day-list key per event, then the ten outbox keys. ARGV: expected seq,
# new epoch, idempotency key ('' for none), its record, the number of events, per event its JSON,
# then the outbox items (see ob_add).
_APPEND = OUTBOX_LUA + """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'seq', 0, 'epoch', ARGV[2])
end
if seq ~= tonumber(ARGV[1]) then return {'conflict', seq} end
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  return redis.error_reply('IDEMPOTENCY_KEY_EXISTS ' .. ARGV[3])
end
local n = tonumber(ARGV[5])
for i = 1, n do
  seq = seq + 1
  redis.call('XADD', KEYS[2], seq .. '-1', 'e', ARGV[5 + i])
  redis.call('RPUSH', KEYS[3 + i], seq)
end
redis.call('HSET', KEYS[1], 'seq', seq)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
ob_add(ob_keys(4 + n), 6 + n)
return {'ok', seq}
"""

# KEYS: head. ARGV: an epoch for a branch that has none (a new or wiped log: FLUSHALL leaves no
# head, and a head minted here can never be mistaken for the one lost), then optionally the epoch
# the caller saw: if it is still the head's, a fresh epoch (ARGV[1]) begins at the head's seq.
_HEAD = """
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'seq', 0, 'epoch', ARGV[1], 'base', 0)
elseif ARGV[2] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'base', redis.call('HGET', KEYS[1], 'seq') or 0)
end
return redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'base')
"""


class IdempotencyKeyExists(Exception):
    """An answer is already kept under this key; it is never overwritten."""


class RedisEventLog:
    shared = True           # other hub processes append to the same log

    def __init__(self, client: aioredis.Redis, keys: Keys):
        self._r, self._k = client, keys
        self._append = client.register_script(_APPEND)
        self._head = client.register_script(_HEAD)

    @reachable
    async def head(self, branch: str) -> LogHead:
        return await self._read_head(branch, secrets.token_hex(8))

    @reachable
    async def new_epoch(self, branch: str, seen: str) -> LogHead:
        return await self._read_head(branch, secrets.token_hex(8), seen)

    async def _read_head(self, branch: str, *args: str) -> LogHead:
        seq, epoch, base = await self._head(keys=[self._k.branch(branch, "head")], args=list(args))
        return LogHead(int(seq), epoch, int(base or 0))     # no base: a head written before bases were kept

    @reachable
    async def append(self, branch: str, expected_seq: int, events: list[Event],
                     idempotency: Idempotency | None = None,
                     outbox: Sequence[OutboxItem] = ()) -> list[Event]:
        check_keys(outbox, branch)
        stored = [{**ev, "seq": expected_seq + i} for i, ev in enumerate(events, start=1)]
        keys = [self._k.branch(branch, "head"), self._k.branch(branch, "log"), self._k.branch(branch, "idem")]
        keys += [self._k.branch(branch, f"day:{ev.get('day', '')}") for ev in stored]
        keys += self._k.outbox(branch)
        idem_key, idem_value = "", ""
        if idempotency is not None:
            idem_key = idempotency.key
            idem_value = dumps([idempotency.fingerprint, idempotency.status, idempotency.body])
        if outbox:
            await self._r.sadd(self._k.untagged("outbox:branches"), branch)
        try:
            status, seq = await self._append(keys=keys, args=[
                expected_seq, secrets.token_hex(8), idem_key, idem_value, len(stored),
                *map(dumps, stored), *(arg for item in outbox for arg in encode_item(item))])
        except ResponseError as e:
            if "IDEMPOTENCY_KEY_EXISTS" in str(e):
                raise IdempotencyKeyExists(idem_key) from None
            raise
        if status == "conflict":
            raise SeqConflict(branch, expected_seq, int(seq))
        return stored

    @reachable
    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        if limit is not None and limit <= 0:
            return []           # "nothing new" (a resume at the head); XRANGE refuses COUNT 0
        entries = await self._r.xrange(self._k.branch(branch, "log"), min=f"{after_seq + 1}-0", max="+",
                                       count=limit)
        # redis-py types the reply and an entry's fields Optional (XCLAIM's deleted entries); XRANGE has both
        return [json.loads(fields["e"]) for _, fields in entries or () if fields is not None]

    @reachable
    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        seqs = await self._r.lrange(self._k.branch(branch, f"day:{day.isoformat()}"), 0, -1)
        log = self._k.branch(branch, "log")
        async with self._r.pipeline(transaction=False) as pipe:
            for seq in seqs:
                pipe.xrange(log, min=f"{text(seq)}-1", max=f"{text(seq)}-1")
            found = await pipe.execute()
        return [json.loads(entries[0][1]["e"]) for entries in found if entries]

    @reachable
    async def idempotency(self, branch: str, key: str) -> Idempotency | None:
        raw = await self._r.hget(self._k.branch(branch, "idem"), key)
        if raw is None:
            return None
        fingerprint, status, body = json.loads(raw)
        return Idempotency(key=key, fingerprint=fingerprint, status=status, body=body)

    @reachable
    async def ping(self) -> None:
        await self._r.ping()
