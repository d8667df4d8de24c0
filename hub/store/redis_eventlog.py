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
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from hub.domain.events import Event
from hub.redis_url import ping
from hub.sentinel import follow_master
from hub.store.errors import NotReplicated, SeqConflict
from hub.store.eventlog import Idempotency, LogHead
from hub.store.outbox import OutboxItem, check_keys
from hub.store.redis_keys import Client, Keys, dumps, reachable, text
from hub.store.redis_outbox_scripts import OUTBOX_LUA, encode_item

# KEYS: head, log, idem, one day-list key per event, then the ten outbox keys. ARGV: expected seq,
# this attempt's token (random; also the epoch of a log that has none), idempotency key ('' for
# none), its record, the number of events, per event its JSON, then the outbox items (see ob_add).
# The head keeps the token of the last append: a client library that sends the script again after
# a lost reply (redis-py retries on a connection error, a Cluster after MOVED) finds its own
# append there and is answered 'ok', not 'conflict' (which would have the command decided again).
_APPEND = OUTBOX_LUA + """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'seq', 0, 'epoch', ARGV[2])
end
if seq ~= tonumber(ARGV[1]) then
  if redis.call('HGET', KEYS[1], 'attempt') == ARGV[2] then return {'ok', seq} end
  return {'conflict', seq}
end
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  return redis.error_reply('IDEMPOTENCY_KEY_EXISTS ' .. ARGV[3])
end
local n = tonumber(ARGV[5])
for i = 1, n do
  seq = seq + 1
  redis.call('XADD', KEYS[2], seq .. '-1', 'e', ARGV[5 + i])
  redis.call('RPUSH', KEYS[3 + i], seq)
end
redis.call('HSET', KEYS[1], 'seq', seq, 'attempt', ARGV[2])
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


# KEYS: log, then the day lists to forget. ARGV: the first stream id to keep. One script: the
# day lists never name events the stream no longer has while the stream still has some of theirs.
_TRIM = """
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


class IdempotencyKeyExists(Exception):
    """An answer is already kept under this key; it is never overwritten."""


