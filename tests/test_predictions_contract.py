"""The recorded-predictions contract (hub.store.predictions) every storage backend must pass, run
unchanged against each one on the storage of tests/store_backends.py: real SQLite files, the real
Redis of the test setup."""
from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from hub.store import open_store
from hub.store.sqlite_db import SCHEMA_VERSION

from store_backends import anyio_backend, open_instance, store, store_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

DAY = date(2026, 5, 19)
EVE = date(2026, 5, 18)
T9 = datetime(2026, 5, 19, 9, 0, tzinfo=timezone(timedelta(hours=7)))


def line(minute: int, n: int, p50: float = 10.0, t0: datetime = T9) -> dict:
    """A line of the replay's format: number n's prediction at 09:00 + minute."""
    t = (t0 + timedelta(minutes=minute)).isoformat(timespec="seconds")
    return {"t": t, "ticket": f"20260519-{1000 + n}", "p10": p50 / 2, "p50": p50, "p90": p50 * 2}


async def test_lines_come_back_as_given_in_time_order(store):
    assert await store.predictions.of_day("1", DAY) == []
    first = [line(5, 1), line(5, 2), line(5, 3)]
    later = [line(10, 1, 7.5), line(10, 3, 2.0)]
    await store.predictions.add("1", DAY, first)
    await store.predictions.add("1", DAY, later)
    assert await store.predictions.of_day("1", DAY) == first + later


async def test_a_point_is_kept_once_the_first_line_wins(store):
    await store.predictions.add("1", DAY, [line(5, 1, 10.0), line(5, 2, 20.0)])
    # another hub process publishes the same points (and one new one): only the new one is added
    await store.predictions.add("1", DAY, [line(5, 2, 99.0), line(5, 1, 98.0), line(5, 4, 40.0)])
    got = await store.predictions.of_day("1", DAY)
    assert got == [line(5, 1, 10.0), line(5, 2, 20.0), line(5, 4, 40.0)]
    # the same instant written with another UTC offset is the same point
    utc = {**line(5, 1, 55.0), "t": (T9 + timedelta(minutes=5)).astimezone(UTC).isoformat()}
    await store.predictions.add("1", DAY, [utc])
    assert await store.predictions.of_day("1", DAY) == got
    # the same ticket at another time, or another ticket at the same time, is another point
    await store.predictions.add("1", DAY, [line(6, 1, 9.0), line(5, 5, 50.0)])
    assert len(await store.predictions.of_day("1", DAY)) == 5


async def test_ordered_by_instant_then_by_insertion(store):
    await store.predictions.add("1", DAY, [line(10, 3), line(10, 1)])
    await store.predictions.add("1", DAY, [line(5, 2), line(10, 2), line(0, 9)])
    got = [(x["t"][11:16], x["ticket"][-2:]) for x in await store.predictions.of_day("1", DAY)]
    assert got == [("09:00", "09"), ("09:05", "02"), ("09:10", "03"), ("09:10", "01"), ("09:10", "02")]
    # instants, not spellings: 02:07Z is 09:07+07:00, between the two
    utc = {**line(7, 8), "t": (T9 + timedelta(minutes=7)).astimezone(UTC).isoformat()}
    await store.predictions.add("1", DAY, [utc])
    got = await store.predictions.of_day("1", DAY)
    assert [x["ticket"][-2:] for x in got] == ["09", "02", "08", "03", "01", "02"]
    assert got[2] == utc


async def test_days_and_branches_are_kept_apart(store):
    eve = [line(-13 * 60 + 35, 1)]                 # 20:35 the evening before, for DAY's online number
    await store.predictions.add("1", DAY, eve)
    await store.predictions.add("1", DAY, [line(5, 1)])
    await store.predictions.add("1", EVE, [line(-13 * 60 + 35, 7)])
    await store.predictions.add("2", DAY, [line(5, 1, 3.0)])
    assert await store.predictions.of_day("1", DAY) == eve + [line(5, 1)]
    assert await store.predictions.of_day("1", EVE) == [line(-13 * 60 + 35, 7)]
    assert await store.predictions.of_day("2", DAY) == [line(5, 1, 3.0)]
    assert await store.predictions.of_day("3", DAY) == []
    await store.predictions.add("1", DAY, [])                       # nothing to write is no error
    assert len(await store.predictions.of_day("1", DAY)) == 2


async def test_prune_forgets_the_days_before_and_only_of_that_branch(store):
    days = [DAY - timedelta(days=k) for k in (3, 2, 1, 0)]
    for i, d in enumerate(days):
        await store.predictions.add("1", d, [line(5, i)])
    await store.predictions.add("2", days[0], [line(5, 9)])
    assert await store.predictions.prune("1", DAY - timedelta(days=1)) == 2
    assert [len(await store.predictions.of_day("1", d)) for d in days] == [0, 0, 1, 1]
    assert await store.predictions.of_day("2", days[0]) == [line(5, 9)]          # another branch's
    assert await store.predictions.prune("1", DAY - timedelta(days=1)) == 0       # nothing left to forget
    # a day forgotten starts afresh: its points are no longer "kept already"
    await store.predictions.add("1", days[0], [line(5, 0, 42.0)])
    assert await store.predictions.of_day("1", days[0]) == [line(5, 0, 42.0)]


async def test_extra_fields_are_kept_and_bad_lines_refused(store):
    extra = {**line(5, 1), "note": "kept"}
    await store.predictions.add("1", DAY, [extra])
    assert await store.predictions.of_day("1", DAY) == [extra]
    for bad in ({k: v for k, v in line(5, 2).items() if k != "p50"}, {**line(5, 2), "t": "2026-05-19T09:05:00"},
                {**line(5, 2), "ticket": ""}, {**line(5, 2), "t": "soon"}):
        with pytest.raises(ValueError):
            await store.predictions.add("1", DAY, [line(5, 3), bad])
    assert await store.predictions.of_day("1", DAY) == [extra]      # a refused batch writes nothing


async def test_kept_across_instances_and_concurrent_writers(store, open_instance):
    batch = [line(5 * k, n, float(k)) for k in range(12) for n in range(1, 21)]
    async with open_instance() as a, open_instance() as b:
        # two hub processes record the same points at once, one of them in the opposite order
        await asyncio.gather(*(a.predictions.add("1", DAY, batch[i:i + 40]) for i in range(0, len(batch), 40)),
                             *(b.predictions.add("1", DAY, batch[i:i + 40][::-1]) for i in range(0, len(batch), 40)))
    got = await store.predictions.of_day("1", DAY)
    assert sorted((x["t"], x["ticket"]) for x in got) == sorted((x["t"], x["ticket"]) for x in batch)
    assert [x["t"] for x in got] == sorted(x["t"] for x in got)
    by_point = {(x["t"], x["ticket"]): x for x in batch}
    assert all(x == by_point[x["t"], x["ticket"]] for x in got)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_version_2_sqlite_file_gains_the_table(store_url, tmp_path):
    """A database written before predictions were recorded (schema 2) opens and records them."""
    path = store_url.removeprefix("sqlite:///")
    async with open_store(store_url) as s:
        await s.predictions.add("1", DAY, [line(5, 1)])
    with sqlite3.connect(path) as db:                   # back to what schema 2 had
        db.execute("DROP TABLE predictions")
        db.execute("PRAGMA user_version=2")
    async with open_store(store_url) as s:
        assert await s.predictions.of_day("1", DAY) == []
        await s.predictions.add("1", DAY, [line(5, 2)])
        assert await s.predictions.of_day("1", DAY) == [line(5, 2)]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)     # and every later table
