"""When numbers are taken: a non-homogeneous Poisson process per channel.

Each channel has a piecewise-constant rate profile over the working day (minutes from midnight of
the day the numbers are for; negative minutes are the evening before). Within a piece the process
is a plain Poisson process, so drawing exponential gaps piece by piece is exact. A profile is only
a shape: it is scaled to the expected count of the day and clipped to the policy's issuing hours,
so no number is ever drawn where the domain would refuse it.

- kiosk: doors open at 08:00, a morning peak until 10:00 (people come before work), a lunch dip,
  a smaller afternoon bump, nothing after `issuing_until` (16:00);
- online: a burst when booking opens at 20:00 on the eve (the first numbers go fast), a tail into
  the night, a little overnight, people booking over breakfast, and a share during the day.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub.domain.config import Policy

# (from minute, relative rate until the next piece); the last piece ends at issuing_until.
KIOSK_PROFILE = ((480, 1.5), (510, 1.9), (540, 2.0), (570, 1.8), (600, 1.4), (630, 1.2), (660, 1.0),
                 (690, 0.7), (720, 0.4), (750, 0.4), (780, 0.8), (810, 1.1), (840, 1.2), (870, 1.0),
                 (900, 0.7), (930, 0.4))
ONLINE_PROFILE = ((-240, 10.0), (-210, 5.0), (-180, 2.5), (-120, 1.2), (-60, 0.6), (0, 0.1),
                  (360, 0.8), (420, 1.5), (480, 1.2), (600, 0.8), (720, 0.5), (780, 0.6), (900, 0.3))
MORNING_PEAK = (480, 600)           # walk-in minutes that a scenario's `morning_peak` reweights


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def kiosk_profile(morning_peak: float) -> list[tuple[int, float]]:
    lo, hi = MORNING_PEAK
    return [(m, w * morning_peak if lo <= m < hi else w) for m, w in KIOSK_PROFILE]


def times(rng: random.Random, profile: Sequence[tuple[float, float]], expected: float, start: float,
          end: float) -> list[float]:
    """Event minutes of a Poisson process with `profile`'s shape, `expected` events in [start, end)."""
    pieces = []
    for i, (m, w) in enumerate(profile):
        nxt = profile[i + 1][0] if i + 1 < len(profile) else end
        a, b = max(m, start), min(nxt, end)
        if b > a and w > 0:
            pieces.append((a, b, w))
    mass = sum((b - a) * w for a, b, w in pieces)
    out: list[float] = []
    if mass <= 0 or expected <= 0:
        return out
    for a, b, w in pieces:
        rate = expected * w / mass          # numbers per minute in this piece
        t = a
        while True:
            t += rng.expovariate(rate)
            if t >= b:
                break
            out.append(t)
    return out


def day_arrivals(rng: random.Random, policy: Policy, day: date, zone: ZoneInfo, *, kiosk: float,
                 online: float, morning_peak: float, not_before: datetime | None = None
                 ) -> list[tuple[datetime, str]]:
    """(when, channel) of the numbers taken for `day`, in time order, to the second.

    `kiosk` and `online` are the expected counts. Online booking opens at `online_from` on the eve;
    `not_before` (the end of the day simulated before) keeps a trace in time order even where a
    configuration opens online booking before the previous day has closed.
    """
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    until = _minutes(policy.issuing_until)
    online_start: float = _minutes(policy.online_from) - 24 * 60
    if not_before is not None:
        online_start = max(online_start, (not_before - midnight).total_seconds() / 60)
    drawn = [(m, "kiosk") for m in times(rng, kiosk_profile(morning_peak), kiosk, _minutes(policy.opens), until)]
    drawn += [(m, "online") for m in times(rng, ONLINE_PROFILE, online, online_start, until)]
    drawn.sort()
    return [(midnight + timedelta(seconds=int(m * 60)), channel) for m, channel in drawn]
