"""The Redis store: the same log on a Redis server shared by any number of hub processes.

Keys of one branch share a hash tag, `{prefix}{b:<branch>}...`, so Redis Cluster keeps a branch on
one shard and the append script, which touches only that branch's keys, runs there atomically:
- `...:head`  hash: seq, epoch
- `...:log`   stream: one entry per event, entry id `<seq>-1`, field `e` = the event's JSON
- `...:idem`  hash: Idempotency-Key → JSON [fingerprint, status, body]
- `...:day:<YYYY-MM-DD>` list of the seqs of that working day's events (export-trace)
The branch's notification outbox is under the same tag, so an append writes its messages in the
same script and a claim leases atomically, one script per branch:
- `...:outbox`        hash: item key → JSON of what never changes (ticket, recipient, params, ...),
                      written by Python and never decoded by Lua (cjson would round floats)
- `...:outbox:state`  hash: item key → JSON array of strings (false for None): status, attempts,
                      next_at, lease_until, provider_id, error, detail, updated; numbers are Python's
                      repr, passed through Lua untouched, so every time comes back exactly
- `...:outbox:due`    zset: the queued (score next_at) and sending (score lease_until) items
- `...:outbox:<status>` zset per status: item key → updated (lists, counts)
Two keys hold no tag, written before the branch script so that they never miss an item (an
entry left by a failed script costs a lookup, nothing else):
- `{prefix}outbox:branches` set of the branches with outbox items: what claim, list, counts and
  redrive-all go through (a set rather than SCAN, which Cluster runs node by node)
- `{prefix}outbox:pid`      hash: provider id → item key, for delivery reports (they name only the
  provider id); the key names its branch (hub.store.outbox.branch_of)
Recorded ETA predictions (hub.store.predictions), per branch and service day, under the branch's tag:
- `...:pred:<YYYY-MM-DD>`       list: the lines (JSON) in the order they were added
- `...:pred:<YYYY-MM-DD>:seen`  set: their points, `<unix seconds> <ticket>`; a line whose point
                                is in it already is not added (one script: both or neither)
- `...:pred:days`                zset: the days with lines (score: the day's ordinal), for pruning
Durability is the server's: run it with `appendonly yes` and `appendfsync always` for the same
guarantee as SQLite's synchronous=FULL (`everysec` may lose the last second on power loss).
"""
from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from contextlib import asynccontextmanager
from datetime import date
from typing import AsyncIterator, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis
import functools

from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError, TimeoutError as RedisTimeoutError

from hub.domain.events import Event
from hub.store.base import Idempotency, LogHead, SeqConflict, StoreUnavailable
from hub.store.outbox import (DEAD_LETTERS, DELIVERED, FAILURES, QUEUED, SENDING, SENT, STATUSES,
                              OutboxItem, branch_of, check_keys)
from hub.store.predictions import instant, point_key
from hub.store.redis_outbox import (ADD, CLAIM, MOVE, OUTBOX_LUA, PRUNE, REDRIVE, decode_item, dumps, encode_item,
                                    num, state)

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

