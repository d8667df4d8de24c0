"""Redis broker: events fan out to every hub process through Redis pub/sub.

One pattern subscription per process (`{prefix}{b:*}:events`) on one connection, fanned out
locally to subscribers' queues. Pub/sub delivers at most once and only while connected, so after
the link is lost and restored every subscriber receives RESYNC and must catch up from the store
(the log is the truth; the broker only says "something happened"). An idle link is probed with
PING so that a silently dead subscription is noticed within PROBE_EVERY + PROBE_TIMEOUT seconds.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.broker.local import LocalSubscribers
from hub.redis_url import connect, parse
from hub.sentinel import follow_master

log = logging.getLogger("queuecast.broker")

RESYNC = b'{"type":"resync"}'      # not an event: "you may have missed some; read the log"
PROBE_EVERY = 5.0                  # seconds of silence before the link is probed
PROBE_TIMEOUT = 3.0
MAX_BACKOFF = 60.0


class RedisBroker:
    def __init__(self, url: str):
        target = parse(url)
        self._prefix = target.prefix
        self._client = connect(target, socket_connect_timeout=5, socket_timeout=10)
        self._local = LocalSubscribers()
        self.connected = asyncio.Event()
        self.reconnects = 0            # read by /metrics and /readyz
        self._reader: asyncio.Task[None] | None = None
        self._ever_connected = False

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[RedisBroker]:
        broker = cls(url)
        broker._reader = asyncio.create_task(broker._read_forever(), name="redis-broker")
        try:
            async with asyncio.timeout(10):
                await broker.connected.wait()
        except TimeoutError:
            log.warning("redis broker not connected yet; serving and retrying")
        try:
            yield broker
        finally:
            broker._reader.cancel()
            try:
                await broker._reader
            except asyncio.CancelledError:
                pass
            await broker._client.aclose()

    def channel(self, branch: str) -> str:
        return f"{self._prefix}{{b:{branch}}}:events"

    async def publish(self, branch: str, message: bytes) -> None:
        await self._client.publish(self.channel(branch), message)

    def subscribe(self, branch: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._local.subscribe(branch)

    async def ping(self) -> None:
        if not self.connected.is_set():
            raise ConnectionError("redis pub/sub link is down; reconnecting")
        await self._client.ping()

    # -- the reader ---------------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, RedisConnectionError, RedisTimeoutError, OSError) as e:
                lost = self.connected.is_set()
                self.connected.clear()
                failures += 1
                delay = min(MAX_BACKOFF, 0.1 * 2 ** failures) * random.uniform(0.5, 1.0)
                log.warning("redis pub/sub link lost", extra={"fields": {
                    "error": f"{type(e).__name__}: {e}", "retry_in": round(delay, 2), "was_up": lost}})
                await asyncio.sleep(delay)
            except Exception:
                self.connected.clear()
                log.exception("redis pub/sub reader failed")
                await asyncio.sleep(1.0)
            else:
                failures = 0

    async def _read_once(self) -> None:
        # At each (re)connection, so that neither this subscription nor a publish goes on talking
        # to a replaced master (which would keep the messages to itself).
        await follow_master(self._client)
        pubsub = self._client.pubsub()
        try:
            await pubsub.psubscribe(f"{self._prefix}{{b:*}}:events")
            await pubsub.get_message(timeout=PROBE_TIMEOUT)            # the psubscribe confirmation
            if self._ever_connected:
                self.reconnects += 1
                self._local.deliver_all(RESYNC)                                  # anything may have been missed
            self._ever_connected = True
            self.connected.set()
            idle = 0.0
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    idle += 1.0
                    if idle >= PROBE_EVERY:
                        async with asyncio.timeout(PROBE_TIMEOUT):
                            await self._probe(pubsub)
                        idle = 0.0
                    continue
                idle = 0.0
                if msg["type"] == "pmessage":
                    self._fan_out(msg["channel"], msg["data"])
        finally:
            try:
                await pubsub.aclose()
            except Exception:
                pass

    async def _probe(self, pubsub: PubSub) -> None:
        """PING on the subscribed connection: the server answers with a pong message."""
        await pubsub.ping()
        while True:
            msg = await pubsub.get_message(timeout=PROBE_TIMEOUT)
            if msg is None:
                raise RedisTimeoutError("no pong on the pub/sub link")
            if msg["type"] == "pong":
                return
            if msg["type"] == "pmessage":
                self._fan_out(msg["channel"], msg["data"])

    def _fan_out(self, channel: bytes, data: bytes) -> None:
        name = channel.decode()
        start = name.find("{b:")
        self._local.deliver(name[start + 3:name.find("}", start)], data)
