"""Redis Cluster (CONTRACTS.md section 2, `redis+cluster://`): the broker's shard channels and its
RESYNC after a lost link, on a real 3-master cluster and on one real server; the store and the
broker when a master stops and comes back, and through a failover to a replica (3+3); the key prefix. The store's contract suites run on the cluster
too (tests/store_backends.py); two hub processes on the cluster are in tests/test_cluster_hubs.py.
"""
from __future__ import annotations

import asyncio
import json

import pytest
import redis as redis_sync

from hub.broker.redis import RESYNC, RedisBroker
from hub.redis_url import parse
from hub.store import open_store
from hub.store.errors import StoreUnavailable
from hub.store.redis_keys import Keys

from conftest import cluster_state, start_cluster, stop_process
from waiting import deadline, until

pytestmark = pytest.mark.anyio
BRANCHES = [str(i) for i in range(1, 13)]
WAIT = deadline(30)


@pytest.fixture(params=["redis", "cluster"])
def broker_url(request) -> str:
    """One server (plain channels) or the 3-master cluster (shard channels), a prefix of the test's own."""
    return request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")


async def next_message(messages, timeout: float = WAIT) -> bytes:
    return await asyncio.wait_for(anext(messages), timeout)


async def subscribed(broker: RedisBroker, stack, branches=BRANCHES) -> dict:
    return {b: await stack.enter_async_context(broker.subscribe(b)) for b in branches}


def masters_of(url: str, channels: list[str]) -> dict[str, int]:
    """How many of `channels` each node counts subscribers on (PUBSUB SHARDNUMSUB asks a node
    about its own shard channels; one server: PUBSUB NUMSUB)."""
    target = parse(url)
    counts: dict[str, int] = {}
    for host, port in target.nodes:
        with redis_sync.Redis(host=host, port=port, decode_responses=True) as r:
            command = "PUBSUB SHARDNUMSUB" if target.kind == "cluster" else "PUBSUB NUMSUB"
            reply = r.execute_command(command, *channels)
            if isinstance(reply, dict):
                pairs = list(reply.items())
            elif reply and isinstance(reply[0], (list, tuple)):
                pairs = [tuple(p) for p in reply]
            else:
                pairs = list(zip(reply[::2], reply[1::2]))
            counts[f"{host}:{port}"] = sum(1 for _, n in pairs if int(n) > 0)
    return counts


async def test_every_branch_reaches_the_other_process_on_its_own_channel(broker_url):
    from contextlib import AsyncExitStack

    async with RedisBroker.open(broker_url) as a, RedisBroker.open(broker_url) as b, AsyncExitStack() as stack:
        assert a.connected.is_set() and b.connected.is_set()
        queues = await subscribed(b, stack)
        for i, branch in enumerate(BRANCHES):
            await a.publish(branch, json.dumps({"seq": i, "branch": branch}).encode())
        for i, branch in enumerate(BRANCHES):
            assert json.loads(await next_message(queues[branch])) == {"seq": i, "branch": branch}
        channels = [b.channel(x) for x in BRANCHES]
        per_node = masters_of(broker_url, channels)
        assert sum(per_node.values()) == len(BRANCHES), per_node       # each channel on one node only
        if broker_url.startswith("redis+cluster"):
            assert sum(1 for n in per_node.values() if n) > 1, per_node  # spread over the masters
        await a.ping(), await b.ping()
        assert a.reconnects == b.reconnects == 0


