"""Branch snapshots on Redis (hub.store.snapshots): one hash under the branch's tag,
`...:snap` = {seq, epoch, tip, data}, replaced by one script so that a newer one always wins."""
from __future__ import annotations

from hub.store.redis_keys import Client, Keys, reachable, text
from hub.store.snapshots import Snapshot

# KEYS: the snapshot hash. ARGV: seq, epoch, tip, data. Kept unless the same epoch is kept at a later seq.
_PUT = """
local kept = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
if kept[2] == ARGV[2] and tonumber(kept[1]) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'epoch', ARGV[2], 'tip', ARGV[3], 'data', ARGV[4])
return 1
"""


class RedisSnapshots:
    def __init__(self, client: Client, keys: Keys):
        self._r, self._k = client, keys
        self._put = client.register_script(_PUT)

    @reachable
    async def get(self, branch: str) -> Snapshot | None:
        seq, epoch, tip, data = await self._r.hmget(self._k.branch(branch, "snap"), ["seq", "epoch", "tip", "data"])
        if seq is None or epoch is None or data is None:
            return None
        return Snapshot(int(seq), text(epoch), text(tip or ""), text(data))

    @reachable
    async def put(self, branch: str, snap: Snapshot) -> bool:
        return bool(await self._put(keys=[self._k.branch(branch, "snap")],
                                    args=[snap.seq, snap.epoch, snap.tip, snap.data]))
