"""Prediction points turned into scored samples (`hub.domain.eta.metrics.Sample`), for the
evaluation on simulated days (bench/eta_evaluate.py) and for `queuecast eta score`, which scores
the predictions a hub published on a real day (`export-trace --predictions`) against what then
happened, beside the classical predictors asked at the same points.

Pure: events and prediction lines in, samples and figures out.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from hub.domain.eta import baselines, plans
from hub.domain.eta.estimator import Estimator
from hub.domain.eta.metrics import Sample, by_ticket, leave_home, scores
from hub.domain.eta.replay import points
from hub.domain.trace import TraceError, TraceEvent, json_lines, time_field

Triple = tuple[float, float, float]             # p10, p50, p90 in minutes
PUBLISHED = "published"                          # the recorded predictions, in `score`'s table


def minutes(t: datetime) -> float:
    return t.timestamp() / 60


class Sampler:
    """Samples of one trace: a prediction point's numbers with their real first call, whether the
    holder may be at home (online), whether the branch had opened, and the service day's index
    (0: the trace's first day, the estimator's warm-up when the trace starts the history)."""

    def __init__(self, events: list[TraceEvent], name: str = ""):
        self.name = name                        # numbers are pooled across traces: keep them apart
        self.first_call: dict[tuple[str, str], float] = {}
        for ev in events:
            if ev.type == "ticket.called":
                self.first_call.setdefault((ev.branch, ev.required("ticket")), minutes(ev.t))
        self._days: dict[date, int] = {}

    @property
    def days(self) -> list[date]:
        """The service days met so far, by index (`Sample.day`)."""
        return sorted(self._days, key=self._days.__getitem__)

    def at(self, t: datetime, est: Estimator, tickets: list[str],
           predicted: dict[str, dict[str, Triple]]) -> Iterator[Sample]:
        """One sample per number of `tickets` that every predictor of `predicted` (predictor →
        number → quantiles) has an answer for."""
        obs, setting = est.observed, est.setting
        day = self._days.setdefault(plans.service_day(t, obs.today, setting.closes, setting.calendar),
                                    len(self._days))
        service_hours = baselines.until_opening(obs, setting, t) == 0
        now = minutes(t)
        for tid in tickets:
            tk = obs.tickets.get(tid)
            if tk is None:          # issued and forgotten within one second (a new day began)
                continue
            q = {p: got[tid] for p, got in predicted.items() if tid in got}
            if len(q) < len(predicted):
                continue
            ticket = f"{self.name}/{est.branch}/{tid}" if self.name else f"{est.branch}/{tid}"
            yield Sample(t=now, ticket=ticket, issued=minutes(tk.issued_at),
                         called=self.first_call.get((est.branch, tid)), online=tk.channel == "online",
                         service_hours=service_hours, day=day, q=q)


def baseline_triples(est: Estimator, t: datetime, tickets: list[str]) -> dict[str, dict[str, Triple]]:
    """NAIVE, QL and LES at this point, as point predictors (p10 = p50 = p90)."""
    theirs = baselines.predict(est.observed, est.setting, t, tickets)
    return {p: {tid: (v, v, v) for tid, v in theirs[p].items()} for p in baselines.PREDICTORS}


# -- recorded predictions -------------------------------------------------------------------------

@dataclass
class Recorded:
    """A predictions file (the lines of docs/trace.md#recorded-predictions), keyed by (time, number)."""
    lines: dict[tuple[datetime, str], Triple]


def parse_predictions(lines: Iterable[str]) -> Recorded:
    """Prediction lines as `eta replay` and `export-trace --predictions` write them. A bad line
    raises TraceError naming it: nothing is scored from a file that is not what it claims."""
    out: dict[tuple[datetime, str], Triple] = {}
    for n, d in json_lines(lines):
        if not isinstance(d, dict):
            raise TraceError(n, "expected a JSON object")
        missing = [k for k in ("t", "ticket", "p10", "p50", "p90") if k not in d]
        if missing:
            raise TraceError(n, f"missing {', '.join(missing)}")
        t = time_field(d["t"], "t", n)
        if not isinstance(d["ticket"], str) or not d["ticket"]:
            raise TraceError(n, "ticket: expected a non-empty string")
        q = tuple(d[k] for k in ("p10", "p50", "p90"))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                   for v in q):
            raise TraceError(n, "p10, p50, p90: expected minutes, numbers ≥ 0")
        if not q[0] <= q[1] <= q[2]:
            raise TraceError(n, f"expected p10 ≤ p50 ≤ p90, got {q[0]}, {q[1]}, {q[2]}")
        key = (t, d["ticket"])
        if key in out:
            raise TraceError(n, f"a second prediction for {d['ticket']} at {d['t']}")
        out[key] = (float(q[0]), float(q[1]), float(q[2]))
    return Recorded(out)


