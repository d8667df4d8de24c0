"""A branch's state is a fold of its events: `apply` is the only thing that changes it.

The same function rebuilds the state at start-up and moves it forward after every command, so the
state after a restart is the state before it.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from hub.domain import holder
from hub.domain.config import Branch
from hub.domain.eta.estimator import Estimator
from hub.domain.eta.plans import Setting
from hub.domain.events import Event, in_trace, to_trace
from hub.domain.kiosks import Kiosks
from hub.domain.ticket import State, Ticket
from hub.domain.trace import from_dict

# Tickets of days before yesterday are dropped from memory (the log keeps them): nothing acts on
# them any more, and a branch must not grow without bound over months of service.
_KEEP_DAYS = 1


@dataclass
class Counter:
    id: str
    services: tuple[str, ...]
    open: bool = False
    current: str | None = None      # id of the ticket it has called and not finished


@dataclass
class CitizenRecord:
    """What one (pseudonymous) citizen did at this branch: numbers per day and online no-shows."""

    numbers: dict[date, list[tuple[str, str]]] = field(default_factory=dict)   # day → [(ticket, service)]
    noshows: dict[str, datetime] = field(default_factory=dict)                 # ticket → when it counts


@dataclass
class BranchState:
    config: Branch
    seq: int = 0
    tickets: dict[str, Ticket] = field(default_factory=dict)
    issued: dict[tuple[date, str], int] = field(default_factory=dict)       # (day, service) → count
    counters: dict[str, Counter] = field(default_factory=dict)
    citizens: dict[str, CitizenRecord] = field(default_factory=dict)
    next_order: int = 1                         # registration order of the next number issued
    latest_day: date | None = None
    last_t: str | None = None
    kiosks: Kiosks = field(default_factory=Kiosks)          # enrolled kiosk devices, never forgotten
    eta: Estimator = field(init=False)          # expected waits: folded from the same events

    def __post_init__(self) -> None:
        if not self.counters:
            self.counters = {c.id: Counter(c.id, c.services) for c in self.config.counters.values()}
        self.eta = Estimator(self.config.id, Setting.of(self.config))

    @property
    def id(self) -> str:
        return self.config.id

    # -- queries -------------------------------------------------------------------------------

    def waiting(self, day: date, services: tuple[str, ...] | frozenset[str] | None = None) -> list[Ticket]:
        """Waiting tickets of `day` in calling order, optionally only those of some fields."""
        found = [t for t in self.tickets.values()
                 if t.state is State.WAITING and t.day == day
                 and (services is None or t.service in services)]
        found.sort(key=Ticket.queue_key)
        return found

    def people_ahead(self, ticket: Ticket) -> int | None:
        if ticket.state is not State.WAITING:
            return None
        key = ticket.queue_key()
        return sum(1 for t in self.tickets.values()
                   if t.state is State.WAITING and t.day == ticket.day and t.service == ticket.service
                   and t.queue_key() < key)

    def ahead_counter(self) -> Callable[[Ticket], int | None]:
        """`people_ahead` for many numbers of this state as it is (every watched number of a branch,
        on each of its events): each day and field's waiting numbers sorted once, not counted again
        for every number. Use it only until the state moves."""
        keys: dict[tuple[date, str], list[tuple[bool, int]]] = {}

        def ahead(ticket: Ticket) -> int | None:
            if ticket.state is not State.WAITING:
                return None
            found = keys.get((ticket.day, ticket.service))
            if found is None:
                found = keys[ticket.day, ticket.service] = sorted(
                    t.queue_key() for t in self.tickets.values()
                    if t.state is State.WAITING and t.day == ticket.day and t.service == ticket.service)
            return bisect_left(found, ticket.queue_key())
        return ahead

    def serving(self) -> list[Ticket]:
        """Tickets currently at a counter, most recently called first."""
        out = [self.tickets[c.current] for c in self.counters.values()
               if c.current and c.current in self.tickets]
        out.sort(key=lambda t: t.called_at or t.issued_at, reverse=True)
        return out

    def by_number(self, day: date, number: str) -> Ticket | None:
        for t in self.tickets.values():
            if t.day == day and t.number == number:
                return t
        return None

    def issued_count(self, day: date, service: str) -> int:
        return self.issued.get((day, service), 0)


def fold(config: Branch, events: Iterable[Event]) -> BranchState:
    state = BranchState(config)
    for ev in events:
        apply(state, ev)
    return state


def apply(state: BranchState, ev: Event) -> None:
    """Move `state` past one event. Total over valid logs: commands validated before the append."""
    if "seq" in ev:
        state.seq = ev["seq"]
    state.last_t = ev["t"]
    day = date.fromisoformat(ev["day"])
    if state.latest_day is None or day > state.latest_day:
        state.latest_day = day
        _forget_before(state, day - timedelta(days=_KEEP_DAYS))
    _APPLY[ev["type"]](state, ev, datetime.fromisoformat(ev["t"]))
    if in_trace(ev):
        state.eta.observe(from_dict(to_trace(ev)))


def _forget_before(state: BranchState, day: date) -> None:
    for tid in [tid for tid, t in state.tickets.items() if t.day < day]:
        del state.tickets[tid]
    for c in state.counters.values():     # a counter left serving overnight serves nothing now
        if c.current is not None and c.current not in state.tickets:
            c.current = None
    for rec in state.citizens.values():
        for d in [d for d in rec.numbers if d < day]:
            del rec.numbers[d]
    state.kiosks.forget_before(day)


def _counter_opened(s: BranchState, ev: Event, now: datetime) -> None:
    c = s.counters.setdefault(ev["counter"], Counter(ev["counter"], tuple(ev["services"])))
    c.services, c.open = tuple(ev["services"]), True


def _counter_closed(s: BranchState, ev: Event, now: datetime) -> None:
    c = s.counters[ev["counter"]]
    c.open = False


def _issued(s: BranchState, ev: Event, now: datetime) -> None:
    day = date.fromisoformat(ev["day"])
    t = Ticket(id=ev["ticket"], number=ev["number"], day=day, service=ev["service"],
               channel=ev["channel"], priority=bool(ev.get("priority", False)),
               order=ev["order"], issued_at=now, citizen=ev.get("citizen"),
               phone=ev.get("phone"), checked_in=ev["channel"] == "kiosk", lang=ev.get("lang", "vi"),
               nonce=ev.get("nonce"))
    if t.phone:                                  # a phone given at issue opts in to SMS
        t.notify["sms"] = {"phone": t.phone}
    s.tickets[t.id] = t
    s.next_order = max(s.next_order, t.order + 1)
    s.issued[(day, t.service)] = s.issued.get((day, t.service), 0) + 1
    if t.citizen:
        rec = s.citizens.setdefault(t.citizen, CitizenRecord())
        rec.numbers.setdefault(day, []).append((t.id, t.service))
    if ev.get("device"):
        s.kiosks.issued_by(ev["device"], day, now)


def _release_counter(s: BranchState, t: Ticket) -> None:
    for c in s.counters.values():
        if c.current == t.id:
            c.current = None


def _called(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets[ev["ticket"]]
    if t.state in (State.SKIPPED, State.HELD):      # a recall of a no-show: not a no-show after all
        _forget_noshow(s, t)
    t.state, t.counter = State.CALLED, ev["counter"]
    t.called_at = t.called_at or now            # the first call: what the wait is measured to
    t.calls += 1
    t.skipped_at = t.held_until = None
    s.counters[ev["counter"]].current = t.id


def _completed(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets[ev["ticket"]]
    t.state, t.finished_at = State.COMPLETED, now
    _release_counter(s, t)


def _skipped(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets[ev["ticket"]]
    _release_counter(s, t)
    t.skipped_at = now
    if "held_until" in ev:
        t.state, t.held_until = State.HELD, datetime.fromisoformat(ev["held_until"])
    else:
        t.state = State.SKIPPED
    if t.channel == "online" and t.citizen:           # counts against online booking once final
        s.citizens.setdefault(t.citizen, CitizenRecord()).noshows[t.id] = t.held_until or now


def _forget_noshow(s: BranchState, t: Ticket) -> None:
    if t.citizen and t.citizen in s.citizens:
        s.citizens[t.citizen].noshows.pop(t.id, None)


Handler = Callable[[BranchState, Event, datetime], None]


def _finished(state_: State) -> Handler:
    def fn(s: BranchState, ev: Event, now: datetime) -> None:
        t = s.tickets.get(ev["ticket"])
        if t is None:           # a ticket already forgotten (an old day): nothing to update
            return
        if state_ is State.CANCELLED and t.state is State.HELD and now < (t.held_until or now):
            _forget_noshow(s, t)        # given back while still held: not a no-show
        t.state, t.finished_at = state_, now
        _release_counter(s, t)
    return fn


def _transferred(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets[ev["ticket"]]
    _release_counter(s, t)
    t.state, t.service = State.WAITING, ev["service"]


def _checked_in(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets[ev["ticket"]]
    t.checked_in = True
    if t.state is State.HELD:       # back to the head of its queue: it keeps its registration order
        _forget_noshow(s, t)
        t.state, t.held_until = State.WAITING, None


def _notify(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets[ev["ticket"]]
    holder.note_change(t, now)
    t.notify[ev["channel"]] = {k: ev[k] for k in ("phone", "subscription", "ahead") if k in ev}
    if "travel_minutes" in ev:
        t.travel_minutes = ev["travel_minutes"]
    if "lang" in ev:
        t.lang = ev["lang"]


def _unsubscribed(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets.get(ev["ticket"])
    if t is not None:           # a ticket already forgotten (an old day) has nothing left to remove
        t.notify.pop(ev["channel"], None)
        if ev.get("by", "citizen") == "citizen":      # the notifier's removals are not the holder's doing
            holder.note_change(t, now)


def _rated(s: BranchState, ev: Event, now: datetime) -> None:
    t = s.tickets[ev["ticket"]]
    t.rating = (ev["score"], ev.get("comment", ""))
    holder.note_change(t, now)


def _kiosk_enrolled(s: BranchState, ev: Event, now: datetime) -> None:
    s.kiosks.enrolled(ev, now)


def _kiosk_claimed(s: BranchState, ev: Event, now: datetime) -> None:
    s.kiosks.claimed(ev["device"])


def _kiosk_revoked(s: BranchState, ev: Event, now: datetime) -> None:
    s.kiosks.revoked(ev["device"], now)


_APPLY = {
    "counter.opened": _counter_opened,
    "counter.closed": _counter_closed,
    "ticket.issued": _issued,
    "ticket.called": _called,
    "ticket.recalled": _called,
    "ticket.completed": _completed,
    "ticket.skipped": _skipped,
    "ticket.cancelled": _finished(State.CANCELLED),
    "ticket.expired": _finished(State.EXPIRED),
    "ticket.transferred": _transferred,
    "ticket.checked_in": _checked_in,
    "ticket.notify": _notify,
    "ticket.unsubscribed": _unsubscribed,
    "ticket.rated": _rated,
    "kiosk.enrolled": _kiosk_enrolled,
    "kiosk.claimed": _kiosk_claimed,
    "kiosk.revoked": _kiosk_revoked,
}
