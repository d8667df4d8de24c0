"""The event loop of one simulated working day: a heap of timed actions on a `BranchState`.

Every action asks the real domain (`hub.domain.commands`) what happens at its `now`, folds the
events into the state with `apply` and keeps them: the simulator decides what people do, the
domain decides what that means for the queue (who is called next, what a skip becomes under
`absent = hold`, which numbers expire, which requests are refused). Time is whole seconds, and
actions at the same second run in the order they were scheduled, so a run is reproducible.

A counter's clerk loops: call the next number (`call_next`, which completes the one served),
wait 1-3 minutes for a holder who does not come (re-announcing once, then `skip`), serve for a
lognormal time (field mean from the configuration's `service_minutes`, times the clerk's speed
and the day's drift; sd per field in FIELD_SIGMA), now and then `transfer` the number to another
field after 2-6 minutes, recall a no-show who came back, and close for breaks when the current
service ends. Holders arrive, check in, give numbers back and come back as `hub.sim.holders`
drew for them. At `closes` the domain's `tick` expires what is still waiting.
"""
from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.auth import Tokens
from hub.domain import calendar, commands, identity
from hub.domain.errors import DomainError
from hub.domain.events import Event
from hub.domain.limits import Citizen, history
from hub.domain.state import BranchState, apply
from hub.domain.ticket import State, Ticket
from hub.phones import normalize_phone
from hub.sim import holders
from hub.sim.people import fake_citizen, field_weights
from hub.sim.scenarios import Scenario
from hub.sim.staff import Break, Desk

# Spread of service times (sd of the log): land, construction and investment files vary most.
FIELD_SIGMA = {"dat-dai": 0.6, "xay-dung": 0.6, "dau-tu": 0.65, "dang-ky-kinh-doanh": 0.55,
               "nong-nghiep-moi-truong": 0.55, "ho-tich": 0.45, "cu-tru": 0.45, "tu-phap-chung-thuc": 0.4}
DEFAULT_SIGMA = 0.5
REANNOUNCE = 0.7        # a clerk waiting for an absent holder calls the number once more
# Pseudonyms as the hub derives them (HMAC of the CCCD); they never leave the state of a run.
_PSEUDONYMS = Tokens("queuecast-simulator")


def _after(now: datetime, minutes: float) -> datetime:
    return now + timedelta(seconds=int(minutes * 60))


