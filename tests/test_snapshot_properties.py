"""A state started from a snapshot and the events after it is the state of the full fold.

Valid logs are made as tests/test_domain_properties.py makes them (random commands, refused ones
skipped), over several working days so that the estimator's history (plans, profiles, decayed
counts) moves, with kiosk devices, opt-ins and ratings, and with prediction points published on
the way (the calibration learns from those, not from the log). Then, at every cut `k`:
`from_json(to_json(state after k events))` + the rest equals the state of the whole run, compared
field by field (every attribute of every object, the estimator's caches aside), and answers alike:
the views, the forecasts, the next decisions.
"""
from __future__ import annotations

import dataclasses
import json
from collections import deque
from datetime import date, datetime, timedelta
from enum import Enum

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import views
from hub.domain import commands, kiosk_commands
from hub.domain.config import CounterPlan
from hub.domain.errors import DomainError
from hub.domain.snapshot import FORMAT, from_json, to_json, usable
from hub.domain.state import BranchState, apply, fold
from tests.test_domain_properties import BRANCHES, COUNTERS, START, busy_commands, commands_, decide, pick

LEAVES = (str, int, float, bool, Enum, date, type(None))
# Fields that are caches of a forecast (recomputed on the next read), not learned state.
# What a process keeps of its own doings, not of the branch: forecasts it simulated or adopted from
# another process (hub.domain.eta.estimator), and how many it simulated (a metric).
CACHES = {"_last", "_point", "_cache", "_made", "_adopted", "simulations"}

extra = st.one_of(
    st.tuples(st.just("publish")),
    st.tuples(st.just("enrol"), st.sampled_from(("k1", "k2"))),
    st.tuples(st.just("kiosk_issue"), st.sampled_from(("k1", "k2")), st.sampled_from(("ho-tich", "cu-tru"))),
    st.tuples(st.just("revoke"), st.sampled_from(("k1", "k2"))),
    st.tuples(st.just("opt_in"), st.integers(0, 40), st.sampled_from((None, 5, 12))),
    st.tuples(st.just("rate"), st.integers(0, 40), st.integers(1, 5)),
)
day_script = st.lists(st.tuples(st.sampled_from((0, 1, 2, 5, 15)), st.one_of(busy_commands, commands_, extra)),
                      min_size=10, max_size=40)


def act(state: BranchState, now: datetime, cmd: tuple) -> list[dict] | None:
    kind = cmd[0]
    if kind == "enrol":
        return kiosk_commands.enrol(state, now, cmd[1], by="cli")
    if kind == "revoke":
        return kiosk_commands.revoke(state, now, cmd[1], by="cli")
    if kind == "kiosk_issue":
        evs = commands.issue(state, now, service=cmd[2], channel="kiosk")
        return [{**ev, "device": cmd[1]} if ev["type"] == "ticket.issued" else ev for ev in evs]
    if kind in ("opt_in", "rate"):
        t = pick(state, cmd[1])
        if t is None:
            return None
        if kind == "rate":
            return commands.rate(state, now, t, cmd[2])
        return commands.opt_in(state, now, t, channel="sms", phone="0912345678", ahead=cmd[2])
    return decide(state, now, cmd)


def generate(branch_id: str, days: list[list[tuple]]) -> tuple[list[dict], dict[int, list[datetime]], datetime]:
    """A valid log over consecutive days, and the prediction points published after each event
    count (index: how many events were folded when they were published)."""
    state = BranchState(BRANCHES[branch_id])
    log: list[dict] = []
    points: dict[int, list[datetime]] = {}
    now = START
    for i, script in enumerate(days):
        now = max(now, START + timedelta(days=i))
        opening = [(0, ("tick",))] + [(0, ("open", c, None)) for c in sorted(COUNTERS)]
        for advance, cmd in opening + script + [(600, ("tick",))]:
            now += timedelta(minutes=advance + (240 if cmd[0] == "wait" else 0))
            if cmd[0] == "wait":
                continue
            if cmd[0] == "publish":
                state.eta.publish(now)
                points.setdefault(len(log), []).append(now)
                continue
            try:
                evs = act(state, now, cmd)
            except DomainError:
                continue
            for ev in evs or ():
                apply(state, {**ev, "seq": state.seq + 1})
                log.append({**ev, "seq": state.seq})
    return log, points, now


def replay(start: BranchState, log: list[dict], points: dict[int, list[datetime]], k: int, stop: int) -> BranchState:
    """`start` (the state after `k` events) moved through events k..stop-1, publishing at the same
    points as the live run before each; after the last event of the log, its last points too."""
    for n in range(k, stop):
        for t in points.get(n, []):
            start.eta.publish(t)
        apply(start, log[n])
    if stop == len(log):
        for t in points.get(stop, []):
            start.eta.publish(t)
    return start


