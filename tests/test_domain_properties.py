"""hub.domain under random command sequences: the queue's invariants hold after every step.

A small branch (three fields with tiny caps, four counters sharing them, either absent policy) is
driven through one working day, from before the doors open until the online issue for the next day,
by random commands at random moments; refused commands (DomainError) are part of the run.
"""
from __future__ import annotations

import copy
import dataclasses
from collections import Counter as Tally
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.config import load_config
from hub.domain import calendar, commands, identity
from hub.domain.config import CounterPlan
from hub.domain.errors import DomainError
from hub.domain.limits import Citizen, history
from hub.domain.state import BranchState, apply, fold
from hub.domain.ticket import FINAL, State
from hub.phones import normalize_phone

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 5, 19, 7, 45, tzinfo=TZ)          # a Tuesday, before the doors open
END = datetime(2026, 5, 19, 23, 30, tzinfo=TZ)           # still Tuesday: online issue for Wednesday

CENTRE = load_config()
FIELDS = ("ho-tich", "dat-dai", "cu-tru")
CAPS = {"ho-tich": 4, "dat-dai": 5, "cu-tru": 3}
COUNTERS = {"A": ("ho-tich",), "B": ("dat-dai", "ho-tich"), "C": ("cu-tru",), "D": ("dat-dai",)}
CITIZENS = (None, Citizen("young", 1990), Citizen("old", 1945), Citizen("unknown-age", None),
            Citizen("mid", 1960))


def small_branch(branch_id: str):
    """Branch 1 (absent = hold) or 2 (absent = skip), cut down so that caps and limits are hit."""
    b = CENTRE.branches[branch_id]
    return dataclasses.replace(
        b,
        services={k: dataclasses.replace(b.services[k], daily_cap=CAPS[k]) for k in FIELDS},
        counters={cid: CounterPlan(cid, svcs) for cid, svcs in COUNTERS.items()})


BRANCHES = {bid: small_branch(bid) for bid in ("1", "2")}


# -- the command language ------------------------------------------------------------------------

ticket_ix = st.integers(0, 40)
real_counter = st.sampled_from(sorted(COUNTERS))
counter = st.sampled_from(sorted(COUNTERS) * 3 + ["Z"])     # "Z": a counter that does not exist
field = st.sampled_from(FIELDS * 3 + ("nope",))

ISSUE = st.tuples(st.just("issue"), field, st.sampled_from(("kiosk", "online")), st.booleans(),
                  st.integers(0, len(CITIZENS) - 1), st.sampled_from((None, "0912345678")))
OPEN = st.tuples(st.just("open"), counter,
                 st.one_of(st.none(), st.lists(st.sampled_from(FIELDS * 3 + ("nope",)), max_size=3)))
CALL = st.tuples(st.just("call"), real_counter)


