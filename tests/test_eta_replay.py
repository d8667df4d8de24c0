"""`queuecast eta replay` (CONTRACTS §6): the live estimator run over a trace, through the real
command in a subprocess (`python -m hub`, as tests/test_cli.py runs it) and through the Python API
the command is made of (`hub.domain.eta.replay.replay`).

The traces are a simulated working day of a small branch (`queuecast simulate`, the real command,
into a real file) and a short hand-written one with the schedule's corner cases. What a line must
hold and when lines are due is derived here from the trace and the words of the contract, not
from the replay's code: the schedule below is written out independently (`due`).
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.config import load_config
from hub.domain.eta.plans import Setting
from hub.domain.eta.replay import replay
from hub.domain.trace import parse

from waiting import deadline

B = "12"                 # a branch of 8 counters: the smallest of the bundled configuration
CLI_TIMEOUT = deadline(120)      # a hang guard on each command run, scaled
QUICK = 20               # replications for the runs compared in-process (the schedule and the
                         # causality do not depend on how many futures are drawn)
KEYS = {"t", "ticket", "p10", "p50", "p90"}
ISO_LOCAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00")
STOPS = ("ticket.called", "ticket.cancelled", "ticket.expired")     # no longer waiting for a first call


def env(tmp: Path, **extra: str) -> dict[str, str]:
    """A fresh shell's environment: no QUEUECAST_ settings but a database of the test's own."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    e["QUEUECAST_DATABASE"] = f"sqlite:///{tmp}/replay.db"
    e.update(extra)
    return e


def queuecast(tmp: Path, *args: str, stdin: bytes | None = None, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env(tmp, **extra), cwd=tmp, input=stdin,
                          capture_output=True, timeout=CLI_TIMEOUT)


def rows(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode("utf-8").splitlines()]


def when(s: str) -> datetime:
    return datetime.fromisoformat(s)


# -- traces ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("replay")


@pytest.fixture(scope="module")
def day_trace(workdir) -> Path:
    """One quiet working day of branch 12 (with the online numbers of the evening before)."""
    path = workdir / "day.jsonl"
    p = queuecast(workdir, "simulate", "--branch", B, "--days", "1", "--scenario", "quiet", "--seed", "7",
                  "-o", str(path))
    assert p.returncode == 0, p.stderr
    return path


def _ev(t: str, type_: str, branch: str = B, **kw) -> dict:
    return {"t": f"2026-05-18T{t}+07:00", "type": type_, "branch": branch, **kw}


def _issued(t: str, ticket: str, service: str = "dat-dai", branch: str = B, **kw) -> dict:
    return _ev(t, "ticket.issued", branch, ticket=ticket, service=service, channel=kw.pop("channel", "kiosk"),
               **kw)


# Two branches (one the configuration knows, one it does not) and the corners of the schedule: a
# number issued on a boundary, one called on a boundary, one cancelled in the second it was taken,
# one issued and called in the same second, one given back on a boundary, a transfer before any
# call, a quiet stretch with boundaries passing and nothing happening, an expiry, an extra field.
CORNERS = [
    _issued("07:58:30", "20260518-1001"),
    _ev("07:59:00", "counter.opened", "Z", counter="z1", services=["x"]),
    _issued("07:59:00", "Z-1", service="x", branch="Z"),
    _ev("08:00:00", "counter.opened", counter="1", services=["dat-dai"]),
    _issued("08:00:00", "20260518-1002"),
    _ev("08:00:00", "ticket.called", ticket="20260518-1001", counter="1"),
    _ev("08:01:00", "ticket.called", "Z", ticket="Z-1", counter="z1"),
    _issued("08:02:00", "20260518-1003", channel="online", priority=True, source="iHanoi"),
    _ev("08:02:00", "ticket.checked_in", ticket="20260518-1003"),
    _issued("08:04:00", "20260518-1004"),
    _ev("08:04:00", "ticket.cancelled", ticket="20260518-1004"),
    _ev("08:06:00", "ticket.completed", ticket="20260518-1001", counter="1"),
    _ev("08:06:00", "ticket.called", ticket="20260518-1003", counter="1"),
    _issued("08:07:30", "20260518-1005"),
    _ev("08:09:00", "ticket.completed", "Z", ticket="Z-1", counter="z1"),
    _ev("08:10:00", "ticket.cancelled", ticket="20260518-1002"),
    _ev("08:11:00", "counter.opened", counter="2", services=["dat-dai", "nong-nghiep-moi-truong"]),
    _ev("08:11:00", "ticket.called", ticket="20260518-1005", counter="2"),
    _issued("08:12:00", "20260518-1006"),
    _ev("08:12:00", "ticket.completed", ticket="20260518-1003", counter="1"),
    _ev("08:12:00", "ticket.called", ticket="20260518-1006", counter="1"),
    _ev("08:13:00", "ticket.skipped", ticket="20260518-1005", counter="2"),
    _ev("08:14:00", "ticket.recalled", ticket="20260518-1005", counter="2"),
    _ev("08:16:00", "ticket.completed", ticket="20260518-1005", counter="2"),
    _issued("08:17:00", "20260518-1007"),
    _ev("08:18:00", "ticket.transferred", ticket="20260518-1007", service="nong-nghiep-moi-truong"),
    _issued("08:20:00", "Z-2", service="x", branch="Z"),
    _ev("08:33:00", "ticket.called", "Z", ticket="Z-2", counter="z1"),
    _ev("08:40:00", "ticket.called", ticket="20260518-1007", counter="2"),
    _issued("08:41:00", "20260518-1008", service="ho-tich"),
    _ev("08:50:00", "ticket.expired", ticket="20260518-1008"),
    _ev("08:52:10", "ticket.completed", ticket="20260518-1007", counter="2"),
]