async def test_a_killed_pubsub_connection_brings_resync_then_messages_again(broker_url):
    """CLIENT KILL TYPE pubsub on every node: the broker notices, connects again, and every
    subscriber of every branch gets RESYNC (what was published meanwhile is in the log only)."""
    from contextlib import AsyncExitStack

    target = parse(broker_url)
    async with RedisBroker.open(broker_url) as a, RedisBroker.open(broker_url) as b, AsyncExitStack() as stack:
        queues = await subscribed(b, stack)
        for host, port in target.nodes:
            with redis_sync.Redis(host=host, port=port) as r:
                r.execute_command("CLIENT KILL TYPE pubsub")
        for branch in BRANCHES:
            assert await next_message(queues[branch]) == RESYNC, branch
        assert b.reconnects == 1 and b.connected.is_set()
        assert a.connected.is_set()     # its links subscribe to nothing: not pub/sub clients, not killed
        for branch in BRANCHES:
            await a.publish(branch, f'{{"after":"{branch}"}}'.encode())
        for branch in BRANCHES:
            got = await next_message(queues[branch])
            assert json.loads(got) == {"after": branch}


async def test_a_branch_subscribed_later_is_listened_to_at_once(broker_url):
    """The first subscriber of a branch enters once Redis has confirmed the subscription: a message
    published right after it entered arrives (no catch-up could find it: it is not in any log)."""
    async with RedisBroker.open(broker_url) as a, RedisBroker.open(broker_url) as b:
        for branch in BRANCHES:
            async with b.subscribe(branch) as messages:
                await a.publish(branch, b'{"now":1}')
                assert await next_message(messages) == b'{"now":1}'


@pytest.mark.slow
async def test_a_stopped_master_is_unready_then_resync_when_it_is_back(tmp_path):
    """A master of a cluster of its own stops (no replica: the cluster is down, Redis's
    cluster-require-full-coverage): the store's ping and the broker say so; the master starts again
    on its port with its nodes.conf, the cluster heals, and every subscriber gets RESYNC."""
    from contextlib import AsyncExitStack

    cluster = start_cluster(tmp_path / "cluster", appendonly=True)
    try:
        url = f"{cluster.url}?prefix=qc-stop:"
        # No replica here, so nothing to WAIT for: what is tested is a master that is gone.
        async with open_store(url, min_replicas=0) as store, RedisBroker.open(url) as broker, AsyncExitStack() as stack:
            queues = await subscribed(broker, stack)
            await store.log.ping()
            for branch in BRANCHES:     # the append script is now in every master's script cache
                await store.log.append(branch, 0, [event(branch)])
            victim = cluster.nodes[1]
            with redis_sync.Redis(port=victim.port, decode_responses=True) as r:
                on_victim = sorted({k.split("{b:")[1].split("}")[0] for k in r.scan_iter(match="qc-stop:*")})
            assert on_victim, "no branch on the master to be stopped"
            stop_process(victim.proc)
            with pytest.raises(StoreUnavailable):
                await store.log.append(on_victim[0], 1, [event(on_victim[0])])

            async def store_down() -> bool:
                try:
                    await store.log.ping()
                except StoreUnavailable:
                    return True
                return False
            await until(store_down, "the store's ping to say unavailable")
            await until(lambda: not broker.connected.is_set(), "the broker to notice its lost link")
            with pytest.raises(ConnectionError):
                await broker.ping()

            cluster.start_node(1)
            await until(lambda: all(cluster_state(n.port) == "ok" for n in cluster.nodes), "the cluster ok again")
            await until(store_up(store), "the store's ping to answer again")
            await until(lambda: broker.connected.is_set(), "the broker's links back")
            for branch in BRANCHES:     # every subscriber, whichever master its branch is on
                assert await next_message(queues[branch]) == RESYNC, branch
            assert broker.reconnects == 1
            for branch in BRANCHES:     # the restarted master's script cache is empty: loaded again
                await store.log.append(branch, 1, [event(branch)])
                assert [e["seq"] for e in await store.log.events_since(branch, 0)] == [1, 2]
            for branch in BRANCHES:
                await broker.publish(branch, b'{"back":1}')
                assert await next_message(queues[branch]) == b'{"back":1}'
            await broker.ping()
    finally:
        cluster.stop()