def weighted(*options):
    """One of the strategies, each `weight` times as likely as a weight-1 one."""
    pool = [strategy for strategy, weight in options for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


commands_ = weighted(
    (ISSUE, 5), (OPEN, 2), (CALL, 5),
    (st.tuples(st.just("close"), counter), 1),
    (st.tuples(st.just("recall"), ticket_ix, st.one_of(st.none(), counter)), 1),
    (st.tuples(st.just("skip"), ticket_ix), 2),
    (st.tuples(st.just("complete"), ticket_ix), 1),
    (st.tuples(st.just("check_in"), ticket_ix), 1),
    (st.tuples(st.just("transfer"), ticket_ix, field), 1),
    (st.tuples(st.just("cancel"), ticket_ix, st.sampled_from(("staff", "citizen"))), 1),
    (st.tuples(st.just("tick")), 1),
    (st.tuples(st.just("wait")), 1),                    # a long pause: four hours pass
)
minutes = st.sampled_from((0, 0, 0, 1, 1, 2, 2, 3, 5, 8, 13, 30))
steps = st.lists(st.tuples(minutes, commands_), min_size=20, max_size=80)


def pick(state: BranchState, ix: int):
    """A ticket by index: among the not yet final ones for even indices, among all for odd ones."""
    tickets = sorted(state.tickets.values(), key=lambda t: t.order)
    live = [t for t in tickets if t.state not in FINAL]
    pool = live if ix % 2 == 0 and live else tickets
    return pool[(ix // 2) % len(pool)] if pool else None


def decide(state: BranchState, now: datetime, cmd: tuple) -> list[dict] | None:
    """The events of `cmd` (DomainError if refused); None if it has no target yet."""
    kind = cmd[0]
    if kind == "issue":
        _, service, channel, priority, who, phone = cmd
        citizen = CITIZENS[who]
        hist = None
        if citizen is not None:
            try:
                day = calendar.issuing_day(state.config, now, channel)
            except DomainError:
                day = now.date()            # issue refuses anyway; the history is not looked at
            hist = history(citizen, day, [state])
        return commands.issue(state, now, service=service, channel=channel, priority=priority,
                              phone=phone, citizen=citizen, history=hist)
    if kind == "open":
        return commands.open_counter(state, now, cmd[1], cmd[2])
    if kind == "close":
        return commands.close_counter(state, now, cmd[1])
    if kind == "call":
        return commands.call_next(state, now, cmd[1])
    if kind == "tick":
        return commands.tick(state, now)
    t = pick(state, cmd[1])
    if t is None:
        return None
    if kind == "recall":
        return commands.recall(state, now, t, cmd[2])
    if kind == "transfer":
        return commands.transfer(state, now, t, cmd[2])
    if kind == "cancel":
        return commands.cancel(state, now, t, by=cmd[2])
    return getattr(commands, kind)(state, now, t)


# -- invariants ----------------------------------------------------------------------------------

def view(state: BranchState):
    """Everything that makes up a branch's state (config aside), for comparison."""
    return (state.seq, state.tickets, state.issued, state.counters, state.citizens, state.next_order,
            state.latest_day, state.last_t)


def snapshot(state: BranchState):
    """A copy of `view(state)`: tickets and counters hold only immutable values, so shallow
    copies of them (and of the citizens' lists and dicts) are enough."""
    return (state.seq, {k: copy.copy(t) for k, t in state.tickets.items()}, dict(state.issued),
            {k: copy.copy(c) for k, c in state.counters.items()},
            {k: ({d: list(v) for d, v in r.numbers.items()}, dict(r.noshows))
             for k, r in state.citizens.items()},
            state.next_order, state.latest_day, state.last_t)


def calling_order(t) -> tuple[int, int]:
    """The rule, independently of Ticket.queue_key: priority first, then registration order."""
    return (0 if t.priority else 1, t.order)


def check_event_before_apply(state: BranchState, ev: dict, now: datetime) -> None:
    """What must hold of the state an event is applied to."""
    p = state.config.policy
    if ev["type"] == "ticket.issued":
        # (a) no number twice in a day; the number in its field's range, next in line
        assert ev["ticket"] not in state.tickets
        assert state.by_number(datetime.fromisoformat(ev["day"]).date(), ev["number"]) is None
        svc = state.config.services[ev["service"]]
        day = datetime.fromisoformat(ev["day"]).date()
        assert int(ev["number"]) == svc.first_number + state.issued_count(day, svc.id)
        assert svc.first_number <= int(ev["number"]) <= svc.last_number
        assert ev["order"] == state.next_order
        assert ev["day"] in (now.date().isoformat(), calendar.next_working_day(state.config.calendar,
                                                                               now.date()).isoformat())
    elif ev["type"] == "ticket.called":
        # (b) a first call takes the head of the counter's queue: priority first, then registration
        t = state.tickets[ev["ticket"]]
        c = state.counters[ev["counter"]]
        assert c.open and t.state is State.WAITING and t.service in c.services
        assert t.day == now.date()
        waiting = [w for w in state.tickets.values()
                   if w.state is State.WAITING and w.day == t.day and w.service in c.services]
        assert all(calling_order(w) >= calling_order(t) for w in waiting), (t, min(waiting, key=calling_order))
    elif ev["type"] == "ticket.recalled":
        t = state.tickets[ev["ticket"]]
        assert t.effective_state(now) in (State.CALLED, State.SKIPPED, State.HELD)
        if t.effective_state(now) is State.SKIPPED and t.skipped_at is not None:
            # the window starts when it became a no-show: the skip, or the end of a hold
            became = t.held_until if t.held_until is not None else t.skipped_at
            assert now - became <= timedelta(minutes=p.recall_minutes)
    elif ev["type"] == "ticket.expired":
        t = state.tickets[ev["ticket"]]
        assert t.state in (State.WAITING, State.HELD)
        assert now.time() >= p.closes or t.day < now.date()


def check_state(state: BranchState, log: list[dict]) -> None:
    p = state.config.policy
    # (a) no ticket at two counters; numbers unique per day
    currents = [c.current for c in state.counters.values() if c.current]
    assert len(currents) == len(set(currents))
    per_day = Tally((t.day, t.number) for t in state.tickets.values())
    assert all(n == 1 for n in per_day.values())
    # (c) limits
    issued_log = Tally((e["day"], e["service"]) for e in log if e["type"] == "ticket.issued")
    assert {(d.isoformat(), s): n for (d, s), n in state.issued.items()} == dict(issued_log)
    for (_, service), n in state.issued.items():
        assert n <= state.config.services[service].daily_cap
    for rec in state.citizens.values():
        for numbers in rec.numbers.values():
            assert len(numbers) <= p.per_day
            assert all(n <= p.per_field for n in Tally(svc for _, svc in numbers).values())
    # (d) a counter's current ticket is CALLED there, and every CALLED ticket is some counter's current
    for c in state.counters.values():
        if c.current:
            t = state.tickets[c.current]
            assert t.state is State.CALLED and t.counter == c.id
    for t in state.tickets.values():
        if t.state is State.CALLED:
            assert state.counters[t.counter].current == t.id
        if t.state is State.HELD:
            assert p.absent == "hold" and t.channel == "online" and not t.checked_in and t.held_until
        if t.channel == "kiosk":
            assert t.checked_in
    # (e) a restart reproduces the state: fold the log, and fold half then apply the rest
    live = view(state)
    assert view(fold(state.config, log)) == live
    half = fold(state.config, log[: len(log) // 2])
    for ev in log[len(log) // 2:]:
        apply(half, ev)
    assert view(half) == live


def run(branch_id: str, script) -> dict:
    state = BranchState(BRANCHES[branch_id])
    log: list[dict] = []
    now = START
    outcome = Tally()
    for advance, cmd in script:
        now = min(now + timedelta(minutes=advance + (240 if cmd[0] == "wait" else 0)), END)
        if cmd[0] == "wait":
            continue
        before = snapshot(state)
        try:
            evs = decide(state, now, cmd)
        except DomainError as e:
            # (f) a refused command changes nothing
            assert snapshot(state) == before, (cmd, e.code)
            outcome[e.code] += 1
            continue
        assert snapshot(state) == before, "a command changed the state by itself"
        if evs is None:
            continue
        outcome[cmd[0] if evs else "noop"] += 1
        for ev in evs:
            assert ev["t"] == now.isoformat(timespec="seconds") and ev["branch"] == state.id
            check_event_before_apply(state, ev, now)
            apply(state, ev)
            log.append(ev)
            if "held_until" in ev:
                outcome["held"] += 1
        check_state(state, log)
    return outcome


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(branch_id=st.sampled_from(sorted(BRANCHES)), script=steps)
def test_random_days_keep_the_queue_invariants(branch_id, script):
    run(branch_id, script)


# A busy-morning script: counters open first, then many issues and calls in the issuing hours, so
# that caps, per-citizen limits, priority and two-field counters meet often.
busy_commands = st.one_of(
    st.tuples(st.just("issue"), st.sampled_from(FIELDS), st.sampled_from(("kiosk", "online")),
              st.booleans(), st.integers(0, len(CITIZENS) - 1), st.none()),
    st.tuples(st.just("call"), st.sampled_from(sorted(COUNTERS))),
    st.tuples(st.sampled_from(("skip", "complete", "check_in")), ticket_ix),
    st.tuples(st.just("recall"), ticket_ix, st.none()),
    st.tuples(st.just("transfer"), ticket_ix, st.sampled_from(FIELDS)),
)
OPEN_ALL = [(0, ("open", cid, None)) for cid in sorted(COUNTERS)]


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(branch_id=st.sampled_from(sorted(BRANCHES)),
       script=st.lists(st.tuples(st.sampled_from((0, 1, 2, 4)), busy_commands), min_size=25, max_size=70))
def test_busy_mornings_keep_the_queue_invariants(branch_id, script):
    run(branch_id, [(20, ("tick",))] + OPEN_ALL + script + [(600, ("tick",))])


def test_the_generator_reaches_the_interesting_cases():
    """A guard on the strategies: over a fixed sample, the runs hit caps, limits and calls."""
    seen = Tally()

    @settings(max_examples=120, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(branch_id=st.sampled_from(sorted(BRANCHES)),
           script=st.lists(st.tuples(st.sampled_from((0, 1, 2, 4)), busy_commands), min_size=30, max_size=60))
    def sample(branch_id, script):
        seen.update(run(branch_id, [(20, ("tick",))] + OPEN_ALL + script))

    sample()
    for code in ("issue", "call", "skip", "held", "recall", "check_in", "complete", "transfer",
                 "daily_cap_reached", "field_limit_reached", "daily_limit_reached", "queue_empty",
                 "recall_too_late"):
        assert seen[code] > 0, (code, seen)


# -- identity ------------------------------------------------------------------------------------

# Every mobile network code in use, as libphonenumber's data has them (hub.phones): whole two-digit
# codes, and the three-digit ones where only part of a code is allocated (052x, 055x, 089x, 099x).
MOBILE_CODES = ("32", "33", "34", "35", "36", "37", "38", "39", "522", "523", "528", "559", "56", "58", "59",
                "70", "76", "77", "78", "79", "81", "82", "83", "84", "85", "86", "87", "88", "896", "897",
                "898", "899", "90", "91", "92", "93", "94", "96", "97", "98", "990", "991", "993", "994",
                "995", "996", "997", "998", "999")


@settings(max_examples=200, deadline=None)
@given(lead=st.sampled_from(MOBILE_CODES), rest=st.text("0123456789", min_size=7, max_size=7),
       prefix=st.sampled_from(("0", "+84", "84", "+84 ", "(+84) ")),
       sep=st.sampled_from(("", " ", ".", "-")))
def test_every_written_form_of_a_mobile_normalises_to_one(lead, rest, prefix, sep):
    national = (lead + rest)[:9]
    written = prefix + sep.join((national[:2], national[2:5], national[5:]))
    out = normalize_phone(written)
    assert out == "+84" + national
    assert normalize_phone(out) == out
    masked = identity.mask_phone(out)
    assert len(masked) == len(out) and masked[:5] == out[:5] and masked[-2:] == out[-2:]
    assert set(masked[5:-2]) == {"*"}


@settings(max_examples=200, deadline=None)
@given(province=st.text("0123456789", min_size=3, max_size=3), century=st.sampled_from("0123"),
       yy=st.integers(0, 99), serial=st.text("0123456789", min_size=6, max_size=6))
def test_birth_year_reads_century_and_year_digits(province, century, yy, serial):
    cccd = f"{province}{century}{yy:02d}{serial}"
    assert identity.validate_cccd(cccd) == cccd
    assert identity.birth_year(cccd) == (1900 if century in "01" else 2000) + yy
