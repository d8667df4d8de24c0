"""Named scenarios: one frozen parameter set each, for every effect the simulator models.

Rates are per working day and per counter of the branch's configuration, so one scenario fits
every branch: branch 1 (16 counters) gets about 500 numbers on a "normal" day, a branch of 8
counters about 250. Each parameter says what it does where it is declared; the modules that use
them (`arrivals`, `holders`, `staff`, `run`) say how.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    # -- demand (hub.sim.arrivals, hub.sim.run) ------------------------------------------------
    numbers_per_counter: float = 30.0   # expected numbers a day, per configured counter
    online_share: float = 0.35          # of those, taken online (iHanoi) rather than at the kiosk
    walk_in_factor: float = 1.0         # multiplies walk-ins only: a surge is people at the door
    morning_peak: float = 1.0           # extra weight of the 08:00-10:00 walk-in peak
    priority_share: float = 0.05        # kiosk numbers staff mark priority (online: by birth year)
    second_number: float = 0.06         # online bookers who book a second field (per_day allows 2)
    same_field_again: float = 0.015     # ... or try the same field again (the domain refuses)
    drift: float = 0.08                 # sd of the day-to-day log-multipliers (demand, service)
    # -- holders (hub.sim.holders) -------------------------------------------------------------
    online_never: float = 0.12          # online numbers nobody comes for ("virtual numbers")
    check_in: float = 0.8               # online holders who come and scan their QR at the kiosk
    give_back_online: float = 0.07      # online numbers given back before the holder comes
    give_back_kiosk: float = 0.015      # walk-ins who give their number back (forgot a paper...)
    patience_minutes: float = 300.0     # median wait after which a holder at the branch leaves
    away_kiosk: float = 0.015           # called while out of earshot (walk-ins)
    away_online: float = 0.08           # ... online holders at the branch (came early, wander off)
    come_back: float = 0.45             # of those away, the ones who come back
    renew: float = 0.5                  # a no-show too late for a recall takes a new number
    transfer_share: float = 0.03        # served numbers sent on to another field
    # -- staff (hub.sim.staff) -----------------------------------------------------------------
    service_factor: float = 1.0         # multiplies every service time (> 1: slower staff)
    counters_off: float = 0.0           # share of counters left closed the whole day
    short_breaks: float = 0.35          # share of counters taking one short planned break
    closures_per_counter: float = 0.08  # unplanned closures per counter and day (15-90 min)
    absent: str = "skip"                # the branch policy `absent` for the run: skip | hold


NORMAL = Scenario("normal", "an ordinary working week")

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    NORMAL,
    replace(NORMAL, name="busy", about="surge days: 30-50% more walk-ins, long queues, numbers expire",
            walk_in_factor=1.4, morning_peak=1.25, patience_minutes=240.0, drift=0.05),
    replace(NORMAL, name="quiet", about="a slack week: about 60% of the usual demand",
            numbers_per_counter=19.0, morning_peak=0.9),
    replace(NORMAL, name="understaffed",
            about="a fifth of the counters unmanned, frequent unplanned closures, slower staff",
            counters_off=0.2, closures_per_counter=0.3, service_factor=1.1, short_breaks=0.5),
    replace(NORMAL, name="hold",
            about="absent = hold: called online numbers not checked in are held; half the numbers online",
            absent="hold", online_share=0.5, online_never=0.15, check_in=0.7),
)}
