"""`queuecast eta replay`: the live estimator run over a trace, on the prediction schedule (docs/trace.md#recorded-predictions).

A prediction is emitted for a number when it is issued, and at every 5-minute boundary of the
clock between the trace's first and last event for every number issued and not yet called,
cancelled or expired. Events are taken in groups of equal time: a prediction at `t` has seen
every event at or before `t` and none after, so cutting the trace after `t` changes nothing up
to `t`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from hub.domain.eta.estimator import Estimator, Quantiles
from hub.domain.eta.plans import Setting
from hub.domain.trace import TraceEvent

STEP = timedelta(minutes=5)
STEP_SECONDS = 300


def boundary_after(t: datetime) -> datetime:
    """The first 5-minute boundary of the clock at or after `t` (in `t`'s zone)."""
    ts = t.timestamp()
    up = -(-ts // STEP_SECONDS) * STEP_SECONDS
    return t + timedelta(seconds=up - ts)


def line(t: datetime, ticket: str, q: Quantiles) -> dict[str, Any]:
    return {"t": t.isoformat(timespec="seconds"), "ticket": ticket, "p10": q.p10, "p50": q.p50, "p90": q.p90}


Point = tuple[datetime, Estimator, list[str]]     # when, whose, which waiting numbers


def points(events: Iterable[TraceEvent], estimator: Callable[[str], Estimator]) -> Iterator[Point]:
    """Feed the events to each branch's estimator and stop at every prediction point of the
    schedule with the numbers due a prediction there (in calling order). The caller predicts
    while stopped: the estimators have seen exactly the events at or before that time."""
    branches: dict[str, Estimator] = {}
    nxt: datetime | None = None

    def everyone(b: datetime) -> Iterator[Point]:
        for est in branches.values():
            due = [t.id for t in est.observed.waiting()]
            if due:
                yield b, est, due

    for t, group in groupby(events, key=lambda ev: ev.t):
        if nxt is None:
            nxt = boundary_after(t)
        while nxt < t:                      # boundaries passed with nothing happening
            yield from everyone(nxt)
            nxt += STEP
        issued: dict[str, list[str]] = {}
        for ev in group:
            if ev.branch not in branches:
                branches[ev.branch] = estimator(ev.branch)
            branches[ev.branch].observe(ev)
            if ev.type == "ticket.issued":
                issued.setdefault(ev.branch, []).append(ev.required("ticket"))
        on_boundary = nxt == t
        if on_boundary:                     # everyone waiting, the new ones included
            yield from everyone(t)
            nxt += STEP
        for branch, tickets in issued.items():
            waiting = {w.id for w in branches[branch].observed.waiting()} if on_boundary else set()
            due = [tid for tid in tickets if tid not in waiting]
            if due:
                yield t, branches[branch], due


def replay(events: Iterable[TraceEvent], setting_of: Callable[[str], Setting],
           replications: int | None = None) -> Iterator[dict[str, Any]]:
    """Prediction lines (docs/trace.md#recorded-predictions) for a trace."""
    kw = {"replications": replications} if replications else {}
    for t, est, tickets in points(events, lambda b: Estimator(b, setting_of(b), **kw)):
        got = est.publish(t, tickets)
        for tid in tickets:
            # a number called within the second it was issued waited for nothing
            yield line(t, tid, got.get(tid, Quantiles(0.0, 0.0, 0.0)))
