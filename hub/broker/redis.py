"""Redis broker: events fan out to every hub process through Redis pub/sub.

One channel per branch, `{prefix}{b:<branch>}:events`, under the branch's hash tag. On a Redis
Cluster it is a shard channel (SPUBLISH / SSUBSCRIBE, Redis 7): a branch's messages stay on the
shard that keeps its log instead of being copied to every node. On one server (or Sentinel's
master) it is a plain channel (PUBLISH / SUBSCRIBE, any Redis version).

The broker subscribes to a branch when the first local subscriber enters `subscribe(branch)` and
unsubscribes when the last one leaves (a process follows only the branches it holds,
hub.service.follow), fanning messages out locally to the subscribers' queues. Its link to Redis is one pub/sub connection per master (one server: one
connection). Pub/sub delivers at most once and only while connected, so if any connection fails,
or the server drops a subscription (a Cluster moving the branch's slot), all of them are closed and
made again, the Cluster's masters asked afresh, and then every local subscriber receives RESYNC and
must catch up from the store (the log is the truth; the broker only says "something happened"). An
idle connection is probed with PING so that a silently dead one is noticed within PROBE_EVERY +
PROBE_TIMEOUT seconds. These connections never retry by themselves: with its default Retry,
redis-py reconnects and resubscribes a killed pub/sub connection without a word, and the messages
of the gap would be lost without a RESYNC.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.broker.local import LocalSubscribers
from hub.redis_url import connect, parse, ping
from hub.sentinel import follow_master

log = logging.getLogger("queuecast.broker")

RESYNC = b'{"type":"resync"}'      # not an event: "you may have missed some; read the log"
PROBE_EVERY = 5.0                  # seconds of silence before a connection is probed
PROBE_TIMEOUT = 3.0                # also the bound on a subscription's confirmation
MAX_BACKOFF = 60.0
LINK_LOST = (TimeoutError, RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError)


class RedisBroker:
    def __init__(self, url: str):
        self._target = target = parse(url)
        self._prefix = target.prefix
        self._sharded = target.kind == "cluster"
        self._client = connect(target, socket_connect_timeout=5, socket_timeout=10)    # publish, ping
        self._link_options: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 10,
                                              "retry": Retry(NoBackoff(), 0)}
        self._local = LocalSubscribers()
        self.connected = asyncio.Event()
        self.reconnects = 0            # read by /metrics and /readyz
        self._reader: asyncio.Task[None] | None = None
        self._ever_connected = False
        self._wanted: set[str] = set()                 # branches to be subscribed to, in every link
        self._links: dict[str, PubSub] | None = None   # master name → its connection; None while down
        self._confirmed: dict[str, asyncio.Event] = {}     # channel → its subscription was confirmed
        self._leaving: set[str] = set()                     # channels we asked to unsubscribe from
        self._failed: asyncio.Future[None] | None = None    # set to end the links (then RESYNC)

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
        if self._sharded:
            await self._client.spublish(self.channel(branch), message)
        else:
            await self._client.publish(self.channel(branch), message)

    @asynccontextmanager
    async def subscribe(self, branch: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """Messages of `branch` from the moment this is entered: the queue exists before the
        subscription, and this waits for Redis to confirm it (or, while down, for the RESYNC)."""
        try:
            async with self._local.subscribe(branch) as messages:
                self._wanted.add(branch)
                if self._links is not None and self._failed is not None:
                    failed = self._failed
                    try:
                        await self._listen(self._links, branch)
                    except LINK_LOST as e:
                        if not failed.done():      # the links are made again, and RESYNC follows
                            failed.set_exception(e)
                yield messages
        finally:
            if not self._local.has(branch):
                await self._forget(branch)

    async def _forget(self, branch: str) -> None:
        """Nobody here listens to `branch` any more: unsubscribe (best effort: a link that fails
        meanwhile is made again without it)."""
        self._wanted.discard(branch)
        channel = self.channel(branch)
        links = self._links
        if links is None or self._confirmed.pop(channel, None) is None:
            return
        pubsub = links.get(self._master_of(channel))
        if pubsub is None:
            return
        self._leaving.add(channel)          # the server's answer is ours, not a dropped subscription
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await (pubsub.sunsubscribe if self._sharded else pubsub.unsubscribe)(channel)
        except LINK_LOST:
            pass            # the link will be made again, with only the branches still wanted

    async def ping(self) -> None:
        if not self.connected.is_set():
            raise ConnectionError("redis pub/sub link is down; reconnecting")
        await ping(self._client)

    # -- the links ---------------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except LINK_LOST as e:
                lost = self.connected.is_set()
                failures += 1
                delay = min(MAX_BACKOFF, 0.1 * 2 ** failures) * random.uniform(0.5, 1.0)
                log.warning("redis pub/sub link lost", extra={"fields": {
                    "error": f"{type(e).__name__}: {e}", "retry_in": round(delay, 2), "was_up": lost}})
                await asyncio.sleep(delay)
            except Exception:
                log.exception("redis pub/sub reader failed")
                await asyncio.sleep(1.0)
            else:
                failures = 0

    async def _read_once(self) -> None:
        """One life of the links: made, subscribed, RESYNC sent, then read until one fails."""
        # At each (re)connection, so that a publish does not go on talking to a replaced master
        # (which would keep the messages to itself); the links below are new clients, which ask
        # the sentinels afresh.
        await follow_master(self._client)
        clients = await self._masters()
        links = {name: client.pubsub() for name, client in clients.items()}
        readers: list[asyncio.Future[None]] = []
        self._failed = asyncio.get_running_loop().create_future()
        try:
            for pubsub in links.values():
                await pubsub.ping()          # connects it (the pong is read, and passed over, below)
            readers = [asyncio.ensure_future(self._read_link(p)) for p in links.values()]
            self._confirmed, self._leaving, self._links = {}, set(), links       # from now on subscribe() adds to these links
            await asyncio.gather(*(self._listen(links, b) for b in list(self._wanted)))
            if self._ever_connected:
                self.reconnects += 1
            self._ever_connected = True
            self._local.deliver_all(RESYNC)                 # anything may have been missed meanwhile
            self.connected.set()
            done, _ = await asyncio.wait([*readers, self._failed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()                               # the error that ended the links
        finally:
            self.connected.clear()
            self._links = None
            if not self._failed.done():
                self._failed.cancel()                       # a late subscriber has nothing to end
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for pubsub in links.values():
                await _quietly(pubsub.aclose())
            for client in clients.values():
                await _quietly(client.aclose())

    async def _masters(self) -> dict[str, aioredis.Redis]:
        """A client per master, without retries: the Cluster's masters as it says now (one server:
        one client named "")."""
        if not isinstance(self._client, RedisCluster):
            return {"": connect(self._target, **self._link_options)}
        await self._client.initialize()
        await self._client.nodes_manager.initialize()      # the masters now, after a failover too
        t = self._target
        return {node.name: aioredis.Redis(host=node.host, port=int(node.port), username=t.username,
                                          password=t.password, **self._link_options)
                for node in self._client.get_primaries()}

    def _master_of(self, channel: str) -> str:
        if isinstance(self._client, RedisCluster):
            node = self._client.get_node_from_key(channel)
            return node.name if node is not None else "(no master)"
        return ""

    async def _listen(self, links: dict[str, PubSub], branch: str) -> None:
        """Subscribe the connection of the branch's master to its channel (once per life of the
        links), and wait, bounded, for Redis to confirm it."""
        channel = self.channel(branch)
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            confirmed = self._confirmed[channel] = asyncio.Event()
            pubsub = links.get(self._master_of(channel))
            if pubsub is None:
                raise RedisConnectionError(f"no connection to the master of {channel}: the cluster changed")
            await (pubsub.ssubscribe if self._sharded else pubsub.subscribe)(channel)
        async with asyncio.timeout(PROBE_TIMEOUT):
            await confirmed.wait()

    async def _read_link(self, pubsub: PubSub) -> None:
        idle = 0.0
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is None:
                idle += 1.0
                if idle >= PROBE_EVERY:
                    async with asyncio.timeout(PROBE_TIMEOUT):
                        await self._probe(pubsub)
                    idle = 0.0
                continue
            idle = 0.0
            self._take(msg)

    async def _probe(self, pubsub: PubSub) -> None:
        """PING on the subscribed connection: the server answers with a pong message."""
        await pubsub.ping()
        while True:
            msg = await pubsub.get_message(timeout=PROBE_TIMEOUT)
            if msg is None:
                raise RedisTimeoutError("no pong on the pub/sub link")
            if msg["type"] == "pong":
                return
            self._take(msg)

    def _take(self, msg: dict[str, Any]) -> None:
        kind, channel = msg["type"], msg["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind in ("message", "smessage"):
            start = name.find("{b:")
            self._local.deliver(name[start + 3:name.find("}", start)], msg["data"])
        elif kind in ("subscribe", "ssubscribe"):
            self._confirmed.setdefault(name, asyncio.Event()).set()
        elif kind in ("unsubscribe", "sunsubscribe") and name in self._leaving:
            self._leaving.discard(name)
        elif kind in ("unsubscribe", "sunsubscribe"):
            # Never asked for: the server dropped it (a Cluster moved the branch's slot elsewhere).
            raise RedisConnectionError(f"the server ended the subscription to {name}")


async def _quietly(closing: Any) -> None:
    try:
        await closing
    except Exception:
        pass
