"""Shared fixtures: real SQLite files, the real app in-process (lifespan and all), and real hub
processes over real sockets on 127.0.0.1. Nothing here is mocked.

Markers (pyproject.toml, --strict-markers) are put on by what a test uses, in
pytest_collection_modifyitems below: `browser` for the Chromium fixtures, `redis` for the Redis ones;
`slow` is put on by hand. Every wait scales with the machine (tests/waiting.py)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from hub.app import create_app
from hub.clock import ManualClock
from hub.config import BUNDLED, load_config
from hub.settings import Settings

from redis_sentinel import answers_ping
from waiting import SLOW, SLOW_SOURCE, deadline, ms, wait_until

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TUESDAY_9AM = datetime(2026, 5, 19, 9, 0, tzinfo=TZ)      # a working day, issuing open
SECRET = "test-secret-not-for-production"


# -- markers, and the session's deadlines ----------------------------------------------------------

# A test that uses any of these fixtures (directly or through another fixture) gets the marker.
MARKED_BY_FIXTURE = {
    "browser": {"browser", "new_page"},                                  # Chromium through Playwright
    "redis": {"redis_server", "redis_url", "redis_factory",             # the redis-server binary
              "redis_cluster", "redis_cluster_url", "sentinel_set", "sentinel_url", "sentinel_factory"},
}


# Hypothesis times its examples (a deadline) and its data generation (the too_slow health check):
# neither may fail a test on a busy machine. A test's own @settings inherit these.
hypothesis_settings.register_profile("queuecast", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("queuecast")


def pytest_report_header(config):
    return f"queuecast: deadlines x{SLOW} ({SLOW_SOURCE}; QUEUECAST_TEST_SLOWNESS sets it)"


# Lines a test leaves for the end of the run (tests/test_schemathesis.py: its counts, to be quoted):
# written in the terminal summary, where output capture does not swallow them.
SUMMARY = pytest.StashKey[list[str]]()


def summary_lines(config: pytest.Config) -> list[str]:
    return config.stash.setdefault(SUMMARY, [])


def pytest_terminal_summary(terminalreporter):
    lines = terminalreporter.config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("queuecast")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)       # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    # The whole test's hang guard (pytest-timeout's ini `timeout`) scales like every deadline,
    # unless --timeout was given or the test has a timeout marker of its own.
    base = float(config.getini("timeout") or 0) if config.pluginmanager.hasplugin("timeout") else 0.0
    scale = base and SLOW > 1 and config.getoption("timeout", None) is None
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in MARKED_BY_FIXTURE.items():
            if used & fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))
        if scale and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(base * SLOW))


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def centre():
    return load_config()


@pytest.fixture
def clock():
    return ManualClock(TUESDAY_9AM)


# Kiosk numbers come only from enrolled kiosk devices, or from a branch's lobby network where its
# policy allows it (docs/rules.md). The tests that are not about who may issue take them as an
# anonymous kiosk on the lobby: the bundled configuration with 127.0.0.1 (the test client's address,
# in-process and over real sockets) as every branch's lobby network. Nothing else differs, so no
# event is added and every seq a test expects stays as it was. The tests of devices and refusals
# use the bundled configuration itself (`config=""`, or QUEUECAST_CONFIG unset).
LOBBY_NETWORKS = '["127.0.0.0/8", "::1/128"]'


@pytest.fixture(scope="session")
def lobby_config(tmp_path_factory) -> str:
    text = BUNDLED.read_text(encoding="utf-8")
    lobby = text.replace("\n[policy]\n", f"\n[policy]\nkiosk_lobby_networks = {LOBBY_NETWORKS}\n", 1)
    assert lobby != text, "hanoi.toml has no [policy] table to put the lobby networks in"
    path = tmp_path_factory.mktemp("config") / "hanoi-lobby.toml"
    path.write_text(lobby, encoding="utf-8")
    return str(path)


@pytest.fixture
def settings(tmp_path, lobby_config):
    # notifier="worker": the in-process app sends nothing by itself; the notifier tests run their
    # own Worker and look at the outbox between its steps.
    return Settings(database=f"sqlite:///{tmp_path}/queuecast.db", secret=SECRET, issue_rate="1000/60",
                    notifier="worker", config=lobby_config)


@asynccontextmanager
async def running_app(settings, clock, **kw):
    """The app with its lifespan entered, and an HTTP client that speaks to it in-process."""
    app = create_app(settings, clock=clock, **kw)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            client.app = app
            yield client


@pytest.fixture
async def client(settings, clock):
    async with running_app(settings, clock) as c:
        yield c


@pytest.fixture
def tokens(client):
    return client.app.state.tokens


def bearer(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def assert_error(r, status: int, code: str) -> dict:
    """An answer in the contract's error shape (CONTRACTS.md section 3): `status`, only an "error"
    object, its `code`, and a message in English and in Vietnamese; the error object."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert err["message"].strip() and err["message_vi"].strip(), body
    return err


# -- real hub processes ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HubProcess:
    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=deadline(30))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()          # only the process we started, by its pid
            try:
                self.proc.wait(timeout=deadline(30))
            except subprocess.TimeoutExpired:
                self.kill9()