@pytest.fixture(scope="module")
def corners_trace(workdir) -> Path:
    path = workdir / "corners.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in CORNERS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def day_replayed(workdir, day_trace) -> bytes:
    """The real command at its real settings, over the simulated day."""
    p = queuecast(workdir, "eta", "replay", str(day_trace), PYTHONHASHSEED="1")
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    return p.stdout


# -- the schedule, from the contract's words ----------------------------------------------------------

def due(trace: list[dict]) -> set[tuple[datetime, str]]:
    """(t, ticket) of every line CONTRACTS §6 asks for: one at each number's issue, and one at every
    5-minute boundary of the clock between the first and the last event for every number issued
    and not yet called, cancelled or expired (an event at the boundary itself counts as seen)."""
    times = [when(e["t"]) for e in trace]
    issued: dict[str, datetime] = {}
    gone: dict[str, datetime] = {}
    for e, t in zip(trace, times):
        if e["type"] == "ticket.issued":
            issued[e["ticket"]] = t
        elif e["type"] in STOPS:
            gone.setdefault(e["ticket"], t)
    out = {(t, tid) for tid, t in issued.items()}
    first, last = times[0], times[-1]
    b = first.replace(second=0, microsecond=0)
    b += timedelta(minutes=-b.minute % 5)          # the first hh:m0 or hh:m5 of the wall clock ...
    if b < first:                                   # ... at or after the first event
        b += timedelta(minutes=5)
    for _ in range(100_000):                        # 5-minute steps: a year of trace at most
        if b > last:
            break
        out |= {(b, tid) for tid, t in issued.items() if t <= b and not (tid in gone and gone[tid] <= b)}
        b += timedelta(minutes=5)
    else:
        raise AssertionError("trace too long for this test")
    return out


def read_trace(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_lines(out: list[dict], trace: list[dict]) -> None:
    """Every line is a prediction of the contract's shape, and the lines are exactly the schedule."""
    zone = when(trace[0]["t"]).utcoffset()
    for row in out:
        assert set(row) == KEYS, row
        assert isinstance(row["t"], str) and ISO_LOCAL.fullmatch(row["t"]), row
        assert when(row["t"]).utcoffset() == zone, row
        assert isinstance(row["ticket"], str) and row["ticket"], row
        ps = [row["p10"], row["p50"], row["p90"]]
        assert all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) for p in ps), row
        assert 0 <= row["p10"] <= row["p50"] <= row["p90"], row
    got = [(when(r["t"]), r["ticket"]) for r in out]
    assert len(got) == len(set(got)), "a number predicted twice at the same time"
    want = due(trace)
    assert set(got) == want, (sorted(set(got) - want)[:5], sorted(want - set(got))[:5])


# -- output ----------------------------------------------------------------------------------------

