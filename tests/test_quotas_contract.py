"""The per-citizen limits' reservations (hub.store.quotas), the contract every storage backend must
pass, run unchanged on the storage of tests/store_backends.py (real SQLite files, the real Redis of
the test setup): the limits in order, a retried reservation counted once, a released one given
back, and the check-and-count atomic under many tasks at once, through several connections and,
on one SQLite file, several processes."""
from __future__ import annotations

import asyncio
import collections
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.store import open_store
from hub.store.quotas import ANSWERS, DAILY_LIMIT, FIELD_LIMIT, HELD, TAKEN, Limits, Reservation, lifetime
from hub.store.sqlite_db import SCHEMA_VERSION

from store_backends import anyio_backend, open_instance, store, store_url  # noqa: F401 (fixtures)
from waiting import deadline

pytestmark = pytest.mark.anyio

DAY = date(2026, 5, 19)
NOW = datetime(2026, 5, 19, 9, 0, tzinfo=timezone(timedelta(hours=7)))
ROOT = Path(__file__).resolve().parents[1]
RULES = Limits(per_field=1, per_day=2)          # the centre's defaults (DESIGN §2)


def res(rid: str, field: str = "ho-tich", branch: str = "1", citizen: str = "cit-A", day: date = DAY) -> Reservation:
    return Reservation(citizen, day, branch, field, rid)


async def test_one_per_field_and_two_a_day_across_branches_the_field_refused_first(store):
    q = store.quotas
    assert await q.reserve(res("a", "ho-tich", "1"), RULES, NOW) == TAKEN
    assert await q.reserve(res("b", "ho-tich", "2"), RULES, NOW) == FIELD_LIMIT     # another branch, same field
    assert await q.reserve(res("c", "dat-dai", "3"), RULES, NOW) == TAKEN
    assert await q.reserve(res("d", "cu-tru", "1"), RULES, NOW) == DAILY_LIMIT
    # Both limits past: the field's is the one named, as hub.domain.limits.check does.
    assert await q.reserve(res("e", "dat-dai", "2"), RULES, NOW) == FIELD_LIMIT
    held = await q.held("cit-A", DAY)
    assert sorted((r.id, r.branch, r.field) for r in held) == [("a", "1", "ho-tich"), ("c", "3", "dat-dai")]


async def test_the_limits_are_the_policys(store):
    wide = Limits(per_field=2, per_day=3)
    answers = [await store.quotas.reserve(res(str(i), "ho-tich" if i < 3 else "dat-dai"), wide, NOW) for i in range(5)]
    assert answers == [TAKEN, TAKEN, FIELD_LIMIT, TAKEN, DAILY_LIMIT]


async def test_a_reservation_taken_again_is_held_and_counts_once(store):
    q = store.quotas
    assert await q.reserve(res("idem-1"), RULES, NOW) == TAKEN
    for _ in range(3):
        assert await q.reserve(res("idem-1"), RULES, NOW) == HELD
    assert len(await q.held("cit-A", DAY)) == 1
    assert await q.reserve(res("other", "dat-dai"), RULES, NOW) == TAKEN        # the second of the day


async def test_a_released_reservation_is_given_back_once(store):
    q = store.quotas
    assert await q.reserve(res("a"), RULES, NOW) == TAKEN
    assert await q.reserve(res("b"), RULES, NOW) == FIELD_LIMIT
    assert await q.release(res("a")) is True
    assert await q.release(res("a")) is False                               # nothing left to give back
    assert await q.release(res("never")) is False
    assert await q.reserve(res("b"), RULES, NOW) == TAKEN
    assert [r.id for r in await q.held("cit-A", DAY)] == ["b"]


async def test_citizens_and_days_are_counted_apart(store):
    q = store.quotas
    for citizen in ("cit-A", "cit-B"):
        for day in (DAY, DAY + timedelta(days=1)):
            assert await q.reserve(res("x", citizen=citizen, day=day), RULES, NOW) == TAKEN
            assert await q.reserve(res("y", citizen=citizen, day=day), RULES, NOW) == FIELD_LIMIT
    assert [r.id for r in await q.held("cit-B", DAY + timedelta(days=1))] == ["x"]
    assert await q.held("cit-C", DAY) == []


