"""`queuecast simulate`: the seeded branch simulator, through the real command, into real files.

The traces are checked against the trace format written out by hand (tests/trace_format.py), the
queue rules are checked in the output (they must hold because the real domain made every event),
and each modelled effect is measured, so a change that flattens one shows up here.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from hub import cli
from hub.config import BUNDLED, load_config

from trace_format import TRACE_FIELDS
from waiting import deadline

B = "1"
HANOI = timezone(timedelta(hours=7))
ISO_LOCAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00")
TICKET_ID = re.compile(r"(\d{8})-(\d+)")
EXTENSIONS = {"ticket.skipped": {"held_until"}}     # optional extra fields a reader may ignore


def simulate(tmp: Path, *args: str, name: str = "trace.jsonl") -> tuple[int, Path]:
    """The real command, in this process, with the environment a fresh shell would give it."""
    out = tmp / name
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith("QUEUECAST_")]:
            mp.delenv(k)
        try:
            code = cli.main(["simulate", *args, "-o", str(out)])
        except SystemExit as e:          # argparse refusals exit from inside the parser
            code = e.code
    return code, out


@dataclass
class Ticket:
    id: str
    day: date
    issued: datetime
    service: str
    channel: str
    priority: bool
    events: list[dict] = field(default_factory=list)

    def first(self, type_: str) -> dict | None:
        return next((e for e in self.events if e["type"] == type_), None)


@dataclass
class Trace:
    lines: list[dict]
    tickets: dict[str, Ticket]

    @classmethod
    def read(cls, path: Path) -> Trace:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        tickets: dict[str, Ticket] = {}
        for ev in lines:
            if ev["type"] == "ticket.issued":
                assert ev["ticket"] not in tickets, ev              # one issue per id
                d = date.fromisoformat(TICKET_ID.fullmatch(ev["ticket"]).group(1))
                tickets[ev["ticket"]] = Ticket(ev["ticket"], d, _t(ev), ev["service"], ev["channel"],
                                               ev["priority"])
            elif "ticket" in ev:
                assert ev["ticket"] in tickets, ("event before the issue", ev)
                tickets[ev["ticket"]].events.append(ev)
        return cls(lines, tickets)

    def days(self) -> list[date]:
        return sorted({t.day for t in self.tickets.values()})

    def per_day(self) -> Counter:
        return Counter(t.day for t in self.tickets.values())

    def noshow_rate(self, pick) -> float:
        """Skipped at least once, among the called numbers that `pick(ticket, checked_in_at_call)`."""
        called = skipped = 0
        for t in self.tickets.values():
            call = t.first("ticket.called")
            if call is None:
                continue
            checked_in = t.channel == "kiosk" or any(e["type"] == "ticket.checked_in" and _t(e) <= _t(call)
                                                     for e in t.events)
            if pick(t, checked_in):
                called += 1
                skipped += t.first("ticket.skipped") is not None
        return skipped / called

    def service_minutes(self, service: str) -> list[float]:
        """Called → completed at the counter, for numbers served at the first call in that field."""
        out = []
        for t in self.tickets.values():
            kinds = [e["type"] for e in t.events]
            if t.service == service and kinds[:2] == ["ticket.called", "ticket.completed"] \
                    and "ticket.transferred" not in kinds:
                out.append((_t(t.events[1]) - _t(t.events[0])).total_seconds() / 60)
        return out

    def waits(self, service: str, channel: str = "kiosk") -> list[float]:
        return [(_t(c) - t.issued).total_seconds() / 60 for t in self.tickets.values()
                if t.service == service and t.channel == channel and (c := t.first("ticket.called"))]

    def closed_between(self, day: date, a: time, b: time) -> int:
        return sum(1 for e in self.lines if e["type"] == "counter.closed" and _t(e).date() == day
                   and a <= _t(e).time() < b)


def _t(ev: dict) -> datetime:
    return datetime.fromisoformat(ev["t"])


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("simulate")


@pytest.fixture(scope="module")
def normal(tmp) -> Path:
    code, path = simulate(tmp, name="normal.jsonl")           # the defaults: branch 1, 3 days, seed 0
    assert code == 0
    return path


@pytest.fixture(scope="module")
def scenario(tmp, normal):
    made: dict[str, Trace] = {"normal": Trace.read(normal)}

    def get(name: str) -> Trace:
        if name not in made:
            code, path = simulate(tmp, "--scenario", name, "--days", "3", name=f"{name}.jsonl")
            assert code == 0
            made[name] = Trace.read(path)
        return made[name]
    return get


# -- the command ---------------------------------------------------------------------------------

def test_same_arguments_same_bytes_another_seed_another_trace(tmp, normal):
    code, again = simulate(tmp, "--branch", B, "--days", "3", "--seed", "0", "--scenario", "normal",
                           "--start", "2026-05-18", name="again.jsonl")
    assert code == 0 and again.read_bytes() == normal.read_bytes()
    code, other = simulate(tmp, "--seed", "1", name="seed1.jsonl")
    assert code == 0 and other.read_bytes() != normal.read_bytes()


def test_a_shorter_run_is_the_start_of_a_longer_one(tmp, normal):
    """Days are drawn one after the other: held-out days can be added without changing the first."""
    code, one = simulate(tmp, "--days", "1", name="one-day.jsonl")
    assert code == 0 and normal.read_bytes().startswith(one.read_bytes())
    assert Trace.read(one).days() == [date(2026, 5, 18)]


def test_output_to_stdout_through_the_console_entry_point(tmp):
    """Another process, another string-hash salt: the same bytes (no hash() of str feeds the seed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env["PYTHONHASHSEED"] = "12345"
    p = subprocess.run([sys.executable, "-m", "hub", "simulate", "--days", "1", "--seed", "5",
                        "--scenario", "quiet", "-o", "-"], env=env, capture_output=True, timeout=deadline(60))
    assert p.returncode == 0 and p.stderr == b""
    code, path = simulate(tmp, "--days", "1", "--seed", "5", "--scenario", "quiet", name="quiet-1.jsonl")
    assert code == 0 and p.stdout == path.read_bytes() and p.stdout


def test_only_working_days_are_simulated(tmp):
    # Thu 30 Apr and Fri 1 May 2026 are public holidays, then a weekend: Monday 4 May comes next.
    code, path = simulate(tmp, "--days", "2", "--start", "2026-04-29", "--scenario", "quiet", name="holiday.jsonl")
    assert code == 0
    assert Trace.read(path).days() == [date(2026, 4, 29), date(2026, 5, 4)]


@pytest.mark.parametrize("args, words", [
    (["--branch", "99"], ["99"]),
    (["--scenario", "chaos"], ["chaos", "normal"]),
    (["--days", "0"], ["--days"]),
    (["--days", "many"], ["--days"]),
    (["--seed", "x"], ["--seed"]),
    (["--start", "18/05/2026"], ["--start"]),
])
def test_bad_arguments_exit_2_with_one_line(tmp, capsys, args, words):
    code, path = simulate(tmp, *args, name="bad.jsonl")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert all(w in err for w in words), err
    assert not path.exists()


def test_unwritable_output_exits_2(tmp, capsys):
    code, path = simulate(tmp / "no-such-directory", "--days", "1")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no-such-directory" in err


def test_the_configuration_comes_from_queuecast_config(tmp, monkeypatch):
    """A custom file (QUEUECAST_CONFIG) is honoured, and its daily cap holds in the output."""
    toml = BUNDLED.read_text(encoding="utf-8").replace('caps = { "dat-dai" = 400,', 'caps = { "dat-dai" = 25,')
    custom = tmp / "custom.toml"
    custom.write_text(toml, encoding="utf-8")
    for k in [k for k in os.environ if k.startswith("QUEUECAST_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("QUEUECAST_CONFIG", str(custom))
    out = tmp / "capped.jsonl"
    assert cli.main(["simulate", "--days", "2", "-o", str(out)]) == 0
    trace = Trace.read(out)
    for d in trace.days():
        land = [t for t in trace.tickets.values() if t.day == d and t.service == "dat-dai"]
        assert len(land) == 25 and {int(t.id.split("-")[1]) for t in land} == set(range(1001, 1026))


# -- the trace format and the queue rules in the output --------------------------------------------

@pytest.mark.parametrize("name", ["normal", "busy", "quiet", "understaffed", "hold"])
def test_every_line_is_a_valid_trace_event(scenario, name):
    branch = load_config().branches[B]
    trace = scenario(name)
    previous = None
    for i, ev in enumerate(trace.lines, 1):
        want = {"t", "type", "branch"} | TRACE_FIELDS[ev["type"]]
        assert want <= set(ev) <= want | EXTENSIONS.get(ev["type"], set()), (i, ev)
        assert ev["branch"] == B and ISO_LOCAL.fullmatch(ev["t"]), (i, ev)
        assert previous is None or ev["t"] >= previous, (i, ev)      # same offset: text order is time order
        previous = ev["t"]
        if "counter" in ev:
            assert ev["counter"] in branch.counters
        if ev["type"] == "counter.opened":
            assert ev["services"] and set(ev["services"]) <= set(branch.services)
        if ev["type"] in ("ticket.issued", "ticket.transferred"):
            assert ev["service"] in branch.services
        if ev["type"] == "ticket.issued":
            assert ev["channel"] in ("kiosk", "online") and isinstance(ev["priority"], bool)


@pytest.mark.parametrize("name", ["normal", "busy", "hold"])
def test_the_queue_rules_hold_in_the_output(scenario, name):
    branch = load_config().branches[B]
    trace = scenario(name)
    serving: dict[str, tuple[str, ...]] = {}
    field_of: dict[str, str] = {}
    for ev in trace.lines:
        if ev["type"] == "counter.opened":
            serving[ev["counter"]] = tuple(ev["services"])
        elif ev["type"] == "counter.closed":
            serving.pop(ev["counter"])
        elif ev["type"] in ("ticket.issued", "ticket.transferred"):
            field_of[ev["ticket"]] = ev["service"]
        elif ev["type"] == "ticket.called":                    # by an open counter of its field
            assert field_of[ev["ticket"]] in serving[ev["counter"]], ev
    for t in trace.tickets.values():
        svc = branch.services[t.service]
        assert svc.first_number <= int(t.id.split("-")[1]) <= svc.last_number
        eve = datetime.combine(t.day - timedelta(days=1), time(20), tzinfo=HANOI)
        if t.channel == "kiosk":
            assert t.issued.date() == t.day and time(8) <= t.issued.time() < time(16), t
        else:
            assert eve <= t.issued and (t.issued.date() < t.day or t.issued.time() < time(16)), t
        kinds = [e["type"] for e in t.events]
        for final in ("ticket.completed", "ticket.cancelled", "ticket.expired"):
            if final in kinds:                                  # nothing happens after the end
                assert kinds.index(final) == len(kinds) - 1, (t.id, kinds)
        if "ticket.expired" in kinds:
            assert _t(t.events[-1]).time() == time(17), t        # expiry at closing, by the domain


# -- the effects the simulator models -------------------------------------------------------------

def test_about_500_numbers_a_day_at_branch_1(normal):
    trace = Trace.read(normal)
    per_day = trace.per_day()
    assert len(per_day) == 3 and all(400 <= n <= 620 for n in per_day.values()), per_day
    assert 450 <= statistics.mean(per_day.values()) <= 570
    online = sum(t.channel == "online" for t in trace.tickets.values()) / len(trace.tickets)
    assert 0.28 <= online <= 0.42
    priority = sum(t.priority for t in trace.tickets.values()) / len(trace.tickets)
    assert 0.04 <= priority <= 0.12


def test_arrivals_peak_in_the_morning_and_online_numbers_come_the_evening_before(normal):
    trace = Trace.read(normal)
    kiosk = Counter(t.issued.hour for t in trace.tickets.values() if t.channel == "kiosk")
    assert (kiosk[8] + kiosk[9]) / 2 > 2 * kiosk[12]                       # morning peak, lunch dip
    assert kiosk[14] > kiosk[12] and kiosk[14] > kiosk[15]                  # the afternoon bump
    online = [t for t in trace.tickets.values() if t.channel == "online"]
    evening = sum(t.issued.date() < t.day and t.issued.hour in (20, 21) for t in online)
    night = sum(t.issued.date() == t.day and t.issued.hour < 6 for t in online)
    daytime = sum(t.issued.date() == t.day and t.issued.hour >= 8 for t in online)
    assert evening > 0.4 * len(online) and 0 < night < evening / 5 and daytime > 0.15 * len(online)


def test_fields_have_their_own_service_times_and_queues_form(normal):
    trace = Trace.read(normal)
    land, civil, certify = (trace.service_minutes(s) for s in ("dat-dai", "ho-tich", "tu-phap-chung-thuc"))
    assert 14 <= statistics.mean(land) <= 24 and statistics.mean(certify) < statistics.mean(civil) < statistics.mean(land)
    assert statistics.stdev(land) > 5                                       # lognormal spread, not a constant
    waits = trace.waits("dat-dai")
    assert max(waits) > 60 and 15 < statistics.mean(waits) < 120
    # at 11:45, tens of people waiting; over lunch the queue grows
    for d in trace.days():
        def waiting_at(hh: int, mm: int, d: date = d) -> int:
            at = datetime.combine(d, time(hh, mm), tzinfo=HANOI)
            return sum(1 for t in trace.tickets.values() if t.day == d and t.issued <= at
                       and not any(_t(e) <= at and e["type"] in ("ticket.called", "ticket.cancelled") for e in t.events))
        assert waiting_at(9, 30) >= 20
        assert waiting_at(12, 55) > waiting_at(12, 5)


def test_counters_share_fields_break_for_lunch_and_close_unplanned(scenario):
    normal, understaffed = scenario("normal"), scenario("understaffed")
    opened = [e for e in normal.lines if e["type"] == "counter.opened"]
    assert any(len(e["services"]) > 1 for e in opened)
    for d in normal.days():
        assert normal.closed_between(d, time(11, 55), time(12, 45)) >= 14          # lunch
        assert normal.closed_between(d, time(17), time(23, 59)) >= 14               # end of day
    daytime = lambda tr: sum(tr.closed_between(d, time(8), time(11, 55)) + tr.closed_between(d, time(13), time(17))  # noqa: E731
                             for d in tr.days())
    assert daytime(understaffed) > daytime(normal) >= 3                     # breaks and unplanned closures
    open_counters = lambda tr: statistics.mean(len({e["counter"] for e in tr.lines if e["type"] == "counter.opened"  # noqa: E731
                                                    and _t(e).date() == d}) for d in tr.days())
    assert open_counters(understaffed) < open_counters(normal)


def test_clerks_work_at_different_speeds(normal):
    trace = Trace.read(normal)
    per_counter = defaultdict(list)
    for t in trace.tickets.values():
        kinds = [e["type"] for e in t.events]
        if t.service == "dat-dai" and kinds[:2] == ["ticket.called", "ticket.completed"]:
            per_counter[t.events[0]["counter"]].append((_t(t.events[1]) - _t(t.events[0])).total_seconds())
    means = [statistics.mean(v) for v in per_counter.values() if len(v) >= 20]
    assert len(means) >= 4 and max(means) / min(means) > 1.15


def test_no_shows_differ_by_channel_and_some_come_back(normal):
    trace = Trace.read(normal)
    kiosk = trace.noshow_rate(lambda t, ci: t.channel == "kiosk")
    checked_in = trace.noshow_rate(lambda t, ci: t.channel == "online" and ci)
    absent = trace.noshow_rate(lambda t, ci: t.channel == "online" and not ci)
    assert absent > 3 * checked_in and checked_in > kiosk > 0
    served = [t for t in trace.tickets.values() if t.channel == "online" and t.first("ticket.completed")]
    early = [t for t in served if (ci := t.first("ticket.checked_in")) and _t(ci) <= _t(t.first("ticket.called"))]
    assert len(early) > 0.6 * len(served)                      # most check in on arrival, before the call
    back = [t for t in trace.tickets.values()
            if [e["type"] for e in t.events][-3:] == ["ticket.skipped", "ticket.recalled", "ticket.completed"]]
    assert back                                                 # skipped, came back, recalled, served
    for t in back:
        skip, recall = t.events[-3:-1]
        assert _t(recall) - _t(skip) <= timedelta(minutes=15)   # recall_minutes
    gave_back = Counter(t.channel for t in trace.tickets.values() if t.first("ticket.cancelled"))
    per_channel = Counter(t.channel for t in trace.tickets.values())
    assert gave_back["online"] / per_channel["online"] > gave_back["kiosk"] / per_channel["kiosk"] > 0
    transferred = [t for t in trace.tickets.values() if t.first("ticket.transferred")]
    assert 0.01 * len(trace.tickets) < len(transferred) < 0.06 * len(trace.tickets)
    for t in transferred:                                       # queued again in the new field
        tr = t.first("ticket.transferred")
        assert tr["service"] != t.service
        assert t.events[-1]["type"] in ("ticket.completed", "ticket.expired")
    assert sum(t.events[-1]["type"] == "ticket.completed" for t in transferred) > 0.8 * len(transferred)


def test_scenarios_differ_as_named(scenario):
    normal, busy, quiet = (scenario(s) for s in ("normal", "busy", "quiet"))
    n = statistics.mean(normal.per_day().values())
    assert statistics.mean(busy.per_day().values()) > 1.15 * n
    assert statistics.mean(quiet.per_day().values()) < 0.75 * n
    expired = lambda tr: sum(1 for e in tr.lines if e["type"] == "ticket.expired")  # noqa: E731
    assert expired(busy) > expired(normal) and expired(scenario("understaffed")) > expired(normal)
    assert statistics.mean(busy.waits("dat-dai")) > statistics.mean(normal.waits("dat-dai"))
    assert statistics.mean(quiet.waits("dat-dai")) < statistics.mean(normal.waits("dat-dai"))


def test_the_hold_scenario_holds_online_numbers(scenario):
    hold, normal = scenario("hold"), scenario("normal")
    held = [e for e in hold.lines if e["type"] == "ticket.skipped" and "held_until" in e]
    assert held and not any("held_until" in e for e in normal.lines)
    for e in held:
        t = hold.tickets[e["ticket"]]
        assert t.channel == "online" and _t(e) + timedelta(minutes=10) == datetime.fromisoformat(e["held_until"])
        assert not any(x["type"] == "ticket.checked_in" and _t(x) < _t(e) for x in t.events)
    # a holder who comes within the hold checks in and is called again
    assert any([x["type"] for x in hold.tickets[e["ticket"]].events].count("ticket.called") == 2 for e in held)
    online = lambda tr: sum(t.channel == "online" for t in tr.tickets.values()) / len(tr.tickets)  # noqa: E731
    assert online(hold) > online(normal) + 0.08
