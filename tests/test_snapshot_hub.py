"""A hub that starts its branches from their snapshots and the events after them answers as the
hub before it did; a trimmed day is still exported from the archive, byte for byte; a feed
resuming from before what the log keeps gets a snapshot.

On the real app in-process (lifespan and loops), over a real SQLite file or the test Redis, with
two days of the branch simulator's events in the store (hub.sim), then live commands through the
API after the snapshots were written (the tail)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.archive import Archive
from hub.clock import ManualClock
from hub.domain.state import fold
from hub.feeds.fanout import MAX_REPLAY
from hub.service.trim import trim_branch
from hub.sim.run import simulate
from hub.store import open_store
from tests.test_snapshot_properties import assert_same

from conftest import SECRET, bearer, running_app

pytestmark = pytest.mark.anyio

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WEDNESDAY_9AM = datetime(2026, 5, 20, 9, 0, tzinfo=TZ)       # after the simulated Monday and Tuesday
BRANCHES = ("1", "2")


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def hub_settings(request, settings, tmp_path):
    database = settings.database if request.param == "sqlite" else request.getfixturevalue("redis_url")
    return dataclasses.replace(settings, database=database, log_archive=str(tmp_path / "archive"))


async def populate(settings, centre) -> None:
    async with open_store(settings.database) as store:
        for b in BRANCHES:
            evs = list(simulate(centre.branches[b], TZ, days=2))
            for i in range(0, len(evs), 250):
                await store.log.append(b, i, evs[i:i + 250])


async def answers(client, tokens: list[str]) -> dict:
    out = {}
    for b in BRANCHES:
        r = await client.get(f"/api/branches/{b}")
        assert r.status_code == 200, r.text
        out[b] = r.json()
    for t in tokens:
        r = await client.get(f"/api/tickets/{t}")
        assert r.status_code == 200, r.text
        out[t] = r.json()
    return out


async def test_a_restarted_hub_starts_from_snapshots_and_answers_as_before(hub_settings, centre):
    await populate(hub_settings, centre)
    clock = ManualClock(WEDNESDAY_9AM)
    async with running_app(hub_settings, clock) as a:
        branches, tokens = a.app.state.service.branches, a.app.state.tokens
        assert all(branches.started_from[b] == 0 for b in BRANCHES)        # no snapshot yet: the full fold
        # The app's own loop may be writing some as well: what counts is what the store keeps.
        snapshotter = a.app.state.snapshots
        await snapshotter.step()
        written = {b: branches.states[b].seq for b in BRANCHES}
        for b in BRANCHES:
            kept = await snapshotter.store.get(b)
            assert kept is not None and kept.seq == written[b], (b, kept and kept.seq, written[b])
        assert not any(snapshotter.due(b) for b in BRANCHES)                # nothing new: none due
        # The tail: live commands after the snapshots.
        staff = bearer(tokens.staff("1"))
        assert (await a.post("/api/branches/1/counters/1/open", json={}, headers=staff)).status_code == 200
        held = []
        for _ in range(3):
            r = await a.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})
            assert r.status_code == 201, r.text
            held.append(r.json()["token"])
        assert (await a.post("/api/branches/1/counters/1/call-next", headers=staff)).status_code == 200
        before = await answers(a, held)
        seqs = {b: branches.states[b].seq for b in BRANCHES}
    assert seqs["1"] > written["1"]
    async with running_app(hub_settings, clock) as b:
        branches = b.app.state.service.branches
        assert branches.started_from == {**branches.started_from, **written}    # from the snapshots
        assert {x: branches.states[x].seq for x in BRANCHES} == seqs
        assert await answers(b, held) == before
        async with open_store(hub_settings.database) as store:
            for x in BRANCHES:
                full = fold(branches.centre.branches[x], await store.log.events_since(x, 0))
                assert_same(branches.states[x], full, clock.now())


async def test_a_trimmed_day_is_exported_from_the_archive_as_before(hub_settings, centre, tmp_path):
    await populate(hub_settings, centre)
    clock = ManualClock(WEDNESDAY_9AM)
    async with running_app(hub_settings, clock) as a:
        await a.app.state.snapshots.step()
    env = {"PATH": "/usr/bin:/bin", "QUEUECAST_DATABASE": hub_settings.database, "QUEUECAST_SECRET": SECRET,
           "QUEUECAST_CONFIG": hub_settings.config, "QUEUECAST_LOG_ARCHIVE": hub_settings.log_archive}

    def export(day: str) -> str:
        p = subprocess.run([sys.executable, "-m", "hub", "export-trace", "--branch", "1", "--date", day],
                           env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout

    before = {d: export(d) for d in ("2026-05-18", "2026-05-19")}
    assert all(before.values())
    async with open_store(hub_settings.database) as store:
        trimmed = await trim_branch(store.log, store.snapshots, Archive(hub_settings.log_archive), "1",
                                    date(2026, 5, 19))
        assert trimmed > 0
        # Gone from the log, but for the 18th's numbers expired at the 19th's close (after its first
        # events): the trim is a prefix of the log.
        left = await store.log.events_of_day("1", date(2026, 5, 18))
        assert [ev["type"] for ev in left] == ["ticket.expired"] * len(left)
        assert all(ev["seq"] > trimmed for ev in left)
    assert {d: export(d) for d in before} == before
    # A hub started now starts from the snapshot (the log no longer has the start) ...
    async with running_app(hub_settings, clock) as b:
        service = b.app.state.service
        assert service.branches.started_from["1"] > trimmed
        # ... and a board resuming from a seq the log no longer keeps gets a snapshot, not a gap.
        head = service.states["1"].seq
        assert head - 1 <= MAX_REPLAY              # near enough to replay, were the events there
        frames, sub = await b.app.state.feeds.open_board("1", 1, service.epochs["1"])
        try:
            assert [(f.seq, json.loads(f.text)["type"]) for f in frames] == [(head, "snapshot")]
        finally:
            sub.close("gone")
