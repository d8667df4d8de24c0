"""Several working days of one branch in a row: `simulate()`, the simulator's entry point.

One `BranchState` carries over from day to day, as in the hub (yesterday's tickets are still
known, online numbers for tomorrow are taken the evening before), and so do the clerks' speeds.
Each day draws, in this order: its demand and service drift, its arrivals, the counters' plan,
then runs its event loop to the last counter closing. The day-to-day drift is a mean-reverting
random walk of the log-multipliers on demand and on service times (sd `drift` a day, kept within
±20%); demand also follows the week (Mondays busiest, Fridays lighter).
"""
from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from hub.domain import calendar
from hub.domain.config import Branch
from hub.domain.events import Event
from hub.domain.state import BranchState
from hub.sim.arrivals import day_arrivals
from hub.sim.branch_day import BranchDay
from hub.sim.scenarios import SCENARIOS
from hub.sim.staff import Staff

DEFAULT_START = date(2026, 5, 18)       # a working Monday: the same arguments, the same trace
WEEKDAY_DEMAND = (1.1, 1.0, 1.0, 0.97, 0.92, 0.9, 0.9)   # Monday .. Sunday (make-up Saturdays)
DRIFT_LIMIT = math.log(1.2)
DRIFT_PULL = 0.7                        # how much of yesterday's deviation is left today


def first_day(branch: Branch, start: date) -> date:
    """`start` if the branch works that day, else its next working day."""
    cal = branch.calendar
    return start if cal.is_working_day(start) else calendar.next_working_day(cal, start)


def simulate(branch: Branch, zone: ZoneInfo, *, days: int = 3, start: date = DEFAULT_START, seed: int = 0,
             scenario: str = "normal", stats: Counter[str] | None = None) -> Iterator[Event]:
    """The events of `days` working days from `start`, in time order, as the hub would log them.

    Only (seed, scenario, branch) seed the generator: the same arguments give the same events.
    `stats` (if given) counts what the trace does not say: closures by kind, refusals by code.
    """
    sc = SCENARIOS[scenario]
    branch = replace(branch, policy=replace(branch.policy, absent=sc.absent))
    rng = random.Random(f"queuecast-sim/{seed}/{sc.name}/{branch.id}")    # str seeds are hashed with SHA-512
    stats = Counter() if stats is None else stats
    st, staff = BranchState(branch), Staff(rng, branch)
    demand = service = 0.0
    day, last = first_day(branch, start), None
    for _ in range(days):
        demand, service = _drift(rng, demand, sc.drift), _drift(rng, service, sc.drift)
        total = sc.numbers_per_counter * len(branch.counters) * math.exp(demand) * WEEKDAY_DEMAND[day.weekday()]
        online = total * sc.online_share / (1 + sc.second_number)      # second numbers come on top
        kiosk = total * (1 - sc.online_share) * sc.walk_in_factor
        arrivals = day_arrivals(rng, branch.policy, day, zone, kiosk=kiosk, online=online,
                                morning_peak=sc.morning_peak, not_before=last)
        desks = staff.plan(rng, sc, day, zone)
        evs = BranchDay(st, day, zone, sc, rng, desks, math.exp(service), stats).run(arrivals)
        stats["days"] += 1
        if evs:
            last = datetime.fromisoformat(evs[-1]["t"])
        yield from evs
        day = calendar.next_working_day(branch.calendar, day)


def _drift(rng: random.Random, x: float, sd: float) -> float:
    return min(DRIFT_LIMIT, max(-DRIFT_LIMIT, DRIFT_PULL * x + rng.gauss(0, sd)))
