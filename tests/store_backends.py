"""The storage every Storage contract suite runs against (tests/test_store_contract.py,
tests/test_outbox_contract.py): import the fixtures by name into the suite's module.

A backend plugs in through `store_url` only: add its name to BACKENDS and, in `store_url`,
yield a URL that `hub.store.open_store` understands and that points at fresh, empty storage
private to the test (e.g. Redis: a dedicated db number or key prefix, flushed after the yield;
the server is started by the test setup: never skipped). Everything else goes through `open_store(url)`:
`store` is one opened instance, `open_instance()` opens another one on the same storage (to test
persistence after a close and conflicts between instances, as between two hub processes).
"""
from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import pytest

from hub.store import open_store
from hub.store.redis_eventlog import IdempotencyKeyExists
from hub.store.storage import Storage

BACKENDS = ["sqlite", "redis", "cluster", "sentinel"]
# What each backend raises for an append whose Idempotency-Key already holds an answer: its own
# error, never the service's (the service looks the key up first and answers the kept response).
USED_KEY_ERRORS: dict[str, type[Exception]] = {"sqlite": sqlite3.IntegrityError, "redis": IdempotencyKeyExists,
                                               "cluster": IdempotencyKeyExists, "sentinel": IdempotencyKeyExists}
# A backend that needs a server the tests start carries its marker (`-m "not redis"` leaves it out).
_NEEDS = {"redis": pytest.mark.redis, "cluster": pytest.mark.redis, "sentinel": pytest.mark.redis}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite runs on asyncio


@pytest.fixture(params=[pytest.param(b, marks=_NEEDS.get(b, ())) for b in BACKENDS])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'queuecast.db'}"  # 'data/' also tests mkdir
    elif request.param == "redis":
        yield request.getfixturevalue("redis_url")  # a real server, a key prefix of this test's own
    elif request.param == "cluster":
        yield request.getfixturevalue("redis_cluster_url")  # a real 3-master Redis Cluster, likewise
    elif request.param == "sentinel":
        # the master that three sentinels name, two replicas, each append WAITing for one of them
        yield request.getfixturevalue("sentinel_url")
    else:
        raise ValueError(f"no storage set up for backend {request.param!r}")


@pytest.fixture
def used_key_error(store_url: str, request: pytest.FixtureRequest) -> type[Exception]:
    """The exception this backend raises for an append under an Idempotency-Key already used."""
    return USED_KEY_ERRORS[request.node.callspec.params["store_url"]]


@pytest.fixture
def open_instance(store_url: str) -> Callable[[], AbstractAsyncContextManager[Storage]]:
    """Opens another store instance on the same storage as `store`."""
    return lambda: open_store(store_url)


@pytest.fixture
async def store(open_instance, anyio_backend) -> AsyncIterator[Storage]:
    async with open_instance() as s:
        yield s
