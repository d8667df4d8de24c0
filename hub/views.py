"""View models: what a client sees of a branch or a ticket, as JSON-ready dicts.

The HTTP API returns them and the pages render them, so a page and its JSON twin never disagree.
Board-level views carry no phone number, identity or token.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from hub.domain import calendar
from hub.domain.config import Branch
from hub.domain.errors import DomainError
from hub.domain.eta import leave_home
from hub.domain.eta.estimator import Forecast
from hub.domain.state import BranchState
from hub.domain.ticket import State, Ticket

# A forecast is recomputed on every event; between events, one this old is shifted instead of
# simulated again for every request and feed frame.
FORECAST_MAX_AGE = timedelta(seconds=30)
NO_FORECAST = {"p10": None, "p50": None, "p90": None}


def forecast(st: BranchState, now: datetime) -> Forecast:
    return st.eta.forecast(now, FORECAST_MAX_AGE)


def issuing_day(st: BranchState, now: datetime) -> date:
    """The day a number taken now would be for (kiosk first, then online), else today."""
    return _issuing_day(st.config, now)


def _issuing_day(b: Branch, now: datetime) -> date:
    for channel in ("kiosk", "online"):
        try:
            return calendar.issuing_day(b, now, channel)
        except DomainError:
            pass
    return now.date()


def _issuing_open(b: Branch, now: datetime, channel: str) -> bool:
    try:
        calendar.issuing_day(b, now, channel)
        return True
    except DomainError:
        return False


def _times(b: Branch, now: datetime) -> dict[str, Any]:
    """What a branch's view owes to the clock alone."""
    return {"day": _issuing_day(b, now).isoformat(), "now": now.isoformat(timespec="seconds"),
            "working_day": b.calendar.is_working_day(now.date()),
            "issuing": {ch: _issuing_open(b, now, ch) for ch in ("kiosk", "online")}}


def brought_forward(view: dict[str, Any], b: Branch, now: datetime) -> dict[str, Any]:
    """A branch's view made at an earlier time, true now as far as the clock goes (a branch let go
    keeps its last view: hub.service.holding): the time, the issuing day and whether issuing is
    open; on another issuing day than the view's, every number of the day is left."""
    out = {**view, **_times(b, now)}
    if out["day"] != view["day"]:
        out["services"] = [{**s, "numbers_left": s["daily_cap"]} for s in view["services"]]
    return out


def branch_view(st: BranchState, now: datetime) -> dict[str, Any]:
    b = st.config
    day = issuing_day(st, now)
    serving = st.serving()
    fc = forecast(st, now)
    services = []
    for svc in b.services.values():
        wait = fc.field(svc.id, now)
        waiting = st.waiting(day, (svc.id,))
        services.append({
            "id": svc.id, "name": svc.name, "name_en": svc.name_en,
            "waiting": len(waiting),
            "now_serving": [{"number": t.number, "counter": t.counter} for t in serving if t.service == svc.id],
            "expected_wait": wait.as_dict() if wait else dict(NO_FORECAST),
            "numbers_left": max(svc.daily_cap - st.issued_count(day, svc.id), 0),
            "daily_cap": svc.daily_cap,
            "range": [svc.first_number, svc.last_number],
        })
    counters = [{
        "id": c.id, "open": c.open, "services": list(c.services),
        "current": ({"number": st.tickets[c.current].number, "service": st.tickets[c.current].service}
                    if c.current and c.current in st.tickets else None),
    } for c in st.counters.values()]
    return {
        "id": b.id, "name": b.name, "name_en": b.name_en, "address": b.address,
        "day": day.isoformat(), "now": now.isoformat(timespec="seconds"), "seq": st.seq,
        "working_day": b.calendar.is_working_day(now.date()),
        "hours": {"opens": f"{b.policy.opens:%H:%M}", "issuing_until": f"{b.policy.issuing_until:%H:%M}",
                  "closes": f"{b.policy.closes:%H:%M}", "online_from": f"{b.policy.online_from:%H:%M}"},
        "issuing": {ch: _issuing_open(b, now, ch) for ch in ("kiosk", "online")},
        "waiting": sum(s["waiting"] for s in services),
        "now_serving": [{"number": t.number, "service": t.service, "counter": t.counter} for t in serving],
        "services": services,
        "counters": counters,
    }


def ticket_view(st: BranchState, t: Ticket, now: datetime, *, tracking_url: str | None = None,
                travel_minutes: float | None = None,
                people_ahead: Callable[[Ticket], int | None] | None = None) -> dict[str, Any]:
    """`people_ahead`: BranchState.ahead_counter's, when the views of many numbers are made at once."""
    svc = st.config.services[t.service]
    state = t.effective_state(now)
    if travel_minutes is None:
        travel_minutes = t.travel_minutes
    est = forecast(st, now).ticket(t.id, now) if t.state is State.WAITING else None
    expected_call = leave_by = None
    if est is not None:
        expected_call = {k: (now + timedelta(minutes=v)).isoformat(timespec="minutes")
                         for k, v in (("earliest", est.p10), ("likely", est.p50), ("latest", est.p90))}
        if travel_minutes is not None:
            leave_by = max(leave_home.leave_by(now, est, travel_minutes), now).isoformat(timespec="minutes")
    ahead = (people_ahead or st.people_ahead)(t)
    return {
        "number": t.number, "ticket": t.id, "branch": st.id, "branch_name": st.config.name,
        "service": t.service, "service_name": svc.name, "service_name_en": svc.name_en,
        "channel": t.channel, "priority": t.priority, "day": t.day.isoformat(),
        "state": state.value, "counter": t.counter if state is State.CALLED else None,
        "issued_at": t.issued_at.isoformat(timespec="seconds"),
        "called_at": t.called_at.isoformat(timespec="seconds") if t.called_at else None,
        "checked_in": t.checked_in,
        "held_until": t.held_until.isoformat(timespec="seconds") if state is State.HELD and t.held_until else None,
        "position": None if ahead is None else ahead + 1,
        "people_ahead": ahead,
        "now_serving": [{"number": s.number, "counter": s.counter}
                        for s in st.serving() if s.service == t.service],
        "eta": est.as_dict() if est else None,
        "expected_call": expected_call,
        "travel_minutes": travel_minutes,
        "leave_by": leave_by,
        "tracking_url": tracking_url,
        # What the holder asked to be told, never the phone or the push keys themselves.
        "notifications": {ch: {"ahead": opt.get("ahead")} for ch, opt in t.notify.items()},
        "rated": t.rating is not None,
    }