@pytest.mark.slow
async def test_a_failover_moves_the_links_to_the_promoted_replica_and_brings_resync(tmp_path):
    """3 masters + 3 replicas: a master is killed (SIGKILL) once its replica has its writes; the
    replica is promoted (cluster-node-timeout 2 s). The broker's links follow the new master, every
    subscriber gets RESYNC once, and every branch takes appends again, with what it had before."""
    from contextlib import AsyncExitStack

    cluster = start_cluster(tmp_path / "cluster", replicas=1)
    try:
        url = f"{cluster.url}?prefix=qc-failover:"
        # The promoted replica has no replica of its own: with the default WAIT for one, its
        # branches would answer 503 until one is back (test_sentinel_failover covers WAIT). What
        # is tested here is the links following the promotion.
        async with open_store(url, min_replicas=0) as store, RedisBroker.open(url) as broker, AsyncExitStack() as stack:
            queues = await subscribed(broker, stack)
            for branch in BRANCHES:
                await store.log.append(branch, 0, [event(branch)])
            victim, on_victim = None, []
            for node in cluster.nodes:
                with redis_sync.Redis(port=node.port, decode_responses=True) as r:
                    if r.info("replication")["role"] == "master":
                        held = sorted({k.split("{b:")[1].split("}")[0] for k in r.scan_iter(match="qc-failover:*")})
                        if len(held) > len(on_victim):
                            victim, on_victim = node, held
            assert victim is not None and on_victim, "no master holds a branch"

            def replicated() -> bool:
                with redis_sync.Redis(port=victim.port) as r:
                    info = r.info("replication")
                return info.get("slave0", {}).get("offset") == info["master_repl_offset"]
            await until(replicated, "the victim's replica to have all its writes")
            victim.proc.kill()                 # ours, by pid: a crash, not a shutdown
            victim.proc.wait(timeout=WAIT)
            live = [n for n in cluster.nodes if n is not victim]
            await until(lambda: all(cluster_state(n.port) == "ok" for n in live), "the replica promoted, cluster ok")
            await until(lambda: broker.connected.is_set() and broker.reconnects == 1, "the broker's links back")
            for branch in BRANCHES:     # every subscriber, whichever master its branch is on
                assert await next_message(queues[branch]) == RESYNC, branch
            await until(store_up(store), "the store's ping to answer")
            for branch in BRANCHES:
                await store.log.append(branch, 1, [event(branch)])
                assert [e["seq"] for e in await store.log.events_since(branch, 0)] == [1, 2], branch
                await broker.publish(branch, b'{"after":1}')
                assert await next_message(queues[branch]) == b'{"after":1}'
            assert broker.reconnects == 1
    finally:
        cluster.stop()


def event(branch: str) -> dict:
    return {"type": "ticket.issued", "branch": branch, "day": "2026-05-19", "number": "1001"}


def store_up(store):
    async def answers() -> bool:
        try:
            await store.log.ping()
        except StoreUnavailable:
            return False
        return True
    return answers


@pytest.mark.parametrize("prefix", ["qc{x}:", "{}", "a}"])
def test_a_prefix_with_a_brace_is_refused(prefix):
    with pytest.raises(ValueError, match="may not contain"):
        Keys(prefix)


@pytest.mark.parametrize("branch", ["1", "12", "quan-hoan-kiem", "b:{x"])
def test_a_branch_keys_and_its_channel_hash_to_one_slot(branch):
    """What every script's KEYS list relies on, and what keeps a branch's messages on the shard of its log."""
    from redis.crc import key_slot

    keys = Keys("qc:")
    names = ["head", "log", "idem", "day:2026-05-19", "pred:2026-05-19", "pred:2026-05-19:seen", "pred:days"]
    every = [keys.branch(branch, n) for n in names] + keys.outbox(branch)
    every.append(RedisBroker("redis+cluster://127.0.0.1:7000?prefix=qc:").channel(branch))
    assert len({key_slot(k.encode()) for k in every}) == 1, every
    assert key_slot(keys.branch(branch, "log").encode()) != key_slot(keys.branch(branch + "0", "log").encode())