def test_a_simulated_day_gives_contract_lines_on_the_contract_schedule(day_trace, day_replayed):
    trace = read_trace(day_trace)
    out = rows(day_replayed)
    assert_lines(out, trace)
    # the day is a real one: numbers waited, and some were forecast to wait a while
    assert len({r["ticket"] for r in out}) == sum(e["type"] == "ticket.issued" for e in trace)
    assert max(r["p50"] for r in out) > 30
    print(f"\n{len(trace)} events, {len(out)} prediction lines")


def test_the_corners_of_the_schedule(workdir, corners_trace):
    p = queuecast(workdir, "eta", "replay", str(corners_trace))
    assert p.returncode == 0, p.stderr
    out = rows(p.stdout)
    assert_lines(out, CORNERS)
    at = {(r["t"][11:19], r["ticket"]) for r in out}
    # spelled out for the numbers whose lines are easy to get wrong
    assert ("08:00:00", "20260518-1002") in at                          # issued on a boundary
    assert ("08:00:00", "20260518-1001") not in at                      # called on it
    assert [k for k in at if k[1] == "20260518-1004"] == [("08:04:00", "20260518-1004")]
    assert [k for k in at if k[1] == "20260518-1006"] == [("08:12:00", "20260518-1006")]
    assert ("08:10:00", "20260518-1002") not in at                      # given back on it
    assert {("08:20:00", "20260518-1007"), ("08:35:00", "20260518-1007")} <= at    # transferred, waiting
    assert {("08:25:00", "Z-2"), ("08:30:00", "Z-2")} <= at             # the other branch, quiet minutes
    assert ("08:45:00", "20260518-1008") in at and ("08:50:00", "20260518-1008") not in at
    assert not any(k[0] > "08:52:10" for k in at)                     # nothing after the last event


# -- causality, determinism, one code path ------------------------------------------------------------

@pytest.fixture(scope="module")
def setting_of():
    centre = load_config()
    return lambda b: Setting.of(centre.branches.get(b))


