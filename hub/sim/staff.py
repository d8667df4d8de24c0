"""The people behind the counters: how fast each works, and each counter's plan for a day.

- Speed: each counter's staff has a speed factor (lognormal, sd 0.18, kept within 0.7-1.5) that
  multiplies every service time there. It persists from day to day with a little drift (sd 0.03 a
  day): the same clerk is quick, or slow, all week.
- Opening: at `opens` plus 0-5 minutes; one counter in ten starts 5-15 minutes late.
- Lunch 12:00-13:00: a counter finishes its citizen from about 12:00 (-5..+10 min), closes, and
  reopens about 13:00 (-3..+8 min). Queues keep growing meanwhile: numbers are still taken.
- Short planned breaks: `short_breaks` of the counters take one of 10-20 minutes, mid-morning
  (09:30-11:15) or mid-afternoon (14:15-15:45).
- Unplanned closures (a system fault, a clerk called away): Poisson, `closures_per_counter` a day,
  at any time from 08:30 to 16:15, for 15-90 minutes.
- Unmanned counters: `counters_off` of them stay closed all day; a field left without a counter is
  taken on by the open counter with the fewest fields (it reopens with the longer list).
A counter never closes on a citizen: a break starts when the current service ends.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub.domain.config import Branch
from hub.sim.scenarios import Scenario

LUNCH = (time(12, 0), time(13, 0))
SHORT_BREAK_WINDOWS = ((time(9, 30), time(11, 15)), (time(14, 15), time(15, 45)))
CLOSURE_WINDOW = (time(8, 30), time(16, 15))
MAX_FIELDS = 4          # a counter covering for an unmanned one takes at most this many fields


@dataclass
class Break:
    start: datetime
    kind: str                       # lunch | break | unplanned
    until: datetime | None = None   # fixed end (lunch) ...
    minutes: float = 0.0            # ... or a length counted from the actual close


@dataclass
class Desk:
    """A counter on one day: its plan, and where its clerk is in the loop (hub.sim.branch_day)."""

    id: str
    services: tuple[str, ...]
    speed: float
    opens_at: datetime | None           # None: unmanned all day
    breaks: list[Break]
    state: str = "closed"               # closed | idle | waking | calling | serving
    recalls: list[str] = field(default_factory=list)   # returned no-shows to recall when free


class Staff:
    """The clerks of a branch across days: a speed per counter that drifts a little each day."""

    def __init__(self, rng: random.Random, branch: Branch):
        self.branch = branch
        self.speed = {c: min(1.5, max(0.7, rng.lognormvariate(0, 0.18))) for c in branch.counters}

    def plan(self, rng: random.Random, sc: Scenario, day: date, zone: ZoneInfo) -> list[Desk]:
        for c in self.speed:
            self.speed[c] = min(1.5, max(0.7, self.speed[c] * math.exp(rng.gauss(0, 0.03))))

        def at(t: time, minutes: float = 0.0) -> datetime:
            return datetime.combine(day, t, tzinfo=zone) + timedelta(seconds=int(minutes * 60))

        plans = list(self.branch.counters.values())
        n_off = round(sc.counters_off * len(plans))
        off = set(rng.sample([p.id for p in plans], n_off)) if n_off else set()
        services = {p.id: list(p.services) for p in plans if p.id not in off}
        for f in self.branch.services:       # every field keeps a counter
            if not any(f in s for s in services.values()):
                wide = [c for c in services if len(services[c]) < MAX_FIELDS] or list(services)
                services[min(wide, key=lambda c: len(services[c]))].append(f)
        desks = []
        for p in plans:
            opens = at(self.branch.policy.opens, rng.uniform(5, 15) if rng.random() < 0.1 else rng.uniform(0, 5))
            breaks = [Break(at(LUNCH[0], rng.uniform(-5, 10)), "lunch", until=at(LUNCH[1], rng.uniform(-3, 8)))]
            if rng.random() < sc.short_breaks:
                lo, hi = rng.choice(SHORT_BREAK_WINDOWS)
                breaks.append(Break(_between(rng, at(lo), at(hi)), "break", minutes=rng.uniform(10, 20)))
            for _ in range(_poisson(rng, sc.closures_per_counter)):
                breaks.append(Break(_between(rng, at(CLOSURE_WINDOW[0]), at(CLOSURE_WINDOW[1])), "unplanned",
                                    minutes=rng.uniform(15, 90)))
            breaks.sort(key=lambda b: b.start)
            desks.append(Desk(p.id, tuple(services.get(p.id, p.services)), self.speed[p.id] * sc.service_factor,
                              None if p.id in off else opens, breaks))
        return desks


def _between(rng: random.Random, a: datetime, b: datetime) -> datetime:
    return a + timedelta(seconds=int(rng.uniform(0, (b - a).total_seconds())))


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means used here."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