class BranchDay:
    def __init__(self, st: BranchState, day: date, zone: ZoneInfo, sc: Scenario, rng: random.Random,
                 desks: list[Desk], service_drift: float, stats: Counter[str]):
        self.st, self.day, self.sc, self.rng, self.stats = st, day, sc, rng, stats
        self.service_drift = service_drift
        p = st.config.policy
        self.opens, self.closes, self.issuing_until = (
            datetime.combine(day, t, tzinfo=zone) for t in (p.opens, p.closes, p.issuing_until))
        self.desks = {d.id: d for d in desks}
        self.fields, self.weights = field_weights(st.config)
        self.holders: dict[str, holders.Holder] = {}
        self.heap: list[tuple[datetime, int, Callable[..., None], tuple[Any, ...]]] = []  # (when, seq, action, args)
        self.seq = 0
        self.now: datetime | None = None        # the time of the action being done
        self.out: list[Event] = []
        # What a citizen's app would show as the wait: planned service times, the day's counters.
        rate = dict.fromkeys(self.fields, 0.0)
        for d in desks:
            if d.opens_at is not None:
                for f in d.services:
                    rate[f] += 1 / len(d.services) / st.config.services[f].service_minutes
        self.per_minute = {f: r or 1 / 60 for f, r in rate.items()}

    def run(self, arrivals: list[tuple[datetime, str]]) -> list[Event]:
        self.at(self.closes, self._tick)
        for when, channel in arrivals:
            self.at(when, self._arrival, channel)
        for d in self.desks.values():
            if d.opens_at is not None:
                self.at(d.opens_at, self._open, d)
                for b in d.breaks:
                    self.at(b.start, self._poke, d)
                self.at(self.closes, self._poke, d)
        while self.heap:
            now, _, action, args = heapq.heappop(self.heap)
            self.now = now
            action(now, *args)
        return self.out

    def at(self, when: datetime, action: Callable[..., None], *args: Any) -> None:
        """Do `action` at `when`, or now if `when` has passed: the log never goes back in time."""
        when = max(when, self.now) if self.now is not None else when
        heapq.heappush(self.heap, (when, self.seq, action, args))
        self.seq += 1

    def _emit(self, evs: list[Event]) -> list[Event]:
        for ev in evs:
            apply(self.st, ev)
        self.out.extend(evs)
        return evs

    # -- citizens -------------------------------------------------------------------------------

    def _arrival(self, now: datetime, channel: str) -> None:
        rng, sc = self.rng, self.sc
        field = rng.choices(self.fields, self.weights)[0]
        if channel == "kiosk":
            t = self._issue(now, field, "kiosk", priority=rng.random() < sc.priority_share)
            if t is not None:
                self._hold(t, holders.walk_in(rng, sc, now))
            return
        cccd, phone = fake_citizen(rng, now.year)
        citizen = Citizen(_PSEUDONYMS.pseudonym(cccd), identity.birth_year(cccd))
        phone = normalize_phone(phone) if phone else None
        self._book(now, field, citizen, phone)
        r = rng.random()
        if r < sc.second_number + sc.same_field_again:
            other = field if r >= sc.second_number else rng.choices(self.fields, self.weights)[0]
            self.at(_after(now, rng.uniform(1, 10)), self._book, other, citizen, phone)

    def _book(self, now: datetime, field: str, citizen: Citizen, phone: str | None) -> None:
        t = self._issue(now, field, "online", citizen=citizen, phone=phone)
        if t is not None:
            self._hold(t, holders.online(self.rng, self.sc, now, citizen, self._expected_call(t, now), self.opens))

    def _issue(self, now: datetime, field: str, channel: str, **kw: Any) -> Ticket | None:
        st = self.st
        try:
            if kw.get("citizen") is not None:
                kw["history"] = history(kw["citizen"], calendar.issuing_day(st.config, now, channel), [st])
            evs = self._emit(commands.issue(st, now, service=field, channel=channel, **kw))
        except DomainError as e:
            self.stats[f"refused {e.code}"] += 1
            return None
        t = st.tickets[evs[0]["ticket"]]
        self._wake(now, t.service)
        return t

    def _hold(self, t: Ticket, h: holders.Holder) -> None:
        self.holders[t.id] = h
        if h.channel == "online" and h.arrive_at is not None:
            self.at(h.arrive_at, self._comes, t.id)
        if h.give_back_at is not None:
            self.at(h.give_back_at, self._give_back, t.id)

    def _expected_call(self, t: Ticket, now: datetime) -> datetime:
        start = max(now, self.opens)
        call = _after(start, (self.st.people_ahead(t) or 0) / self.per_minute[t.service])
        noon = self.opens.replace(hour=12, minute=0)
        return call + timedelta(hours=1) if start < noon <= call else call

    def _comes(self, now: datetime, tid: str) -> None:
        """A holder arrives, or comes back after missing the call."""
        t = self.st.tickets.get(tid)
        if t is None or now >= self.closes:
            return
        h, state = self.holders[tid], t.effective_state(now)
        if state is State.WAITING and h.checks_in and not t.checked_in:
            self._emit(commands.check_in(self.st, now, t))
        elif state is State.HELD:               # scanning the QR puts a held number back in line
            h.back = True
            self._emit(commands.check_in(self.st, now, t))
            self._wake(now, t.service)
        elif state is State.SKIPPED:
            h.back = True
            self._ask_recall(now, t)

    def _give_back(self, now: datetime, tid: str) -> None:
        t = self.st.tickets.get(tid)
        if t is not None and now < self.closes and t.effective_state(now) in (State.WAITING, State.HELD):
            self._emit(commands.cancel(self.st, now, t, by="citizen"))

    def _ask_recall(self, now: datetime, t: Ticket) -> None:
        """To the counter that skipped the number if it is open, else one of the field's."""
        mine = [d for d in self.desks.values() if d.id == t.counter]
        others = [d for d in self.desks.values() if d.id != t.counter and t.service in d.services]
        open_ = [d for d in mine + others if d.state != "closed"]
        if not open_:
            self._renew(now, t)
            return
        desk = next((d for d in open_ if d.state == "idle"), open_[0])
        desk.recalls.append(t.id)
        if desk.state == "idle":
            self._next(now, desk)

    def _renew(self, now: datetime, t: Ticket) -> None:
        self.stats["lost numbers"] += 1
        if now < self.issuing_until and self.rng.random() < self.sc.renew:
            new = self._issue(now, t.service, "kiosk")
            if new is not None:
                self.stats["new numbers after a missed call"] += 1
                self._hold(new, holders.renewed(now))

    def _tick(self, now: datetime) -> None:
        self._emit(commands.tick(self.st, now))

    # -- counters -------------------------------------------------------------------------------

    def _wake(self, now: datetime, field: str) -> None:
        """Idle clerks of the field notice the new number within half a minute."""
        for d in self.desks.values():
            if d.state == "idle" and field in d.services:
                d.state = "waking"
                self.at(now + timedelta(seconds=self.rng.randint(5, 30)), self._woken, d)

    def _woken(self, now: datetime, d: Desk) -> None:
        if d.state == "waking":
            d.state = "idle"
            self._next(now, d)

    def _poke(self, now: datetime, d: Desk) -> None:
        if d.state == "idle":
            self._next(now, d)

    def _open(self, now: datetime, d: Desk) -> None:
        self._emit(commands.open_counter(self.st, now, d.id, list(d.services)))
        d.state = "idle"
        self._next(now, d)

    def _next(self, now: datetime, d: Desk) -> None:
        """The clerk is free (the citizen served is done): break, recall, call the next, or wait."""
        if d.state == "closed":
            return
        due = d.breaks[0] if d.breaks and d.breaks[0].start <= now else None
        if due is not None or now >= self.closes:
            self._complete(now, d)
            self._close(now, d, due)
            return
        while d.recalls:
            t = self.st.tickets.get(d.recalls.pop(0))
            if t is None or t.effective_state(now) is not State.SKIPPED:
                continue
            self._complete(now, d)
            try:
                self._emit(commands.recall(self.st, now, t, d.id))
            except DomainError as e:            # too late: the citizen needs a new number
                self.stats[f"refused {e.code}"] += 1
                self._renew(now, t)
                continue
            self.stats["recalled after a skip"] += 1
            self._answer(now, d, t)
            return
        try:
            evs = self._emit(commands.call_next(self.st, now, d.id))
        except DomainError:                     # queue_empty: finish up and wait for a number
            self._complete(now, d)
            d.state = "idle"
            return
        self._answer(now, d, self.st.tickets[evs[-1]["ticket"]])

    def _complete(self, now: datetime, d: Desk) -> None:
        current = self.st.counters[d.id].current
        if current is not None:
            self._emit(commands.complete(self.st, now, self.st.tickets[current]))

    def _close(self, now: datetime, d: Desk, due: Break | None) -> None:
        self._emit(commands.close_counter(self.st, now, d.id))
        d.state = "closed"
        self.stats[f"closures {due.kind if due else 'end of day'}"] += 1
        if due is not None:
            d.breaks.pop(0)
            back = max(due.until, _after(now, 5)) if due.until else _after(now, due.minutes)
            d.breaks = [b for b in d.breaks if b.start >= back]    # a break missed is not made up
            if back < self.closes:
                self.at(back, self._open, d)
        waiting, d.recalls = d.recalls, []
        for tid in waiting:                     # no-shows who came back go to another counter
            t = self.st.tickets.get(tid)
            if t is not None and t.effective_state(now) is State.SKIPPED:
                self._ask_recall(now, t)

    def _answer(self, now: datetime, d: Desk, t: Ticket) -> None:
        """The number is on the board: does its holder come, and when?"""
        rng, h = self.rng, self.holders[t.id]
        d.state = "calling"
        comes = back = None
        if h.back or h.transferred:
            comes = now
        elif h.leave_at is None or now < h.leave_at:
            if h.arrive_at is not None and h.arrive_at <= now:
                if rng.random() >= h.away:
                    comes = now
                elif rng.random() < self.sc.come_back:
                    back = _after(now, rng.uniform(1, 25))
            else:
                comes = h.arrive_at             # on the way (None: never coming)
        wait = rng.uniform(1, 3)
        give_up, halfway = _after(now, wait), _after(now, wait / 2)
        if comes is not None and comes <= give_up:
            if comes > halfway and rng.random() < REANNOUNCE:
                self.at(halfway, self._reannounce, d, t.id)
            self.at(_after(comes, rng.uniform(0.3, 1.5)), self._serve, d, t.id)
            return
        if rng.random() < REANNOUNCE:
            self.at(halfway, self._reannounce, d, t.id)
        self.at(give_up, self._skip, d, t.id, back)

    def _reannounce(self, now: datetime, d: Desk, tid: str) -> None:
        if self.st.counters[d.id].current == tid:
            self._emit(commands.recall(self.st, now, self.st.tickets[tid]))

    def _skip(self, now: datetime, d: Desk, tid: str, back: datetime | None) -> None:
        self._emit(commands.skip(self.st, now, self.st.tickets[tid]))
        if back is not None:            # decided at the call: back after the skip, at the earliest
            self.at(max(back, _after(now, 0.5)), self._comes, tid)
        self._next(now, d)

    def _serve(self, now: datetime, d: Desk, tid: str) -> None:
        rng, t, h = self.rng, self.st.tickets[tid], self.holders[tid]
        d.state = "serving"
        if not h.transferred and rng.random() < self.sc.transfer_share:
            self.at(_after(now, rng.uniform(2, 6)), self._transfer, d, tid)
            return
        svc = self.st.config.services[t.service]
        mean = svc.service_minutes * d.speed * self.service_drift
        sigma = FIELD_SIGMA.get(t.service, DEFAULT_SIGMA)
        self.at(_after(now, rng.lognormvariate(math.log(mean) - sigma ** 2 / 2, sigma)), self._next, d)

    def _transfer(self, now: datetime, d: Desk, tid: str) -> None:
        """Wrong field: the same number queues again in another one, keeping its place in order."""
        t = self.st.tickets[tid]
        others = [(f, w) for f, w in zip(self.fields, self.weights) if f != t.service]
        field = self.rng.choices([f for f, _ in others], [w for _, w in others])[0]
        self._emit(commands.transfer(self.st, now, t, field))
        self.holders[tid].transferred = True
        self.stats["transfers"] += 1
        self._wake(now, field)
        self._next(now, d)
