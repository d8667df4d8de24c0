"""Following the master that Redis Sentinel names (`redis+sentinel://`, hub.redis_url.connect).

redis-py asks the sentinels one after the other and takes the first that names a master it thinks
up. Right after a failover a sentinel that has not yet heard of it still names the old master,
once that one answers again (a partition healing, a paused process waking): clients then flip
between two masters that both take writes. Here every sentinel is asked at once and the answer
of the newest configuration (the highest config-epoch, which a failover raises) wins.
"""
from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

ASK_TIMEOUT = 1.0           # seconds for one sentinel's answer; a silent one is left out


class NewestSentinel(Sentinel):
    async def discover_master(self, service_name: str) -> tuple[str, int]:
        async def ask(sentinel: Any) -> Any:
            async with asyncio.timeout(ASK_TIMEOUT):
                return await sentinel.sentinel_masters()

        replies = await asyncio.gather(*(ask(s) for s in self.sentinels), return_exceptions=True)
        states = [r[service_name] for r in replies if isinstance(r, dict) and service_name in r]
        # The newest configuration first, and only then whether its master is up: an older
        # sentinel's "up" for the replaced master must not win over it.
        newest = max(states, key=lambda state: int(state.get("config-epoch", 0)), default=None)
        if newest is None or not self.check_master_state(newest, service_name):
            errors = [f"{s}: {type(r).__name__}: {r}" for s, r in zip(self.sentinels, replies, strict=True)
                      if isinstance(r, BaseException)]
            raise MasterNotFoundError(f"No master found for {service_name!r}" + (f" : {', '.join(errors)}" if errors else ""))
        return newest["ip"], int(newest["port"])


class SentinelMaster(Redis):
    """The client of the master (`Sentinel.master_for(redis_class=SentinelMaster)`), which also
    closes the connections to the sentinels when it is closed: redis-py leaves them to the caller,
    and a client made at each reconnection (the broker's links) would leak one per sentinel."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        try:
            await super().aclose(close_connection_pool)
        finally:
            for sentinel in getattr(manager, "sentinels", ()):
                await sentinel.aclose()


async def follow_master(client: Any) -> None:
    """Ask the sentinels which node is the master now: if it has changed, the pool drops its idle
    connections to the old one (and the busy ones when they come back), so that the next command
    goes to the new master. redis-py asks only when a connection fails; a replaced master that
    still answers would otherwise keep the client. Not a Sentinel client: nothing to do."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        await pool.get_master_address()     # type: ignore[no-untyped-call]  # redis-py leaves it untyped
