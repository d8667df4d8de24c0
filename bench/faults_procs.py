"""The processes of bench/faults.py: redis-server (one, a Cluster, or Sentinel's set), and hub
processes on them. Every process is started here, remembered in a `Procs`, and stopped by its pid
at the end, even when a scenario fails; every wait is bounded."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-faults-secret-not-for-production-use"
CLOCK = "2026-05-19T09:00:00+07:00"      # a Tuesday 09:00 in Hanoi, issuing open (tests/conftest.py TUESDAY_9AM)
LOBBY = '["127.0.0.0/8", "::1/128"]'     # kiosks on 127.0.0.1 issue as the lobby's (tests/conftest.py lobby_config)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], bool], what: str, timeout: float, interval: float = 0.1) -> None:
    """Until cond() holds; TimeoutError naming `what` after `timeout` s (bounded in tries too)."""
    end = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 3):
        if cond():
            return
        if time.monotonic() > end:
            break
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def lobby_config(workdir: Path) -> str:
    """The bundled configuration with 127.0.0.1 as every branch's lobby network."""
    from hub.config import BUNDLED
    text = BUNDLED.read_text(encoding="utf-8")
    lobby = text.replace("\n[policy]\n", f"\n[policy]\nkiosk_lobby_networks = {LOBBY}\n", 1)
    if lobby == text:
        raise RuntimeError("hanoi.toml has no [policy] table to put the lobby networks in")
    path = workdir / "hanoi-lobby.toml"
    path.write_text(lobby, encoding="utf-8")
    return str(path)


def redis_cli(port: int, *args: str, timeout: float = 10) -> str:
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                         capture_output=True, text=True, timeout=timeout)
    return out.stdout.strip()


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class Hub:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def first_error(self) -> str:
        """The line that says why it stopped: a traceback's last line, else the log's last."""
        lines = [x.strip() for x in self.log.read_text(errors="replace").splitlines() if x.strip()]
        for line in reversed(lines):
            if "Error" in line or "Exception" in line or line.startswith("queuecast"):
                return line[:200]
        return lines[-1][:200] if lines else f"exit {self.proc.returncode}, nothing logged"