@dataclass
class Matched:
    samples: list[Sample]
    points: int                 # (point, number) pairs of the trace's schedule
    unpredicted: int            # ... with no recorded prediction (the hub was down, or not yet publishing)
    stray: int                  # recorded predictions at no point of the trace's schedule
    days: list[date]            # the service days, by `Sample.day`


def match(events: list[TraceEvent], recorded: Recorded,
          estimator: Callable[[str], Estimator]) -> Matched:
    """Walk the trace's prediction schedule (docs/trace.md#recorded-predictions) and pair each point with the recorded
    prediction for it; the baselines are asked at the same points, from the same observed state.
    The estimator is never asked: only its observed state is used, so this is fast."""
    sampler = Sampler(events)
    left = dict(recorded.lines)
    samples: list[Sample] = []
    total = unpredicted = 0
    for t, est, tickets in points(events, estimator):
        total += len(tickets)
        ours: dict[str, Triple] = {}
        for tid in tickets:
            q = left.pop((t, tid), None)
            if q is None:
                unpredicted += 1
            else:
                ours[tid] = q
        if ours:
            kept = [tid for tid in tickets if tid in ours]
            samples.extend(sampler.at(t, est, kept, {PUBLISHED: ours, **baseline_triples(est, t, kept)}))
    return Matched(samples, total, unpredicted, len(left), sampler.days)


TRAVEL = (20.0, 40.0)           # minutes from home to the branch, as in the evaluation (docs/eta.md)


def summary(m: Matched) -> dict[str, Any]:
    """The figures of docs/eta.md for one matched file: accuracy over every scored point, and the
    "leave home" late rate of online holders with their idle wait at the branch."""
    online = by_ticket(s for s in m.samples if s.online)
    rows = {}
    for p in (PUBLISHED, *baselines.PREDICTORS):
        sc = scores(m.samples, p)
        row: dict[str, Any] = {"points": 0} if sc is None else {
            "points": sc.n, "mae": round(sc.mae, 2), "p90_abs_error": round(sc.p90_abs, 2),
            "bias": round(sc.bias, 2), "coverage": None if sc.coverage is None else round(sc.coverage, 3)}
        for travel in TRAVEL:
            lh = leave_home(online, p, travel)
            row[f"leave_{travel:.0f}"] = None if lh is None else {
                "numbers": lh.n, "late": round(lh.late, 4),
                "idle_mean": None if lh.idle_mean is None else round(lh.idle_mean, 1),
                "idle_median": None if lh.idle_median is None else round(lh.idle_median, 1)}
        rows[p] = row
    best = min((rows[p]["mae"] for p in baselines.PREDICTORS if rows[p]["points"]), default=None)
    if best and rows[PUBLISHED]["points"]:
        rows[PUBLISHED]["mae_vs_best_baseline"] = round(rows[PUBLISHED]["mae"] / best, 3)
    never = sum(1 for s in m.samples if s.called is None)
    return {"schedule_points": m.points, "scored": len(m.samples) - never, "never_called": never,
            "unpredicted": m.unpredicted, "stray": m.stray, "predictors": rows, "days": by_day(m)}


def by_day(m: Matched) -> list[dict[str, Any]]:
    """The published predictions day by day, beside the best baseline of that day: a week of
    exports shows whether the estimator drifts (the first day of a history has no past to learn from)."""
    out = []
    for i, day in enumerate(m.days):
        samples = [s for s in m.samples if s.day == i]
        ours = scores(samples, PUBLISHED)
        if ours is None:
            continue
        theirs = [scores(samples, p) for p in baselines.PREDICTORS]
        best = min(sc.mae for sc in theirs if sc is not None)
        out.append({"day": day.isoformat(), "points": ours.n, "mae": round(ours.mae, 2),
                    "coverage": round(ours.coverage, 3) if ours.coverage is not None else None,
                    "best_baseline_mae": round(best, 2),
                    "mae_vs_best_baseline": round(ours.mae / best, 3) if best else None})
    return out
