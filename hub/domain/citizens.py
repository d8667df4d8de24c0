"""A citizen's standing across all branches: numbers taken per working day, online no-shows, and
whether online booking is suspended. Built by the service from every branch's state, judged here."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from hub.domain.config import Policy


@dataclass(frozen=True)
class Citizen:
    """A verified citizen as the domain sees them: a pseudonym, never the CCCD itself."""

    pseudonym: str
    birth_year: int | None = None


@dataclass
class History:
    numbers: list[tuple[str, str, str]] = field(default_factory=list)   # (branch, ticket, service) on the day
    noshows: list[datetime] = field(default_factory=list)               # when each online no-show counted


def history(citizen: Citizen, day: date, states) -> History:
    h = History()
    for st in states:
        rec = st.citizens.get(citizen.pseudonym)
        if rec is None:
            continue
        h.numbers.extend((st.id, tid, svc) for tid, svc in rec.numbers.get(day, []))
        h.noshows.extend(rec.noshows.values())
    return h


def suspended_until(noshows: list[datetime], policy: Policy, now: datetime) -> datetime | None:
    """End of the online-booking suspension in force at `now`, if any.

    `noshow_limit` no-shows within `noshow_window_days` suspend online booking for
    `online_ban_days` from the last of them.
    """
    past = sorted(t for t in noshows if t <= now)
    n, window, ban = policy.noshow_limit, timedelta(days=policy.noshow_window_days), \
        timedelta(days=policy.online_ban_days)
    until = None
    for i in range(n - 1, len(past)):
        if past[i] - past[i - n + 1] <= window:
            until = past[i] + ban
    return until if until is not None and until > now else None