def differences(a: object, b: object, path: str = "state") -> list[str]:
    """Where two object graphs differ: every attribute (slots too), dict order, deque bounds."""
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, LEAVES):
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, deque):
        assert isinstance(b, deque)
        if a.maxlen != b.maxlen:
            return [f"{path}: maxlen {a.maxlen} != {b.maxlen}"]
        return differences(list(a), list(b), path)
    if isinstance(a, dict):
        assert isinstance(b, dict)
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} != {list(b)}"]
        if getattr(a, "default_factory", None) is not None:
            if type(a.default_factory()) is not type(b.default_factory()):      # type: ignore[attr-defined]
                return [f"{path}: defaults differ"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple))
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    names = [*getattr(a, "__dict__", {}), *getattr(type(a), "__slots__", ())]
    assert names, f"{path}: a {type(a).__name__} the comparison does not know"
    return [d for n in names if n not in CACHES and n != "config" and n != "setting"
            for d in differences(getattr(a, n), getattr(b, n), f"{path}.{n}")]


def same_answers(a: BranchState, b: BranchState, now: datetime) -> None:
    assert views.branch_view(a, now) == views.branch_view(b, now)
    for t in a.tickets.values():
        assert views.ticket_view(a, t, now) == views.ticket_view(b, b.tickets[t.id], now)
    assert a.eta.forecast(now) == b.eta.forecast(now)
    for c in sorted(COUNTERS):
        for st_ in (a, b):
            try:
                got = commands.call_next(st_, now, c)
            except DomainError as e:
                got = e.code        # type: ignore[assignment]
            if st_ is a:
                first = got
        assert got == first


def assert_same(a: BranchState, b: BranchState, now: datetime) -> None:
    assert differences(a, b) == []
    assert json.dumps(to_json(a)) == json.dumps(to_json(b))
    same_answers(a, b, now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(branch_id=st.sampled_from(sorted(BRANCHES)), days=st.lists(day_script, min_size=1, max_size=3),
       cuts=st.lists(st.floats(0, 1), min_size=1, max_size=3))
def test_snapshot_at_any_seq_plus_tail_is_the_full_fold(branch_id, days, cuts):
    config = BRANCHES[branch_id]
    log, points, end = generate(branch_id, days)
    whole = fold(config, log)
    for cut in cuts:
        k = int(cut * len(log))
        saved = json.loads(json.dumps(to_json(fold(config, log[:k]))))    # through the store's bytes
        restored = from_json(config, saved)
        assert restored is not None and restored.seq == k
        for ev in log[k:]:
            apply(restored, ev)
        assert_same(restored, whole, end)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(branch_id=st.sampled_from(sorted(BRANCHES)), days=st.lists(day_script, min_size=2, max_size=3),
       cut=st.floats(0, 1))
def test_a_restart_from_a_snapshot_keeps_what_publishing_taught(branch_id, days, cut):
    """The live state (folding and publishing) and one restarted from its snapshot at `k` and then
    doing the same are the same, the calibration included."""
    config = BRANCHES[branch_id]
    log, points, end = generate(branch_id, days)
    live = replay(BranchState(config), log, points, 0, len(log))
    k = int(cut * len(log))
    before = replay(BranchState(config), log, points, 0, k)
    restored = from_json(config, json.loads(json.dumps(to_json(before))))
    assert restored is not None
    assert_same(replay(restored, log, points, k, len(log)), live, end)


def test_a_snapshot_of_another_format_or_branch_is_not_used():
    config = BRANCHES["1"]
    saved = to_json(BranchState(config))
    assert usable(config, saved)
    assert from_json(config, {**saved, "format": FORMAT + 1}) is None
    assert from_json(BRANCHES["2"], saved) is None
    assert from_json(config, "not a snapshot") is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(days=st.lists(day_script, min_size=1, max_size=2), cut=st.floats(0, 1))
def test_a_snapshot_made_before_a_counter_was_added_starts_as_the_fold_under_the_new_configuration(days, cut):
    before = BRANCHES["1"]
    log, _, end = generate("1", days)
    after = dataclasses.replace(before, counters={**before.counters, "E": CounterPlan("E", ("cu-tru",))})
    k = int(cut * len(log))
    restored = from_json(after, json.loads(json.dumps(to_json(fold(before, log[:k])))))
    assert restored is not None and restored.config is after
    for ev in log[k:]:
        apply(restored, ev)
    assert_same(restored, fold(after, log), end)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(branch_id=st.sampled_from(sorted(BRANCHES)), days=st.lists(day_script, min_size=1, max_size=2),
       cut=st.floats(0, 1))
def test_people_ahead_counted_for_many_numbers_at_once_is_as_counted_one_by_one(branch_id, days, cut):
    """The ticket feed's fan-out counts the people ahead of every watched number at once
    (BranchState.ahead_counter); each count is the one a ticket's own page shows."""
    log, _, _ = generate(branch_id, days)
    state = fold(BRANCHES[branch_id], log[:int(cut * len(log))])
    ahead = state.ahead_counter()
    assert [ahead(t) for t in state.tickets.values()] == [state.people_ahead(t) for t in state.tickets.values()]
