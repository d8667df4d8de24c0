"""The Redis outbox's Lua scripts and how an item is kept (keys: top of hub/store/redis.py).

Lua's cjson prints numbers with 14 digits, so no number goes through it: times are kept as
Python's repr of the float, as strings, and the fixed part of an item (its recipient and params,
with any numbers in them) is JSON written and read by Python only. Every script touches the keys of
one branch, all passed in KEYS, so it runs on that branch's Redis Cluster shard.
"""
from __future__ import annotations

import json
from typing import Any

from hub.store.outbox import OutboxItem

# The outbox keys of one branch, passed as ten consecutive KEYS from `first`: k[0] items, k[1] state,
# k[2] due, then one zset per status, in STATUSES order. State fields, 1-based: status, attempts,
# next_at, lease_until, provider_id, error, detail, updated.
OUTBOX_LUA = """
local OB_STATUS = {queued=3, sending=4, sent=5, delivered=6, failed=7, dead=8, dropped=9}
local function ob_keys(first)
  local k = {}
  for i = 0, 9 do k[i] = KEYS[first + i] end
  return k
end
-- Writes `st` and moves the item between the indexes: the due zset holds only what a claim may take.
local function ob_put(k, key, old_status, st)
  if old_status then redis.call('ZREM', k[OB_STATUS[old_status]], key) end
  redis.call('HSET', k[1], key, cjson.encode(st))
  redis.call('ZADD', k[OB_STATUS[st[1]]], st[8], key)
  if st[1] == 'queued' then redis.call('ZADD', k[2], st[3], key)
  elseif st[1] == 'sending' then redis.call('ZADD', k[2], st[4], key)
  else redis.call('ZREM', k[2], key) end
end
-- ARGV from `first`: per item its key, fixed JSON, state JSON. HSETNX: a key already owed keeps its item.
local function ob_add(k, first)
  local added = 0
  for i = first, #ARGV, 3 do
    if redis.call('HSETNX', k[0], ARGV[i], ARGV[i + 1]) == 1 then
      ob_put(k, ARGV[i], nil, cjson.decode(ARGV[i + 2]))
      added = added + 1
    end
  end
  return added
end
"""

ADD = OUTBOX_LUA + """
return ob_add(ob_keys(1), 1)
"""

# ARGV: now, lease_until (computed by Python: Lua would print it with 14 digits), how many.
# Returns per item: key, due score, fixed JSON, state JSON.
CLAIM = OUTBOX_LUA + """
local k = ob_keys(1)
local due = redis.call('ZRANGEBYSCORE', k[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  local key = due[i]
  local st = cjson.decode(redis.call('HGET', k[1], key))
  local old = st[1]
  st[1], st[2], st[4], st[8] = 'sending', tostring(tonumber(st[2]) + 1), ARGV[2], ARGV[1]
  ob_put(k, key, old, st)
  for _, v in ipairs({key, due[i + 1], redis.call('HGET', k[0], key), cjson.encode(st)}) do
    out[#out + 1] = v
  end
end
return out
"""

# ARGV: item key, the statuses it may start from (comma-separated), the changes (JSON array of the
# eight state fields, null for "unchanged"), and a provider id it must have ('' for any).
MOVE = OUTBOX_LUA + """
local k = ob_keys(1)
local raw = redis.call('HGET', k[1], ARGV[1])
if not raw then return 0 end
local st = cjson.decode(raw)
if not string.find(',' .. ARGV[2] .. ',', ',' .. st[1] .. ',', 1, true) then return 0 end
if ARGV[4] ~= '' and st[5] ~= ARGV[4] then return 0 end
local old = st[1]
local changes = cjson.decode(ARGV[3])
for i = 1, 8 do
  if changes[i] ~= cjson.null then st[i] = changes[i] end
end
ob_put(k, ARGV[1], old, st)
return 1
"""

# ARGV: the changes of a redrive (as for MOVE). Every dead letter of the branch.
REDRIVE = OUTBOX_LUA + """
local k = ob_keys(1)
local changes = cjson.decode(ARGV[1])
local moved = 0
for _, status in ipairs({'failed', 'dead'}) do
  for _, key in ipairs(redis.call('ZRANGE', k[OB_STATUS[status]], 0, -1)) do
    local st = cjson.decode(redis.call('HGET', k[1], key))
    for i = 1, 8 do
      if changes[i] ~= cjson.null then st[i] = changes[i] end
    end
    ob_put(k, key, status, st)
    moved = moved + 1
  end
end
return moved
"""

# ARGV: before (exclusive), how many at most. Forgets the done items (sent, delivered, dropped) last
# changed before then, oldest first. Returns how many, then the gateway ids they had (the pid hash
# has no tag: the caller removes them).
PRUNE = OUTBOX_LUA + """
local k = ob_keys(1)
local limit = tonumber(ARGV[2])
local found = {}
for _, status in ipairs({'sent', 'delivered', 'dropped'}) do
  local got = redis.call('ZRANGEBYSCORE', k[OB_STATUS[status]], '-inf', '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #got, 2 do
    found[#found + 1] = {tonumber(got[i + 1]), got[i], status}
  end
end
table.sort(found, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
local out = {0}
for i = 1, math.min(limit, #found) do
  local key, status = found[i][2], found[i][3]
  local st = cjson.decode(redis.call('HGET', k[1], key))
  if st[5] then out[#out + 1] = st[5] end
  redis.call('HDEL', k[0], key)
  redis.call('HDEL', k[1], key)
  redis.call('ZREM', k[OB_STATUS[status]], key)
  out[1] = out[1] + 1
end
return out
"""


def dumps(value: Any) -> str:
    # default=dict: a recipient or params given as another Mapping (say, a MappingProxyType)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=dict)


# A state field as the scripts keep it: text, None for "unchanged", False for "set to None".
Change = str | bool | None


def num(x: float) -> str:
    return repr(float(x))  # the shortest text that reads back as the very same float


def state(status: str, attempts: int | None = None, next_at: float | None = None,
           lease_until: float | None = None, provider_id: str | None | bool = None,
           error: str | None | bool = None, detail: str | None = None,
           updated: float | None = None) -> list[Change]:
    """State fields as the scripts keep them. As changes: None leaves a field as it is (JSON null),
    False sets provider_id or error to None."""
    return [status, None if attempts is None else str(attempts),
            None if next_at is None else num(next_at), None if lease_until is None else num(lease_until),
            provider_id, error, detail, None if updated is None else num(updated)]


def encode_item(item: OutboxItem) -> list[str]:
    """The ARGV of one item for ob_add: its key, fixed JSON, state JSON."""
    fixed = {"branch": item.branch, "ticket": item.ticket, "trigger": item.trigger,
             "channel": item.channel, "recipient": item.recipient, "params": item.params,
             "lang": item.lang, "created": float(item.created)}
    kept = state(item.status, item.attempts, item.next_at, item.lease_until,
                 False if item.provider_id is None else item.provider_id,
                 False if item.error is None else item.error, item.detail, item.updated)
    return [item.key, dumps(fixed), dumps(kept)]


def decode_item(key: str, fixed: str, kept: str) -> OutboxItem:
    status, attempts, next_at, lease_until, provider_id, error, detail, updated = json.loads(kept)
    return OutboxItem(key=key, **json.loads(fixed), status=status, attempts=int(attempts),
                      next_at=float(next_at), lease_until=float(lease_until),
                      provider_id=None if provider_id is False else provider_id,
                      error=None if error is False else error, detail=detail, updated=float(updated))
