"""A queue number and its life: the states it can be in and the moves allowed between them."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any


class State(str, Enum):
    WAITING = "waiting"       # in the queue of its field (again, after a transfer or a check-in from hold)
    CALLED = "called"         # called to a counter and, until completed, that counter's ticket in service
    HELD = "held"             # online, called, not checked in, absent: hold → kept until held_until
    COMPLETED = "completed"
    SKIPPED = "skipped"       # no-show; can still be recalled for `recall_minutes`
    CANCELLED = "cancelled"   # given back by the citizen or cancelled by staff
    EXPIRED = "expired"       # not called by closing time


FINAL = frozenset({State.COMPLETED, State.CANCELLED, State.EXPIRED})

# Which commands may move a ticket out of which states. Recall from SKIPPED is further limited in
# time (policy.recall_minutes); a citizen may give back only WAITING, HELD or CALLED tickets.
ALLOWED = {
    "call": {State.WAITING},
    "recall": {State.CALLED, State.SKIPPED, State.HELD},
    "complete": {State.CALLED},
    "skip": {State.CALLED},
    "transfer": {State.CALLED, State.WAITING},
    "cancel": {State.WAITING, State.CALLED, State.HELD, State.SKIPPED},
    "give_back": {State.WAITING, State.CALLED, State.HELD},
    "check_in": {State.WAITING, State.HELD},
    "expire": {State.WAITING, State.HELD},
    "notify": {State.WAITING, State.CALLED, State.HELD, State.SKIPPED},
    "rate": {State.COMPLETED},
}


def ticket_id(day: date, number: int | str) -> str:
    """Unique within a branch across days: numbers restart every working day."""
    return f"{day:%Y%m%d}-{number}"


@dataclass
class Ticket:
    id: str
    number: str
    day: date                     # the working day it is for (online numbers are taken the eve before)
    service: str                  # current field; changes on transfer
    channel: str                  # "kiosk" | "online"
    priority: bool
    order: int                    # registration order in the branch: first registered, first served
    issued_at: datetime
    citizen: str | None = None    # pseudonym of the verified CCCD, never the CCCD itself
    phone: str | None = None
    state: State = State.WAITING
    counter: str | None = None    # the counter that called it last
    called_at: datetime | None = None
    calls: int = 0                # call + recalls
    checked_in: bool = False      # kiosk numbers are at the branch by construction
    skipped_at: datetime | None = None
    held_until: datetime | None = None
    finished_at: datetime | None = None
    notify: dict[str, dict[str, Any]] = field(default_factory=dict)   # channel → {phone | subscription, ahead}
    travel_minutes: float | None = None   # the holder's trip to the branch, for "leave home by"
    lang: str = "vi"                      # of the messages: the last language the holder asked in
    rating: tuple[int, str] | None = None  # (1–5, comment) after service
    changes: tuple[datetime, ...] = ()    # when the holder last changed something (hub.domain.holder)
    # Random, from the issued event; its holder's token carries it (hub.auth). The id comes round
    # again if the log is lost, the nonce does not. None for tickets issued before nonces.
    nonce: str | None = None

    def queue_key(self) -> tuple[bool, int]:
        """Sort key of the calling rule: priority first, then registration order."""
        return (not self.priority, self.order)

    def effective_state(self, now: datetime) -> State:
        """A hold that ran out without a check-in is a no-show: skipped."""
        if self.state is State.HELD and self.held_until is not None and now >= self.held_until:
            return State.SKIPPED
        return self.state
