"""The Redis store (`redis://HOST:PORT/DB[?prefix=qc:]`): the same log, outbox and predictions on a
Redis server shared by any number of hub processes, through one client of this process.

Keys of one branch share a hash tag, `{prefix}{b:<branch>}...`, so Redis Cluster keeps a branch on
one shard and the append script, which touches only that branch's keys, runs there atomically:
- `...:head`  hash: seq, epoch, base (the seq at which the epoch began)
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

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hub.redis_url import connect, parse
from hub.store.redis_eventlog import RedisEventLog
from hub.store.redis_keys import Keys
from hub.store.redis_outbox import RedisOutbox
from hub.store.redis_predictions import RedisPredictions
from hub.store.storage import Storage


@asynccontextmanager
async def open_redis(url: str) -> AsyncIterator[Storage]:
    target = parse(url)
    client = connect(target, decode_responses=True)
    keys = Keys(target.prefix)
    try:
        yield Storage(log=RedisEventLog(client, keys), outbox=RedisOutbox(client, keys),
                      predictions=RedisPredictions(client, keys))
    finally:
        await client.aclose()
