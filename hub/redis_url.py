"""Redis URLs as queuecast reads them (CONTRACTS.md section 2), shared by the store and the broker;
a deployment's keys and channels all start with `?prefix=` (default `qc:`):

- `redis://[:PASSWORD@]HOST:PORT/DB`                      one server
- `redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]`  a Redis Cluster, any nodes as seeds
- `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME/DB`
                                                          the master that Sentinel names, followed
                                                          across failovers (the password is the
                                                          data nodes'; the sentinels are asked without)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

SCHEMES = {"redis": "single", "redis+cluster": "cluster", "redis+sentinel": "sentinel"}
FORMS = "redis://HOST:PORT/DB, redis+cluster://HOST:PORT[,HOST:PORT...] or " \
        "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME/DB"


@dataclass(frozen=True)
class RedisTarget:
    kind: Literal["single", "cluster", "sentinel"]
    nodes: tuple[tuple[str, int], ...]
    prefix: str
    db: int = 0
    master: str = ""                    # sentinel: the name the sentinels know the master by
    password: str | None = None
    username: str | None = None
    url: str = ""                       # single: the URL without its query, for Redis.from_url


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0] in SCHEMES and "://" in url


def parse(url: str) -> RedisTarget:
    """The target of a Redis URL; ValueError with the accepted forms for anything else."""
    parts = urlsplit(url)
    kind = SCHEMES.get(parts.scheme)
    if kind is None or "://" not in url:
        raise ValueError(f"not a Redis URL {url!r}: expected {FORMS}")
    prefix = parse_qs(parts.query).get("prefix", ["qc:"])[0]
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    auth: dict[str, Any] = {"username": unquote(username) or None, "password": unquote(password) or None}
    try:
        nodes = tuple(_node(n, 26379 if kind == "sentinel" else 6379) for n in hosts.split(","))
    except ValueError as e:
        raise ValueError(f"{url!r}: {e}; expected {FORMS}") from None
    path = [p for p in parts.path.split("/") if p]
    if kind == "single":
        if len(nodes) != 1 or len(path) > 1:
            raise ValueError(f"{url!r}: one HOST:PORT and at most one /DB; expected {FORMS}")
        return RedisTarget("single", nodes, prefix, db=_db(url, path[0] if path else "0"),
                           url=urlunsplit(parts._replace(query="")), **auth)
    if kind == "cluster":
        if path:
            raise ValueError(f"{url!r}: a Redis Cluster has only database 0 (no /DB); expected {FORMS}")
        return RedisTarget("cluster", nodes, prefix, **auth)
    if len(path) not in (1, 2):
        raise ValueError(f"{url!r}: the master's name is missing (…/MASTER_NAME/DB); expected {FORMS}")
    return RedisTarget("sentinel", nodes, prefix, db=_db(url, path[1] if len(path) == 2 else "0"),
                       master=unquote(path[0]), **auth)


def connect(target: RedisTarget, **options: Any) -> Any:
    """The asyncio client for `target`: a Redis, a RedisCluster, or the Redis of Sentinel's master
    (which asks the sentinels again whenever its connection to the master fails). `options` go to
    the data connections (decode_responses, socket timeouts, ...)."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    from hub.sentinel import NewestSentinel, SentinelMaster

    if target.kind == "single":
        return aioredis.Redis.from_url(target.url, **options)
    if target.kind == "cluster":
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
                            username=target.username, password=target.password, **options)
    timeouts = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = NewestSentinel(list(target.nodes), sentinel_kwargs=timeouts, username=target.username,
                              password=target.password, **options)
    return sentinel.master_for(target.master, redis_class=SentinelMaster, db=target.db)


async def ping(client: Any) -> None:
    """Raise redis' ConnectionError unless `client` (from `connect`) can serve every key: one server
    answers PING; a Cluster must answer on every master, each saying cluster_state:ok (a master
    that sees a slot without a live owner says fail: some branch cannot be written)."""
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import ConnectionError as RedisConnectionError

    if not isinstance(client, RedisCluster):
        await client.ping()
        return
    infos = await client.execute_command("CLUSTER INFO", target_nodes=RedisCluster.PRIMARIES)
    states = {node: _str(info.get("cluster_state", "?")) for node, info in infos.items()}
    failing = {node: state for node, state in states.items() if state != "ok"}
    if failing:
        raise RedisConnectionError(f"redis cluster not ok: {failing}")


def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def default_min_replicas(target: RedisTarget) -> int:
    """Replicas that must confirm an append before it is acknowledged, unless the settings say:
    one where a failover can promote a replica (Sentinel, Cluster), none for one server."""
    return 0 if target.kind == "single" else 1


def _node(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or text.endswith("]"):             # no port (an IPv6 literal in brackets has colons)
        host, port = text, str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _db(url: str, text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{url!r}: the database {text!r} is not a number; expected {FORMS}")
    return int(text)
