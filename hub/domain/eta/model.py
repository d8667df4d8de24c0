"""From what was observed to what the forward simulation plays: the laws and the plans of one
forecast. Every number here is learned from the log up to now, with the configuration as the
prior before the log says anything (a new branch, a new field, the first morning)."""
from __future__ import annotations

import math
from datetime import datetime
from statistics import median

from hub.domain.eta import forward, plans, service_times
from hub.domain.eta.history import CATEGORIES, KIOSK, PRIOR_CALLS, PRIOR_NOSHOW, History, Profile, category
from hub.domain.eta.observed import Observed, minute_of_day, minutes

DEFAULT_SERVICE = 8.0        # minutes: a field nobody configured or saw yet
PRIOR_WEIGHT = 3.0           # the prior counts as this many services
SPEED_PRIOR = 4.0            # a counter's speed is shrunk towards 1 as if seen this many times at 1
MAX_SPEED_LOG = 0.7


def service_laws(obs: Observed, setting: plans.Setting, fields: list[str], now: datetime
                 ) -> dict[str, service_times.LogNormal]:
    h = obs.history
    running: dict[str, list[tuple[float, float]]] = {}
    for c in obs.counters.values():
        t = obs.tickets.get(c.serving) if c.serving else None
        if t is not None and t.started is not None:
            running.setdefault(t.service, []).append((max(minutes(t.started, now), 0.05), 1.0))
    pooled_done = [(m, h.weight(d)) for f in h.done for m, d in h.done[f]]
    known = [setting.service_means[f] for f in fields if f in setting.service_means]
    base = service_times.from_mean(sum(known) / len(known) if known else DEFAULT_SERVICE)
    pooled = service_times.fit(pooled_done, [], base, PRIOR_WEIGHT)
    laws = {}
    for f in fields:
        prior = service_times.from_mean(setting.service_means[f]) if f in setting.service_means else pooled
        done = [(m, h.weight(d)) for m, d in h.done.get(f, ())]
        laws[f] = service_times.fit(done, running.get(f, []), prior, PRIOR_WEIGHT)
    return laws


def speed_logs(h: History, laws: dict[str, service_times.LogNormal]) -> dict[str, float]:
    """Each counter's staff speed as a log-factor on the field's law, learned from its services
    (today's first): shrunk towards 1, so one long service does not brand a counter slow."""
    out = {}
    for cid, samples in h.by_counter.items():
        num = den = 0.0
        for f, m, d in samples:
            if f in laws and m > 0:
                w = h.weight(d)
                num += w * (math.log(m) - laws[f].mu)
                den += w
        out[cid] = max(-MAX_SPEED_LOG, min(MAX_SPEED_LOG, num / (den + SPEED_PRIOR)))
    return out


DAY_SD_PRIOR = 0.08          # sd of a day's log speed level around the usual, before the log says
DAY_SD_PRIOR_DAYS = 2.0      # ... counted as this many days


def day_level_sd(h: History, laws: dict[str, service_times.LogNormal], same_day: bool) -> float:
    """How uncertain the speed of the day being forecast still is, as an sd of a log-factor shared
    by every service of that day: the whole branch is slower on some days (a system outage, a
    new form, a cold). Learned from how much past days' mean log service times moved around
    their field's law (less what sampling alone explains), then narrowed by the services already
    seen today, which the fitted laws follow."""
    by_day: dict[tuple[str, int], list[float]] = {}
    for f, samples in h.done.items():
        if f in laws:
            for m, d in samples:
                if m > 0:
                    by_day.setdefault((f, d), []).append(math.log(m) - laws[f].mu)
    num, den, today = DAY_SD_PRIOR ** 2 * DAY_SD_PRIOR_DAYS, DAY_SD_PRIOR_DAYS, 0
    for (f, d), xs in by_day.items():
        if d == h.day and same_day:
            today += len(xs)
        elif len(xs) >= 5:
            mean = sum(xs) / len(xs)
            num += max(mean * mean - laws[f].sigma ** 2 / len(xs), 0.0)
            den += 1
    tau2 = num / den
    if today:
        sigma2 = sum(law.sigma ** 2 for law in laws.values()) / len(laws)
        tau2 = 1 / (1 / tau2 + today / sigma2)
    return math.sqrt(tau2)


