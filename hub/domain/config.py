"""The centre's configuration as plain values: branches, fields (services), counters, policies.

Loaded and validated by `hub.config` from TOML; the domain only reads it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Policy:
    """The queue rules of one branch (docs/rules.md); every field is a TOML setting."""

    opens: time = time(8, 0)            # doors open; kiosk issuing starts
    closes: time = time(17, 0)          # numbers not called by now expire
    issuing_until: time = time(16, 0)   # last moment a number can be taken, either channel
    online_from: time = time(20, 0)     # online numbers for day D from this time on D's eve
    per_field: int = 1                  # numbers per citizen, field and working day
    per_day: int = 2                    # numbers per citizen and working day, all channels
    noshow_limit: int = 3               # online no-shows within the window ...
    noshow_window_days: int = 30
    online_ban_days: int = 30           # ... suspend online booking this long
    priority_age: int = 75              # citizens this old are served first
    absent: str = "skip"                # "skip" or "hold" a called, not checked-in online number
    hold_minutes: int = 10              # grace period under absent = "hold"
    recall_minutes: int = 15            # a skipped number can be recalled this long
    # Address ranges (CIDR) of the branch's lobby network, from which anonymous kiosks may issue
    # kiosk numbers without a device token (docs/rules.md); none by default: enrolled devices only.
    kiosk_lobby_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """A field (lĩnh vực) with its number range: numbers first_number .. first_number+daily_cap-1."""

    id: str
    name: str
    name_en: str
    first_number: int
    daily_cap: int
    service_minutes: float              # planning mean, used until the log teaches better

    @property
    def last_number(self) -> int:
        return self.first_number + self.daily_cap - 1


@dataclass(frozen=True)
class CounterPlan:
    id: str
    services: tuple[str, ...]           # fields it serves when opened without a list


@dataclass(frozen=True)
class Branch:
    id: str
    name: str
    name_en: str
    address: str
    services: dict[str, Service]        # by id, in display order
    counters: dict[str, CounterPlan]    # by id, in display order
    policy: Policy
    calendar: Calendar


@dataclass(frozen=True)
class Calendar:
    """Which dates are working days (weekdays minus holidays, plus make-up days)."""

    working_weekdays: frozenset[int] = frozenset(range(5))   # date.weekday(): Monday = 0
    holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()

    def is_working_day(self, d: date) -> bool:
        if d in self.extra_working_days:
            return True
        return d.weekday() in self.working_weekdays and d not in self.holidays


@dataclass(frozen=True)
class Centre:
    name: str
    name_en: str
    timezone: str
    branches: dict[str, Branch] = field(default_factory=dict)
