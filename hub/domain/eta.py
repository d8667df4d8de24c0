"""A first expected-wait estimate: people ahead over the field's open service capacity.

This is the QL-style placeholder that wires ETA fields through the API and feeds; the forward
simulation of the ETA work replaces it. Pure: state and `now` in, minutes out.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from hub.domain import calendar
from hub.domain.state import BranchState
from hub.domain.ticket import State, Ticket


@dataclass(frozen=True)
class Eta:
    p10: float
    p50: float
    p90: float

    def as_dict(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}


def capacity(st: BranchState, service: str) -> float:
    """Counters' worth of service for a field: a counter shared by k fields counts 1/k.

    Open counters if any serve the field, else the configured plan (they will open).
    """
    open_ = [c for c in st.counters.values() if c.open and service in c.services]
    pool = open_ or [c for c in st.config.counters.values() if service in c.services]
    return sum(1 / len(c.services) for c in pool)


def wait_for(st: BranchState, service: str, ahead: int, now: datetime, day: date) -> Eta:
    svc = st.config.services[service]
    rate = capacity(st, service) or 1.0
    minutes = (ahead + 0.5) * svc.service_minutes / rate
    start = calendar.at(day, st.config.policy.opens, now)
    if start > now:                                  # taken before opening: the wait starts then
        minutes += (start - now) / timedelta(minutes=1)
    return Eta(round(minutes * 0.6, 1), round(minutes, 1), round(minutes * 1.5 + 2, 1))


def for_ticket(st: BranchState, t: Ticket, now: datetime) -> Eta | None:
    ahead = st.people_ahead(t)
    if ahead is None or t.state is not State.WAITING:
        return None
    return wait_for(st, t.service, ahead, now, t.day)


def for_new_number(st: BranchState, service: str, now: datetime, day: date) -> Eta:
    return wait_for(st, service, len(st.waiting(day, (service,))), now, day)
