"""The `Quotas` protocol: the per-citizen limits (DESIGN §2: one number per field and two a day,
across channels and branches) held by the store, so that they hold across hub processes.

Each branch's state knows only its own log, and each process its own states: two processes (or
two branches, which are two logs) issuing at once would both see room. So an issue first takes a
reservation here, where one atomic check-and-count per citizen and day decides, and only then
appends to the branch's log; if the append does not happen, the reservation is given back.

A reservation is named (`Reservation.id`): taking one already held answers HELD and counts
nothing, so a retried request (same Idempotency-Key) cannot take a second one. A number given
back or cancelled still counts (hub.domain.limits.check), so a reservation is released only for
a number that was never issued. Reservations forget themselves two days after their day
(`lifetime`, counted from the hub's `now`).

They live beside the log (the same SQLite file, the same Redis): a store wiped or replaced loses
both together, and the day starts again for everyone. A branch history replaced on its own (a new
epoch) leaves the reservations of its lost numbers standing until they expire: a citizen may be
refused a number they no longer hold, never given one past a limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

# What `reserve` answers: taken now, already held under this id, or which limit refused it.
TAKEN, HELD = "taken", "held"
FIELD_LIMIT, DAILY_LIMIT = "field_limit_reached", "daily_limit_reached"   # the contract's codes
ANSWERS = (TAKEN, HELD, FIELD_LIMIT, DAILY_LIMIT)


@dataclass(frozen=True)
class Reservation:
    citizen: str            # the citizen's pseudonym (hub.auth.Tokens.pseudonym), never the CCCD
    day: date               # the working day the number is for
    branch: str
    field: str              # the service (field) id
    id: str                 # names this attempt: the same id again is the same reservation


@dataclass(frozen=True)
class Limits:
    per_field: int          # numbers per citizen, field and day
    per_day: int            # numbers per citizen and day, all fields, channels and branches


def lifetime(day: date, now: datetime) -> int:
    """Seconds a reservation of `day` taken at `now` (the hub's clock) is kept: until two days
    after the day's start in UTC, safely past its end in any time zone the centre could be in.
    Relative, so that a hub whose clock is not the store's (a simulated day) keeps it as long."""
    end = datetime.combine(day + timedelta(days=2), time(), UTC)
    return max(3600, int((end - now).total_seconds()))


class Quotas(Protocol):
    async def reserve(self, r: Reservation, limits: Limits, now: datetime) -> str:
        """One of ANSWERS, decided atomically against every other reservation of the citizen and
        day: FIELD_LIMIT if the field has `per_field` already, else DAILY_LIMIT if the day has
        `per_day`, else TAKEN (counted). HELD, counting nothing, if `r.id` is held already."""

    async def release(self, r: Reservation) -> bool:
        """Give a reservation back (its number was not issued); False if it was not held."""

    async def held(self, citizen: str, day: date) -> list[Reservation]:
        """The citizen's reservations of that day (tests, the counter's view)."""
