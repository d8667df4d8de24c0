"""What every part of the Redis store shares: the key layout (hub/store/redis.py lists the keys),
the one JSON spelling, and connection trouble reported as StoreUnavailable."""
from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeAlias, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    CrossSlotTransactionError,
    ReadOnlyError,
    RedisClusterException,
    RedisClusterUnreachableError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.store.errors import StoreUnavailable
from hub.store.outbox import STATUSES

P = ParamSpec("P")
R = TypeVar("R")

# The store's client, from hub.redis_url.connect: one server (or Sentinel's master), or a Cluster.
# Every key a command or script names lies in one slot (one branch's tag, or an untagged key alone).
Client: TypeAlias = "Redis | RedisCluster"


# A server that cannot take writes now, though it answers: a master demoted to a replica (READONLY;
# with Sentinel redis-py turns it into a ConnectionError and asks the sentinels again), a Cluster
# between masters (CLUSTERDOWN, MASTERDOWN, TRYAGAIN, no node for a slot, no node reachable).
# Sentinel's "no master" (MasterNotFoundError) and a server loading its data (LOADING) are
# ConnectionErrors already. A transaction across slots is a bug in this code, not an outage: it
# stays loud (reachable re-raises it before asking).
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, ReadOnlyError, ClusterDownError, TryAgainError,
               SlotNotCoveredError, RedisClusterUnreachableError, ClusterError, RedisClusterException)
# What a server says instead when `min-replicas-to-write` stops writes, or it is a stale replica.
UNAVAILABLE_REPLIES = ("NOREPLICAS", "MASTERDOWN", "LOADING", "READONLY")


def unavailable(e: BaseException) -> bool:
    return isinstance(e, UNAVAILABLE) or (isinstance(e, ResponseError) and str(e).startswith(UNAVAILABLE_REPLIES))


def reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Connection trouble, and a server that cannot write now, are StoreUnavailable (503, retry),
    whatever the client library calls them; never a 500."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (StoreUnavailable, CrossSlotTransactionError):
            raise
        except Exception as e:
            if unavailable(e):
                raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e
            raise
    return wrapper


def text(reply: bytes | str) -> str:
    """A reply as the str it is: the store's client decodes replies (decode_responses=True), which
    redis-py's types cannot tell, so they say bytes | str."""
    return reply.decode() if isinstance(reply, bytes) else reply


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Keys:
    """Keys of one deployment (`prefix`). A branch's keys share the hash tag `{b:<branch>}`, so a
    Redis Cluster keeps a branch on one shard and one script may touch all of them."""

    def __init__(self, prefix: str):
        if "{" in prefix or "}" in prefix:
            # Redis hashes the first {...} of a key: a brace in the prefix would move the tag, and
            # `{}` would hash whole keys, splitting a branch's keys (and its scripts) across slots.
            raise ValueError(f"the Redis key prefix {prefix!r} may not contain {{ or }}")
        self.prefix = prefix

    def branch(self, branch: str, name: str) -> str:
        return f"{self.prefix}{{b:{branch}}}:{name}"

    def untagged(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def outbox(self, branch: str) -> list[str]:
        """The ten outbox keys of a branch, in the order the scripts take them (redis_outbox_scripts)."""
        return [self.branch(branch, "outbox"), self.branch(branch, "outbox:state"),
                self.branch(branch, "outbox:due"), *(self.branch(branch, f"outbox:{s}") for s in STATUSES)]