# KEYS: the day's seen set, its list. ARGV: per line its point, then its JSON.
# KEYS: the day's seen set, its list, the branch's days index. ARGV: the day, its ordinal, then pairs.
_PREDICTIONS_ADD = """
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
for i = 3, #ARGV, 2 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[i + 1]) end
end
return 0
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
        self._outbox_add = client.register_script(ADD)
        self._outbox_claim = client.register_script(CLAIM)
        self._outbox_move = client.register_script(MOVE)
        self._outbox_redrive = client.register_script(REDRIVE)
        self._outbox_prune = client.register_script(PRUNE)
        self._predictions_add = client.register_script(_PREDICTIONS_ADD)

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

    def _outbox_global(self, name: str) -> str:
        return f"{self._prefix}outbox:{name}"

    def _outbox_keys(self, branch: str) -> list[str]:
        return [self._key(branch, "outbox"), self._key(branch, "outbox:state"),
                self._key(branch, "outbox:due"), *(self._key(branch, f"outbox:{s}") for s in STATUSES)]

    @_reachable
    async def head(self, branch: str) -> LogHead:
        seq, epoch = await self._head(keys=[self._key(branch, "head")], args=[secrets.token_hex(8)])
        return LogHead(int(seq), epoch)

    @_reachable
    async def append(self, branch: str, expected_seq: int, events: list[Event],
                     idempotency: Idempotency | None = None,
                     outbox: Sequence[OutboxItem] = ()) -> list[Event]:
        check_keys(outbox, branch)
        stored = [{**ev, "seq": expected_seq + i} for i, ev in enumerate(events, start=1)]
        keys = [self._key(branch, "head"), self._key(branch, "log"), self._key(branch, "idem")]
        keys += [self._key(branch, f"day:{ev.get('day', '')}") for ev in stored]
        keys += self._outbox_keys(branch)
        idem_key, idem_value = "", ""
        if idempotency is not None:
            idem_key = idempotency.key
            idem_value = _dumps([idempotency.fingerprint, idempotency.status, idempotency.body])
        if outbox:
            await self._r.sadd(self._outbox_global("branches"), branch)
        try:
            status, seq = await self._append(keys=keys, args=[
                expected_seq, secrets.token_hex(8), idem_key, idem_value, len(stored),
                *map(_dumps, stored), *(arg for item in outbox for arg in encode_item(item))])
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

    # -- the outbox (hub.store.outbox); the keys are listed at the top --------------------------

    async def _outbox_branches(self) -> list[str]:
        return sorted(await self._r.smembers(self._outbox_global("branches")))

    async def _move(self, key: str, starts: Sequence[str], changes: list, provider_id: str = "") -> bool:
        """One guarded transition, in the item's branch (the script checks where it starts from)."""
        moved = await self._outbox_move(keys=self._outbox_keys(branch_of(key)),
                                        args=[key, ",".join(starts), dumps(changes), provider_id])
        return moved == 1

    @_reachable
    async def outbox_add(self, items: list[OutboxItem]) -> int:
        check_keys(items)
        by_branch: dict[str, list[OutboxItem]] = {}
        for item in items:
            by_branch.setdefault(item.branch, []).append(item)
        if not by_branch:
            return 0
        await self._r.sadd(self._outbox_global("branches"), *by_branch)
        added = 0
        for branch, group in by_branch.items():  # all or nothing per branch: Cluster keeps them apart
            added += await self._outbox_add(keys=self._outbox_keys(branch),
                                            args=[arg for item in group for arg in encode_item(item)])
        return added

    @_reachable
    async def outbox_claim(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        # Read what is due in every branch, pick the `limit` oldest, then lease per branch as many
        # as were picked there: each script takes its branch's oldest at that instant, so a racing
        # claim that took some first only makes this one take the next ones.
        branches = await self._outbox_branches()
        async with self._r.pipeline(transaction=False) as pipe:
            for branch in branches:
                pipe.zrangebyscore(self._key(branch, "outbox:due"), "-inf", num(now), start=0, num=limit,
                                   withscores=True)
            found = await pipe.execute()
        picked = sorted((score, key, branch) for branch, due in zip(branches, found) for key, score in due)
        per_branch = Counter(branch for _, _, branch in picked[:limit])
        replies = await asyncio.gather(*(
            self._outbox_claim(keys=self._outbox_keys(branch), args=[num(now), num(now + lease), n])
            for branch, n in per_branch.items()))
        claimed = [(float(reply[i + 1]), reply[i], decode_item(reply[i], reply[i + 2], reply[i + 3]))
                   for reply in replies for i in range(0, len(reply), 4)]
        return [item for _, _, item in sorted(claimed, key=lambda c: c[:2])]

    @_reachable
    async def outbox_sent(self, key: str, now: float, provider_id: str | None) -> bool:
        if provider_id is not None:  # first: a report must find the item once it is `sent`
            await self._r.hset(self._outbox_global("pid"), provider_id, key)
        return await self._move(key, (SENDING,), state(
            SENT, lease_until=0.0, provider_id=False if provider_id is None else provider_id, updated=now))

    @_reachable
    async def outbox_retry(self, key: str, now: float, next_at: float, error: str, detail: str = "") -> bool:
        return await self._move(key, (SENDING,), state(
            QUEUED, next_at=next_at, lease_until=0.0, error=False if error is None else error,
            detail=detail, updated=now))

    @_reachable
    async def outbox_fail(self, key: str, now: float, status: str, error: str, detail: str = "") -> bool:
        if status not in FAILURES:
            raise ValueError(f"outbox_fail: {status!r} is not one of {FAILURES}")
        return await self._move(key, (SENDING,), state(
            status, lease_until=0.0, error=False if error is None else error, detail=detail, updated=now))

    @_reachable
    async def outbox_delivered(self, provider_id: str, now: float) -> bool:
        key = await self._r.hget(self._outbox_global("pid"), provider_id)
        if key is None:
            return False
        return await self._move(key, (SENT,), state(DELIVERED, updated=now), provider_id=provider_id)

    @_reachable
    async def outbox_redrive(self, now: float, key: str | None = None) -> int:
        changes = state(QUEUED, attempts=0, next_at=now, lease_until=0.0, updated=now)
        if key is not None:
            return int(await self._move(key, DEAD_LETTERS, changes))
        moved = await asyncio.gather(*(self._outbox_redrive(keys=self._outbox_keys(branch), args=[dumps(changes)])
                                       for branch in await self._outbox_branches()))
        return sum(moved)

    async def _outbox_items(self, keys: Sequence[str]) -> list[OutboxItem]:
        async with self._r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(self._key(branch_of(key), "outbox"), key)
                pipe.hget(self._key(branch_of(key), "outbox:state"), key)
            found = await pipe.execute()
        return [decode_item(key, fixed, state)
                for key, fixed, state in zip(keys, found[::2], found[1::2]) if fixed and state]

    @_reachable
    async def outbox_get(self, key: str) -> OutboxItem | None:
        found = await self._outbox_items([key])
        return found[0] if found else None

    @_reachable
    async def outbox_list(self, status: str | None = None, branch: str | None = None,
                          limit: int = 100) -> list[OutboxItem]:
        if limit <= 0:
            return []
        branches = [branch] if branch is not None else await self._outbox_branches()
        statuses = [status] if status is not None else list(STATUSES)
        async with self._r.pipeline(transaction=False) as pipe:
            for b in branches:
                for s in statuses:
                    pipe.zrevrange(self._key(b, f"outbox:{s}"), 0, limit - 1, withscores=True)
            found = await pipe.execute()
        newest = sorted(((score, key) for pairs in found for key, score in pairs), reverse=True)[:limit]
        items = await self._outbox_items([key for _, key in newest])
        # Read in two steps: an item that moved on in between is shown as it is now, if it still fits.
        fits = [i for i in items if status is None or i.status == status]
        return sorted(fits, key=lambda i: (i.updated, i.key), reverse=True)

    @_reachable
    async def outbox_counts(self) -> dict[str, int]:
        branches = await self._outbox_branches()
        async with self._r.pipeline(transaction=False) as pipe:
            for branch in branches:
                for status in STATUSES:
                    pipe.zcard(self._key(branch, f"outbox:{status}"))
            found = await pipe.execute()
        counts = dict.fromkeys(STATUSES, 0)
        for i, n in enumerate(found):
            counts[STATUSES[i % len(STATUSES)]] += n
        return counts

    @_reachable
    async def outbox_prune(self, before: float, limit: int) -> int:
        pruned = 0
        for branch in await self._outbox_branches():
            if pruned >= limit:
                break
            # Oldest first within a branch; the gateway ids of what went are dropped after it.
            got = await self._outbox_prune(keys=self._outbox_keys(branch), args=[num(before), limit - pruned])
            pruned += int(got[0])
            if len(got) > 1:
                await self._r.hdel(self._outbox_global("pid"), *got[1:])
        return pruned

    # -- recorded predictions (hub.store.predictions); the keys are listed at the top ----------

    @_reachable
    async def predictions_add(self, branch: str, day: date, lines: list[dict]) -> None:
        if not lines:
            return
        key = self._key(branch, f"pred:{day.isoformat()}")
        await self._predictions_add(keys=[f"{key}:seen", key, self._key(branch, "pred:days")],
                                    args=[day.isoformat(), day.toordinal(),
                                          *(arg for line in lines for arg in (point_key(line), _dumps(line)))])

    @_reachable
    async def predictions_of_day(self, branch: str, day: date) -> list[dict]:
        lines = [json.loads(raw) for raw in await self._r.lrange(self._key(branch, f"pred:{day.isoformat()}"), 0, -1)]
        # Stable: lines of one instant stay in the order they were added (processes may add out of order).
        return sorted(lines, key=instant)

    @_reachable
    async def predictions_prune(self, branch: str, before: date) -> int:
        index = self._key(branch, "pred:days")
        days = await self._r.zrangebyscore(index, "-inf", f"({before.toordinal()}")
        if days:
            keys = [self._key(branch, f"pred:{d.decode() if isinstance(d, bytes) else d}") for d in days]
            async with self._r.pipeline(transaction=True) as pipe:      # one slot: the branch's tag
                pipe.delete(*keys, *(f"{k}:seen" for k in keys))
                pipe.zrem(index, *days)
                await pipe.execute()
        return len(days)