def test_cutting_the_trace_after_t_changes_no_line_at_or_before_t(day_trace, setting_of):
    lines = day_trace.read_text(encoding="utf-8").splitlines()
    events = list(parse(lines))
    full = list(replay(events, setting_of, QUICK))
    issue = [ev.t for ev in events if ev.type == "ticket.issued"]
    calls = [ev.t for ev in events if ev.type == "ticket.called"]
    day = events[-1].t.replace(hour=0, minute=0, second=0)
    cuts = [
        events[0].t,                                       # the very first event
        day - timedelta(hours=1),                          # 23:00 the night before: a quiet boundary
        day + timedelta(hours=8),                          # the counters open
        calls[len(calls) // 3],                            # an event time, mid-morning
        issue[len(issue) // 2],                            # an issue time
        day + timedelta(hours=10, minutes=17, seconds=23),  # between everything
        day + timedelta(hours=14, minutes=30),             # a boundary in the afternoon
    ]
    for cut in cuts:
        head = [ev for ev in events if ev.t <= cut]
        assert 0 < len(head) < len(events)
        # The cut trace's schedule ends at its own last event (CONTRACTS §6: boundaries "between
        # the trace's first and last event"), so boundaries after it and up to `cut` have no line
        # in it; every line it does have is the full run's, and it has all of them up to there.
        end = head[-1].t
        got = list(replay(head, setting_of, QUICK))
        assert got, cut
        assert got == [r for r in full if when(r["t"]) <= end], cut


def test_a_cut_trace_through_the_command_agrees_with_the_full_run(workdir, day_trace, day_replayed):
    text = day_trace.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = when(json.loads(text[len(text) // 2])["t"])
    head = workdir / "head.jsonl"
    head.write_text("".join(line for line in text if when(json.loads(line)["t"]) <= cut), encoding="utf-8")
    p = queuecast(workdir, "eta", "replay", str(head))
    assert p.returncode == 0, p.stderr
    full = [line for line in day_replayed.splitlines() if when(json.loads(line)["t"]) <= cut]
    assert p.stdout.splitlines() == full


def test_two_runs_are_byte_identical(workdir, day_trace, day_replayed):
    # another process, another hash seed: nothing may depend on set or dict order by chance
    again = queuecast(workdir, "eta", "replay", str(day_trace), PYTHONHASHSEED="2")
    assert again.returncode == 0, again.stderr
    assert again.stdout == day_replayed


def test_the_command_prints_what_the_python_api_yields(workdir, day_trace, setting_of):
    p = queuecast(workdir, "eta", "replay", "--replications", str(QUICK), str(day_trace))
    assert p.returncode == 0, p.stderr
    events = list(parse(day_trace.read_text(encoding="utf-8").splitlines()))
    assert rows(p.stdout) == list(replay(events, setting_of, QUICK))


# -- input -----------------------------------------------------------------------------------------

def test_a_dash_reads_the_trace_from_stdin(workdir, corners_trace):
    from_file = queuecast(workdir, "eta", "replay", str(corners_trace))
    from_stdin = queuecast(workdir, "eta", "replay", "-", stdin=corners_trace.read_bytes())
    assert from_file.returncode == from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout and from_stdin.stdout


def _last(lines: list[str], type_: str) -> int:
    return max(i for i, line in enumerate(lines) if json.loads(line)["type"] == type_)


def _edit(lines: list[str], i: int, change) -> list[str]:
    d = json.loads(lines[i])
    change(d)
    return lines[:i] + [json.dumps(d)] + lines[i + 1:]


def _earlier(lines: list[str], i: int):
    prev = when(json.loads(lines[i - 1])["t"])
    return lambda d: d.update(t=(prev - timedelta(hours=1)).isoformat())


def _replace(text: str):
    return lambda ls, i: ls[:i] + [text] + ls[i + 1:]


def _change(change):
    return lambda ls, i: _edit(ls, i, change)


# name: (the type of the line broken, how). The last line of that type is broken: late in the
# file, so a replay that wrote as it read would have printed plenty before reaching it.
BAD = {
    "not-json": ("ticket.called", _replace('{"t": "2026-05-18T16:00:00+07:00", "type": ')),
    "not-an-object": ("ticket.called", _replace("[1, 2, 3]")),
    "unknown-type": ("ticket.called", _change(lambda d: d.update(type="ticket.teleported"))),
    "time-goes-back": ("ticket.called", lambda ls, i: _edit(ls, i, _earlier(ls, i))),
    "missing-field": ("ticket.called", _change(lambda d: d.pop("counter"))),
    "missing-time": ("ticket.called", _change(lambda d: d.pop("t"))),
    "time-without-offset": ("ticket.called", _change(lambda d: d.update(t=d["t"][:19]))),
    "bad-channel": ("ticket.issued", _change(lambda d: d.update(channel="fax"))),
}


@pytest.mark.parametrize("how", list(BAD))
def test_a_bad_line_exits_2_naming_it_before_any_output(workdir, day_trace, how):
    lines = day_trace.read_text(encoding="utf-8").splitlines()
    type_, breaks = BAD[how]
    i = _last(lines, type_)
    broken = breaks(lines, i)
    assert len(broken) == len(lines) and broken[i] != lines[i]
    path = workdir / f"bad-{how}.jsonl"
    path.write_text("\n".join(broken) + "\n", encoding="utf-8")
    n = i + 1                                       # line numbers count from 1
    assert n > len(lines) // 2
    p = queuecast(workdir, "eta", "replay", str(path))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == b""                          # checked whole before a line is written
    err = p.stderr.decode("utf-8").strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(rf"\bline {n}\b", err), err
    assert path.name in err, err


def test_a_bad_line_on_stdin_is_named_too(workdir, corners_trace):
    lines = corners_trace.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace('"ticket.called"', '"ticket.caled"')
    p = queuecast(workdir, "eta", "replay", "-", stdin=("\n".join(lines) + "\n").encode())
    assert p.returncode == 2 and p.stdout == b""
    err = p.stderr.decode("utf-8").strip()
    assert len(err.splitlines()) == 1 and re.search(r"\bline 6\b", err), err


def test_a_missing_file_is_a_clear_error(workdir):
    missing = workdir / "no-such-trace.jsonl"
    p = queuecast(workdir, "eta", "replay", str(missing))
    assert p.returncode == 2, p.stderr
    assert p.stdout == b""
    err = p.stderr.decode("utf-8").strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(missing) in err and "no such file" in err.lower(), err
