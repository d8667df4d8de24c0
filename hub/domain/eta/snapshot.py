"""An estimator's learned state as JSON and back: what a branch snapshot (hub.domain.snapshot) keeps
of `Estimator`, so that a state started from a snapshot forecasts exactly as the full fold does.

Everything the fold made is written: the present (`Observed`), what past days taught (`History`)
and the calibration's open predictions and scores (these come from what the process published,
not from the log: a start from a snapshot keeps what its writer had learned). The forecast caches
are not: they are recomputed on the next read. Containers are rebuilt with their own kinds (a
`deque`'s maxlen, a `defaultdict`'s default), so that the restored state goes on as the folded one.
"""
from __future__ import annotations

from collections import defaultdict, deque
from datetime import date, datetime
from typing import Any

from hub.domain.eta.calibration import Calibration
from hub.domain.eta.estimator import Estimator
from hub.domain.eta.history import Arrival, DayPlan, History, Profile
from hub.domain.eta.observed import Ctr, Observed, Tk


def _t(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def _dt(v: str | None) -> datetime | None:
    return None if v is None else datetime.fromisoformat(v)


def _d(v: str | None) -> date | None:
    return None if v is None else date.fromisoformat(v)


# -- History --------------------------------------------------------------------------------------

def _plan(p: DayPlan) -> list[Any]:
    return [list(p.services), [list(iv) for iv in p.intervals]]


def _plan_of(v: list[Any]) -> DayPlan:
    return DayPlan(tuple(v[0]), [(a, b) for a, b in v[1]])


def _profile_of(v: dict[str, dict[str, int]]) -> Profile:
    out: Profile = defaultdict(lambda: defaultdict(int))
    for f, hours in v.items():
        for h, n in hours.items():
            out[f][int(h)] = n
    return out


def _bounded(d: deque[Any]) -> list[Any]:
    return [list(x) if isinstance(x, tuple) else x for x in d]


def history_to_json(h: History) -> dict[str, Any]:
    return {
        "day": h.day,
        "done": {f: _bounded(d) for f, d in h.done.items()},
        "by_counter": {c: _bounded(d) for c, d in h.by_counter.items()},
        "skip_minutes": list(h.skip_minutes),
        "calls": list(h.calls.items()), "noshows": list(h.noshows.items()),
        "counts": [h.skips, h.recalls, h.holds, h.returns],
        "issued_n": h.issued_n, "given_back": h.given_back,
        "recall_delays": list(h.recall_delays), "return_delays": list(h.return_delays),
        "online_calls": [[a.checked_before, a.noshow] for a in h.online_calls],
        "finished": dict(h.finished),
        "transfers": {f: dict(to) for f, to in h.transfers.items()},
        "partial_minutes": list(h.partial_minutes), "gaps": list(h.gaps),
        "issues_today": [list(x) for x in h.issues_today],
        "issues_early": [[d.isoformat(), m, f, p] for d, m, f, p in h.issues_early],
        "priority_days": list(h.priority_days), "issue_ends": list(h.issue_ends),
        "plans_today": {c: _plan(p) for c, p in h.plans_today.items()},
        "plans": [{c: _plan(p) for c, p in day.items()} for day in h.plans],
        "closures": list(h.closures),
    }


def _refill(d: deque[Any], values: list[Any], item: Any = None) -> None:
    d.extend(values if item is None else (item(v) for v in values))


def history_from_json(v: dict[str, Any]) -> History:
    h = History()
    h.day = v["day"]
    for f, xs in v["done"].items():
        _refill(h.done[f], xs, tuple)
    for c, xs in v["by_counter"].items():
        _refill(h.by_counter[c], xs, tuple)
    _refill(h.skip_minutes, v["skip_minutes"])
    h.calls = {int(k): x for k, x in v["calls"]}
    h.noshows = {int(k): x for k, x in v["noshows"]}
    h.skips, h.recalls, h.holds, h.returns = v["counts"]
    h.issued_n, h.given_back = dict(v["issued_n"]), dict(v["given_back"])
    _refill(h.recall_delays, v["recall_delays"])
    _refill(h.return_delays, v["return_delays"])
    _refill(h.online_calls, v["online_calls"], lambda a: Arrival(a[0], a[1]))
    h.finished.update(v["finished"])
    for f, to in v["transfers"].items():
        h.transfers[f].update(to)
    _refill(h.partial_minutes, v["partial_minutes"])
    _refill(h.gaps, v["gaps"])
    h.issues_today = [(m, f, p) for m, f, p in v["issues_today"]]
    h.issues_early = [(date.fromisoformat(d), m, f, p) for d, m, f, p in v["issues_early"]]
    _refill(h.priority_days, v["priority_days"], _profile_of)
    _refill(h.issue_ends, v["issue_ends"])
    h.plans_today = {c: _plan_of(p) for c, p in v["plans_today"].items()}
    _refill(h.plans, v["plans"], lambda day: {c: _plan_of(p) for c, p in day.items()})
    _refill(h.closures, v["closures"])
    return h


# -- Observed -------------------------------------------------------------------------------------

def _arrival(a: Arrival | None, index: dict[int, int]) -> Any:
    """A called online number's record: its place in History.online_calls, which it shares (a skip
    marks the history's record a no-show), or the record itself once the history has let it go."""
    if a is None:
        return None
    return index[id(a)] if id(a) in index else [a.checked_before, a.noshow]


def _tk(t: Tk, index: dict[int, int]) -> list[Any]:
    return [t.id, t.service, t.channel, t.priority, t.order, _t(t.issued_at), t.checked_in, _t(t.checked_at),
            _arrival(t.arrival, index), t.queued, _t(t.called_at), t.counter, _t(t.started), _t(t.skipped_at),
            _t(t.held_until)]


def _tk_of(v: list[Any], calls: list[Arrival]) -> Tk:
    a = v[8]
    arrival = None if a is None else calls[a] if isinstance(a, int) else Arrival(a[0], a[1])
    issued_at = _dt(v[5])
    assert issued_at is not None
    return Tk(v[0], v[1], v[2], v[3], v[4], issued_at, v[6], _dt(v[7]), arrival, v[9], _dt(v[10]), v[11],
              _dt(v[12]), _dt(v[13]), _dt(v[14]))


def observed_to_json(o: Observed) -> dict[str, Any]:
    index = {id(a): i for i, a in enumerate(o.history.online_calls)}
    return {
        "tickets": [_tk(t, index) for t in o.tickets.values()],
        "counters": [[c.id, list(c.services), c.open, c.serving, _t(c.free_since), _t(c.changed_at)]
                     for c in o.counters.values()],
        "history": history_to_json(o.history),
        "next_order": o.next_order, "today": None if o.today is None else o.today.isoformat(),
        "now": _t(o.now), "version": o.version, "last_wait": o.last_wait,
    }


def observed_from_json(branch: str, v: dict[str, Any]) -> Observed:
    o = Observed(branch)
    o.history = history_from_json(v["history"])
    calls = list(o.history.online_calls)
    o.tickets = {t[0]: _tk_of(t, calls) for t in v["tickets"]}
    o.counters = {c[0]: Ctr(c[0], tuple(c[1]), c[2], c[3], _dt(c[4]), _dt(c[5])) for c in v["counters"]}
    o.next_order, o.today, o.now = v["next_order"], _d(v["today"]), _dt(v["now"])
    o.version, o.last_wait = v["version"], dict(v["last_wait"])
    return o


# -- Calibration and the estimator ----------------------------------------------------------------

def calibration_to_json(c: Calibration) -> dict[str, Any]:
    return {"open": {tid: [[p[0].isoformat(), *p[1:]] for p in preds] for tid, preds in c.open.items()},
            "scores": [[list(s) for s in band] for band in c.scores]}


def calibration_from_json(v: dict[str, Any]) -> Calibration:
    c = Calibration()
    c.open = {tid: [(datetime.fromisoformat(p[0]), p[1], p[2], p[3], p[4]) for p in preds]
              for tid, preds in v["open"].items()}
    if len(v["scores"]) != len(c.scores):
        raise ValueError("a calibration of another number of horizon bands")
    for band, scores in zip(c.scores, v["scores"]):
        band.extend((a, b, m, w) for a, b, m, w in scores)
    return c


def to_json(e: Estimator) -> dict[str, Any]:
    return {"observed": observed_to_json(e.observed), "calibration": calibration_to_json(e.calibration)}


def restore(e: Estimator, v: dict[str, Any]) -> None:
    """Put the learned state `v` into `e`, a new estimator of the same branch and setting."""
    e.observed = observed_from_json(e.branch, v["observed"])
    e.calibration = calibration_from_json(v["calibration"])
    e._last = e._point = None
