"""The classical predictors the estimator is judged against (DESIGN §4), from the same `Observed`.

Textbook versions, made only as day-aware as a fair comparison needs, and learning from the log
exactly like the estimator does (causally, recent days weighted by `History.weight`):

- NAIVE: people ahead in the field × the field's mean service time. It ignores how many counters
  serve the field, as a plain "n ahead × minutes each" board does; QL is the version that does not.
- QL (Ibrahim & Whitt's queue-length predictor): (n + 1) / (s·μ), with n the people ahead, μ = 1 /
  mean service time and s the open counters of the field, a counter shared by k fields counting 1/k.
- LES (last-to-enter-service): the wait of the last number called in the field, less what this
  number has already waited: max(LES − e, 0).

A branch day has a start the textbook queue does not, so three adjustments keep the baselines from
losing for a reason nobody would deploy them with:
- before the service day opens (the evening before, the early morning) all three add the minutes
  until the configured opening of the service day;
- when no counter of the field is open (before opening, or everyone at lunch), QL uses the counters
  that worked the field on the latest day with counter activity, else the configured ones;
- waits are counted from the later of issue and the opening of the day, both the LES wait itself
  (else the first number called each morning would teach LES an overnight wait) and the e it is
  reduced by.
Each predictor gives one number: a point prediction, published as p10 = p50 = p90.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from hub.domain.eta import plans
from hub.domain.eta.observed import Observed, minutes
from hub.domain.eta.plans import Setting

NAIVE, QL, LES = "NAIVE", "QL", "LES"
PREDICTORS = (NAIVE, QL, LES)
DEFAULT_SERVICE = 8.0       # minutes: a field neither configured nor seen (the estimator's default)


def opening(day: date, setting: Setting, like: datetime) -> datetime:
    """The configured opening of `day`, in the zone of `like`."""
    return datetime.combine(day, time(0), tzinfo=like.tzinfo) + timedelta(minutes=setting.opens)


def until_opening(obs: Observed, setting: Setting, now: datetime) -> float:
    """Minutes from `now` to the opening of the service day; 0 once it has opened."""
    day = plans.service_day(now, obs.today, setting.closes, setting.calendar)
    return max(minutes(now, opening(day, setting, now)), 0.0)


def mean_service(obs: Observed, setting: Setting, field: str) -> float:
    """The field's completed services so far, recent days weighted as the estimator weighs
    them; the configured planning mean until the log has one."""
    h = obs.history
    samples = h.done.get(field, ())
    total = sum(h.weight(d) for _, d in samples)
    if total > 0:
        return sum(m * h.weight(d) for m, d in samples) / total
    return setting.service_means.get(field, DEFAULT_SERVICE)


def servers(obs: Observed, setting: Setting, field: str) -> float:
    """s of QL: the open counters of the field, a counter of k fields counting 1/k."""
    s = sum(1 / len(c.services) for c in obs.counters.values() if c.open and field in c.services)
    if s > 0:
        return s
    # Nobody open for the field: the counters that worked it on the latest day anyone worked.
    days = [c.changed_at.date() for c in obs.counters.values() if c.changed_at is not None]
    latest = max(days, default=None)
    s = sum(1 / len(c.services) for c in obs.counters.values()
            if field in c.services and c.changed_at is not None and c.changed_at.date() == latest)
    if s > 0:
        return s
    s = sum(1 / len(fs) for fs in setting.counters.values() if field in fs)
    return s if s > 0 else 1.0      # a field no counter was ever seen or configured for


def les_wait(obs: Observed, setting: Setting, field: str) -> float | None:
    """The wait of the last number called in the field, counted from the later of its issue and
    its day's opening; None before any call in the field."""
    raw = obs.last_wait.get(field)
    if raw is None:
        return None
    # `Observed.last_wait` counts from issue. Find the number behind it (it is kept until the
    # next day starts) to count from the opening instead; if it is gone, the raw wait was that of
    # an afternoon number of an earlier day, where both counts agree.
    last: tuple[datetime, datetime] | None = None        # (called, issued) of that number
    for t in obs.tickets.values():
        if (t.called_at is not None and t.service == field and abs(minutes(t.issued_at, t.called_at) - raw) < 1e-6
                and (last is None or t.called_at > last[0])):
            last = t.called_at, t.issued_at
    if last is None:
        return raw
    called, issued = last
    start = max(issued, opening(called.date(), setting, called))
    return max(minutes(start, called), 0.0)


@dataclass(frozen=True)
class FieldState:
    """Per field, what the three predictors need at one moment."""
    mean: float
    servers: float
    les: float | None


def predict(obs: Observed, setting: Setting, now: datetime, tickets: list[str]) -> dict[str, dict[str, float]]:
    """Minutes from `now` to the first call of each of `tickets`, per predictor. A number already
    called (in the same second it was issued) gets 0 from all three."""
    wait_to_open = until_opening(obs, setting, now)
    day = plans.service_day(now, obs.today, setting.closes, setting.calendar)
    opened = opening(day, setting, now)
    ahead: dict[str, int] = {}                  # ticket → people ahead in its field
    seen: dict[str, int] = {}
    for q in obs.queue():                       # calling order: one pass gives every rank
        ahead[q.id] = seen.get(q.service, 0)
        seen[q.service] = ahead[q.id] + 1
    fields: dict[str, FieldState] = {}
    out: dict[str, dict[str, float]] = {p: {} for p in PREDICTORS}
    for tid in tickets:
        t = obs.tickets.get(tid)
        if t is None or tid not in ahead or t.called_at is not None:
            for p in PREDICTORS:
                out[p][tid] = 0.0
            continue
        f = fields.get(t.service)
        if f is None:
            f = fields[t.service] = FieldState(mean_service(obs, setting, t.service),
                                               servers(obs, setting, t.service),
                                               les_wait(obs, setting, t.service))
        n = ahead[tid]
        naive = n * f.mean
        ql = (n + 1) * f.mean / f.servers
        waited = max(minutes(max(t.issued_at, opened), now), 0.0)
        # LES has nothing to say before the field's first call ever: QL stands in (warm-up only).
        les = max(f.les - waited, 0.0) if f.les is not None else ql
        out[NAIVE][tid] = wait_to_open + naive
        out[QL][tid] = wait_to_open + ql
        out[LES][tid] = wait_to_open + les
    return out
