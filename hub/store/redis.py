"""The Redis store: the same log on a Redis server shared by any number of hub processes.

Keys of one branch share a hash tag, `{prefix}{b:<branch>}...`, so Redis Cluster keeps a branch on
one shard and the append script, which touches only that branch's keys, runs there atomically:
- `...:head`  hash: seq, epoch
- `...:log`   stream: one entry per event, entry id `<seq>-1`, field `e` = the event's JSON
- `...:idem`  hash: Idempotency-Key → JSON [fingerprint, status, body]
- `...:day:<YYYY-MM-DD>` list of the seqs of that working day's events (export-trace)
Durability is the server's: run it with `appendonly yes` and `appendfsync always` for the same
guarantee as SQLite's synchronous=FULL (`everysec` may lose the last second on power loss).
"""
from __future__ import annotations

import json
import secrets
from contextlib import asynccontextmanager
from datetime import date
from typing import AsyncIterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis
import functools

from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError, TimeoutError as RedisTimeoutError

from hub.domain.events import Event
from hub.store.base import Idempotency, LogHead, SeqConflict, StoreUnavailable

# KEYS: head, log, idem, then one day-list key per event. ARGV: expected seq, new epoch,
# idempotency key ('' for none), its record, then per event: its JSON.
_APPEND = """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'seq', 0, 'epoch', ARGV[2])
end
if seq ~= tonumber(ARGV[1]) then return {'conflict', seq} end
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  return redis.error_reply('IDEMPOTENCY_KEY_EXISTS ' .. ARGV[3])
end
for i = 5, #ARGV do
  seq = seq + 1
  redis.call('XADD', KEYS[2], seq .. '-1', 'e', ARGV[i])
  redis.call('RPUSH', KEYS[i - 1], seq)
end
redis.call('HSET', KEYS[1], 'seq', seq)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
return {'ok', seq}
"""

_HEAD = """
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'seq', 0, 'epoch', ARGV[1])
end
return redis.call('HMGET', KEYS[1], 'seq', 'epoch')
"""


class IdempotencyKeyExists(Exception):
    """An answer is already kept under this key; it is never overwritten."""


def _reachable(method):
    """Connection trouble is StoreUnavailable, whatever the client library calls it."""
    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e
    return wrapper


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def split_url(url: str) -> tuple[str, str]:
    """'redis://h:p/0?prefix=qc:' → ('redis://h:p/0', 'qc:'); the prefix defaults to 'qc:'."""
    parts = urlsplit(url)
    prefix = parse_qs(parts.query).get("prefix", ["qc:"])[0]
    return urlunsplit(parts._replace(query="")), prefix


class RedisStore:
    shared = True           # other hub processes append to the same log

    def __init__(self, client: aioredis.Redis, prefix: str):
        self._r, self._prefix = client, prefix
        self._append = client.register_script(_APPEND)
        self._head = client.register_script(_HEAD)

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator["RedisStore"]:
        address, prefix = split_url(url)
        client = aioredis.Redis.from_url(address, decode_responses=True)
        try:
            yield cls(client, prefix)
        finally:
            await client.aclose()

    def _key(self, branch: str, name: str) -> str:
        return f"{self._prefix}{{b:{branch}}}:{name}"

    @_reachable
    async def head(self, branch: str) -> LogHead:
        seq, epoch = await self._head(keys=[self._key(branch, "head")], args=[secrets.token_hex(8)])
        return LogHead(int(seq), epoch)

    @_reachable
    async def append(self, branch: str, expected_seq: int, events: list[Event],
                     idempotency: Idempotency | None = None) -> list[Event]:
        stored = [{**ev, "seq": expected_seq + i} for i, ev in enumerate(events, start=1)]
        keys = [self._key(branch, "head"), self._key(branch, "log"), self._key(branch, "idem")]
        keys += [self._key(branch, f"day:{ev.get('day', '')}") for ev in stored]
        idem_key, idem_value = "", ""
        if idempotency is not None:
            idem_key = idempotency.key
            idem_value = _dumps([idempotency.fingerprint, idempotency.status, idempotency.body])
        try:
            status, seq = await self._append(keys=keys, args=[expected_seq, secrets.token_hex(8), idem_key,
                                                               idem_value, *map(_dumps, stored)])
        except ResponseError as e:
            if "IDEMPOTENCY_KEY_EXISTS" in str(e):
                raise IdempotencyKeyExists(idem_key) from None
            raise
        if status == "conflict":
            raise SeqConflict(branch, expected_seq, int(seq))
        return stored

    @_reachable
    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        entries = await self._r.xrange(self._key(branch, "log"), min=f"{after_seq + 1}-0", max="+",
                                       count=limit)
        return [json.loads(fields["e"]) for _, fields in entries]

    @_reachable
    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        seqs = await self._r.lrange(self._key(branch, f"day:{day.isoformat()}"), 0, -1)
        log = self._key(branch, "log")
        async with self._r.pipeline(transaction=False) as pipe:
            for seq in seqs:
                pipe.xrange(log, min=f"{seq}-1", max=f"{seq}-1")
            found = await pipe.execute()
        return [json.loads(entries[0][1]["e"]) for entries in found if entries]

    @_reachable
    async def idempotency(self, branch: str, key: str) -> Idempotency | None:
        raw = await self._r.hget(self._key(branch, "idem"), key)
        if raw is None:
            return None
        fingerprint, status, body = json.loads(raw)
        return Idempotency(key=key, fingerprint=fingerprint, status=status, body=body)

    @_reachable
    async def ping(self) -> None:
        await self._r.ping()
