"""displays.stats.day_stats: hand-made days with answers worked out by hand, edge cases, and
agreement with the domain's own fold on a day made by the real commands."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from displays.stats import day_stats, summary
from hub.domain import commands, events
from hub.domain.errors import DomainError
from hub.domain.limits import Citizen, History
from hub.domain.state import BranchState, apply, fold
from hub.domain.ticket import State

from conftest import TZ

DAY = datetime(2026, 5, 19, tzinfo=TZ).date()          # a Tuesday


def at(hh: int, mm: int = 0, day: int = 19) -> datetime:
    return datetime(2026, 5, day, hh, mm, tzinfo=TZ)


class Day:
    """Events of branch 1's 19 May 2026, written by hand in log order."""

    def __init__(self):
        self.evs: list[dict] = []

    def add(self, type_: str, t: datetime, **fields) -> Day:
        ev = events.make(type_, t, "1", DAY, **fields)
        ev["seq"] = len(self.evs) + 1
        self.evs.append(ev)
        return self

    def issue(self, number: int, service: str, channel: str, t: datetime) -> Day:
        return self.add("ticket.issued", t, ticket=f"20260519-{number}", number=str(number), service=service,
                        channel=channel, priority=False, order=len(self.evs) + 1)

    def ticket(self, type_: str, number: int, t: datetime, service: str = "dat-dai", **fields) -> Day:
        return self.add(type_, t, ticket=f"20260519-{number}", number=str(number), service=service, **fields)

    def opened(self, counter: str, t: datetime, *services: str) -> Day:
        return self.add("counter.opened", t, counter=counter, services=list(services or ["dat-dai"]))

    def closed(self, counter: str, t: datetime) -> Day:
        return self.add("counter.closed", t, counter=counter)


@pytest.fixture
def b1(centre):
    return centre.branches["1"]


def field(stats: dict, service: str) -> dict:
    return next(f for f in stats["fields"] if f["id"] == service)


def hour(stats: dict, h: int) -> dict:
    return next(r for r in stats["hours"] if r["hour"] == h)


# -- summaries -------------------------------------------------------------------------------------

def test_summary_median_and_nearest_rank_p90():
    assert summary([]) == {"count": 0, "mean": None, "median": None, "p90": None, "max": None}
    assert summary([7.0]) == {"count": 1, "mean": 7.0, "median": 7.0, "p90": 7.0, "max": 7.0}
    s = summary([float(v) for v in range(10, 0, -1)])        # 1..10 in any order
    assert (s["mean"], s["median"], s["p90"], s["max"]) == (5.5, 5.5, 9.0, 10.0)
    assert summary([1.0, 2.0, 3.0, 100.0])["p90"] == 100.0    # ceil(0.9 × 4) = 4th value


# -- edge cases ------------------------------------------------------------------------------------

def test_no_events_is_a_quiet_day_of_zeros(b1):
    s = day_stats(b1, [], at(10), day=DAY)
    assert s["day"] == "2026-05-19" and s["seq"] == 0
    assert all(v == 0 for v in s["totals"].values())
    assert s["wait"]["count"] == 0 and s["wait"]["mean"] is None
    assert [f["id"] for f in s["fields"]] == list(b1.services)
    assert all(f["issued"] == 0 and f["wait"]["mean"] is None and f["longest_waiting"] is None for f in s["fields"])
    assert [r["hour"] for r in s["hours"]] == list(range(8, 17))            # opening 08:00 to closing 17:00
    assert all(r["calls"] == 0 and r["counter_hours"] == 0 for r in s["hours"])
    assert [r["future"] for r in s["hours"]] == [False, False] + [True] * 7
    assert s["ratings"]["count"] == 0 and s["ratings"]["mean"] is None
    assert [d["count"] for d in s["ratings"]["distribution"]] == [0] * 5
    assert all(c["open_hours"] == 0 for c in s["counters"])


def test_events_of_another_day_are_left_out(b1):
    d = Day().issue(1001, "dat-dai", "kiosk", at(8, 10))
    other = events.make("ticket.issued", at(8, 5, day=18), "1", DAY - timedelta(days=1), ticket="20260518-1001",
                        number="1001", service="dat-dai", channel="kiosk", priority=False, order=1)
    s = day_stats(b1, [other, *d.evs], at(9), day=DAY)
    assert s["totals"]["issued"] == 1
    assert day_stats(b1, [*d.evs], at(9))["day"] == "2026-05-19"        # the day is read from the events


