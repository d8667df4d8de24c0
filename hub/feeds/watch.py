"""One ticket's watchers, and what its holder's phone last was told: a ticket feed sends a frame
only when an event is about the ticket itself or changes what the phone shows (docs/feeds.md).

What the phone shows is the ticket view (hub.views.ticket_view): a change of any field but the
ETA makes a frame (state, position, people ahead, counter, now serving, notifications, rating, and
whether the call is "soon", p90 under a minute). The ETA makes one when the expected call time,
now + p50, has moved from the one last sent by at least a minute and at least a quarter of the
forecast's spread (p90 - p10): the forecast is re-simulated (80 futures) on every event, so its
quantiles wander by a minute or so with no news at all, and such wandering is not worth a frame.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hub.feeds.subscriber import Subscriber

MIN_ETA_STEP = timedelta(minutes=1)


def shown(view: dict[str, Any]) -> dict[str, Any]:
    """What of a ticket view is compared as it is: all of it but the ETA and what is worked out from it."""
    eta = view.get("eta")
    return {**view, "eta": eta is not None and eta["p90"] < 1, "expected_call": None, "leave_by": None}


def eta_step(eta: dict[str, float] | None) -> timedelta:
    """How far the expected call time must move to be news (see the module's docstring)."""
    if eta is None:
        return MIN_ETA_STEP
    return max(MIN_ETA_STEP, timedelta(minutes=(eta["p90"] - eta["p10"]) / 4))


def expected(view: dict[str, Any], now: datetime) -> datetime | None:
    eta = view.get("eta")
    return None if eta is None else now + timedelta(minutes=eta["p50"])


class TicketWatch:
    """The subscribers of one ticket, the view they were last sent (as `shown`) and at which seq.
    A frame carries `prev`, the seq of the frame sent before it: nothing between the two changed
    what the phone shows, so a client that has seen `prev` (or later) misses nothing."""

    __slots__ = ("subs", "view", "call_at", "step", "last")

    def __init__(self) -> None:
        self.subs: set[Subscriber] = set()
        self.view: dict[str, Any] | None = None     # None until the first watcher has read the state
        self.call_at: datetime | None = None        # the expected call time last sent (now + p50)
        self.step = MIN_ETA_STEP                    # how far it must move to be sent again
        self.last = 0

    def start(self, view: dict[str, Any], now: datetime, head: int) -> None:
        """The first watcher read the ticket at `head` (under the branch lock): frames follow from there."""
        if self.view is None:
            self._sent(view, now, head)

    def worth_sending(self, seq: int, view: dict[str, Any], now: datetime, about_it: bool) -> int | None:
        """The `prev` of a frame for the event `seq` that left the ticket at `view`, or None when
        the phone would show much the same (and the event is not about this ticket)."""
        if self.view is None:           # no watcher has started: each will get its own snapshot
            return None
        if not about_it and shown(view) == self.view and not self._eta_moved(view, now):
            return None
        prev = self.last
        self._sent(view, now, seq)
        return prev

    def _eta_moved(self, view: dict[str, Any], now: datetime) -> bool:
        at = expected(view, now)
        if at is None or self.call_at is None:
            return at is not self.call_at
        return abs(at - self.call_at) >= self.step

    def _sent(self, view: dict[str, Any], now: datetime, seq: int) -> None:
        self.view, self.call_at, self.step, self.last = shown(view), expected(view, now), eta_step(view.get("eta")), seq