@dataclass
class Procs:
    """Everything a scenario started, stopped by pid at the end (kill -9 after a bounded wait)."""
    workdir: Path
    started: list[subprocess.Popen] = field(default_factory=list)

    def popen(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):        # hubs before the Redis they need to shut down
            stop(proc)
        self.started.clear()

    # -- Redis ---------------------------------------------------------------------------------------

    def redis(self, name: str, port: int | None = None, *extra: str, appendonly: bool = True) -> int:
        port = port or free_port()
        d = self.workdir / name
        d.mkdir(parents=True, exist_ok=True)
        proc = self.popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                           "--save", "", "--appendonly", "yes" if appendonly else "no",
                           "--appendfsync", "always", "--daemonize", "no", *extra], d / "redis.log")

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server {name} exited {proc.returncode}: {tail(d / 'redis.log')}")
            return answers_ping(port)

        wait_for(up, f"redis-server {name} on {port}", 30)
        return port

    def pid_on(self, port: int) -> subprocess.Popen:
        """The redis-server this run started on `port` (the last one, after restarts)."""
        for proc in reversed(self.started):
            args = list(proc.args)
            if "--port" in args and args[args.index("--port") + 1] == str(port) and proc.poll() is None:
                return proc
        raise LookupError(f"no redis-server of ours on {port}")

    def cluster(self, masters: int = 3, replicas: int = 1) -> list[int]:
        """`masters` shards with `replicas` each: a replica per master, as a deployment has (appends
        WAIT for one by default, QUEUECAST_REDIS_MIN_REPLICAS)."""
        # The bus port is a free port of its own: the default (port + 10000) may not exist.
        ports = [self.redis(f"cluster-{i}", None, "--cluster-enabled", "yes", "--cluster-config-file",
                            "nodes.conf", "--cluster-node-timeout", "2000", "--cluster-port", str(free_port()))
                 for i in range(masters * (1 + replicas))]
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", str(replicas), "--cluster-yes"], capture_output=True, timeout=60, check=True)
        wait_for(lambda: all("cluster_state:ok" in redis_cli(p, "cluster", "info") for p in ports)
                 and all("master_link_status:down" not in redis_cli(p, "info", "replication") for p in ports),
                 "cluster_state:ok on every node, every replica linked", 60, 0.3)
        return ports

    def sentinel_set(self, master: str = "qc", down_ms: int = 1000) -> tuple[int, list[int], list[int]]:
        """One master, two replicas, three sentinels that agree (quorum 2) on the master."""
        mport = self.redis("sentinel-master")
        replicas = [self.redis(f"sentinel-replica-{i}", None, "--replicaof", "127.0.0.1", str(mport))
                    for i in range(2)]
        wait_for(lambda: redis_cli(mport, "info", "replication").count("state=online") >= 2,
                 "both replicas in sync", 60, 0.2)
        sentinels = []
        for i in range(3):
            port, d = free_port(), self.workdir / f"sentinel-{i}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                            f"sentinel monitor {master} 127.0.0.1 {mport} 2\n"
                            f"sentinel down-after-milliseconds {master} {down_ms}\n"
                            f"sentinel failover-timeout {master} 10000\n"
                            f"sentinel parallel-syncs {master} 1\n")
            self.popen(["redis-server", str(conf), "--sentinel"], d / "sentinel.log")
            wait_for(lambda port=port: answers_ping(port), f"sentinel on {port}", 30)
            sentinels.append(port)
        wait_for(lambda: all(redis_cli(p, "sentinel", "replicas", master).count("slave") >= 2
                             and "num-other-sentinels\n2" in redis_cli(p, "sentinel", "master", master)
                             for p in sentinels), "every sentinel knowing both replicas and the others", 60, 0.3)
        return mport, replicas, sentinels

    # -- hubs ----------------------------------------------------------------------------------------

    def hub_env(self, database: str) -> dict[str, str]:
        return {**os.environ, "QUEUECAST_DATABASE": database, "QUEUECAST_SECRET": SECRET,
                "QUEUECAST_CLOCK": CLOCK, "QUEUECAST_ISSUE_RATE": "100000/60",
                "QUEUECAST_CONFIG": lobby_config(self.workdir), "QUEUECAST_NOTIFIER": "worker",
                # every client of the bench comes from 127.0.0.1: the per-address cap is not what is measured
                "QUEUECAST_MAX_FEEDS_PER_ADDRESS": "100000", "PYTHONPATH": str(ROOT)}

    def hub(self, database: str, port: int | None = None, wait: float = 60) -> Hub:
        """`python -m hub serve` on `database`; returned once /readyz answers 200. A hub that exits
        first raises RuntimeError with the line that says why."""
        port = port or free_port()
        log = self.workdir / f"hub-{port}.log"
        proc = self.popen([sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(port)],
                          log, env=self.hub_env(database))
        hub = Hub(proc, port, log)

        def ready() -> bool:
            if not hub.alive():
                raise RuntimeError(f"serve exited {proc.returncode}: {hub.first_error()}")
            return readyz(hub) == 200

        try:
            wait_for(ready, f"hub on {port} ready", wait, 0.2)
        except TimeoutError:
            stop(proc)
            raise RuntimeError(f"serve not ready in {wait:.0f} s: {hub.first_error()}") from None
        return hub


def readyz(hub: Hub, timeout: float = 3) -> int:
    """/readyz's status, 0 when nothing answers."""
    try:
        return httpx.get(f"{hub.url}/readyz", timeout=timeout).status_code
    except httpx.HTTPError:
        return 0


def kill9(proc: subprocess.Popen) -> None:
    """kill -9 of a process this run started, by its pid."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def stop(proc: subprocess.Popen, grace: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            kill9(proc)


def tail(path: Path, n: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "?"


def copy_aof(redis_dir: Path, to: Path) -> None:
    """A copy of Redis's append-only files as they are now (appendfsync always: what was acknowledged)."""
    shutil.copytree(redis_dir / "appendonlydir", to / "appendonlydir")
