"""The forward simulation: many possible futures of one branch from its present state.

Each replication plays the real calling rule (a free counter calls the earliest-registered number
among its fields, priority first) over the counters' plans for the rest of the service day, with
service times drawn from the learned laws, no-shows by channel, numbers skipped and recalled,
held numbers coming back, transfers re-queued in registration order and priority numbers still to
come. Numbers issued later without priority cannot overtake anyone, so they are not simulated.

The moment each waiting number is first called is recorded per replication; so is, per field, the
moment a number taken *now* would be called: the first time a counter of that field is free and
finds none of its fields with anyone waiting. Times are minutes from now. This module is the hot
loop of the estimator, so it trades a little elegance for flat data (lists, tuples, heaps).
"""
from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from statistics import NormalDist
from typing import TypeVar

from hub.domain.eta.history import LEADS
from hub.domain.eta.service_times import LogNormal

INF = math.inf
HEAD, PRIORITY, NORMAL = 0.0, 1e9, 2e9       # key groups: a recall first, then priority, then the rest
# Standard normal draws by table lookup: the quantiles of 4096 equal-probability strata. Drawing
# one costs a uniform and an index, a tenth of random.gauss; at a few hundred draws per future the
# discreteness is far below the noise of the replications.
_STRATA = 4096
NORMALS = [NormalDist().inv_cdf((i + 0.5) / _STRATA) for i in range(_STRATA)]
JITTER = 3.0                                  # minutes: spread of a planned opening or closing

T = TypeVar("T")
Uniform = Callable[[], float]                 # a bound Random.random: a draw in [0, 1)


@dataclass
class CounterSim:
    fields: tuple[int, ...]                  # field indexes, in the plan's field list
    mu: tuple[float, ...]                    # per field of the counter: log-mean with its speed
    busy: LogNormal | None                   # the law of the service in progress, if any ...
    elapsed: float                           # ... and how long it has lasted
    variants: list[tuple[float | None, list[tuple[float, float]]]]
    # each variant: (minutes already closed unplanned, or None; open windows [(start, end)])
    cum_weights: list[float] | None = None   # of the variants; None: all equally likely


@dataclass
class Plan:
    n_fields: int
    queues: list[list[tuple[float, int, int]]]      # per field: (key, tracked index or -1, category)
    n_tracked: int
    counters: list[CounterSim]
    sigma: list[float]                               # per field
    noshow: tuple[float, ...]                        # per category (history.CATEGORIES)
    gives_back: tuple[float, ...]                    # per category: gone before its turn
    skip: list[float]                                # call → skip, minutes (samples)
    p_recall: float
    recall_delay: list[float]
    p_return: float                                  # a held number checks in in time
    return_delay: list[float]
    held: list[tuple[float, int, float]]             # numbers held now: (key, field, minutes left)
    transfer: list[tuple[float, list[int], list[float]]]   # per field: p, destinations, cum weights
    partial: list[float]
    gap: float                                       # counter free → next call
    priority: list[list[tuple[float, float]]]        # per field: [(until minute, rate per minute)]
    closures: list[float]                            # unplanned closure lengths (samples)
    breakdown_rate: float = 0.0                      # unplanned closures per open counter-minute
    day_sd: float = 0.0                              # sd of the day's shared log speed factor
    absent_online: list[float] | None = None         # no-show of an online number not checked in
    #                                                  now, by minutes until its call (history.LEADS)


# random.choice and random.expovariate cost several Python calls each; these cost one uniform.
def _pick(xs: Sequence[T], rand: Uniform) -> T:
    return xs[int(rand() * len(xs))]


def _exp(rate: float, rand: Uniform) -> float:
    return -math.log(1.0 - rand()) / rate


def _closed_for(closures: list[float], elapsed: float, rng: random.Random) -> float:
    longer = [c - elapsed for c in closures if c > elapsed]
    if longer:
        return _pick(longer, rng.random)
    return _exp(1 / 30.0, rng.random)


def _jittered(wins: list[tuple[float, float]], rng: random.Random) -> list[tuple[float, float]]:
    """A plan as it may turn out: every edge still to come moves by a few minutes (nobody opens
    at 08:00:00 sharp, and a past day seen once is one sample of many)."""
    out, last = [], 0.0
    for a, b in wins:
        if a > 0:
            a = max(a + JITTER * NORMALS[int(rng.random() * _STRATA)], last)
        if b > 0:
            b = max(b + JITTER * NORMALS[int(rng.random() * _STRATA)], a)
        out.append((a, b))
        last = b
    return out


def _broken(wins: list[tuple[float, float]], rate: float, lengths: list[float],
            rng: random.Random) -> list[tuple[float, float]]:
    """The plan with unplanned closures drawn anew: a Poisson process over the open time."""
    out = []
    for a, b in wins:
        t = max(a, 0.0) + _exp(rate, rng.random)
        while t < b:
            out.append((a, t))
            a = t + _pick(lengths, rng.random)
            t = a + _exp(rate, rng.random)
        if a < b:
            out.append((a, b))
    return out


