"""When each counter will be open for the rest of the service day, as a few plausible plans.

The configuration names the counters and the hours; the log says how a branch really works:
when each counter opened, went to lunch, came back, broke down. A counter's plan for the rest of
today is taken from one of its last few days (a different one in each replication, which is how
the forecast learns that lunch starts at 11:50 on one day and 12:10 on another), fitted to what it
is doing now: open now means open until the end of the interval it is in; closed when its plan
says open means an unplanned closure, whose end is drawn from the closures seen before.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from hub.domain import calendar
from hub.domain.config import Branch, Calendar
from hub.domain.eta.history import DayPlan
from hub.domain.eta.observed import Ctr, minute_of_day

OFF_PRIOR = 0.1          # pseudo-days off of a counter that was staffed every past day
Windows = list[tuple[float, float]]
Variant = tuple[float | None, Windows]       # (minutes already closed unplanned, or None; windows)


def _minutes(t: time) -> float:
    return t.hour * 60 + t.minute


@dataclass(frozen=True)
class Setting:
    """What the estimator knows of a branch besides its log: from the configuration when the
    branch is configured, else neutral defaults (a trace of a branch we have never heard of)."""
    counters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    service_means: dict[str, float] = field(default_factory=dict)
    opens: float = 480.0
    closes: float = 1020.0
    issuing_until: float = 960.0
    breaks: tuple[tuple[float, float], ...] = ()
    calendar: Calendar = Calendar()
    hold_minutes: float = 10.0

    @classmethod
    def of(cls, branch: Branch | None) -> Setting:
        if branch is None:
            return cls()
        p = branch.policy
        return cls(counters={c.id: c.services for c in branch.counters.values()},
                   service_means={s.id: s.service_minutes for s in branch.services.values()},
                   opens=_minutes(p.opens), closes=_minutes(p.closes),
                   issuing_until=_minutes(p.issuing_until),
                   breaks=tuple((_minutes(a), _minutes(b)) for a, b in getattr(p, "breaks", ())),
                   calendar=branch.calendar, hold_minutes=p.hold_minutes)

    def default_plan(self, services: tuple[str, ...]) -> DayPlan:
        edges = [self.opens]
        for a, b in self.breaks:
            edges += [a, b]
        edges.append(self.closes)
        return DayPlan(services, [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)])


def service_day(now: datetime, today: date | None, day_end: float, cal: Calendar) -> date:
    """The working day whose counters the forecast plays: today until its counters are done,
    else the next working day (online numbers are taken the evening before)."""
    d = now.date()
    if cal.is_working_day(d) and minute_of_day(now) < day_end:
        return d
    if today == d and minute_of_day(now) < day_end:       # a trace of a day the calendar skips
        return d
    return calendar.next_working_day(cal, d)


def offset(now: datetime, day: date) -> float:
    """Minutes from `now` to midnight starting `day` (negative when `day` is today)."""
    midnight = datetime.combine(day, time(0), tzinfo=now.tzinfo)
    return (midnight - now) / timedelta(minutes=1)


def variants(c: Ctr | None, plans: list[DayPlan], now_min: float, same_day: bool, changed: float | None,
             day_end: float) -> list[Variant]:
    """The counter's plausible plans, in minutes of the service day.

    `now_min` is the minute of the service day now (negative before it starts); `changed` the
    minute today at which the counter last opened or closed, if it did today.
    """
    out: list[Variant] = []
    for plan in plans:
        ivs = [(a, b if b is not None else day_end) for a, b in plan.intervals]
        if not same_day or c is None or (changed is None and not c.open):
            later = [iv for iv in ivs if iv[1] > now_min]
            if same_day and ivs and ivs[0][0] <= now_min:
                # it should have opened by now and has not: a late start, drawn like a closure
                # (`weighted` says how likely a start that late still is)
                if later and later[0][0] <= now_min:
                    later[0] = (now_min, later[0][1])
                out.append((now_min - ivs[0][0], later))
            else:
                out.append((None, later))
        elif c.open:
            later = [iv for iv in ivs if iv[1] > now_min]
            end = later[0][1] if later else max(now_min + 10, min(day_end, now_min + 60))
            out.append((None, [(now_min, end)] + later[1:]))
        else:
            inside = [i for i, iv in enumerate(ivs) if iv[0] <= now_min < iv[1]]
            if inside:
                i = inside[0]
                closed = now_min - max(ivs[i][0], changed if changed is not None else ivs[i][0])
                out.append((closed, [(now_min, ivs[i][1])] + ivs[i + 1:]))
            else:
                out.append((None, [iv for iv in ivs if iv[0] > now_min]))
    return out


def _gaps(plan: DayPlan, day_end: float) -> list[tuple[float, float]]:
    ivs = plan.intervals
    return [(end if end is not None else day_end, nxt[0]) for (_, end), nxt in zip(ivs, ivs[1:])]


def _overlaps(g: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    return any(a < g[1] and g[0] < b for a, b in others)


def planned_only(days: list[dict[str, DayPlan]], day_end: float
                 ) -> tuple[list[dict[str, DayPlan]], float, list[float]]:
    """Past days' plans with only the closures that recur, and what the others teach.

    A closure recurs when most counters closed at that time that day (lunch), or the counter
    closed at that time on most other days (its own break). Any other closure (a breakdown, a
    staff member called away) happened once: replaying it at the same time of day in a forecast
    would predict it again with the weight of one past day in a handful. Those are returned
    separately as a rate per open minute and a sample of lengths, for the simulation to draw
    anew."""
    out: list[dict[str, DayPlan]] = []
    odd: list[float] = []
    open_minutes = 0.0
    for i, day in enumerate(days):
        gaps = {cid: _gaps(p, day_end) for cid, p in day.items()}
        kept_day: dict[str, DayPlan] = {}
        for cid, plan in day.items():
            mine_elsewhere = [_gaps(d[cid], day_end) for j, d in enumerate(days) if j != i and cid in d]
            merged: list[list[float]] = []
            for iv in plan.intervals:
                start, end = iv[0], iv[1] if iv[1] is not None else day_end
                open_minutes += max(end - start, 0.0)
                if merged:
                    g = (merged[-1][1], start)
                    shared = sum(_overlaps(g, gs) for c, gs in gaps.items() if c != cid)
                    recurs = sum(_overlaps(g, gs) for gs in mine_elsewhere)
                    if not (shared * 2 >= len(gaps) - 1 and len(gaps) > 1) and \
                            not (mine_elsewhere and recurs * 2 >= len(mine_elsewhere)):
                        odd.append(g[1] - g[0])
                        merged[-1][1] = end             # a one-off: as if it had stayed open
                        continue
                merged.append([start, end])
            kept_day[cid] = DayPlan(plan.services, [(a, b) for a, b in merged])
        out.append(kept_day)
    rate = len(odd) / open_minutes if open_minutes > 0 else 0.0
    return out, rate, odd


def lateness(days: list[dict[str, DayPlan]]) -> list[float]:
    """Minutes each counter opened after the day's usual first opening (the median), on past days."""
    out: list[float] = []
    for day in days:
        firsts = sorted(p.intervals[0][0] for p in day.values() if p.intervals)
        if firsts:
            usual = firsts[len(firsts) // 2]
            out += [max(f - usual, 0.0) for f in firsts]
    return out


def weighted(var: list[Variant], days_off: int, late: list[float]) -> tuple[list[Variant], list[float]]:
    """The plans of a counter not working today yet, with the days it did not work at all as a plan
    of their own, and the weight of each given what is seen now (Bayes): a plan in which the
    counter should have opened `closed` minutes ago counts as much as a start that late is likely.
    A counter staffed four days in five that has not opened at 08:20 is most likely not staffed
    today; one never off yet may still be (OFF_PRIOR: staff fall ill)."""
    def survival(x: float) -> float:
        return (sum(1 for v in late if v > x) + 1) / (len(late) + 2)
    weights = [survival(closed) if closed is not None else 1.0 for closed, _ in var]
    return var + [(None, [])], weights + [days_off + OFF_PRIOR]
