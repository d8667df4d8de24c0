"""A real Redis Sentinel deployment for the tests: one master, two replicas (`--replicaof`) and three
sentinels (`redis-server sentinel.conf --sentinel`), all on 127.0.0.1 free ports. The sentinels
judge a master down after DOWN_AFTER_MS and give a failover FAILOVER_TIMEOUT_MS, so a failover
takes seconds. conftest.py's fixtures start one (`sentinel_set`, `sentinel_factory`) and stop
every process by its pid.
"""
from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waiting import deadline, wait_until

MASTER_NAME = "qc"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def ask(port: int, *command: str) -> Any:
    """One command to a node on 127.0.0.1 (a short-lived connection, so that no test keeps any)."""
    import redis

    client = redis.Redis(port=port, decode_responses=True, socket_timeout=deadline(5),
                         socket_connect_timeout=deadline(2))
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def answers_ping(port: int) -> bool:
    """A Redis server (or sentinel) on 127.0.0.1:`port` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=deadline(2)) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class SentinelSet:
    """The processes of one deployment: `nodes` by port (master and replicas), `sentinels` by port."""
    workdir: Path
    nodes: dict[int, subprocess.Popen] = field(default_factory=dict)
    sentinels: dict[int, subprocess.Popen] = field(default_factory=dict)

    def url(self, prefix: str = "qc:") -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0?prefix={prefix}"

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinels:
            try:
                return int(ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)[1])
            except Exception:   # that sentinel is down: ask the next one
                continue
        raise AssertionError("no sentinel answers")

    def replicas(self) -> list[int]:
        return [p for p in self.nodes if p != self.master_port()]

    def role(self, port: int) -> str:
        return str(ask(port, "ROLE")[0])

    def settled(self, replicas: int = 2) -> bool:
        """Every sentinel agrees on one master, that node says it is one, with `replicas` in sync,
        and knows the other sentinels and replicas (so that a failover can be voted at once)."""
        try:
            masters = {int(ask(p, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)[1]) for p in self.sentinels}
            if len(masters) != 1:
                return False
            master = masters.pop()
            if self.role(master) != "master":
                return False
            info = ask(master, "INFO", "replication")
            online = sum(1 for k, v in info.items() if k.startswith("slave") and v.get("state") == "online")
            if online < replicas:
                return False
            for p in self.sentinels:
                state = ask(p, "SENTINEL", "MASTER", MASTER_NAME)       # redis-py makes it a dict
                if int(state["num-other-sentinels"]) < len(self.sentinels) - 1 or int(state["num-slaves"]) < replicas:
                    return False
            return True
        except Exception:        # a node in the middle of a change: not settled yet
            return False

    def stop_node(self, port: int, kill: bool = False) -> None:
        proc = self.nodes[port]
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            proc.wait(timeout=deadline(30))

    def all(self) -> list[subprocess.Popen]:
        return [*self.nodes.values(), *self.sentinels.values()]


def start_node(s: SentinelSet, start_redis: Callable[..., Any], port: int, replica_of: int | None) -> None:
    # Any node may become the master: each sends its snapshot to a new replica at once (the
    # default waits 5 s for more replicas to share it).
    extra = ("--repl-diskless-sync-delay", "0")
    if replica_of:
        extra += ("--replicaof", "127.0.0.1", str(replica_of))
    server = start_redis(s.workdir / f"node-{port}", port=port, extra=extra)
    s.nodes[port] = server.proc


def start_sentinel(s: SentinelSet, port: int, master: int) -> None:
    workdir = s.workdir / f"sentinel-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "sentinel.conf"          # the sentinel rewrites it: one file each
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {workdir}\nlogfile {workdir / 'sentinel.log'}\n"
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                    f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 2\n")
    proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    s.sentinels[port] = proc

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"sentinel on port {port} exited with {proc.returncode}")
        return answers_ping(port)

    wait_until(up, f"sentinel on port {port} answering PING")


def populate(s: SentinelSet, start_redis: Callable[..., Any], free_port: Callable[[], int]) -> None:
    """Start the whole deployment into `s`, returning once settled (see SentinelSet.settled); on
    failure whatever started is in `s`, for the caller (the fixture) to stop through `s.all()`."""
    master = free_port()
    start_node(s, start_redis, master, None)
    for _ in range(2):
        start_node(s, start_redis, free_port(), master)
    for _ in range(3):
        start_sentinel(s, free_port(), master)
    wait_until(s.settled, lambda: f"sentinels settled on master {master} with 2 replicas", timeout=60)
