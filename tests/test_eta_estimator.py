"""The ETA estimator on hand-made branches whose answer is known in advance.

Each branch is a trace built here, event by event, of a world with no randomness: every service
lasts exactly S minutes, staff call the next number the moment they are free, nobody is absent.
Fed through the public surface (`Estimator.observe`, then `forecast`/`publish`), a good estimator
must learn that world from the past days and predict, for each waiting number, the minute the
same rules will call it. The expected minute comes from the little scheduler below (`World`),
not from the estimator's code, so a change of internals that keeps the behaviour keeps the tests.

Why the tolerance (`close_to`) is what it is: the past days hold a few hundred services of exactly
S minutes, so the fitted lognormal has a sigma at its floor (≈ 0.05) and a median within about 1%
of S (the configured prior counts as a few observations); the j-th call is a sum of j services,
so its spread is about S·0.05·√j (0.4 min for j = 1, 0.9 min for j = 5), and the median of 120
replications sits within a tenth of that; no-shows and numbers given back (priors of a few per
cent, shrunk by hundreds of clean calls) move a median only when they reach half the futures,
which they do not. So 0.5 min plus 2% of the horizon covers the honest error with room, and is
still far tighter than any wrong answer (a second counter halves the wait, a lunch adds an hour).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import pytest

from hub.domain.eta.estimator import Estimator, Forecast, Quantiles
from hub.domain.trace import TraceEvent

HANOI = timezone(timedelta(hours=7))
BRANCH = "T"                      # a branch no configuration knows: the estimator learns it all
FIELD = "F"
S = 8.0                           # minutes, every service
PAST_DAYS = [date(2026, 5, 11) + timedelta(days=i) for i in range(5)]     # Monday to Friday
TODAY = date(2026, 5, 18)         # the Monday after
ALL_DAY = [(8 * 60, 17 * 60)]     # minutes of the day a counter is open: 08:00-17:00
LUNCH = [(8 * 60, 12 * 60), (13 * 60, 17 * 60)]


def at(d: date, minute: float) -> datetime:
    return datetime.combine(d, time(0), tzinfo=HANOI) + timedelta(minutes=minute)


def minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


def close_to(expected: float) -> float:
    """The tolerance of a known answer `expected` minutes away (module docstring)."""
    return 0.5 + 0.02 * expected


# Events at the same second, in the order they happen at a counter: the service that ends, the
# counter that closes, the counter that opens, the number it calls.
_RANK = {"ticket.issued": 0, "ticket.completed": 1, "counter.closed": 2, "counter.opened": 3, "ticket.called": 4}


@dataclass
class World:
    """A branch where each service takes exactly S minutes and a counter calls the next number
    (priority first, then in order of issue) as soon as it is free; it calls while open and
    finishes the service in hand before it closes."""
    events: list[TraceEvent] = field(default_factory=list)
    issued: int = 0

    def add(self, t: datetime, type_: str, **kw) -> None:
        self.events.append(TraceEvent(t=t, type=type_, branch=BRANCH, **kw))

    def issue(self, t: datetime, priority: bool = False) -> str:
        self.issued += 1
        tid = f"{t:%Y%m%d}-{self.issued}"
        self.add(t, "ticket.issued", ticket=tid, service=FIELD, channel="kiosk", priority=priority)
        return tid

    def day(self, d: date, counters: dict[str, list[tuple[float, float]]], tickets: list[tuple[str, datetime, bool]],
            until: datetime | None = None) -> dict[str, datetime]:
        """Play day `d`: counters with their open windows (minutes of the day), numbers (id, issued,
        priority). Events up to `until` (default: the whole day) join the trace. Returns when each
        number is called in this world, and under the key None when a number taken at `until`
        would be."""
        day_events: list[tuple[datetime, str, str, dict]] = []
        free = {cid: at(d, wins[0][0]) for cid, wins in counters.items()}
        win_index = {cid: 0 for cid in counters}
        waiting = sorted(tickets, key=lambda x: (not x[2], x[1]))      # the calling rule
        called: dict[str | None, datetime] = {}
        for cid, wins in counters.items():
            day_events.append((at(d, wins[0][0]), cid, "counter.opened", {"counter": cid, "services": (FIELD,)}))
        probe = until is not None
        for _ in range(10_000):                 # a day is a few hundred steps; bounded all the same
            if not free:
                break
            # the next counter to be free, moved on to its next window if it is closed by then
            cid = min(free, key=lambda c: (free[c], c))
            x, wins, w = free[cid], counters[cid], win_index[cid]
            if x >= at(d, wins[w][1]):
                day_events.append((x, cid, "counter.closed", {"counter": cid}))
                if w + 1 == len(wins):
                    del free[cid]
                else:
                    win_index[cid] = w + 1
                    free[cid] = at(d, wins[w + 1][0])
                    day_events.append((free[cid], cid, "counter.opened", {"counter": cid, "services": (FIELD,)}))
                continue
            ready = [tk for tk in waiting if tk[1] <= x]
            if not ready:
                if probe and x >= until:
                    called[None] = x            # free with nobody waiting: a new number's turn
                    probe = False
                later = [tk[1] for tk in waiting if tk[1] > x] + ([until] if probe and until > x else [])
                free[cid] = min(later + [at(d, wins[w][1])])     # idle until then
                continue
            tid = ready[0][0]
            waiting.remove(ready[0])
            called[tid] = x
            day_events.append((x, cid, "ticket.called", {"ticket": tid, "counter": cid}))
            day_events.append((x + timedelta(minutes=S), cid, "ticket.completed", {"ticket": tid, "counter": cid}))
            free[cid] = x + timedelta(minutes=S)
        else:
            raise AssertionError("the day did not end")
        assert not waiting or until is not None, "a past day must serve every number it issued"
        for t, _cid, type_, kw in sorted(day_events, key=lambda e: (e[0], _RANK[e[2]], e[1])):
            if until is None or t <= until:
                self.add(t, type_, **kw)
        return called

    def past(self, counters: dict[str, list[tuple[float, float]]], per_day: int) -> None:
        """Five ordinary past days: `per_day` numbers taken at 07:50, all served."""
        for d in PAST_DAYS:
            tickets = [(self.issue(at(d, 470)), at(d, 470), False) for _ in range(per_day)]
            self.day(d, counters, tickets)

    def sorted_events(self) -> list[TraceEvent]:
        """The trace in time order (a stable sort: each day is already in order)."""
        return sorted(self.events, key=lambda e: e.t)


def estimator(events: list[TraceEvent]) -> Estimator:
    est = Estimator(BRANCH)         # the default 120 futures: these branches are small, a forecast is quick
    for ev in events:
        est.observe(ev)
    return est


@dataclass
class Case:
    """A forecast at `now` and the answers the deterministic world gives."""
    now: datetime
    forecast: Forecast
    waiting: list[str]                  # in the order this world calls them
    expected: dict[str | None, float]   # minutes from now until called; None: a new number


def case(counters_past, counters_today, per_day: int, waiting_at: float, morning: int,
         late_priority: int = 0) -> Case:
    """Past days as in `counters_past`; today `morning` numbers taken at 07:50 (and `late_priority`
    priority numbers a minute before now), forecast at minute `waiting_at` of today."""
    w = World()
    w.past(counters_past, per_day)
    now = at(TODAY, waiting_at)
    tickets = [(w.issue(at(TODAY, 470)), at(TODAY, 470), False) for _ in range(morning)]
    tickets += [(w.issue(now - timedelta(minutes=1), priority=True), now - timedelta(minutes=1), True)
                for _ in range(late_priority)]
    called = w.day(TODAY, counters_today, tickets, until=now)
    events = w.sorted_events()
    assert all(ev.t <= now for ev in events)
    waiting = sorted((tid for tid in called if tid is not None and called[tid] > now), key=lambda t: called[t])
    waiting += [tid for tid, _, _ in tickets if tid not in called]
    expected = {tid: minutes(now, called[tid]) for tid in waiting if tid in called}
    expected[None] = minutes(now, called[None]) if None in called else float("inf")
    return Case(now, estimator(events).forecast(now), waiting, expected)


def assert_ordered(q: Quantiles) -> None:
    assert 0 <= q.p10 <= q.p50 <= q.p90, q


# -- one counter, one field ------------------------------------------------------------------------

def test_one_counter_calls_every_S_minutes_after_the_service_in_hand():
    # Today the counter opened at 08:00 and has served back to back: at 09:55 the service that
    # started at 09:52 has 5 minutes to go, and five numbers wait behind it.
    c = case({"A": ALL_DAY}, {"A": ALL_DAY}, per_day=40, waiting_at=9 * 60 + 55, morning=20)
    assert [c.expected[t] for t in c.waiting] == [5, 13, 21, 29, 37]          # the world's own answer
    for j, tid in enumerate(c.waiting, start=1):
        q = c.forecast.tickets[tid]
        assert_ordered(q)
        want = 5 + (j - 1) * S
        assert abs(q.p50 - want) <= close_to(want), (j, q, want)
    assert set(c.forecast.tickets) == set(c.waiting)
    assert abs(c.forecast.new_number[FIELD].p50 - 45) <= close_to(45)      # behind all five: 5 + 5·S


# -- two counters ----------------------------------------------------------------------------------

def test_two_counters_call_twice_as_often():
    # Counter B works four minutes out of step with A: at 09:55 A's service ends in 5 minutes and
    # B's in 1, so the waiting numbers are called at 1, 5, 9, 13, ... minutes: every S/2.
    counters = {"A": ALL_DAY, "B": [(8 * 60 + 4, 17 * 60)]}
    c = case(counters, counters, per_day=80, waiting_at=9 * 60 + 55, morning=37)
    assert [c.expected[t] for t in c.waiting] == [1 + 4 * j for j in range(8)]
    for j, tid in enumerate(c.waiting):
        q = c.forecast.tickets[tid]
        assert_ordered(q)
        want = 1 + j * S / 2
        assert abs(q.p50 - want) <= close_to(want), (j, q, want)
    # and the same queue behind one counter waits about twice as long
    one = case({"A": ALL_DAY}, {"A": ALL_DAY}, per_day=40, waiting_at=9 * 60 + 55, morning=23)
    last_two, last_one = c.forecast.tickets[c.waiting[-1]].p50, one.forecast.tickets[one.waiting[-1]].p50
    assert len(one.waiting) == len(c.waiting) == 8
    assert abs(last_two / last_one - 0.5) < 0.05, (last_two, last_one)


# -- the calling rule: priority first --------------------------------------------------------------

def test_a_priority_number_is_forecast_before_earlier_normal_ones():
    # Three normal numbers from 07:50 wait; a priority number taken at 09:54 is called next.
    c = case({"A": ALL_DAY}, {"A": ALL_DAY}, per_day=40, waiting_at=9 * 60 + 55, morning=18, late_priority=1)
    prio = c.waiting[0]
    assert [c.expected[t] for t in c.waiting] == [5, 13, 21, 29]
    f = c.forecast.tickets
    assert abs(f[prio].p50 - 5) <= close_to(5), f[prio]
    for j, tid in enumerate(c.waiting[1:], start=1):
        assert f[prio].p50 < f[tid].p50, (f[prio], f[tid])
        want = 5 + j * S
        assert abs(f[tid].p50 - want) <= close_to(want), (j, f[tid], want)


# -- a new number waits behind everyone of its field -----------------------------------------------

@pytest.mark.parametrize("counters, morning, late_priority", [
    ({"A": ALL_DAY}, 20, 0),
    ({"A": ALL_DAY, "B": [(8 * 60 + 4, 17 * 60)]}, 37, 0),
    ({"A": ALL_DAY}, 18, 2),
], ids=["one-counter", "two-counters", "priority-waiting"])
def test_the_new_number_forecast_is_behind_every_waiting_number(counters, morning, late_priority):
    c = case(counters, counters, per_day=40 * len(counters), waiting_at=9 * 60 + 55, morning=morning,
             late_priority=late_priority)
    new = c.forecast.new_number[FIELD]
    assert_ordered(new)
    assert c.waiting
    for tid in c.waiting:
        assert new.p50 >= c.forecast.tickets[tid].p50, (tid, new, c.forecast.tickets[tid])
    assert abs(new.p50 - c.expected[None]) <= close_to(c.expected[None]), (new, c.expected[None])


# -- determinism ---------------------------------------------------------------------------------

def test_the_same_events_give_the_same_forecast():
    counters = {"A": ALL_DAY, "B": [(8 * 60 + 4, 17 * 60)]}
    w = World()
    w.past(counters, 80)
    now = at(TODAY, 10 * 60 + 2.5)          # between boundaries, with services in hand
    tickets = [(w.issue(at(TODAY, 470)), at(TODAY, 470), False) for _ in range(40)]
    w.day(TODAY, counters, tickets, until=now)
    events = w.sorted_events()
    first, second = estimator(events), estimator(list(events))
    a, b = first.forecast(now), second.forecast(now)
    assert a.tickets and a.tickets == b.tickets and a.raw == b.raw and a.new_number == b.new_number
    assert first.publish(now) == second.publish(now) == a.tickets
    # asking again, after other questions, changes nothing either
    first.forecast(now + timedelta(minutes=1))
    assert first.forecast(now).tickets == a.tickets


# -- a learned lunch break -------------------------------------------------------------------------

def test_a_number_waiting_before_lunch_waits_through_it():
    # On past days the counter closed 12:00-13:00. Today it opened at 08:05: at 11:55 the service
    # that started at 11:49 ends at 11:57, when the first waiting number is called; its service
    # runs to 12:05, past the usual lunch, so the second one is called when the counter is back
    # at 13:00, 65 minutes from now, not 10. The plan's edges are uncertain by a few minutes: in
    # some futures lunch starts before 11:57 and both wait for 13:00 (the first is the one that
    # moves); the second's median is 65 give or take those minutes.
    today = [(8 * 60 + 5, 12 * 60), (13 * 60, 17 * 60)]
    c = case({"A": LUNCH}, {"A": today}, per_day=50, waiting_at=11 * 60 + 55, morning=29 + 3)
    assert [c.expected[t] for t in c.waiting] == [2, 65, 73]
    f = c.forecast.tickets
    for tid in c.waiting:
        assert_ordered(f[tid])
    assert f[c.waiting[0]].p50 <= 2 + close_to(2), f[c.waiting[0]]
    assert abs(f[c.waiting[1]].p50 - 65) <= 4, f[c.waiting[1]]
    assert abs(f[c.waiting[2]].p50 - 73) <= 4, f[c.waiting[2]]
    # the same morning at a counter that never takes a lunch break: 10 minutes, not 65
    plain = case({"A": ALL_DAY}, {"A": [(8 * 60 + 5, 17 * 60)]}, per_day=50, waiting_at=11 * 60 + 55,
                 morning=29 + 3)
    assert [plain.expected[t] for t in plain.waiting] == [2, 10, 18]
    assert abs(plain.forecast.tickets[plain.waiting[1]].p50 - 10) <= close_to(10)


def test_a_number_waiting_while_the_counter_is_at_lunch_waits_for_its_return():
    # The same day a little later: the counter finished its last service at 12:05 and closed; at
    # 12:10 the numbers wait for 13:00 (50 minutes) and 13:08 (58).
    today = [(8 * 60 + 5, 12 * 60), (13 * 60, 17 * 60)]
    c = case({"A": LUNCH}, {"A": today}, per_day=50, waiting_at=12 * 60 + 10, morning=32)
    assert [c.expected[t] for t in c.waiting] == [50, 58]
    f = c.forecast.tickets
    for tid, want in zip(c.waiting, (50, 58)):
        assert_ordered(f[tid])
        assert abs(f[tid].p50 - want) <= close_to(want), (f[tid], want)
