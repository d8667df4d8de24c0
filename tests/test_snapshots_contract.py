"""Branch snapshots (hub.store.snapshots), starting from them (hub.service.snapshots.load_state) and
trimming the log behind them with an archive (hub.service.trim), on every storage backend of
tests/store_backends.py (real SQLite files, a real Redis, Cluster and Sentinel set).

The logs are the branch simulator's (hub.sim: three working days of a busy branch, as the hub
logs them), appended through the store's own `append`."""
from __future__ import annotations

import dataclasses
import json
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from hub.archive import Archive, of_day
from hub.config import load_config
from hub.domain.events import in_trace, to_trace
from hub.domain.snapshot import to_json
from hub.domain.state import fold
from hub.service.branches import Branches
from hub.service.snapshots import TrimmedLog, load_state, spelling
from hub.service.trim import trim_branch
from hub.sim.run import simulate
from hub.store.snapshots import Snapshot
from tests.test_snapshot_properties import assert_same

from store_backends import anyio_backend, open_instance, store, store_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

CENTRE = load_config()
BRANCH = CENTRE.branches["1"]
ZONE = ZoneInfo(CENTRE.timezone)
EVENTS = [{**ev, "seq": i} for i, ev in enumerate(simulate(BRANCH, ZONE, days=3), start=1)]
DAYS = sorted({ev["day"] for ev in EVENTS})             # 2026-05-18 .. 20, and online numbers of the 21st


async def append_all(log, events, batch=250):
    for i in range(0, len(events), batch):
        await log.append(BRANCH.id, events[i]["seq"] - 1, [{k: v for k, v in ev.items() if k != "seq"}
                                                           for ev in events[i:i + batch]])


def snapshot_at(k: int, epoch: str) -> Snapshot:
    st = fold(BRANCH, EVENTS[:k])
    return Snapshot(k, epoch, spelling(EVENTS[k - 1]), json.dumps(to_json(st), ensure_ascii=False))


async def test_a_snapshot_is_kept_and_only_a_newer_one_of_its_epoch_replaces_it(store, open_instance):
    snaps = store.snapshots
    assert await snaps.get("1") is None
    first = Snapshot(10, "e1", "tip-10", json.dumps({"tên": "Phường Hoàn Kiếm"}, ensure_ascii=False))
    assert await snaps.put("1", first)
    assert await snaps.get("1") == first
    assert await snaps.get("2") is None                           # per branch
    assert not await snaps.put("1", Snapshot(9, "e1", "tip-9", "{}"))      # older, same epoch: refused
    assert await snaps.get("1") == first
    assert await snaps.put("1", Snapshot(10, "e1", "tip-10b", "{}"))       # the same seq again: kept
    later = Snapshot(20, "e1", "tip-20", "{}")
    assert await snaps.put("1", later)
    other = Snapshot(3, "e2", "tip-3", "{}")                     # another epoch: replaces, whatever its seq
    assert await snaps.put("1", other)
    async with open_instance() as again:                          # stored, not held by the instance
        assert await again.snapshots.get("1") == other


async def test_a_start_from_the_snapshot_and_the_tail_is_the_full_fold(store):
    await append_all(store.log, EVENTS)
    head = await store.log.head(BRANCH.id)
    full = await load_state(BRANCH, store.log, store.snapshots)
    assert full.started_from == 0 and full.state.seq == len(EVENTS) and full.epoch == head.epoch
    k = len(EVENTS) * 2 // 3
    assert await store.snapshots.put(BRANCH.id, snapshot_at(k, head.epoch))
    got = await load_state(BRANCH, store.log, store.snapshots)
    assert got.started_from == k and got.tip == spelling(EVENTS[-1]) and got.epoch == head.epoch
    assert_same(got.state, full.state, got.state.eta.observed.now)


async def test_a_snapshot_the_log_does_not_end_at_is_not_used(store):
    await append_all(store.log, EVENTS[:300])
    head = await store.log.head(BRANCH.id)
    wrong = snapshot_at(200, head.epoch)
    await store.snapshots.put(BRANCH.id, Snapshot(200, head.epoch, spelling(EVENTS[201]), wrong.data))
    got = await load_state(BRANCH, store.log, store.snapshots)
    assert got.started_from == 0 and got.state.seq == 300
    await store.snapshots.put(BRANCH.id, snapshot_at(300, head.epoch))
    ahead = Snapshot(400, head.epoch, spelling(EVENTS[399]), snapshot_at(300, head.epoch).data)
    await store.snapshots.put(BRANCH.id, ahead)                   # past the head: a log that went back
    assert (await load_state(BRANCH, store.log, store.snapshots)).started_from == 0


