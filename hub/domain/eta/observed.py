"""The present of one branch as the estimator sees it, folded from trace events.

Both the live hub (its log, through `events.to_trace`) and `queuecast eta replay` (a file) feed
this fold the same `TraceEvent`s, which is what makes the replay a faithful rehearsal of the live
estimate. It keeps only what a forecast needs: the queue in calling order, each counter and the
service it is in, and (through `History`) what past days taught.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from hub.domain.eta.history import Arrival, History, category
from hub.domain.trace import TraceEvent


def minute_of_day(t: datetime) -> float:
    return t.hour * 60 + t.minute + t.second / 60


def minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


@dataclass(slots=True)
class Tk:
    id: str
    service: str
    channel: str
    priority: bool
    order: int
    issued_at: datetime
    checked_in: bool = False
    checked_at: datetime | None = None
    arrival: Arrival | None = None      # its record in History.online_calls, once called
    queued: bool = True                 # in the queue (never called, transferred, or back from hold)
    called_at: datetime | None = None   # first call
    counter: str | None = None          # at a counter now
    started: datetime | None = None     # when the counter called it (this time)
    skipped_at: datetime | None = None
    held_until: datetime | None = None

    def key(self) -> tuple[bool, int]:
        """The calling rule: priority first, then registration order (a transfer keeps it)."""
        return (not self.priority, self.order)


@dataclass(slots=True)
class Ctr:
    id: str
    services: tuple[str, ...]
    open: bool = False
    serving: str | None = None
    free_since: datetime | None = None
    changed_at: datetime | None = None      # last opened or closed


class Observed:
    def __init__(self, branch: str) -> None:
        self.branch = branch
        self.tickets: dict[str, Tk] = {}
        self.counters: dict[str, Ctr] = {}
        self.history = History()
        self.next_order = 0
        self.today: date | None = None          # local date of the latest counter activity
        self.now: datetime | None = None        # time of the latest event
        self.version = 0                        # bumps on every event: forecasts cache on it
        self.last_wait: dict[str, float] = {}   # field → wait of the last number called (LES)

    # -- queries -------------------------------------------------------------------------------

    def queue(self) -> list[Tk]:
        """Every number in a queue, in calling order within each field."""
        return sorted((t for t in self.tickets.values() if t.queued), key=Tk.key)

    def waiting(self) -> list[Tk]:
        """Numbers not yet called for the first time: the ones a forecast is for."""
        return [t for t in self.queue() if t.called_at is None]

    def ahead(self, t: Tk) -> int:
        key = t.key()
        return sum(1 for o in self.tickets.values() if o.queued and o.service == t.service and o.key() < key)

    # -- the fold ------------------------------------------------------------------------------

    def observe(self, ev: TraceEvent) -> None:
        self.now = ev.t
        self.version += 1
        if ev.type in ("counter.opened", "ticket.called") and ev.t.date() != self.today:
            self._new_day(ev.t.date())
            self.today = ev.t.date()
        _APPLY[ev.type](self, ev)

    def _new_day(self, new: date) -> None:
        self.history.new_day(self.today, new)
        for tid in [tid for tid, t in self.tickets.items() if not t.queued and t.counter is None]:
            del self.tickets[tid]               # done with: nothing refers to them any more

    def _counter(self, cid: str, services: tuple[str, ...] = ()) -> Ctr:
        c = self.counters.get(cid)
        if c is None:               # a counter the trace never opened: take it as it comes
            c = self.counters[cid] = Ctr(cid, services)
        return c

    def _opened(self, ev: TraceEvent) -> None:
        c = self._counter(ev.required("counter"), ev.services)
        if not c.open:
            c.changed_at = ev.t
        c.services, c.open = ev.services, True
        c.free_since = c.free_since if c.serving else ev.t
        self.history.counter_opened(c.id, c.services, minute_of_day(ev.t))

    def _closed(self, ev: TraceEvent) -> None:
        c = self._counter(ev.required("counter"))
        c.open, c.changed_at = False, ev.t
        self.history.counter_closed(c.id, minute_of_day(ev.t))

    def _issued(self, ev: TraceEvent) -> None:
        tid, service, channel = ev.required("ticket"), ev.required("service"), ev.required("channel")
        self.next_order += 1
        self.tickets[tid] = Tk(tid, service, channel, ev.priority, self.next_order, ev.t)
        self.history.counted(channel)
        if self.today == ev.t.date():
            self.history.issued(service, ev.priority, minute_of_day(ev.t))
        else:
            self.history.issued_early(ev.t.date(), service, ev.priority, minute_of_day(ev.t))

    def _ticket(self, ev: TraceEvent) -> Tk | None:
        return self.tickets.get(ev.ticket) if ev.ticket is not None else None

    def _checked_in(self, ev: TraceEvent) -> None:
        t = self._ticket(ev)
        if t is None:
            return
        t.checked_in = True
        t.checked_at = t.checked_at or ev.t
        if t.held_until is not None and ev.t <= t.held_until and t.counter is None:
            assert t.skipped_at is not None         # a hold starts with a skip (`_skipped`)
            self.history.returned_after(minutes(t.skipped_at, ev.t))
            t.queued, t.held_until = True, None      # back at the head: it keeps its order

    def _called(self, ev: TraceEvent) -> None:
        t = self._ticket(ev)
        if t is None:
            return
        c = self._counter(ev.required("counter"), (t.service,))
        if c.free_since is not None:
            self.history.counter_gap(minutes(c.free_since, ev.t))
        first = t.called_at is None
        if first:
            t.called_at = ev.t
            self.last_wait[t.service] = minutes(t.issued_at, ev.t)
            if t.channel != "kiosk":
                t.arrival = self.history.online_called(
                    minutes(t.checked_at, ev.t) if t.checked_at is not None else None)
        self.history.called(category(t.channel, t.checked_in), first)
        self._start(t, c, ev.t)

    def _start(self, t: Tk, c: Ctr, now: datetime) -> None:
        t.queued, t.counter, t.started, t.held_until = False, c.id, now, None
        c.serving, c.free_since = t.id, None

    def _recalled(self, ev: TraceEvent) -> None:
        t = self._ticket(ev)
        if t is None or t.counter is not None:       # a re-announcement: nothing changes
            return
        if t.skipped_at is not None:
            self.history.recalled_after(minutes(t.skipped_at, ev.t))
        self._start(t, self._counter(ev.required("counter"), (t.service,)), ev.t)

    def _release(self, t: Tk, now: datetime) -> float:
        """Free the ticket's counter; the minutes it spent there."""
        spent = minutes(t.started, now) if t.started else 0.0
        c = self.counters.get(t.counter) if t.counter else None
        if c is not None and c.serving == t.id:
            c.serving, c.free_since = None, now
        t.counter = t.started = None
        return spent

    def _completed(self, ev: TraceEvent) -> None:
        t = self._ticket(ev)
        if t is None:
            return
        counter = t.counter or ev.required("counter")
        spent = self._release(t, ev.t)
        self.history.service_ended(counter, t.service, spent)

    def _skipped(self, ev: TraceEvent) -> None:
        t = self._ticket(ev)
        if t is None:
            return
        first_skip = t.skipped_at is None
        if first_skip and t.arrival is not None:
            t.arrival.noshow = True
        spent = self._release(t, ev.t)
        self.history.skipped(category(t.channel, t.checked_in), spent, first_skip, ev.held_until is not None)
        t.skipped_at, t.held_until = ev.t, ev.held_until

    def _gone(self, ev: TraceEvent) -> None:
        t = self._ticket(ev)
        if t is None:
            return
        if t.counter is not None:
            self._release(t, ev.t)
        if ev.type == "ticket.cancelled" and t.called_at is None:
            self.history.cancelled_waiting(t.channel)
        t.queued = False
        t.held_until = None
        t.called_at = t.called_at or ev.t     # no longer waiting for a first call

    def _transferred(self, ev: TraceEvent) -> None:
        t = self._ticket(ev)
        if t is None:
            return
        service = ev.required("service")
        if t.counter is not None:
            self.history.transferred(t.service, service, self._release(t, ev.t))
        t.service, t.queued = service, True


_APPLY = {
    "counter.opened": Observed._opened, "counter.closed": Observed._closed,
    "ticket.issued": Observed._issued, "ticket.checked_in": Observed._checked_in,
    "ticket.called": Observed._called, "ticket.recalled": Observed._recalled,
    "ticket.completed": Observed._completed, "ticket.skipped": Observed._skipped,
    "ticket.cancelled": Observed._gone, "ticket.expired": Observed._gone,
    "ticket.transferred": Observed._transferred,
}
