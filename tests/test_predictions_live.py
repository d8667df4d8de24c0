"""The live hub publishes its ETA predictions on the replay's schedule and records them
(hub/predictions.py), and `export-trace --predictions` writes them in the replay's format.

The real app in-process on a real SQLite file (and the real Redis of the test setup for two hub
processes), its clock moved by the test (conftest `clock`): `Publisher.step` is what the hub's
loop runs every second, called here after the clock moves, as `service.tick` is in other tests.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import re
import sqlite3
import subprocess
import sys
from datetime import date, datetime

import pytest

from hub.auth import Tokens
from hub.domain.eta.calibration import MIN_SCORES
from hub.settings import Settings
from hub.store.sqlite_db import _SCHEMA

from conftest import SECRET, TZ, bearer, running_app
from waiting import deadline, until

pytestmark = pytest.mark.anyio

B = "1"                         # branch 1: counters 1-5 land, 6-7 civil status
LAND, CIVIL = "dat-dai", "ho-tich"
DAY1, DAY2 = date(2026, 5, 19), date(2026, 5, 20)      # a Tuesday and a Wednesday
STAFF = bearer(Tokens(SECRET).staff(B))
FIELDS = ["t", "ticket", "p10", "p50", "p90"]
ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00")
CLI_TIMEOUT = deadline(120)      # a hang guard on each command run, scaled


def at(clock, day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    """Move the hub's clock forward to that local time."""
    t = datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=TZ)
    assert t >= clock.current, (t, clock.current)
    clock.current = t
    return t


async def ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


async def issue(c, service: str = LAND, **body) -> dict:
    # Priority is given by staff (at the counter, or at a kiosk they enrolled); the lobby kiosk has none.
    headers = STAFF if body.get("priority") else {}
    return await ok(await c.post(f"/api/branches/{B}/tickets", json={"service": service, "channel": "kiosk", **body},
                                 headers=headers), 201)


async def staff(c, path: str, body: dict | None = None, status: int = 200) -> dict:
    return await ok(await c.post(f"/api/branches/{B}/{path}", json=body or {}, headers=STAFF), status)


async def close(c, counter: str) -> None:
    """Close a counter, completing its citizen first."""
    view = await ok(await c.get(f"/api/branches/{B}"))
    current = next(x["current"] for x in view["counters"] if x["id"] == counter)
    if current:
        await staff(c, f"tickets/{current['number']}/complete")
    await staff(c, f"counters/{counter}/close")


async def recorded(c, day: date = DAY1) -> list[dict]:
    return await c.app.state.storage.predictions.of_day(B, day)


def at_time(lines: list[dict], t: str) -> list[str]:
    return [x["ticket"] for x in lines if x["t"] == t]


def cli(database: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env.update({"QUEUECAST_DATABASE": database, "QUEUECAST_SECRET": SECRET})
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)


# -- the schedule ----------------------------------------------------------------------------------

async def test_issuing_records_one_line_per_number_at_its_issue_time(client, clock):
    pub = client.app.state.predictions
    await staff(client, "counters/1/open", {"services": [LAND]})
    await staff(client, "counters/6/open", {"services": [CIVIL]})
    answers = []
    for service in (LAND, LAND, CIVIL, LAND):
        clock.advance(seconds=41)                       # 09:00:41 ... 09:02:44: no boundary between
        answers.append(await issue(client, service))
    await pub.step()
    lines = await recorded(client)
    # A number's point is published once its second is over: the last one's is not yet.
    assert [x["ticket"] for x in lines] == [a["ticket"] for a in answers[:3]]
    clock.advance(seconds=1)
    await pub.step()
    lines = await recorded(client)
    # One line each, at its issue time, and it is what the number was told when it was issued:
    # the answer's eta is the same forecast, made at the same moment from the same state.
    assert lines == [{"t": a["issued_at"], "ticket": a["ticket"], **a["eta"]} for a in answers]
    assert all(x["p10"] <= x["p50"] <= x["p90"] for x in lines)
    assert lines[1]["p50"] > 0 and lines[3]["p50"] > lines[1]["p50"]     # the second in line waits longer
    assert await pub.step() == 0                                           # nothing twice
    assert await recorded(client) == lines