# -- waits, by field and channel -----------------------------------------------------------------

def morning() -> Day:
    """Dat-dai at counter 1, ho-tich at counter 6, from 08:00.
    A 1001 online, taken the evening before at 20:30: called 08:05 → waited 5 min (from opening).
    B 1002 kiosk 08:10, called 08:25 → 15.   D 1003 online 08:30, called 08:40 → 10, a no-show.
    C 2001 kiosk 08:20 (ho-tich), called 08:50 → 30.   E 1004 kiosk 08:45: still waiting."""
    d = Day()
    d.issue(1001, "dat-dai", "online", at(20, 30, day=18))
    d.opened("1", at(8, 0)).opened("6", at(8, 0), "ho-tich")
    d.ticket("ticket.called", 1001, at(8, 5), counter="1")
    d.issue(1002, "dat-dai", "kiosk", at(8, 10))
    d.issue(2001, "ho-tich", "kiosk", at(8, 20))
    d.ticket("ticket.completed", 1001, at(8, 25), counter="1")
    d.ticket("ticket.called", 1002, at(8, 25), counter="1")
    d.issue(1003, "dat-dai", "online", at(8, 30))
    d.ticket("ticket.completed", 1002, at(8, 40), counter="1")
    d.ticket("ticket.called", 1003, at(8, 40), counter="1")
    d.issue(1004, "dat-dai", "kiosk", at(8, 45))
    d.ticket("ticket.skipped", 1003, at(8, 45), counter="1")
    d.ticket("ticket.called", 2001, at(8, 50), service="ho-tich", counter="6")
    d.ticket("ticket.completed", 2001, at(9, 10), service="ho-tich", counter="6")
    return d


def test_waits_by_field_and_channel(b1):
    s = day_stats(b1, morning().evs, at(9, 30))
    land, civil = field(s, "dat-dai"), field(s, "ho-tich")
    assert land["wait"] == {"count": 3, "mean": 10.0, "median": 10.0, "p90": 15.0, "max": 15.0}
    assert land["wait_by_channel"]["kiosk"]["mean"] == 15.0
    assert land["wait_by_channel"]["online"] == {"count": 2, "mean": 7.5, "median": 7.5, "p90": 10.0, "max": 10.0}
    assert civil["wait"]["mean"] == 30.0 and civil["wait_by_channel"]["online"]["count"] == 0
    assert s["channels"]["kiosk"]["wait"]["mean"] == 22.5            # 15 and 30
    assert s["channels"]["online"]["wait"]["mean"] == 7.5
    assert s["wait"]["count"] == 4 and s["wait"]["mean"] == 15.0
    assert land["longest_waiting"] == 45.0                          # 1004 since 08:45, now 09:30
    assert civil["longest_waiting"] is None


def test_counts_per_field_and_no_shows(b1):
    s = day_stats(b1, morning().evs, at(9, 30))
    land = field(s, "dat-dai")
    assert (land["issued"], land["served"], land["waiting"], land["noshows"]) == (4, 2, 1, 1)
    assert land["issued_by_channel"] == {"kiosk": 2, "online": 2}
    assert field(s, "ho-tich")["served"] == 1
    t = s["totals"]
    assert (t["issued"], t["served"], t["waiting"], t["noshows"], t["skips"], t["at_counter"]) == (5, 3, 1, 1, 1, 0)
    assert s["channels"]["online"]["noshows"] == 1 and s["channels"]["kiosk"]["noshows"] == 0
    assert s["seq"] == len(morning().evs)


def test_online_number_of_the_evening_before_waits_from_opening_not_from_check_in(b1):
    d = Day().issue(1001, "dat-dai", "online", at(21, 0, day=18)).opened("1", at(8, 0))
    d.ticket("ticket.checked_in", 1001, at(8, 50))
    d.ticket("ticket.called", 1001, at(9, 0), counter="1")
    s = day_stats(b1, d.evs, at(9, 30))
    assert field(s, "dat-dai")["wait"]["mean"] == 60.0               # 08:00 → 09:00, not 12 h, not 10 min
    assert hour(s, 8)["issued"] == 1 and all(r["hour"] >= 8 for r in s["hours"])   # counted at opening