class RedisEventLog:
    shared = True           # other hub processes append to the same log

    def __init__(self, client: Client, keys: Keys, min_replicas: int = 0, wait_ms: int = 500):
        self._r, self._k = client, keys
        self._replicas, self._wait_ms = min_replicas, wait_ms
        # branch → (seq, JSON) of the last event of an append that WAIT did not confirm (see head)
        self._unconfirmed: dict[str, tuple[int, str]] = {}
        self._append = client.register_script(_APPEND)
        self._head = client.register_script(_HEAD)
        self._trim = client.register_script(_TRIM)

    @reachable
    async def head(self, branch: str) -> LogHead:
        head = await self._read_head(branch, secrets.token_hex(8))
        if branch in self._unconfirmed:
            head = await self._recheck(branch, head)
        return head

    @reachable
    async def new_epoch(self, branch: str, seen: str) -> LogHead:
        return await self._read_head(branch, secrets.token_hex(8), seen)

    async def _read_head(self, branch: str, *args: str) -> LogHead:
        seq, epoch, base = await self._head(keys=[self._k.branch(branch, "head")], args=list(args))
        return LogHead(int(seq), epoch, int(base or 0))     # no base: a head written before bases were kept

    async def _recheck(self, branch: str, head: LogHead) -> LogHead:
        """After an append that no replica confirmed (answered 503), the hub processes may have
        folded its events (this one did, to stay in step with the master's log). A failover can
        lose them, and another append then take their seqs: the log would differ from the state at
        an equal head. So until an append of ours is confirmed, check the events are still there;
        if not, the history was replaced: a new epoch makes every process rebuild from the log."""
        seq, written = self._unconfirmed[branch]
        entries = await self._r.xrange(self._k.branch(branch, "log"), min=f"{seq}-1", max=f"{seq}-1")
        if entries and entries[0][1] is not None and entries[0][1].get("e") == written:
            return head
        head = await self._read_head(branch, secrets.token_hex(8), head.epoch)
        del self._unconfirmed[branch]           # only once the new epoch is minted (it may fail)
        return head

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
            (status, seq), replicas = await self._replicated(self._append, keys, [
                expected_seq, secrets.token_hex(8), idem_key, idem_value, len(stored),
                *map(dumps, stored), *(arg for item in outbox for arg in encode_item(item))])
        except ResponseError as e:
            if "IDEMPOTENCY_KEY_EXISTS" in str(e):
                raise IdempotencyKeyExists(idem_key) from None
            raise
        if status == "conflict":
            raise SeqConflict(branch, expected_seq, int(seq))
        try:
            await self._confirmed(replicas, keys[0])
        except NotReplicated:
            if stored:
                self._unconfirmed[branch] = (stored[-1]["seq"], dumps(stored[-1]))
            raise
        self._unconfirmed.pop(branch, None)     # replication is in order: the earlier ones too
        return stored

    async def _replicated(self, script: AsyncScript, keys: list[str], args: list[Any]) -> tuple[Any, Any]:
        """Run `script`, then (min replicas > 0) WAIT for that many replicas to have it, so that what
        is acknowledged survives a failover; the script's reply and WAIT's (None without). WAIT
        counts the writes of its own connection, so it goes in one pipeline with the script (one
        connection; in a Cluster, the keys' node), never through the pool on its own, where another
        connection would confirm nothing."""
        def node() -> object:
            return self._r.get_node_from_key(keys[0]) if isinstance(self._r, RedisCluster) else None

        if isinstance(self._r, RedisCluster):
            await self._r.initialize()          # the slots are known (a no-op once they are)
        for _ in range(2):                      # once more after loading the script (NOSCRIPT)
            before = node()
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                if self._replicas:
                    self._wait(pipe, keys[0])
                replies = await pipe.execute(raise_on_error=False)
            if isinstance(replies[0], NoScriptError):
                await self._r.script_load(script.script)
                continue
            if isinstance(replies[0], Exception):
                raise replies[0]
            waited = replies[1] if self._replicas else None
            if self._replicas and node() != before:
                # The script was sent on to the slot's new master (MOVED) but WAIT, queued for the
                # old one, counted nothing of it: not confirmed.
                waited = NotReplicated("the branch's slot moved during the append")
            return replies[0], waited
        raise NoScriptError(f"script {script.sha} not kept by the server")

    def _wait(self, pipe: Any, key: str) -> None:
        """Queue WAIT on `pipe`, behind a write to `key` (a Cluster sends it to that key's node)."""
        where: dict[str, Any] = {"target_nodes": self._r.get_node_from_key(key)} if isinstance(self._r, RedisCluster) else {}
        pipe.execute_command("WAIT", self._replicas, self._wait_ms, **where)

    async def _confirmed(self, reply: Any, where: str) -> None:
        """NotReplicated unless WAIT's reply counts enough replicas (None: no WAIT asked)."""
        if reply is None:
            return
        if isinstance(reply, Exception) or int(reply) < self._replicas:
            # WAIT itself failed (sent to a node that is a replica now) or counted too few.
            # Replicas gone, or this is a master the sentinels have replaced (it lost its replicas
            # to the new one, and still takes writes): ask them, so that the retry goes elsewhere.
            try:
                await follow_master(self._r)
            except Exception:           # no sentinel answers: the retry will ask again
                pass
            why = f"WAIT failed: {reply}" if isinstance(reply, Exception) else \
                f"{reply} of {self._replicas} replicas confirmed it within {self._wait_ms} ms"
            raise NotReplicated(f"redis: the write to {where} is not confirmed ({why})")

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
    async def trim(self, branch: str, through_seq: int, days: Sequence[date]) -> None:
        keys = [self._k.branch(branch, "log"), *(self._k.branch(branch, f"day:{d.isoformat()}") for d in days)]
        await self._trim(keys=keys, args=[f"{through_seq + 1}-0"])

    @reachable
    async def idempotency(self, branch: str, key: str) -> Idempotency | None:
        raw = await self._r.hget(self._k.branch(branch, "idem"), key)
        if raw is None:
            return None
        if self._replicas:
            # The answer may have been written by an append whose WAIT fell short (answered 503):
            # it is acknowledged only once replicas have it. Replication is in order, so replicas
            # that have a later write of ours have the record too.
            await self._write_and_wait(self._k.branch(branch, "wait"))
        fingerprint, status, body = json.loads(raw)
        return Idempotency(key=key, fingerprint=fingerprint, status=status, body=body)

    @reachable
    async def ping(self) -> None:
        """Ready means able to write, as an append: a master (a replica, such as a demoted master,
        answers PING but refuses writes) that the required replicas follow (WAIT); on a Cluster,
        every master answering and saying cluster_state:ok besides."""
        await ping(self._r)
        await self._write_and_wait(self._k.untagged("ready"))

    async def _write_and_wait(self, key: str) -> None:
        """A tiny write to `key`, then WAIT on the same connection (one pipeline)."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.set(key, secrets.token_hex(4), px=60_000)
            if self._replicas:
                self._wait(pipe, key)
            replies = await pipe.execute(raise_on_error=False)
        if isinstance(replies[0], Exception):
            raise replies[0]
        await self._confirmed(replies[1] if self._replicas else None, key)