async def test_trimmed_days_are_archived_first_and_export_as_before(store, tmp_path):
    await append_all(store.log, EVENTS)
    head = await store.log.head(BRANCH.id)
    before = {d: await store.log.events_of_day(BRANCH.id, date.fromisoformat(d)) for d in DAYS}
    archive = Archive(tmp_path / "archive")
    cut = date(2026, 5, 20)                                       # keep the 20th on: trim the 18th and 19th
    # No snapshot yet: nothing may go (a start would need the trimmed events).
    assert await trim_branch(store.log, store.snapshots, archive, BRANCH.id, cut) == 0
    assert (await store.log.events_since(BRANCH.id, 0, 1))[0]["seq"] == 1
    await store.snapshots.put(BRANCH.id, snapshot_at(len(EVENTS), head.epoch))
    trimmed = await trim_branch(store.log, store.snapshots, archive, BRANCH.id, cut)
    first_kept = (await store.log.events_since(BRANCH.id, 0, 1))[0]
    assert trimmed == first_kept["seq"] - 1 > 0
    # Exactly a prefix: every event before the first of a day inside the window.
    assert all(ev["day"] < "2026-05-20" for ev in EVENTS[:trimmed]) and EVENTS[trimmed]["day"] >= "2026-05-20"
    for d in DAYS:
        day = date.fromisoformat(d)
        kept = await store.log.events_of_day(BRANCH.id, day)
        if d < "2026-05-20":
            assert kept == [] and archive.read(BRANCH.id, day) == before[d]
        assert of_day(str(archive.directory), BRANCH.id, day, kept) == before[d]
        trace = [to_trace(ev) for ev in of_day(str(archive.directory), BRANCH.id, day, kept) if in_trace(ev)]
        assert trace == [to_trace(ev) for ev in before[d] if in_trace(ev)]
    # Again: idempotent, nothing more to trim, the archive unchanged.
    files = {p: p.read_bytes() for p in archive.directory.rglob("*.jsonl")}
    assert await trim_branch(store.log, store.snapshots, archive, BRANCH.id, cut) == 0
    assert {p: p.read_bytes() for p in archive.directory.rglob("*.jsonl")} == files
    # A start: from the snapshot; without one, from the archive and the log; with neither, refused.
    full = fold(BRANCH, EVENTS)
    got = await load_state(BRANCH, store.log, store.snapshots)
    assert got.started_from == len(EVENTS)
    await store.snapshots.put(BRANCH.id, Snapshot(len(EVENTS), head.epoch, "not the tip", "{}"))
    again = await load_state(BRANCH, store.log, store.snapshots, archive)
    assert again.started_from == 0
    assert_same(again.state, full, full.eta.observed.now)
    with pytest.raises(TrimmedLog):
        await load_state(BRANCH, store.log, store.snapshots)


async def test_the_trim_stops_before_the_snapshot(store, tmp_path):
    await append_all(store.log, EVENTS)
    head = await store.log.head(BRANCH.id)
    k = 500                                                       # a snapshot early on the 18th
    await store.snapshots.put(BRANCH.id, snapshot_at(k, head.epoch))
    archive = Archive(tmp_path / "archive")
    assert await trim_branch(store.log, store.snapshots, archive, BRANCH.id, date(2026, 5, 21)) == k - 1
    assert (await store.log.events_since(BRANCH.id, 0, 1))[0]["seq"] == k     # its tip is kept
    got = await load_state(BRANCH, store.log, store.snapshots)
    assert got.started_from == k
    assert_same(got.state, fold(BRANCH, EVENTS), got.state.eta.observed.now)
    # The 18th is only partly trimmed: its day index stays for the rest, the archive has it whole.
    day = date(2026, 5, 18)
    assert of_day(str(archive.directory), BRANCH.id, day, await store.log.events_of_day(BRANCH.id, day)) \
        == [ev for ev in EVENTS if ev["day"] == "2026-05-18"]


async def test_a_process_left_behind_the_trim_starts_again_and_resets_its_watchers(store, tmp_path):
    await append_all(store.log, EVENTS[:100])
    branches = Branches(dataclasses.replace(CENTRE, branches={BRANCH.id: BRANCH}), store.log, store.snapshots)
    await branches.hold_all()
    epoch, resets = branches.epochs[BRANCH.id], []
    branches.on_reset.append(resets.append)
    await append_all(store.log, EVENTS[100:])                    # other processes went on, for days
    await store.snapshots.put(BRANCH.id, snapshot_at(len(EVENTS), epoch))
    assert await trim_branch(store.log, store.snapshots, Archive(tmp_path), BRANCH.id, date(2026, 5, 20)) > 100
    await branches.catch_up(BRANCH.id)
    assert resets == [BRANCH.id]                                  # its watchers start again from a snapshot
    assert branches.epochs[BRANCH.id] == epoch == (await store.log.head(BRANCH.id)).epoch   # no new epoch
    assert branches.started_from[BRANCH.id] == len(EVENTS)
    assert_same(branches.states[BRANCH.id], fold(BRANCH, EVENTS), fold(BRANCH, EVENTS).eta.observed.now)