def test_still_waiting_before_opening_has_no_running_wait(b1):
    d = Day().issue(1001, "dat-dai", "online", at(21, 0, day=18))
    s = day_stats(b1, d.evs, at(22, 0, day=18), day=DAY)
    assert field(s, "dat-dai")["waiting"] == 1 and field(s, "dat-dai")["longest_waiting"] is None


def test_transfer_counts_issue_in_the_first_field_and_the_rest_in_the_second(b1):
    d = Day().opened("12", at(8), "cu-tru").issue(2001, "ho-tich", "kiosk", at(8, 10))
    d.ticket("ticket.transferred", 2001, at(8, 15), service="cu-tru", from_service="ho-tich")
    d.ticket("ticket.called", 2001, at(8, 30), service="cu-tru", counter="12")
    d.ticket("ticket.completed", 2001, at(8, 40), service="cu-tru", counter="12")
    s = day_stats(b1, d.evs, at(9))
    civil, residence = field(s, "ho-tich"), field(s, "cu-tru")
    assert (civil["issued"], civil["served"], civil["transferred_out"]) == (1, 0, 1)
    assert (residence["issued"], residence["served"], residence["transferred_in"]) == (0, 1, 1)
    assert residence["wait"]["mean"] == 20.0 and civil["wait"]["count"] == 0


def test_held_numbers_become_no_shows_when_the_hold_runs_out_and_recalls_strike_them_off(b1):
    d = Day().opened("1", at(8))
    d.issue(1001, "dat-dai", "online", at(8, 1)).issue(1002, "dat-dai", "kiosk", at(8, 2))
    d.ticket("ticket.called", 1001, at(8, 10), counter="1")
    d.ticket("ticket.skipped", 1001, at(8, 12), counter="1", held_until=at(8, 22).isoformat())
    d.ticket("ticket.called", 1002, at(8, 12), counter="1")
    d.ticket("ticket.skipped", 1002, at(8, 14), counter="1")
    d.ticket("ticket.recalled", 1002, at(8, 16), counter="1")
    d.ticket("ticket.completed", 1002, at(8, 20), counter="1")
    during = day_stats(b1, d.evs, at(8, 21))
    assert (during["totals"]["held"], during["totals"]["noshows"]) == (1, 0)
    after = day_stats(b1, d.evs, at(8, 23))
    assert (after["totals"]["held"], after["totals"]["noshows"], after["totals"]["served"]) == (0, 1, 1)
    assert (after["totals"]["skips"], after["totals"]["recalls"]) == (2, 1)
    assert hour(after, 8)["recalls"] == 1 and hour(after, 8)["calls"] == 2
    checked = Day()
    checked.evs = [*d.evs]
    checked.ticket("ticket.checked_in", 1001, at(8, 18))
    assert day_stats(b1, checked.evs, at(8, 23))["totals"]["waiting"] == 1      # back in the queue


def test_cancelled_and_expired(b1):
    d = Day().issue(1001, "dat-dai", "kiosk", at(8, 5)).issue(1002, "dat-dai", "kiosk", at(15, 55))
    d.ticket("ticket.cancelled", 1001, at(9), by="citizen")
    d.ticket("ticket.expired", 1002, at(17))
    s = day_stats(b1, d.evs, at(17, 30))
    assert (field(s, "dat-dai")["cancelled"], field(s, "dat-dai")["expired"], s["totals"]["waiting"]) == (1, 1, 0)


# -- calls per hour against staffed counters ---------------------------------------------------------

def counters_day() -> Day:
    """Counter 1 open 08:00–10:30, counter 2 from 09:15 on; calls: three at 08, two at 09, one at 10."""
    d = Day().opened("1", at(8)).opened("2", at(9, 15))
    for n, (h, m) in enumerate([(8, 5), (8, 20), (8, 40), (9, 10), (9, 50), (10, 10)], start=1001):
        d.issue(n, "dat-dai", "kiosk", at(8, 0))
        d.ticket("ticket.called", n, at(h, m), counter="1" if n < 1005 else "2")
    d.closed("1", at(10, 30))
    return d