async def test_a_boundary_records_a_line_for_every_waiting_number(client, clock):
    pub = client.app.state.predictions
    await staff(client, "counters/1/open", {"services": [LAND]})
    at(clock, DAY1, 9, 1, 10)
    a = await issue(client)
    at(clock, DAY1, 9, 1, 20)
    b = await issue(client)
    at(clock, DAY1, 9, 1, 30)
    c = await issue(client, CIVIL, priority=True)              # no civil-status counter open yet
    at(clock, DAY1, 9, 2, 0)
    assert (await staff(client, "counters/1/call-next"))["ticket"]["number"] == a["number"]
    at(clock, DAY1, 9, 2, 30)
    d = await issue(client)
    at(clock, DAY1, 9, 3, 0)
    await ok(await client.delete(f"/api/tickets/{b['token']}"))   # given back: no longer waiting
    at(clock, DAY1, 9, 5, 0)
    e = await issue(client)                                        # taken on the boundary itself
    await pub.step()
    assert at_time(await recorded(client), "2026-05-19T09:05:00+07:00") == []   # its second is not over
    at(clock, DAY1, 9, 5, 1)
    await pub.step()
    lines = await recorded(client)
    # Every number waiting at 09:05, in calling order (priority first), the one taken at 09:05:00
    # included and recorded once; not the called one, not the one given back.
    assert at_time(lines, "2026-05-19T09:05:00+07:00") == [c["ticket"], d["ticket"], e["ticket"]]
    assert [x["t"] for x in lines] == ["2026-05-19T09:01:10+07:00", "2026-05-19T09:01:20+07:00",
                                       "2026-05-19T09:01:30+07:00", "2026-05-19T09:02:30+07:00"] + \
        ["2026-05-19T09:05:00+07:00"] * 3

    clock.advance(minutes=11)                                      # 09:16:01: two boundaries passed
    await pub.step()
    lines = await recorded(client)
    for t in ("2026-05-19T09:10:00+07:00", "2026-05-19T09:15:00+07:00"):
        assert at_time(lines, t) == [c["ticket"], d["ticket"], e["ticket"]]
    assert len({(x["t"], x["ticket"]) for x in lines}) == len(lines) == 13

    await staff(client, "counters/6/open", {"services": [CIVIL]})
    assert (await staff(client, "counters/6/call-next"))["ticket"]["number"] == c["number"]
    at(clock, DAY1, 9, 20, 5)
    f = await issue(client)
    # the 09:20 boundary is published before anything of 09:20:05 is folded, whether the loop or
    # the command got there first: the number called at 09:16 is not in it, the one of 09:20:05 neither
    await pub.step()
    assert at_time(await recorded(client), "2026-05-19T09:20:00+07:00") == [d["ticket"], e["ticket"]]
    assert f["ticket"] not in {x["ticket"] for x in await recorded(client)}
    assert pub.passed_over == 0


async def test_a_failed_write_never_fails_a_command_and_is_written_later(client, clock, settings, caplog):
    pub = client.app.state.predictions
    with sqlite3.connect(settings.sqlite_path()) as db:            # the store refuses every write
        db.execute("DROP TABLE predictions")
    at(clock, DAY1, 9, 0, 30)
    a = await issue(client)
    at(clock, DAY1, 9, 0, 31)
    b = await issue(client)                                        # the command succeeds all the same
    with caplog.at_level(logging.WARNING, logger="queuecast.predictions"):
        await pub.step()
    assert any(r.getMessage() == "predictions not recorded yet" for r in caplog.records)
    with sqlite3.connect(settings.sqlite_path()) as db:            # the store is back
        for statement in _SCHEMA:
            if "predictions" in statement:
                db.execute(statement)
    at(clock, DAY1, 9, 0, 32)
    await pub.step()
    assert [(x["t"], x["ticket"]) for x in await recorded(client)] == [(a["issued_at"], a["ticket"]),
                                                                        (b["issued_at"], b["ticket"])]


