"""The Redis store (`redis://HOST:PORT/DB`, `redis+cluster://HOST:PORT[,...]` or
`redis+sentinel://...`, each with `?prefix=qc:`; hub/redis_url.py): the same log, outbox and
predictions on Redis shared by any number of hub processes, through one client of this process.

Keys of one branch share a hash tag, `{prefix}{b:<branch>}...`, so Redis Cluster keeps a branch on
one shard and the append script, which touches only that branch's keys, runs there atomically:
- `...:head`  hash: seq, epoch, base (the seq at which the epoch began); a new epoch whenever the
              history was replaced (a wipe, an older AOF, a failover that lost events no replica
              had confirmed: RedisEventLog.head, new_epoch)
- `...:log`   stream: one entry per event, entry id `<seq>-1`, field `e` = the event's JSON
- `...:idem`  hash: Idempotency-Key → JSON [fingerprint, status, body]
- `...:day:<YYYY-MM-DD>` list of the seqs of that working day's events (export-trace)
- `...:wait`  string: a token, written before WAIT when a kept answer is replayed, so that WAIT
              has a write of the connection's own to wait for (hub/store/redis_eventlog.py)
- `...:snap`  hash: seq, epoch, tip, data: the branch's state at seq (hub/store/redis_snapshots.py)
- `{prefix}ready` string: a token the readiness probe writes (expires in a minute): a replica
              answers PING but refuses writes, and ready means able to write
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
The per-citizen limits' reservations (hub.store.quotas) are per citizen, not per branch, so under
the citizen's own tag (their pseudonym, never the CCCD), one hash a day, expiring by itself:
- `{prefix}{c:<pseudonym>}:quota:<YYYY-MM-DD>`  hash: reservation id → `<field>\t<branch>`
With replicas (Sentinel, Cluster), an append is acknowledged only once `min_replicas` replicas
have it (WAIT; QUEUECAST_REDIS_MIN_REPLICAS). Nothing acknowledged is lost to a crash or to a
partition that heals mid-failover only when every replica of the master confirms: the sentinels
may promote another replica than the one that did, and an old master may keep a replica following
it for a moment (docs/operations.md).
Durability is the server's: run it with `appendonly yes` and `appendfsync always` for the same
guarantee as SQLite's synchronous=FULL (`everysec` may lose the last second on power loss).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from hub.redis_url import connect, default_min_replicas, parse
from hub.store.redis_eventlog import RedisEventLog
from hub.store.redis_keys import Keys
from hub.store.redis_outbox import RedisOutbox
from hub.store.redis_predictions import RedisPredictions
from hub.store.redis_quotas import RedisQuotas
from hub.store.redis_snapshots import RedisSnapshots
from hub.store.storage import Storage


@asynccontextmanager
async def open_redis(url: str, min_replicas: int | None = None, wait_ms: int = 500) -> AsyncIterator[Storage]:
    """`min_replicas`: how many replicas must have an append before it is acknowledged (WAIT, up to
    `wait_ms`); None → the URL's default (hub.redis_url.default_min_replicas)."""
    target = parse(url)
    # Bounded, so that a master that vanished without a word (a partition) is a 503 in seconds,
    # not a request hanging with its branch locked: each try outlasts WAIT's own timeout, and a
    # few quick retries (redis-py's default is ten) ride out a failover's switch to the new master.
    client = connect(target, decode_responses=True, socket_connect_timeout=2, socket_timeout=5 + wait_ms / 1000,
                     retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.5), retries=3))
    keys = Keys(target.prefix)
    replicas = default_min_replicas(target) if min_replicas is None else min_replicas
    try:
        yield Storage(log=RedisEventLog(client, keys, replicas, wait_ms), outbox=RedisOutbox(client, keys),
                      predictions=RedisPredictions(client, keys), quotas=RedisQuotas(client, keys),
                      snapshots=RedisSnapshots(client, keys))
    finally:
        await client.aclose()