def test_calls_per_hour_against_counter_hours(b1):
    s = day_stats(b1, counters_day().evs, at(11, 0))
    assert [(hour(s, h)["calls"], hour(s, h)["counter_hours"]) for h in (8, 9, 10)] == [(3, 1.0), (2, 1.75), (1, 1.5)]
    assert hour(s, 8)["calls_per_counter_hour"] == 3.0
    assert hour(s, 9)["calls_per_counter_hour"] == round(2 / 1.75, 2)
    assert hour(s, 9)["counters"] == 1.8 and hour(s, 10)["counters"] == 1.5     # mean counters open
    assert hour(s, 11)["counter_hours"] == 0 and hour(s, 11)["future"]
    work = {c["id"]: c for c in s["counters"]}
    assert (work["1"]["open_hours"], work["1"]["calls"], work["1"]["calls_per_hour"]) == (2.5, 4, 1.6)
    assert (work["2"]["open_hours"], work["2"]["calls"]) == (1.75, 2)


def test_the_hour_under_way_counts_only_its_part_gone_by(b1):
    s = day_stats(b1, counters_day().evs, at(11, 30))
    h11 = hour(s, 11)
    assert (h11["counter_hours"], h11["counters"], h11["partial"], h11["future"]) == (0.5, 1.0, True, False)
    assert hour(s, 12)["future"]


def test_a_counter_open_across_the_whole_day(b1):
    # Counter 3 was left open since an earlier day: no counter event today, the caller knows it is open.
    d = Day().issue(1001, "dat-dai", "kiosk", at(8, 30)).ticket("ticket.called", 1001, at(9), counter="3")
    s = day_stats(b1, d.evs, at(12), open_at_start=["3"])
    assert {c["id"]: c["open_hours"] for c in s["counters"]}["3"] == 4.0        # 08:00 → now, 12:00
    assert [hour(s, h)["counter_hours"] for h in (8, 9, 10, 11)] == [1.0] * 4
    # A counter whose first event today is a close was open from opening until then.
    d2 = Day().closed("4", at(10))
    assert {c["id"]: c["open_hours"] for c in day_stats(b1, d2.evs, at(12))["counters"]}["4"] == 2.0
    # At the end of the day, a counter never closed counts until closing time, not until midnight.
    late = day_stats(b1, d.evs, at(23), open_at_start=["3"])
    assert {c["id"]: c["open_hours"] for c in late["counters"]}["3"] == 9.0
    assert [r["hour"] for r in late["hours"]] == list(range(8, 17))


def test_a_counter_opened_before_opening_widens_the_hours(b1):
    d = Day().opened("1", at(7, 45)).closed("1", at(8, 15))
    s = day_stats(b1, d.evs, at(9))
    assert hour(s, 7)["counter_hours"] == 0.25 and hour(s, 8)["counter_hours"] == 0.25


# -- ratings ----------------------------------------------------------------------------------------

def test_ratings_count_mean_distribution_and_recent_comments(b1):
    d = Day().opened("1", at(8))
    for n, (score, comment, mm) in enumerate([(5, None, 10), (4, "Nhanh gọn", 20), (1, "Chờ quá lâu", 30)], start=1001):
        d.issue(n, "dat-dai", "kiosk", at(8, 1))
        d.ticket("ticket.called", n, at(8, mm - 9), counter="1")
        d.ticket("ticket.completed", n, at(8, mm - 1), counter="1")
        d.ticket("ticket.rated", n, at(8, mm), score=score, comment=comment)
    r = day_stats(b1, d.evs, at(9))["ratings"]
    assert r["count"] == 3 and r["mean"] == 3.33
    assert {x["score"]: x["count"] for x in r["distribution"]} == {1: 1, 2: 0, 3: 0, 4: 1, 5: 1}
    assert [(c["number"], c["score"], c["comment"]) for c in r["comments"]] == [("1003", 1, "Chờ quá lâu"),
                                                                               ("1002", 4, "Nhanh gọn")]
    assert r["comments_total"] == 2
    assert r["by_field"] == [{"id": "dat-dai", "name": "Đất đai", "name_en": "Land", "count": 3, "mean": 3.33}]


