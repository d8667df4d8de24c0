"""What a holder does with a number: when they are at the branch, whether they check in, when they
give up, whether they answer the call. Drawn once, when the number is taken.

- A walk-in is at the branch from the moment the kiosk prints the number.
- An online holder plans the trip from the wait the app shows (`expected_call`): they aim to be
  there 10-45 minutes early, read the wait as a little shorter than shown (CAUTION) and misjudge
  it by a lognormal factor (sd 0.3); daytime bookers travel 15-60 minutes unless they booked from
  the lobby (ON_SITE). So most arrive before their call and some arrive late: those are skipped,
  and come back within the recall window or not, as at a real counter. `online_never` never come
  (virtual numbers); `give_back_online` give the number back before setting off. Of those who
  come, `check_in` scan their QR at the kiosk on arrival.
- Whoever waits longer than their patience (lognormal around `patience_minutes`) leaves; a third
  of those give the number back from their phone on the way out.
- Called while out of earshot (`away_kiosk`, `away_online`: online holders who came early wander
  off more than walk-ins, who watch the board), a holder comes back after 1-25 minutes with chance
  `come_back`; later than the recall window, the number is lost.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.domain.limits import Citizen
from hub.sim.scenarios import Scenario

GIVE_BACK_ON_LEAVING = 1 / 3
EARLIEST_ARRIVAL = timedelta(minutes=30)    # before doors open: the building opens half an hour early
ON_SITE = 0.4           # daytime online bookers already at the branch (the phone, not the kiosk)
CAUTION = -0.2          # holders read the app's wait as shorter than shown (log-factor): better early


@dataclass
class Holder:
    channel: str
    citizen: Citizen | None
    arrive_at: datetime | None          # at the branch; None: never comes
    leave_at: datetime | None           # gives up waiting and goes home
    give_back_at: datetime | None       # gives the number back (from the phone or the kiosk)
    checks_in: bool                     # an online holder who scans the QR on arrival
    away: float                         # chance of being out of earshot when called
    back: bool = False                  # came back after a call (or was sent on): at the counter now
    transferred: bool = False


def _minutes(m: float) -> timedelta:
    return timedelta(seconds=int(m * 60))


def _patience(rng: random.Random, sc: Scenario) -> timedelta:
    return _minutes(rng.lognormvariate(math.log(sc.patience_minutes), 0.5))


def walk_in(rng: random.Random, sc: Scenario, now: datetime) -> Holder:
    leave = now + _patience(rng, sc)
    give_back = None
    if rng.random() < sc.give_back_kiosk:
        give_back = leave = now + _minutes(rng.uniform(5, 60))
    elif rng.random() < GIVE_BACK_ON_LEAVING:
        give_back = leave
    return Holder("kiosk", None, now, leave, give_back, True, sc.away_kiosk)


def online(rng: random.Random, sc: Scenario, now: datetime, citizen: Citizen, expected_call: datetime,
           opens: datetime) -> Holder:
    r = rng.random()
    if r < sc.give_back_online:
        span = max((expected_call - now).total_seconds() / 60, 10)
        when = now + _minutes(max(2.0, rng.uniform(0.05, 0.9) * span))
        return Holder("online", citizen, None, None, when, False, 0.0)
    if r < sc.give_back_online + sc.online_never:
        return Holder("online", citizen, None, None, None, False, 0.0)
    start = max(now, opens)
    believed = (expected_call - start).total_seconds() / 60 * rng.lognormvariate(CAUTION, 0.3)
    arrive = start + _minutes(believed - rng.uniform(10, 45))
    on_site = now >= opens - EARLIEST_ARRIVAL and rng.random() < ON_SITE
    earliest = max(opens - EARLIEST_ARRIVAL, now + _minutes(rng.uniform(0, 3) if on_site else rng.uniform(15, 60)))
    arrive = max(arrive, earliest)
    leave = arrive + _patience(rng, sc)
    give_back = leave if rng.random() < GIVE_BACK_ON_LEAVING else None
    return Holder("online", citizen, arrive, leave, give_back, rng.random() < sc.check_in, sc.away_online)


def renewed(now: datetime) -> Holder:
    """A no-show who came back too late takes a new number at the kiosk and waits for it."""
    return Holder("kiosk", None, now, None, None, True, 0.0)
