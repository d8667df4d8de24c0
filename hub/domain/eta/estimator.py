"""One branch's estimator: folds its events, forecasts every waiting number at once, calibrates.

Pure and deterministic: the same events and the same `now` give the same forecast (the random
stream is seeded from the branch and the time), and a forecast at `t` depends on nothing after `t`. The live hub and `queuecast eta replay` both drive this class.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, overload

from hub.domain.eta import forward, model
from hub.domain.eta.calibration import Calibration
from hub.domain.eta.observed import Observed
from hub.domain.eta.plans import Setting
from hub.domain.trace import TraceEvent

REPLICATIONS = 80       # futures per forecast: p10 and p90 to about ±5% of the spread, calibrated after


@dataclass(frozen=True)
class Quantiles:
    """Minutes from the forecast's time until the first call: p10 ≤ p50 ≤ p90."""
    p10: float
    p50: float
    p90: float

    def as_dict(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}

    def shifted(self, minutes: float) -> Quantiles:
        return Quantiles(*(max(v - minutes, 0.0) for v in (self.p10, self.p50, self.p90)))


@dataclass
class Forecast:
    at: datetime
    raw: dict[str, Quantiles]               # per waiting ticket, as simulated
    tickets: dict[str, Quantiles]           # the same, calibrated: what is published
    new_number: dict[str, Quantiles]        # per field, for a number taken now
    quiet_until: datetime | None = None     # nothing can change before then (no counter open yet)
    lead: float = 0.0                       # minutes until a counter opens (0: one is open)

    def ticket(self, tid: str, now: datetime) -> Quantiles | None:
        """A number's forecast as seen at `now`, a little after the forecast was made."""
        q = self.tickets.get(tid)
        return q if q is None or now <= self.at else _rounded(q.shifted(_minutes(self.at, now)))

    def field(self, service: str, now: datetime) -> Quantiles | None:
        q = self.new_number.get(service)
        return q if q is None or now <= self.at else _rounded(q.shifted(_minutes(self.at, now)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what another hub process needs to show and publish it without simulating."""
        def qs(d: dict[str, Quantiles]) -> dict[str, list[float]]:
            return {k: [q.p10, q.p50, q.p90] for k, q in d.items()}
        return {"at": self.at.isoformat(), "raw": qs(self.raw), "tickets": qs(self.tickets),
                "new_number": qs(self.new_number), "lead": self.lead,
                "quiet_until": self.quiet_until.isoformat() if self.quiet_until else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Forecast:
        def qs(m: dict[str, list[float]]) -> dict[str, Quantiles]:
            return {k: Quantiles(*v) for k, v in m.items()}
        quiet = d.get("quiet_until")
        return cls(datetime.fromisoformat(d["at"]), qs(d["raw"]), qs(d["tickets"]), qs(d["new_number"]),
                   datetime.fromisoformat(quiet) if quiet else None, float(d["lead"]))


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


def _quantiles(xs: list[float], cap: float) -> Quantiles:
    xs = sorted(xs)
    if xs[-1] > cap:
        xs = [min(x, cap) for x in xs]
    n = len(xs) - 1

    def q(p: float) -> float:
        pos = p * n
        i = int(pos)
        j = min(i + 1, n)
        return xs[i] + (xs[j] - xs[i]) * (pos - i)
    return Quantiles(q(0.1), q(0.5), q(0.9))


def _rounded(q: Quantiles) -> Quantiles:
    return Quantiles(round(q.p10, 1), round(q.p50, 1), round(q.p90, 1))


class Estimator:
    def __init__(self, branch: str, setting: Setting | None = None, replications: int = REPLICATIONS):
        self.branch = branch
        self.setting = setting or Setting()
        self.replications = replications
        self.observed = Observed(branch)
        self.calibration = Calibration()
        self._last: tuple[int, Forecast] | None = None      # what forecast() simulated last
        self._point: tuple[int, Forecast] | None = None     # what publish() simulated last
        self.simulations = 0                # forecasts simulated by this estimator (the costly part)
        # Forecasts of the state as it is, by the time they are for, made outside the points (`make`:
        # after this process's own events) or by another hub process (`adopt`): a point at exactly
        # that time takes one instead of simulating it again. Cleared by the next event.
        self._made: tuple[int, dict[datetime, Forecast]] = (-1, {})
        # The state's version whose forecasts another hub process makes and sends: while no event
        # has come since, this estimator shows theirs and simulates nothing.
        self._adopted: int | None = None

    def observe(self, ev: TraceEvent) -> None:
        before = self.observed.tickets.get(ev.ticket) if ev.ticket else None
        # the number's id if it is still waiting for its first call: this event may be its outcome
        waiting = before.id if before is not None and before.called_at is None else None
        self.observed.observe(ev)
        if waiting is not None and ev.type == "ticket.called":
            self.calibration.outcome(waiting, ev.t)
        elif waiting is not None and ev.type in ("ticket.cancelled", "ticket.expired"):
            self.calibration.outcome(waiting, None)

    def forecast(self, now: datetime, max_age: timedelta = timedelta(0)) -> Forecast:
        """The forecast at `now`; with `max_age`, one made up to that long ago with no event since
        will do (the live hub: read on every request, recomputed on every event). An adopted one
        does at any age: the process that made it sends the next one (its `Forecast.ticket`
        shifts it to `now`)."""
        if self.relaying and self._last is not None and self._last[0] == self._adopted:
            return self._last[1]
        f, self._last = self._from(self._last, now, max_age)
        return f

    @property
    def relaying(self) -> bool:
        """Whether the state's forecasts are another process's (`adopt`), no event since."""
        return self._adopted is not None and self._adopted == self.observed.version

    def _kept(self) -> dict[datetime, Forecast]:
        """The forecasts made or adopted of the state as it is (a new dict after an event)."""
        version = self.observed.version
        if self._made[0] != version:
            self._made = (version, {})
        return self._made[1]

    def make(self, t: datetime) -> Forecast:
        """The forecast at `t` (the time of events this process just folded) of the state as it
        is: simulated once, then the pages' forecast, and the point of `t` if one is due then."""
        kept = self._kept()
        f = kept.get(t)
        if f is None:
            f = kept[t] = self._simulate(t)
        self._last = (self.observed.version, f)
        return f

    def adopt(self, f: Forecast) -> None:
        """Take `f`, made by another hub process of this very state (hub.service.follow): shown,
        and published at its time, as if simulated here."""
        self._kept()[f.at] = f
        version = self._adopted = self.observed.version
        if self._last is None or self._last[0] != version or self._last[1].at <= f.at:
            self._last = (version, f)

    def hold(self) -> None:
        """Another process's forecast of this state comes with a later event (hub.service.follow):
        meanwhile the last one stands."""
        if self._last is not None:
            self._adopted = self.observed.version
            self._last = (self._adopted, self._last[1])

    def current(self) -> Forecast | None:
        """The latest forecast of the state as it is now (made, adopted or a point), if any."""
        found = list(self._kept().values())
        if self._point is not None and self._point[0] == self.observed.version:
            found.append(self._point[1])
        return max(found, key=lambda f: f.at) if found else None

    def made_here(self) -> bool:
        """Whether this process made the forecast of the state as it is (it is not relaying)."""
        return not self.relaying and self.current() is not None

    @overload
    def _from(self, kept: tuple[int, Forecast] | None, now: datetime, max_age: timedelta,
              simulate: Literal[True] = True) -> tuple[Forecast, tuple[int, Forecast]]: ...

    @overload
    def _from(self, kept: tuple[int, Forecast] | None, now: datetime, max_age: timedelta,
              simulate: bool) -> tuple[Forecast, tuple[int, Forecast]] | None: ...

    def _from(self, kept: tuple[int, Forecast] | None, now: datetime, max_age: timedelta,
              simulate: bool = True) -> tuple[Forecast, tuple[int, Forecast]] | None:
        """The forecast at `now` from the one `kept` (its state's version, itself) if no event came
        since: itself while young enough, shifted through a quiet period; else a new simulation."""
        version = self.observed.version
        if kept is not None and kept[0] == version:
            last = kept[1]
            if last.at <= now <= last.at + max_age:
                return last, kept
            if last.quiet_until is not None and last.at <= now <= last.quiet_until:
                return self._shift(last, now), kept
        if not simulate:
            return None
        f = self._simulate(now)
        return f, (version, f)

    def publish(self, now: datetime, tickets: list[str] | None = None) -> dict[str, Quantiles]:
        """The forecast of `tickets` (default: every waiting number) as published at `now`; each
        is remembered so that its outcome can calibrate later forecasts."""
        got = self.publish_made(now, tickets, simulate=True)
        assert got is not None
        return got

    def publish_made(self, now: datetime, tickets: list[str] | None = None, *,
                     simulate: bool = False) -> dict[str, Quantiles] | None:
        """`publish`, or None if that would take a simulation and `simulate` is false: a process
        that adopts another's forecasts waits for the point to be sent (hub.predictions)."""
        # Points are forecast from the last point, never from a page's forecast made between two
        # points: a quiet point then shifts what the previous point simulated, whoever read the
        # forecast in between, so the live hub publishes exactly what the replay does. Failing
        # that, a point is what a simulation at `now` gives: a forecast of this state made (or
        # adopted) at exactly `now` is that.
        got = self._from(self._point, now, timedelta(0), False)
        if got is None and now in self._kept():
            f = self._kept()[now]
            got = (f, (self.observed.version, f))
        if got is None:
            got = self._from(self._point, now, timedelta(0), simulate)
        if got is None:
            return None
        f, self._point = got
        if self._point[1] is f:
            self._last = self._point            # pages read the point's new simulation
        # Forecasts made before the branch has a past day to learn from are of another kind (no
        # plan, no profile): their errors would teach the calibration the wrong lesson.
        h = self.observed.history
        warm = bool(h.plans) or bool(h.plans_today and self.observed.today != now.date())
        out = {}
        for tid in (f.tickets if tickets is None else tickets):
            if tid in f.tickets:
                if warm:
                    raw = f.raw[tid]
                    self.calibration.remember(tid, now, (raw.p10, raw.p50, raw.p90), f.lead)
                out[tid] = f.tickets[tid]
        return out

    def _shift(self, last: Forecast, now: datetime) -> Forecast:
        d = (now - last.at).total_seconds() / 60
        raw = {k: q.shifted(d) for k, q in last.raw.items()}
        lead = max(last.lead - d, 0.0)
        return Forecast(now, raw, self._calibrated(raw, lead), {k: q.shifted(d) for k, q in last.new_number.items()},
                        last.quiet_until, lead)

    def _calibrated(self, raw: dict[str, Quantiles], lead: float) -> dict[str, Quantiles]:
        return {k: _rounded(Quantiles(*self.calibration.adjust(q.p10, q.p50, q.p90, lead))) for k, q in raw.items()}

    def _simulate(self, now: datetime) -> Forecast:
        self.simulations += 1
        plan, tracked, fields, horizon = model.build(self.observed, self.setting, now)
        # Common random numbers: the same stream for every forecast at the same moment, so a
        # forecast moves because the state moved, not because the dice did (the wait shown for
        # a new number is exactly the one the number gets once taken).
        seed = zlib.crc32(f"{self.branch}|{now.isoformat()}".encode())
        rng = random.Random()
        per_ticket: list[list[float]] = [[] for _ in tracked]
        per_field: list[list[float]] = [[] for _ in fields]
        for r in range(self.replications):
            rng.seed(seed * 1009 + r)       # each future its own stream: one more number in the
            calls, vcall = forward.replicate(plan, rng)     # queue does not reshuffle the others
            for i, x in enumerate(calls):
                per_ticket[i].append(x)
            for i, x in enumerate(vcall):
                per_field[i].append(x)
        cap = max(horizon, 0.0)
        raw = {tid: _quantiles(xs, cap) for tid, xs in zip(tracked, per_ticket)}
        new = {f: _rounded(_quantiles(xs, cap)) for f, xs in zip(fields, per_field)}
        quiet, lead = None, 0.0
        starts = [w[0][0] for c in plan.counters for _, w in c.variants if w]
        if all(c.busy is None for c in plan.counters) and starts and min(starts) > 0 \
                and not any(obs.open for obs in self.observed.counters.values()):
            lead = min(starts)
            quiet = now + timedelta(minutes=lead)
        return Forecast(now, raw, self._calibrated(raw, lead), new, quiet, lead)
