"""The outbox on Redis (hub.store.outbox); the keys are listed in hub/store/redis.py, the scripts
and how an item is kept in hub/store/redis_outbox_scripts.py."""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from hub.store.outbox import (
    DEAD_LETTERS,
    DELIVERED,
    FAILURES,
    QUEUED,
    SENDING,
    SENT,
    STATUSES,
    OutboxItem,
    branch_of,
    check_keys,
)
from hub.store.redis_keys import Client, Keys, reachable, text
from hub.store.redis_outbox_scripts import (
    ADD,
    CLAIM,
    MOVE,
    PRUNE,
    REDRIVE,
    Change,
    decode_item,
    dumps,
    encode_item,
    num,
    state,
)


class RedisOutbox:
    def __init__(self, client: Client, keys: Keys):
        self._r, self._k = client, keys
        self._add = client.register_script(ADD)
        self._claim = client.register_script(CLAIM)
        self._move_script = client.register_script(MOVE)
        self._redrive = client.register_script(REDRIVE)
        self._prune = client.register_script(PRUNE)

    async def _branches(self) -> list[str]:
        return sorted(map(text, await self._r.smembers(self._k.untagged("outbox:branches"))))

    async def _move(self, key: str, starts: Sequence[str], changes: list[Change], provider_id: str = "") -> bool:
        """One guarded transition, in the item's branch (the script checks where it starts from)."""
        moved: int = await self._move_script(keys=self._k.outbox(branch_of(key)),
                                        args=[key, ",".join(starts), dumps(changes), provider_id])
        return moved == 1

    @reachable
    async def add(self, items: list[OutboxItem]) -> int:
        check_keys(items)
        by_branch: dict[str, list[OutboxItem]] = {}
        for item in items:
            by_branch.setdefault(item.branch, []).append(item)
        if not by_branch:
            return 0
        await self._r.sadd(self._k.untagged("outbox:branches"), *by_branch)
        added = 0
        for branch, group in by_branch.items():  # all or nothing per branch: Cluster keeps them apart
            added += await self._add(keys=self._k.outbox(branch),
                                            args=[arg for item in group for arg in encode_item(item)])
        return added

    @reachable
    async def claim(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        # Read what is due in every branch, pick the `limit` oldest, then lease per branch as many
        # as were picked there: each script takes its branch's oldest at that instant, so a racing
        # claim that took some first only makes this one take the next ones.
        branches = await self._branches()
        async with self._r.pipeline(transaction=False) as pipe:
            for branch in branches:
                pipe.zrangebyscore(self._k.branch(branch, "outbox:due"), "-inf", num(now), start=0, num=limit,
                                   withscores=True)
            found = await pipe.execute()
        picked = sorted((score, key, branch) for branch, due in zip(branches, found) for key, score in due)
        per_branch = Counter(branch for _, _, branch in picked[:limit])
        replies = await asyncio.gather(*(
            self._claim(keys=self._k.outbox(branch), args=[num(now), num(now + lease), n])
            for branch, n in per_branch.items()))
        claimed = [(float(reply[i + 1]), reply[i], decode_item(reply[i], reply[i + 2], reply[i + 3]))
                   for reply in replies for i in range(0, len(reply), 4)]
        return [item for _, _, item in sorted(claimed, key=lambda c: c[:2])]

    @reachable
    async def sent(self, key: str, now: float, provider_id: str | None) -> bool:
        if provider_id is not None:  # first: a report must find the item once it is `sent`
            await self._r.hset(self._k.untagged("outbox:pid"), provider_id, key)
        return await self._move(key, (SENDING,), state(
            SENT, lease_until=0.0, provider_id=False if provider_id is None else provider_id, updated=now))

    @reachable
    async def retry(self, key: str, now: float, next_at: float, error: str, detail: str = "") -> bool:
        return await self._move(key, (SENDING,), state(
            QUEUED, next_at=next_at, lease_until=0.0, error=False if error is None else error,
            detail=detail, updated=now))

    @reachable
    async def fail(self, key: str, now: float, status: str, error: str, detail: str = "") -> bool:
        if status not in FAILURES:
            raise ValueError(f"fail: {status!r} is not one of {FAILURES}")
        return await self._move(key, (SENDING,), state(
            status, lease_until=0.0, error=False if error is None else error, detail=detail, updated=now))

    @reachable
    async def delivered(self, provider_id: str, now: float) -> bool:
        key = await self._r.hget(self._k.untagged("outbox:pid"), provider_id)
        if key is None:
            return False
        return await self._move(text(key), (SENT,), state(DELIVERED, updated=now), provider_id=provider_id)

    @reachable
    async def redrive(self, now: float, key: str | None = None) -> int:
        changes = state(QUEUED, attempts=0, next_at=now, lease_until=0.0, updated=now)
        if key is not None:
            return int(await self._move(key, DEAD_LETTERS, changes))
        moved = await asyncio.gather(*(self._redrive(keys=self._k.outbox(branch), args=[dumps(changes)])
                                       for branch in await self._branches()))
        return sum(moved)

    async def _items(self, keys: Sequence[str]) -> list[OutboxItem]:
        async with self._r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(self._k.branch(branch_of(key), "outbox"), key)
                pipe.hget(self._k.branch(branch_of(key), "outbox:state"), key)
            found = await pipe.execute()
        return [decode_item(key, fixed, state)
                for key, fixed, state in zip(keys, found[::2], found[1::2]) if fixed and state]

    @reachable
    async def get(self, key: str) -> OutboxItem | None:
        found = await self._items([key])
        return found[0] if found else None

    @reachable
    async def recent(self, status: str | None = None, branch: str | None = None,
                          limit: int = 100) -> list[OutboxItem]:
        if limit <= 0:
            return []
        branches = [branch] if branch is not None else await self._branches()
        statuses = [status] if status is not None else list(STATUSES)
        async with self._r.pipeline(transaction=False) as pipe:
            for b in branches:
                for s in statuses:
                    pipe.zrevrange(self._k.branch(b, f"outbox:{s}"), 0, limit - 1, withscores=True)
            found = await pipe.execute()
        newest = sorted(((score, key) for pairs in found for key, score in pairs), reverse=True)[:limit]
        items = await self._items([key for _, key in newest])
        # Read in two steps: an item that moved on in between is shown as it is now, if it still fits.
        fits = [i for i in items if status is None or i.status == status]
        return sorted(fits, key=lambda i: (i.updated, i.key), reverse=True)

    @reachable
    async def counts(self) -> dict[str, int]:
        branches = await self._branches()
        async with self._r.pipeline(transaction=False) as pipe:
            for branch in branches:
                for status in STATUSES:
                    pipe.zcard(self._k.branch(branch, f"outbox:{status}"))
            found = await pipe.execute()
        counts = dict.fromkeys(STATUSES, 0)
        for i, n in enumerate(found):
            counts[STATUSES[i % len(STATUSES)]] += n
        return counts

    @reachable
    async def prune(self, before: float, limit: int) -> int:
        pruned = 0
        for branch in await self._branches():
            if pruned >= limit:
                break
            # Oldest first within a branch; the gateway ids of what went are dropped after it.
            got = await self._prune(keys=self._k.outbox(branch), args=[num(before), limit - pruned])
            pruned += int(got[0])
            if len(got) > 1:
                await self._r.hdel(self._k.untagged("outbox:pid"), *got[1:])
        return pruned