# -- the important one: the live hub publishes what the replay of its log publishes --------------

async def busy_hours(c, clock, rng: random.Random, until: datetime, counters: list[str], issue_share: float) -> None:
    """Numbers taken and called at random moments until `until` (at most 400 steps), with now and
    then a number skipped, transferred or given back; the loop's step after every other move."""
    pub = c.app.state.predictions
    for _ in range(400):
        clock.advance(seconds=rng.randint(15, 170))
        if clock.current >= until:
            return
        if rng.random() < issue_share:
            body = {"priority": True} if rng.random() < 0.08 else {}
            t = await issue(c, rng.choice((LAND, LAND, CIVIL)), **body)
            if rng.random() < 0.04:
                clock.advance(seconds=rng.randint(1, 60))
                await ok(await c.delete(f"/api/tickets/{t['token']}"))
        else:
            r = await c.post(f"/api/branches/{B}/counters/{rng.choice(counters)}/call-next", json={}, headers=STAFF)
            assert r.status_code in (200, 409), r.text
            if r.status_code == 200 and rng.random() < 0.12:
                number = r.json()["ticket"]["number"]
                clock.advance(seconds=rng.randint(1, 90))
                if rng.random() < 0.5:
                    await staff(c, f"tickets/{number}/skip")
                else:
                    other = CIVIL if r.json()["ticket"]["service"] == LAND else LAND
                    await staff(c, f"tickets/{number}/transfer", {"service": other})
        if rng.random() < 0.5:
            await pub.step()


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_live_predictions_are_the_replays_of_the_exported_days(tmp_path, settings, clock, store, request):
    """Two service days driven through the API, with the evening's online numbers between them:
    the predictions the hub recorded are, line for line, what `queuecast eta replay` writes for
    the same two days exported with `export-trace`.

    Nothing may differ here: one hub process saw every event as it happened and ran throughout.
    What could differ elsewhere, and why: points the hub was not running for (a restart; its
    calibration also starts empty again, as the state is rebuilt from the log without publishing);
    points a process passed over because it caught up with other processes' events in a batch
    (counted in `Publisher.passed_over`; the process that made the event publishes them); and the
    replay stops at a trace's last event while the hub goes on for numbers still waiting (none
    here: every day ends with its numbers expired)."""
    if store == "redis":        # a log other processes may append to: each change's forecast made with it
        settings = dataclasses.replace(settings, database=request.getfixturevalue("redis_url"))
    rng = random.Random(20260519)
    tokens = Tokens(SECRET)
    async with running_app(settings, clock) as c:
        pub = c.app.state.predictions
        for counter, services in (("1", [LAND]), ("2", [LAND]), ("6", [CIVIL])):
            await staff(c, f"counters/{counter}/open", {"services": services})
        await busy_hours(c, clock, rng, at_limit(DAY1, 11, 0), ["1", "2", "6"], 0.58)
        await close(c, "2")                                                      # a break
        await busy_hours(c, clock, rng, at_limit(DAY1, 11, 40), ["1", "6"], 0.5)
        await staff(c, "counters/2/open", {"services": [LAND]})
        await busy_hours(c, clock, rng, at_limit(DAY1, 12, 30), ["1", "2", "6"], 0.5)
        for counter in ("1", "2", "6"):
            await close(c, counter)
        at(clock, DAY1, 17, 0, 0)
        assert await c.app.state.service.tick() > 0                              # the rest expire

        # The evening: online numbers for Wednesday; one is given back, and phones look at theirs
        # between points (a page's forecast must not stand in for a point's).
        online = []
        for i, (hh, mm, ss) in enumerate(((20, 5, 13), (20, 17, 40), (20, 29, 2), (20, 33, 51), (21, 2, 9),
                                          (21, 40, 0), (22, 13, 27), (23, 58, 30))):
            at(clock, DAY1, hh, mm, ss)
            cccd = f"0010901{i:05d}"
            r = await c.post(f"/api/branches/{B}/tickets", json={"service": (LAND, CIVIL)[i % 2], "channel": "online"},
                             headers=bearer(tokens.citizen(cccd)))
            online.append(await ok(r, 201))
            if (hh, mm) == (20, 33):
                at(clock, DAY1, 20, 41, 7)
                await ok(await c.delete(f"/api/tickets/{online[1]['token']}"))
                at(clock, DAY1, 20, 42, 30)
                await ok(await c.get(f"/api/tickets/{online[0]['token']}"))
        at(clock, DAY2, 7, 50, 11)
        await staff(c, f"tickets/{online[2]['number']}/check-in")                # early, before opening
        at(clock, DAY2, 7, 51, 40)
        await ok(await c.get(f"/api/tickets/{online[3]['token']}"))

        at(clock, DAY2, 8, 0, 0)
        for counter, services in (("1", [LAND]), ("2", [LAND]), ("3", [LAND]), ("6", [CIVIL])):
            await staff(c, f"counters/{counter}/open", {"services": services})
        await busy_hours(c, clock, rng, at_limit(DAY2, 11, 45), ["1", "2", "3", "6"], 0.55)
        for counter in ("1", "2", "3", "6"):
            await close(c, counter)
        at(clock, DAY2, 17, 0, 0)
        await c.app.state.service.tick()
        clock.advance(seconds=1)
        await pub.step()
        assert pub.passed_over == 0
        # The point of publishing: the live calibration has learned from its own predictions' outcomes.
        learned = sum(len(band) for band in c.app.state.service.states[B].eta.calibration.scores)
        assert learned >= MIN_SCORES, learned
        published = pub.published

    traces, recorded_text = [], []
    for day in (DAY1, DAY2):
        trace, predictions = tmp_path / f"{day}.jsonl", tmp_path / f"{day}.predictions.jsonl"
        p = cli(settings.database, "export-trace", "--branch", B, "--date", day.isoformat(), "-o", str(trace),
                "--predictions", str(predictions))
        assert p.returncode == 0 and p.stdout == "", p.stderr
        traces.append(trace.read_text(encoding="utf-8"))
        recorded_text.append(predictions.read_text(encoding="utf-8"))
    both = tmp_path / "both.jsonl"
    both.write_text("".join(traces), encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "hub", "eta", "replay", str(both)], capture_output=True, text=True,
                       timeout=CLI_TIMEOUT, env={k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")})
    assert p.returncode == 0, p.stderr

    live = "".join(recorded_text).splitlines()
    replayed = p.stdout.splitlines()
    assert len(live) == published and len(replayed) > 1000
    evening = [json.loads(x) for x in recorded_text[1].splitlines() if json.loads(x)["t"].startswith("2026-05-19")]
    assert len({x["t"] for x in evening}) > 40             # Wednesday's file has the evening before
    first = next((i for i, (a, b) in enumerate(zip(live, replayed)) if a != b), None)
    assert first is None and len(live) == len(replayed), (
        f"live and replay part at line {first}: live {live[first:first + 3]} replay {replayed[first:first + 3]}"
        if first is not None else f"{len(live)} live lines, {len(replayed)} replayed")

    # What the recording is for: scoring the real days afterwards. Every published line is matched.
    published_file = tmp_path / "both.predictions.jsonl"
    published_file.write_text("".join(recorded_text), encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "hub", "eta", "score", str(both), str(published_file), "--json"],
                       capture_output=True, text=True, timeout=CLI_TIMEOUT,
                       env={k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")})
    assert p.returncode == 0, p.stderr
    figures = json.loads(p.stdout)
    assert (figures["schedule_points"], figures["unpredicted"], figures["stray"]) == (len(live), 0, 0)
    assert figures["scored"] + figures["never_called"] == len(live)


def at_limit(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)


# -- export-trace --predictions --------------------------------------------------------------------

async def test_export_trace_writes_the_recorded_predictions_in_the_replay_format(tmp_path, settings, clock):
    async with running_app(settings, clock) as c:
        await staff(c, "counters/1/open", {"services": [LAND]})
        answers = []
        for s in (13, 44, 59):
            at(clock, DAY1, 9, 1, s)
            answers.append(await issue(c))
        at(clock, DAY1, 9, 2, 30)
        await staff(c, "counters/1/call-next")
        at(clock, DAY1, 9, 10, 1)
        await c.app.state.predictions.step()
        kept = await recorded(c)
    trace, out = tmp_path / "trace.jsonl", tmp_path / "predictions.jsonl"
    plain = cli(settings.database, "export-trace", "--branch", B, "--date", "2026-05-19")
    p = cli(settings.database, "export-trace", "--branch", B, "--date", "2026-05-19", "-o", str(trace),
            "--predictions", str(out))
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stderr
    assert trace.read_text(encoding="utf-8") == plain.stdout          # the trace is the same with or without
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [json.loads(x) for x in text.splitlines()]
    assert lines == kept and len(lines) == 3 + 2 + 2                  # issued; 09:05 and 09:10 for two waiting
    for x in lines:
        assert list(x) == FIELDS                                      # the replay's fields, in its order
        assert ISO_SECONDS.fullmatch(x["t"])
        assert all(isinstance(x[k], float) for k in FIELDS[2:]) and 0 <= x["p10"] <= x["p50"] <= x["p90"]
    assert [x["t"] for x in lines] == sorted(x["t"] for x in lines)
    assert text.splitlines()[0] == json.dumps(lines[0], separators=(",", ":"))   # as `eta replay` writes it
    issued = [(e["t"], e["ticket"]) for e in map(json.loads, plain.stdout.splitlines()) if e["type"] == "ticket.issued"]
    assert [(x["t"], x["ticket"]) for x in lines[:3]] == issued

    other_day = tmp_path / "other.jsonl"
    p = cli(settings.database, "export-trace", "--branch", B, "--date", "2026-05-18", "--predictions", str(other_day))
    assert p.returncode == 0 and p.stdout == "" and other_day.read_text() == ""
    for bad, words in (([str(trace)], "--predictions"), ([str(tmp_path / "no" / "such" / "dir.jsonl")], "cannot write")):
        p = cli(settings.database, "export-trace", "--branch", B, "--date", "2026-05-19", "-o", str(trace),
                "--predictions", *bad)
        assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert words in p.stderr and "Traceback" not in p.stderr
    assert trace.read_text(encoding="utf-8") == plain.stdout          # a refused export wrote nothing


# -- several hub processes --------------------------------------------------------------------------

async def test_two_hub_processes_publish_the_same_points_and_each_is_kept_once(redis_url, clock, lobby_config):
    """Two hubs on one Redis (in this process, each with its own store, broker and state): the one
    that learns the events from the other publishes the same points, and the store keeps one line each.
    It simulates none of them: it publishes the forecasts the other sent (the boundary's once it came)."""

    settings = Settings(database=redis_url, secret=SECRET, issue_rate="1000/60", notifier="worker",
                        config=lobby_config)
    async with running_app(settings, clock) as a, running_app(settings, clock) as b:
        await staff(a, "counters/1/open", {"services": [LAND]})
        for s in (10, 25, 47, 58):
            at(clock, DAY1, 9, 3, s)
            await issue(a)
            await until(lambda: b.app.state.service.states[B].seq >= a.app.state.service.states[B].seq,
                        "b to follow a through the Redis broker", interval=0.01)
        at(clock, DAY1, 9, 5, 1)
        pa, pb = a.app.state.predictions, b.app.state.predictions
        await pa.step()

        async def b_done() -> bool:        # every point published or passed over: b waits for none
            await pb.step()
            return pb.published + pb.passed_over >= 4 + 4
        await until(b_done, lambda: f"b to publish the 09:05 boundary a sent: {pb.published} published, "
                    f"{pb.passed_over} passed over", interval=0.01)
        lines = await recorded(a)
        assert b.app.state.service.states[B].eta.simulations == 0
        assert a.app.state.service.states[B].eta.simulations == 1 + 4 + 1  # each state it made, the boundary
        assert pa.published == pb.published == len(lines) == 4 + 4
        assert pa.passed_over == pb.passed_over == 0
        assert len({(x["t"], x["ticket"]) for x in lines}) == len(lines)