async def test_a_reservation_is_kept_until_two_days_after_its_day(store_url, store):
    await store.quotas.reserve(res("a"), RULES, NOW)
    expected = lifetime(DAY, NOW)           # from 09:00 +07 to 21 May 00:00 UTC
    assert expected == int((datetime(2026, 5, 21, tzinfo=UTC) - NOW).total_seconds())
    if store_url.startswith("sqlite:///"):
        db = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            [(expires,)] = db.execute("SELECT expires FROM quotas").fetchall()
        finally:
            db.close()
        left = expires - time.time()
    else:
        left = await store.quotas._r.ttl(store.quotas.key("cit-A", DAY))
    assert expected - 60 <= left <= expected
    assert lifetime(DAY, NOW + timedelta(days=5)) == 3600                 # a late one still lives an hour


async def test_many_tasks_through_two_connections_at_once_take_exactly_the_limits(open_instance, store):
    """20 citizens, each asking 8 times at once (4 fields x 2 branches), half through another
    connection (as another hub process would): each gets one per field and two in all. (Fewer
    than 100 at once through one Redis client: its pool's default size.)"""
    async with open_instance() as other:
        asks = [(s, res(f"{c}-{f}-{b}", f"f{f}", str(b), f"cit-{c}"))
                for c in range(20) for f in range(4) for b in range(2) for s in ((store, other)[(c + f + b) % 2],)]
        answers = await asyncio.gather(*(s.quotas.reserve(r, RULES, NOW) for s, r in asks))
    assert set(answers) <= set(ANSWERS) - {HELD}
    taken = collections.Counter(r.citizen for (_, r), a in zip(asks, answers) if a == TAKEN)
    assert taken == {f"cit-{c}": 2 for c in range(20)}
    for c in range(20):
        held = await store.quotas.held(f"cit-{c}", DAY)
        assert len(held) == 2 and len({r.field for r in held}) == 2


# One process's share of the test below: reserve every (citizen, field) at once on the file.
_WORKER = """
import asyncio, sys
from datetime import datetime
from hub.store import open_store
from hub.store.quotas import Limits, Reservation
async def main(url, me):
    now = datetime.fromisoformat(sys.argv[3])
    async with open_store(url) as s:
        asks = [Reservation(f"cit-{c}", now.date(), me, f"f{f}", f"{me}-{c}-{f}") for c in range(10) for f in range(3)]
        out = await asyncio.gather(*(s.quotas.reserve(r, Limits(1, 2), now) for r in asks))
    print(" ".join(f"{r.citizen}={a}" for r, a in zip(asks, out)))
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_processes_sharing_one_sqlite_file_take_exactly_the_limits(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, url, str(b), NOW.isoformat()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for b in range(4)]
    taken: collections.Counter[str] = collections.Counter()
    for p in procs:
        out, err = p.communicate(timeout=deadline(60))
        assert p.returncode == 0, err
        for pair in out.split():
            citizen, answer = pair.split("=")
            assert answer in (TAKEN, FIELD_LIMIT, DAILY_LIMIT), answer
            taken[citizen] += answer == TAKEN
    assert taken == {f"cit-{c}": 2 for c in range(10)}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_version_3_sqlite_file_gains_the_table(store_url):
    """A database written before the reservations (schema 3) opens and keeps them."""
    path = store_url.removeprefix("sqlite:///")
    async with open_store(store_url) as s:
        await s.quotas.reserve(res("a"), RULES, NOW)
    with sqlite3.connect(path) as db:                   # back to what schema 3 had
        db.execute("DROP TABLE quotas")
        db.execute("PRAGMA user_version=3")
    async with open_store(store_url) as s:
        assert await s.quotas.held("cit-A", DAY) == []
        assert await s.quotas.reserve(res("b"), RULES, NOW) == TAKEN
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert SCHEMA_VERSION >= 4                      # the version that added the reservations