def _priority_rates(h: History, days: list[Profile], field: str, now_min: float, issue_end: float,
                    opened: float) -> list[tuple[float, float]]:
    """Arrivals of priority numbers still to come in a field, piecewise by hour, minutes from now:
    the mean of the same hour on past days (the night before included: online numbers are taken
    from 20:00), else, during the first day, today's rate so far."""
    out = []
    if days:
        for hour in range(math.floor(now_min / 60), int(issue_end // 60) + 1):
            until = min((hour + 1) * 60, issue_end)
            rate = sum(d.get(field, {}).get(hour, 0) for d in days) / len(days) / 60
            if until > now_min:
                out.append((until - now_min, rate))
        return out
    if now_min < opened:
        return []               # no past day, no service yet: nothing to go on
    seen = sum(1 for m, f, p in h.issues_today if p and f == field and m >= opened)
    span = max(now_min - opened, 60.0)
    return [(issue_end - now_min, seen / span)] if issue_end > now_min else []


def _gives_back(h: History, channel: str) -> float:
    """Share of a channel's numbers given back before their turn (a few in a hundred)."""
    return (h.given_back.get(channel, 0.0) + 0.02 * PRIOR_CALLS) / (h.issued_n.get(channel, 0.0) + PRIOR_CALLS)


def _cumulative(weights: list[float]) -> list[float] | None:
    if len(set(weights)) <= 1:
        return None                     # all alike: a uniform draw, cheaper
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def build(obs: Observed, setting: plans.Setting, now: datetime) -> tuple[forward.Plan, list[str], list[str], float]:
    """The simulation plan at `now`: (plan, tracked ticket ids, field ids, minutes until the day ends)."""
    h = obs.history
    queue = obs.queue()
    fields = sorted(set(setting.service_means) | {t.service for t in obs.tickets.values()}
                    | {f for c in obs.counters.values() for f in c.services} | set(h.done))
    fidx = {f: i for i, f in enumerate(fields)}
    laws = service_laws(obs, setting, fields, now)
    speeds = speed_logs(h, laws)
    past, prio_days, issue_ends = h.past(today_done=False)
    # When counters are done for the day: as on past days (else as configured), or later if
    # today's ran late. A lunch break with every counter closed is not the end of the day.
    ends = [iv[1] if iv[1] is not None else setting.closes for p in past for dp in p.values() for iv in dp.intervals]
    today = [iv[1] for dp in h.plans_today.values() for iv in dp.intervals if iv[1] is not None]
    day_end = max(ends or [setting.closes])
    if today and obs.today == now.date():
        day_end = max(day_end, max(today))
    day = plans.service_day(now, obs.today, day_end, setting.calendar)
    if obs.today is not None and day != obs.today:     # today is over: it counts as a past day
        past, prio_days, issue_ends = h.past(today_done=True)
    past, breakdowns, odd = plans.planned_only(past, day_end)
    same_day = day == now.date()
    now_min = -plans.offset(now, day)

    tracked: list[str] = []
    queues: list[list[tuple[float, int, int]]] = [[] for _ in fields]
    held = []
    for t in queue:
        tr = -1
        if t.called_at is None:
            tr = len(tracked)
            tracked.append(t.id)
        key = (forward.PRIORITY if t.priority else forward.NORMAL) + t.order
        queues[fidx[t.service]].append((key, tr, category(t.channel, t.checked_in)))
    for t in obs.tickets.values():
        if t.held_until is not None and not t.queued and t.counter is None and t.held_until > now:
            key = (forward.PRIORITY if t.priority else forward.NORMAL) + t.order
            held.append((key, fidx[t.service], minutes(now, t.held_until)))

    counters = []
    late = plans.lateness(past)
    ids = list(dict.fromkeys([*setting.counters, *obs.counters, *(c for p in past for c in p)]))
    for cid in ids:
        c = obs.counters.get(cid)
        mine = [p[cid] for p in past if cid in p]
        mine_past = bool(mine)
        if not mine:
            if past and (c is None or c.changed_at is None or c.changed_at.date() != now.date()):
                continue        # it has not worked lately and not today: nobody staffs it
            mine = [setting.default_plan(c.services if c else setting.counters[cid])]
        services = c.services if c is not None else mine[-1].services
        changed = (minute_of_day(c.changed_at) if c is not None and c.changed_at is not None
                   and c.changed_at.date() == day else None)
        var = plans.variants(c if same_day else None, mine, now_min, same_day, changed, day_end)
        working = c is not None and (c.open or changed is not None) and same_day
        weights = [1.0] * len(var)
        if mine_past and not working:
            var, weights = plans.weighted(var, sum(1 for p in past if p and cid not in p), late)
        var = [(closed, [(a - now_min, b - now_min) for a, b in wins]) for closed, wins in var]
        sp = speeds.get(cid, 0.0)
        busy, elapsed = None, 0.0
        serving = obs.tickets.get(c.serving) if c is not None and c.serving and same_day else None
        if serving is not None and serving.started is not None:
            law = laws[serving.service]
            busy, elapsed = service_times.LogNormal(law.mu + sp, law.sigma), max(minutes(serving.started, now), 0.0)
        in_fields = tuple(fidx[f] for f in services if f in fidx)
        counters.append(forward.CounterSim(in_fields, tuple(laws[fields[i]].mu + sp for i in in_fields),
                                           busy, elapsed, var, _cumulative(weights)))

    noshow = tuple((h.noshows[c] + PRIOR_NOSHOW[c] * PRIOR_CALLS) / (h.calls[c] + PRIOR_CALLS) for c in CATEGORIES)
    plain_skips = max(h.skips - h.holds, 0.0)
    transfer = []
    for f in fields:
        dests = h.transfers.get(f, {})
        n = sum(dests.values())
        fin = h.finished.get(f, 0.0)
        ds = [d for d in dests if d in fidx]
        cum, acc = [], 0.0
        for d in ds:
            acc += dests[d]
            cum.append(acc)
        transfer.append(((n / fin) if fin > 0 and ds else 0.0, [fidx[d] for d in ds], cum))
    issue_end = sum(issue_ends) / len(issue_ends) if issue_ends else setting.issuing_until
    opened = min((iv[0] for dp in h.plans_today.values() for iv in dp.intervals), default=setting.opens)
    plan = forward.Plan(
        n_fields=len(fields), queues=queues, n_tracked=len(tracked), counters=counters,
        sigma=[laws[f].sigma for f in fields], noshow=noshow,
        gives_back=tuple(_gives_back(h, "kiosk" if c == KIOSK else "online") for c in CATEGORIES),
        skip=list(h.skip_minutes) or [2.0],
        p_recall=(h.recalls + 0.5) / (plain_skips + 3.0),
        recall_delay=list(h.recall_delays),
        p_return=(h.returns + 0.5) / (h.holds + 3.0) if h.holds else 0.0,
        return_delay=list(h.return_delays), held=held,
        transfer=transfer, partial=list(h.partial_minutes),
        gap=min(median(h.gaps), 5.0) if h.gaps else 0.0,
        priority=[_priority_rates(h, prio_days, f, now_min, issue_end, opened) for f in fields],
        closures=odd or list(h.closures), breakdown_rate=breakdowns,
        day_sd=day_level_sd(h, laws, same_day), absent_online=h.absent_online())
    ends = [w[-1][1] for c in counters for _, w in c.variants if w]
    return plan, tracked, fields, max(ends, default=0.0)
