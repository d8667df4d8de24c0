"""The per-citizen rules: one number per field and two a day across channels and branches, and
online booking suspended after repeated online no-shows (docs/rules.md).

A citizen's standing is built by the service from every branch's state (`history`) and judged here
(`check`), so the rule holds across branches although each branch's state is folded on its own.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from hub.domain.config import Policy, Service
from hub.domain.errors import DomainError, conflict, forbidden
from hub.domain.state import CitizenRecord


@dataclass(frozen=True)
class Citizen:
    """A verified citizen as the domain sees them: a pseudonym, never the CCCD itself."""

    pseudonym: str
    birth_year: int | None = None


@dataclass
class History:
    numbers: list[tuple[str, str, str]] = field(default_factory=list)   # (branch, ticket, service) on the day
    noshows: list[datetime] = field(default_factory=list)               # when each online no-show counted


class Books(Protocol):
    """A branch's records of its citizens: its state's, or what a process kept of a branch it let go."""

    @property
    def id(self) -> str: ...

    @property
    def citizens(self) -> Mapping[str, CitizenRecord]: ...


def history(citizen: Citizen, day: date, states: Iterable[Books]) -> History:
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


def check(history: History, policy: Policy, service: Service, channel: str, day: date, now: datetime) -> None:
    """Refuse a number the citizen may not take now: online while suspended, a second one in the
    field, or one past the day's limit. Every number issued counts, a returned one included."""
    p = policy
    if channel == "online":
        until = suspended_until(history.noshows, p, now)
        if until is not None:
            raise forbidden(
                "online_booking_suspended",
                f"Online booking is suspended until {until:%d/%m/%Y} after {p.noshow_limit} "
                f"missed online numbers within {p.noshow_window_days} days; a number can still be "
                "taken at the kiosk.",
                f"Quyền lấy số trực tuyến bị tạm dừng đến {until:%d/%m/%Y} do {p.noshow_limit} lần "
                f"vắng mặt trong {p.noshow_window_days} ngày; vẫn có thể lấy số tại ki-ốt.",
                until=until.isoformat())
    same_field = [n for n in history.numbers if n[2] == service.id]
    if len(same_field) >= p.per_field:
        raise refusal("field_limit_reached", p, service, day)
    if len(history.numbers) >= p.per_day:
        raise refusal("daily_limit_reached", p, service, day)


def refusal(code: str, policy: Policy, service: Service, day: date) -> DomainError:
    """The refusal of a number past a limit, `field_limit_reached` or `daily_limit_reached`: the
    same whether this process's states found it (`check`) or the store's reservations did
    (hub.store.quotas), which hold across processes."""
    if code == "field_limit_reached":
        return conflict(code, f"You already have a number for {service.name_en} on {day:%d/%m/%Y}.",
                        f"Bạn đã có số thứ tự lĩnh vực {service.name} ngày {day:%d/%m/%Y}.")
    assert code == "daily_limit_reached", code
    return conflict(code, f"At most {policy.per_day} numbers per citizen and working day.",
                    f"Mỗi công dân được lấy tối đa {policy.per_day} số thứ tự mỗi ngày làm việc.")
