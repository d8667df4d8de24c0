"""The hub's clock: real time, or real time shifted so that it starts at a chosen moment
(QUEUECAST_CLOCK), for demos, training and tests on a weekend."""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class RealClock:
    def __init__(self, tz: tzinfo, start: datetime | None = None):
        self.tz = tz
        self.offset = (start - datetime.now(tz)) if start is not None else timedelta(0)

    def now(self) -> datetime:
        return datetime.now(self.tz) + self.offset


class ManualClock:
    """A clock that moves only when told: tests of time rules (closing, holds, bans)."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def parse_start(value: str, tz: tzinfo) -> datetime | None:
    """'real' → None; an ISO time → that moment (a naive one is read in the centre's zone)."""
    if value == "real":
        return None
    start = datetime.fromisoformat(value)
    return start.replace(tzinfo=tz) if start.tzinfo is None else start.astimezone(tz)