def start_hub(env: dict[str, str], log: Path, timeout: float = 60.0, port: int | None = None) -> HubProcess:
    """`python -m hub serve` on 127.0.0.1 (a free port unless given), returned once /readyz answers
    (within deadline(timeout) s); a hub that exits meanwhile fails at once, with its log."""
    port = port or free_port()
    full_env = {**os.environ, **env}
    with open(log, "ab") as out:           # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)
    hub = HubProcess(proc, f"http://127.0.0.1:{port}", log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"hub exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{hub.url}/readyz", timeout=deadline(5)).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, lambda: f"hub on port {port} ready (/readyz 200):\n{log.read_text()}", timeout)
    except BaseException:
        hub.stop()
        raise
    return hub


def hub_environment(workdir: Path, lobby_config: str) -> dict[str, str]:
    """A hub process's settings, its database in `workdir`; its kiosks on 127.0.0.1 issue as the
    lobby's (see lobby_config). For a fixture of a wider scope than hub_env's."""
    return {"QUEUECAST_DATABASE": f"sqlite:///{workdir}/hub.db", "QUEUECAST_SECRET": SECRET,
            "QUEUECAST_CLOCK": TUESDAY_9AM.isoformat(), "QUEUECAST_ISSUE_RATE": "100000/60",
            "QUEUECAST_CONFIG": lobby_config}


@pytest.fixture
def hub_env(tmp_path, lobby_config) -> dict[str, str]:
    """A hub process's settings; its kiosks on 127.0.0.1 issue as the lobby's (see lobby_config)."""
    return hub_environment(tmp_path, lobby_config)


@pytest.fixture
def hub_factory(tmp_path):
    """Start real hub processes; every one still running is stopped at the end."""
    started: list[HubProcess] = []

    def start(env: dict[str, str], port: int | None = None) -> HubProcess:
        """port: restart a hub where clients expect it (same port, same database)."""
        hub = start_hub(env, tmp_path / f"hub-{len(started)}.log", port=port)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


# -- a real Redis server, started by the tests ----------------------------------------------------

@dataclass
class RedisServer:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(workdir: Path, *, port: int | None = None, appendonly: bool = False,
                extra: tuple[str, ...] = ()) -> RedisServer:
    """`redis-server` on 127.0.0.1, answering PING before this returns (bounded wait); `extra`:
    more options (`--replicaof HOST PORT`, cluster options). Tests use the fixtures below, which
    also give them the `redis` marker."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--save", "", "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always",
            "--daemonize", "no", "--logfile", str(workdir / "redis.log"), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        return answers_ping(port)

    try:
        wait_until(answers, f"redis-server on port {port} answering PING")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return RedisServer(proc, port)


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process this test run started, by its pid."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=deadline(30))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=deadline(30))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    stop_process(server.proc)


@pytest.fixture
def redis_factory(tmp_path):
    """redis_factory(workdir, port=..., appendonly=...) → a Redis server of this test's own, to stop
    (stop_process(server.proc)) and start again on the same port; whatever still runs is stopped at the end."""
    started: list[RedisServer] = []

    def start(workdir: Path, **kw) -> RedisServer:
        server = start_redis(workdir, **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_process(server.proc)


@pytest.fixture
def redis_url(redis_server, request) -> str:
    """The shared test Redis with a key prefix of this test's own; its keys are deleted after."""
    import uuid


    prefix = f"t{uuid.uuid4().hex[:12]}:"
    yield f"{redis_server.url}?prefix={prefix}"
    delete_prefixed([redis_server.port], prefix)


# -- a real Redis Cluster, started by the tests --------------------------------------------------------

