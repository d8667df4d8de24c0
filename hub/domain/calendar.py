"""Working days and hours: when a number can be taken, for which day, and when a day closes.

`now` is always an aware datetime in the centre's local zone.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import NoReturn

from hub.domain.config import Branch, Calendar
from hub.domain.errors import conflict

_MAX_LOOKAHEAD = 400   # days; a calendar with no working day within a year is a config error


def next_working_day(cal: Calendar, after: date) -> date:
    d = after
    for _ in range(_MAX_LOOKAHEAD):
        d += timedelta(days=1)
        if cal.is_working_day(d):
            return d
    raise ValueError(f"no working day within {_MAX_LOOKAHEAD} days after {after}")


def at(day: date, clock_time: time, like: datetime) -> datetime:
    """`day` at `clock_time` in the zone of `like`."""
    return datetime.combine(day, clock_time, tzinfo=like.tzinfo)


def closing_time(branch: Branch, day: date, like: datetime) -> datetime:
    return at(day, branch.policy.closes, like)


def issuing_day(branch: Branch, now: datetime, channel: str) -> date:
    """The working day a number taken now is for, or a refusal that says when issuing opens.

    Kiosk: on a working day from `opens` until `issuing_until`. Online: from `online_from` on the
    eve of a working day until `issuing_until` on that day (so through the night as well).
    """
    p, cal = branch.policy, branch.calendar
    today, clock = now.date(), now.time()
    if cal.is_working_day(today) and clock < p.issuing_until:
        if channel == "online" or clock >= p.opens:
            return today
    tomorrow = today + timedelta(days=1)
    if channel == "online" and clock >= p.online_from and cal.is_working_day(tomorrow):
        return tomorrow
    return _refuse(branch, now, channel)


def next_issuing_opening(branch: Branch, now: datetime, channel: str) -> datetime:
    p, cal = branch.policy, branch.calendar
    today = now.date()
    if channel == "kiosk":
        if cal.is_working_day(today) and now.time() < p.opens:
            return at(today, p.opens, now)
        return at(next_working_day(cal, today), p.opens, now)
    day = next_working_day(cal, today)
    return at(day - timedelta(days=1), p.online_from, now)


def _refuse(branch: Branch, now: datetime, channel: str) -> NoReturn:
    opening = next_issuing_opening(branch, now, channel)
    hours = f"{branch.policy.opens:%H:%M}–{branch.policy.issuing_until:%H:%M}"
    when = f"{opening:%H:%M %d/%m/%Y}"
    if channel == "online":
        msg = f"Online numbers are not being issued now; booking opens at {when}."
        vi = f"Hiện chưa cấp số trực tuyến; có thể đăng ký từ {when}."
    else:
        msg = f"The kiosk issues numbers {hours} on working days; next opening {when}."
        vi = f"Ki-ốt cấp số từ {hours} các ngày làm việc; lần cấp số tiếp theo: {when}."
    raise conflict("issuing_closed", msg, vi, opens_at=opening.isoformat())