# -- agreement with the domain ----------------------------------------------------------------------

def simulated_day(branch, seed: int) -> tuple[list[dict], BranchState, datetime]:
    """A day made by the real domain commands (issue, open, call-next, skip, recall, transfer,
    cancel, check-in, rate), folded as the hub folds it."""
    rng = random.Random(seed)
    st = BranchState(branch)
    log: list[dict] = []
    now = at(20, 10, day=18)

    def run(evs):
        for ev in evs:
            ev["seq"] = len(log) + 1
            apply(st, ev)
            log.append(ev)

    services = list(branch.services)
    for i in range(6):                                  # online numbers the evening before
        now += timedelta(minutes=rng.uniform(5, 30))
        cit = Citizen(f"p{seed}-{i}", 1980)
        run(commands.issue(st, now, service=rng.choice(services), channel="online", citizen=cit, history=History()))
    now = at(7, 58)
    for c in list(branch.counters)[:10]:
        run(commands.open_counter(st, now, c, None))
    while now < at(12, 30):
        now += timedelta(minutes=rng.uniform(0.5, 3))
        try:
            if rng.random() < 0.5:
                run(commands.issue(st, now, service=rng.choice(services[:6]), channel="kiosk"))
            c = rng.choice(list(branch.counters)[:10])
            r = rng.random()
            if r < 0.6:
                run(commands.call_next(st, now, c))
            elif r < 0.7 and st.counters[c].current:
                run(commands.skip(st, now, st.tickets[st.counters[c].current]))
            elif r < 0.75:
                skipped = [t for t in st.tickets.values() if t.effective_state(now) in (State.SKIPPED, State.HELD)]
                if skipped and not st.counters[c].current:
                    run(commands.recall(st, now, skipped[0], c))
            elif r < 0.8:
                waiting = st.waiting(now.date())
                if waiting:
                    run(commands.transfer(st, now, waiting[-1], rng.choice(services)))
            elif r < 0.83:
                waiting = st.waiting(now.date())
                if waiting:
                    run(commands.cancel(st, now, waiting[0]))
            elif r < 0.9:
                done = [t for t in st.tickets.values() if t.state is State.COMPLETED and t.rating is None]
                if done:
                    run(commands.rate(st, now, done[0], rng.randint(1, 5), rng.choice(["", "ok"])))
            elif r < 0.93:
                c2 = rng.choice(list(branch.counters)[:10])
                if st.counters[c2].open and not st.counters[c2].current:
                    run(commands.close_counter(st, now, c2))
                else:
                    run(commands.open_counter(st, now, c2, None))
        except DomainError:
            pass
    return log, st, now


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_outcomes_agree_with_the_domain_fold(b1, seed):
    log, st, now = simulated_day(b1, seed)
    s = day_stats(b1, log, now)
    folded = fold(b1, log)
    assert st.seq == folded.seq == s["seq"]
    for f in s["fields"]:
        mine = [t for t in folded.tickets.values() if t.service == f["id"]]
        by_state = {state: sum(1 for t in mine if t.effective_state(now) is state) for state in State}
        assert (f["waiting"], f["at_counter"], f["served"], f["noshows"], f["held"], f["cancelled"]) == (
            by_state[State.WAITING], by_state[State.CALLED], by_state[State.COMPLETED], by_state[State.SKIPPED],
            by_state[State.HELD], by_state[State.CANCELLED]), f["id"]
        assert f["waiting"] == len(folded.waiting(now.date(), (f["id"],)))
    waits = [(t.called_at - max(t.issued_at, at(8))).total_seconds() / 60
             for t in folded.tickets.values() if t.called_at]
    assert s["wait"]["count"] == len(waits) and s["totals"]["issued"] == len(folded.tickets)
    if waits:
        assert s["wait"]["max"] == round(max(waits), 1)
    rated = [t.rating[0] for t in folded.tickets.values() if t.rating]
    assert s["ratings"]["count"] == len(rated)
    calls = sum(1 for ev in log if ev["type"] == "ticket.called")
    assert sum(r["calls"] for r in s["hours"]) == calls == sum(c["calls"] for c in s["counters"])