@dataclass
class RedisClusterServers:
    nodes: list[RedisServer]            # the masters (one shard each), then their replicas
    workdir: Path
    bus_ports: list[int]                # each node's cluster bus port, as the others know it
    appendonly: bool = False            # kept on disk: a node started again has its keys back

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start_node(self, i: int) -> RedisServer:
        """Node `i` (again: same port, bus port, directory and nodes.conf, so it rejoins as it was)."""
        # A short node timeout: a test that stops a node sees the cluster notice it in seconds.
        # The bus port is a free port of its own (the default, port + 10000, may not exist).
        port = self.nodes[i].port if i < len(self.nodes) else None
        node = start_redis(self.workdir / f"node-{i}", port=port, appendonly=self.appendonly, extra=(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000", "--cluster-port", str(self.bus_ports[i])))
        if i < len(self.nodes):
            self.nodes[i] = node
        else:
            self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            stop_process(node.proc)


def start_cluster(workdir: Path, masters: int = 3, appendonly: bool = False, replicas: int = 0) -> RedisClusterServers:
    """`masters` cluster-enabled redis-servers, and `replicas` more of each, joined by
    `redis-cli --cluster create`, returned once every node says cluster_state:ok and every replica's
    link to its master is up (bounded wait); stopped by the caller (.stop())."""
    count = masters * (1 + replicas)
    cluster = RedisClusterServers([], workdir, [free_port() for _ in range(count)], appendonly)
    try:
        for i in range(count):
            cluster.start_node(i)
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in cluster.nodes),
                       "--cluster-replicas", str(replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=deadline(60))
        wait_until(lambda: all(cluster_state(n.port) == "ok" and replica_link(n.port) in ("up", None)
                               for n in cluster.nodes),
                   "every cluster node to say cluster_state:ok, every replica linked to its master")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def cluster_state(port: int) -> str:
    """What CLUSTER INFO says on the node at `port`: ok or fail."""
    import redis as redis_sync

    with redis_sync.Redis(port=port, socket_timeout=deadline(2), decode_responses=True) as r:
        return r.execute_command("CLUSTER INFO")["cluster_state"]


def replica_link(port: int) -> str | None:
    """A replica's master_link_status (up or down); None for a master."""
    import redis as redis_sync

    with redis_sync.Redis(port=port, socket_timeout=deadline(2), decode_responses=True) as r:
        info = r.info("replication")
    return info.get("master_link_status") if info["role"] == "slave" else None


def delete_prefixed(ports: list[int], prefix: str) -> None:
    """Delete the keys that start with `prefix` on every node: one DEL per key (a cluster refuses a
    DEL of keys in different slots, even on one node)."""
    import redis as redis_sync

    for port in ports:
        if replica_link(port) is not None:
            continue                    # a replica refuses a DEL (MOVED); its master's is copied to it
        with redis_sync.Redis(port=port) as client:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.delete(key)
                pipe.execute()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> RedisClusterServers:
    # A replica per master: a Cluster's appends WAIT for one by default (QUEUECAST_REDIS_MIN_REPLICAS).
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"), replicas=1)
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster) -> str:
    """The shared test cluster with a key prefix of this test's own; its keys are deleted after, on every node."""
    import uuid

    prefix = f"t{uuid.uuid4().hex[:12]}:"
    yield f"{redis_cluster.url}?prefix={prefix}"
    delete_prefixed([n.port for n in redis_cluster.nodes], prefix)


# -- a real Sentinel deployment, started by the tests ----------------------------------------------

@contextmanager
def sentinel_deployment(workdir: Path):
    """A master, two replicas and three sentinels (tests/redis_sentinel.py), stopped by pid after."""
    from redis_sentinel import SentinelSet, populate

    deployment = SentinelSet(workdir)
    try:
        populate(deployment, start_redis, free_port)
        yield deployment
    finally:
        for proc in deployment.all():
            stop_process(proc)


@pytest.fixture(scope="session")
def sentinel_set(tmp_path_factory):
    """One Sentinel deployment for the session's tests that only read and write through it."""
    with sentinel_deployment(tmp_path_factory.mktemp("sentinel")) as deployment:
        yield deployment


@pytest.fixture
def sentinel_url(sentinel_set) -> str:
    """`redis+sentinel://` to the shared deployment, with a key prefix of this test's own."""
    import uuid


    prefix = f"t{uuid.uuid4().hex[:12]}:"
    yield sentinel_set.url(prefix)
    delete_prefixed([sentinel_set.master_port()], prefix)


@pytest.fixture
def sentinel_factory(tmp_path):
    """A Sentinel deployment of this test's own, to fail over, kill and restart at will."""
    with sentinel_deployment(tmp_path / "sentinel") as deployment:
        yield deployment


# -- a real headless Chromium (Debian's), driven by Playwright ----------------------------------------

CHROMIUM = "/usr/bin/chromium"
# Root in a sandbox: no setuid sandbox; the machine has no network but loopback, so Chromium's own
# background traffic (updates, sync, QUIC probes) is switched off instead of failing repeatedly.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--autoplay-policy=no-user-gesture-required"]
TV = {"width": 1920, "height": 1080}
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def browser():
    """Per module: Playwright's sync API keeps an event loop marked running in this thread while
    it lives, which anyio tests in later modules would trip over."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=ms(30))             # expect() has a default of its own (5 s)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser):
    """new_page(viewport=TV|PHONE) → a page in a fresh context (Vietnamese locale, Hanoi time)."""
    contexts = []

    def make(viewport=PHONE, **kw):
        ctx = browser.new_context(viewport=viewport, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", **kw)
        ctx.set_default_timeout(ms(30))            # expect(), clicks, waits, navigation: all scaled
        ctx.set_default_navigation_timeout(ms(30))
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def hub(hub_factory, hub_env) -> HubProcess:
    """One real hub process for a test (pages, feeds)."""
    return hub_factory(hub_env)


@pytest.fixture
def api(hub):
    """A synchronous HTTP client of `hub` (the page tests drive Playwright's sync API)."""
    with httpx.Client(base_url=hub.url, timeout=deadline(30)) as client:
        yield client


# -- web push subscriptions ------------------------------------------------------------------------

def push_subscription(endpoint: str = "https://fcm.googleapis.com/fcm/send/c9Xq-test") -> dict:
    """A browser's PushSubscription.toJSON() on a real push service's host, with real keys: the hub
    keeps only subscriptions whose keys are a P-256 point and a 16-byte secret (hub.domain.push)."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))}}
