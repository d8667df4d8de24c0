"""How often a ticket's holder may change what the hub keeps for them.

Opting in or out and rating append events to the branch's log, which every process folds and keeps;
the ticket token is all it takes, so one holder (or a script with one token) could grow the log
without limit. A change that changes nothing appends nothing (hub.domain.commands); real changes are
paced per ticket here, from the ticket's own folded history: the same answer in every hub process,
and after a restart, with no counter kept anywhere but the log.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from hub.domain.errors import DomainError
from hub.domain.ticket import Ticket

MAX_CHANGES = 10                   # opt-ins, opt-outs and ratings of one ticket ...
WINDOW = timedelta(minutes=1)      # ... within this long. A person changes their mind a few times, not 10 a minute.


def note_change(t: Ticket, at: datetime) -> None:
    """Fold: remember when the holder changed something (only the latest MAX_CHANGES matter)."""
    t.changes = (*t.changes[-(MAX_CHANGES - 1):], at)


def check_pace(t: Ticket, now: datetime) -> None:
    """Refuse (429) a change beyond MAX_CHANGES within WINDOW; `retry_after` says when one is free."""
    if len(t.changes) < MAX_CHANGES:
        return
    free_at = t.changes[-MAX_CHANGES] + WINDOW
    if now < free_at:
        wait = max(1, math.ceil((free_at - now).total_seconds()))
        raise DomainError("rate_limited", "too_many_changes",
                          f"Number {t.number} was changed {MAX_CHANGES} times within a minute; try again in {wait} s.",
                          f"Số {t.number} đã thay đổi {MAX_CHANGES} lần trong một phút; vui lòng thử lại sau {wait} giây.",
                          retry_after=wait)