def replicate(plan: Plan, rng: random.Random) -> tuple[list[float], list[float]]:
    """One possible future: (first-call minute per tracked number, per field for a new number)."""
    nf = plan.n_fields
    calls = [INF] * plan.n_tracked
    vcall = [INF] * nf
    left = plan.n_tracked
    served = {f for c in plan.counters if c.variants for f in c.fields}
    vleft = len(served)             # a field no counter serves never calls anyone: do not wait for it
    static = plan.queues
    ptr = [0] * nf
    # Per field, heaps of the numbers besides `static`: `ready` to be called, (key, tracked, category),
    # and `pending` until the minute they may be, (minute, key, tracked, category).
    ready: list[list[tuple[float, int, int]]] = [[] for _ in range(nf)]
    pending: list[list[tuple[float, float, int, int]]] = [[] for _ in range(nf)]
    serves: list[list[int]] = [[] for _ in range(nf)]
    idle: dict[int, float] = {}
    rand = rng.random
    normals = NORMALS
    events: list[tuple[float, int]] = []
    windows: list[list[tuple[float, float]]] = []
    closed: float | None
    wins: list[tuple[float, float]]
    for ci, c in enumerate(plan.counters):
        for f in c.fields:
            serves[f].append(ci)
        if not c.variants:
            closed, wins = None, []
        elif c.cum_weights is None:
            closed, wins = _pick(c.variants, rand)
        else:
            closed, wins = rng.choices(c.variants, cum_weights=c.cum_weights)[0]
        if wins:
            wins = _jittered(wins, rng)
            if plan.breakdown_rate > 0 and plan.closures:
                wins = _broken(wins, plan.breakdown_rate, plan.closures, rng)
        if closed is not None and wins:
            start = _closed_for(plan.closures, closed, rng)
            wins = [(max(start, wins[0][0]), wins[0][1])] + wins[1:]
        windows.append(wins)
        heappush(events, (c.busy.remaining(c.elapsed, rand()) if c.busy else 0.0, ci))
    seq_key = 1e7
    for f, rates in enumerate(plan.priority):
        # a Poisson process with a rate piecewise constant by hour: walk an Exp(1) budget of
        # "expected arrivals" through the pieces, one draw per arrival
        t0, budget = 0.0, _exp(1.0, rand)
        for until, rate in rates:
            while rate > 0 and t0 + budget / rate < until:
                t0 += budget / rate
                seq_key += 1
                heappush(pending[f], (t0, PRIORITY + seq_key, -1, 0))
                budget = _exp(1.0, rand)
            if rate > 0:
                budget -= (until - t0) * rate
            t0 = until
    for key, f, minutes_left in plan.held:
        if rand() < plan.p_return:
            back = min(_pick(plan.return_delay, rand), minutes_left) if plan.return_delay else rand() * minutes_left
            heappush(pending[f], (back, key, -1, 1))
    level = plan.day_sd * normals[int(rand() * _STRATA)]    # this future's speed of the day
    wi = [0] * len(plan.counters)
    noshow, sigma, transfer, gives_back = plan.noshow, plan.sigma, plan.transfer, plan.gives_back
    absent = plan.absent_online
    while events and (left or vleft):
        x, ci = heappop(events)
        c = plan.counters[ci]
        wins = windows[ci]
        w = wi[ci]
        while w < len(wins) and x >= wins[w][1]:
            w += 1
        wi[ci] = w
        if w == len(wins):
            continue                        # this counter is done for the day
        if x < wins[w][0]:                  # closed until then: wait in line with the others
            heappush(events, (wins[w][0], ci))
            continue
        best = None
        bf = -1
        for f in c.fields:
            pend = pending[f]
            while pend and pend[0][0] <= x:
                _, k, tr, cat = heappop(pend)
                heappush(ready[f], (k, tr, cat))
            r = ready[f]
            if r and (best is None or r[0][0] < best[0]):
                best, bf = r[0], f
            q = static[f]
            p = ptr[f]
            if p < len(q) and (best is None or q[p][0] < best[0]):
                best, bf = q[p], f
        if best is None:
            for f in c.fields:
                if vcall[f] == INF and f in served:
                    vcall[f] = x
                    vleft -= 1
            nxt = min((pending[f][0][0] for f in c.fields if pending[f]), default=None)
            if nxt is not None:
                heappush(events, (nxt, ci))
            else:
                idle[ci] = x
            continue
        r = ready[bf]
        if r and r[0] is best:
            heappop(r)
        else:
            ptr[bf] += 1
        key, tr, cat = best
        if tr >= 0 and calls[tr] == INF:
            calls[tr] = x                   # its turn: given back or not, this is when it comes
            left -= 1
            if rand() < gives_back[cat]:    # given back meanwhile: the counter takes the next one
                heappush(events, (x, ci))
                continue
        slot = c.fields.index(bf)
        requeue = None
        p_absent = noshow[cat]
        if cat == 2 and absent is not None and tr >= 0:     # not checked in yet: it may by then
            p_absent = absent[bisect_right(LEADS, x) - 1]
        if key >= PRIORITY and rand() < p_absent:
            d = _pick(plan.skip, rand) if plan.skip else 2.0
            if cat == 2 and plan.p_return > 0:
                if rand() < plan.p_return:
                    requeue = (bf, x + d + (_pick(plan.return_delay, rand) if plan.return_delay else 5.0), key)
            elif rand() < plan.p_recall:
                requeue = (bf, x + d + (_pick(plan.recall_delay, rand) if plan.recall_delay else 5.0),
                           HEAD + key % PRIORITY)
        else:
            d = math.exp(c.mu[slot] + level + sigma[bf] * normals[int(rand() * _STRATA)])
            p_t, dests, cum = transfer[bf]
            if p_t and rand() < p_t:
                d = _pick(plan.partial, rand) if plan.partial else d / 2
                to = rng.choices(dests, cum_weights=cum)[0]
                requeue = (to, x + d, key)
        if requeue is not None:
            f2, avail, k2 = requeue
            heappush(pending[f2], (avail, k2, -1, 1 if cat == 2 else cat))
            for cj in serves[f2]:
                since = idle.pop(cj, None)
                if since is not None:
                    heappush(events, (max(avail, since), cj))
        heappush(events, (x + d + plan.gap, ci))
    return calls, vcall
