"""hub.domain: one test (or table) per queue rule, driven through the pure commands.

Every refusal is checked for its exact `DomainError.code` and for changing nothing: a command only
decides events, `apply` is the only thing that moves a branch's state.
"""
from __future__ import annotations

import copy
import dataclasses
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import commands, events, identity
from hub.domain.calendar import issuing_day
from hub.domain.errors import DomainError
from hub.domain.limits import Citizen, History, history, suspended_until
from hub.domain.state import BranchState, apply
from hub.domain.ticket import State
from hub.phones import normalize_phone

from trace_format import TRACE_FIELDS

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def at(y: int, m: int, d: int, hh: int = 9, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=TZ)


TUE = date(2026, 5, 19)          # a working day
WED = date(2026, 5, 20)
NEXT_MON = date(2026, 5, 25)     # after the weekend of 23/24 May
T9 = at(2026, 5, 19, 9, 0)


# -- helpers -------------------------------------------------------------------------------------

def do(st: BranchState, evs: list[dict]) -> list[dict]:
    for e in evs:
        apply(st, e)
    return evs


def snapshot(st: BranchState):
    """Everything a command could (wrongly) change, deep-copied for comparison."""
    return copy.deepcopy((st.seq, st.tickets, st.issued, st.counters, st.citizens, st.next_order,
                          st.latest_day, st.last_t))


def refused(st: BranchState, code: str, fn, *args, kind: str | None = None, **kw) -> DomainError:
    """`fn(st, *args, **kw)` must refuse with `code` and leave `st` exactly as it was."""
    before = snapshot(st)
    with pytest.raises(DomainError) as info:
        fn(st, *args, **kw)
    err = info.value
    assert err.code == code, (err.code, err.message)
    if kind is not None:
        assert err.kind == kind
    assert err.message and err.message_vi
    assert snapshot(st) == before, "a refused command changed the state"
    return err


def issue(st: BranchState, now: datetime, service: str = "ho-tich", channel: str = "kiosk", *,
          citizen: Citizen | None = None, others=(), **kw):
    """Issue and apply; with a citizen, the history is built for the number's day from `st` and
    `others` (the citizen's other branches). Returns the new ticket."""
    if citizen is not None and "history" not in kw:
        day = issuing_day(st.config, now, channel)
        kw["history"] = history(citizen, day, [st, *others])
    evs = do(st, commands.issue(st, now, service=service, channel=channel, citizen=citizen, **kw))
    assert len(evs) == 1 and evs[0]["type"] == "ticket.issued"
    return st.tickets[evs[0]["ticket"]]


def hist(st_list, citizen: Citizen, day: date) -> History:
    return history(citizen, day, st_list)


def called_ticket(evs: list[dict]) -> str:
    assert evs[-1]["type"] == "ticket.called", evs
    return evs[-1]["number"]


@pytest.fixture
def b2(centre) -> BranchState:
    return BranchState(centre.branches["2"])


@pytest.fixture
def b1(centre) -> BranchState:
    return BranchState(centre.branches["1"])


ANNA = Citizen("anna-pseudonym", 1985)
BAO = Citizen("bao-pseudonym", 1990)


# -- issuing hours -------------------------------------------------------------------------------

KIOSK_HOURS = [
    # now, the day of the number or None, the next opening when refused
    (at(2026, 5, 19, 8, 0), TUE, None),
    (at(2026, 5, 19, 15, 59, 59), TUE, None),
    (at(2026, 5, 19, 7, 59, 59), None, at(2026, 5, 19, 8, 0)),      # before doors open: today 08:00
    (at(2026, 5, 19, 16, 0), None, at(2026, 5, 20, 8, 0)),           # issuing ends at 16:00
    (at(2026, 5, 19, 21, 0), None, at(2026, 5, 20, 8, 0)),           # the kiosk has no evening issue
    (at(2026, 5, 22, 17, 0), None, at(2026, 5, 25, 8, 0)),           # Friday evening → Monday
    (at(2026, 5, 23, 10, 0), None, at(2026, 5, 25, 8, 0)),           # Saturday
    (at(2026, 5, 24, 10, 0), None, at(2026, 5, 25, 8, 0)),           # Sunday
    (at(2026, 4, 29, 16, 30), None, at(2026, 5, 4, 8, 0)),           # 30/4 and 1/5 holidays skipped
    (at(2026, 4, 30, 10, 0), None, at(2026, 5, 4, 8, 0)),            # on a holiday
    (at(2026, 8, 22, 10, 0), date(2026, 8, 22), None),               # make-up Saturday is worked
]


@pytest.mark.parametrize("now, day, opens", KIOSK_HOURS, ids=[f"{n:%a-%m%d-%H%M}" for n, _, _ in KIOSK_HOURS])
def test_kiosk_issues_only_in_opening_hours_of_working_days(b2, now, day, opens):
    if day is not None:
        t = issue(b2, now, "ho-tich", "kiosk")
        assert t.day == day and t.id == f"{day:%Y%m%d}-2001"
    else:
        err = refused(b2, "issuing_closed", commands.issue, now, service="ho-tich", channel="kiosk",
                      kind="conflict")
        assert datetime.fromisoformat(err.details["opens_at"]) == opens


ONLINE_HOURS = [
    (at(2026, 5, 18, 20, 0), TUE, None),                             # from 20:00 the evening before
    (at(2026, 5, 18, 23, 59), TUE, None),
    (at(2026, 5, 19, 3, 0), TUE, None),                              # through the night: for today
    (at(2026, 5, 19, 15, 59), TUE, None),
    (at(2026, 5, 18, 19, 59), None, at(2026, 5, 18, 20, 0)),
    (at(2026, 5, 19, 16, 0), None, at(2026, 5, 19, 20, 0)),          # closed between 16:00 and 20:00
    (at(2026, 5, 22, 21, 0), None, at(2026, 5, 24, 20, 0)),          # Friday night: Saturday is off
    (at(2026, 5, 23, 10, 0), None, at(2026, 5, 24, 20, 0)),
    (at(2026, 5, 24, 3, 0), None, at(2026, 5, 24, 20, 0)),
    (at(2026, 5, 24, 20, 0), NEXT_MON, None),                        # Sunday evening for Monday
    (at(2026, 4, 29, 21, 0), None, at(2026, 5, 3, 20, 0)),           # eve of the 30/4–3/5 break
    (at(2026, 4, 30, 3, 0), None, at(2026, 5, 3, 20, 0)),            # a holiday night is not for it
    (at(2026, 8, 21, 21, 0), date(2026, 8, 22), None),               # Friday eve of a make-up Saturday
]


@pytest.mark.parametrize("now, day, opens", ONLINE_HOURS, ids=[f"{n:%a-%m%d-%H%M}" for n, _, _ in ONLINE_HOURS])
def test_online_issues_from_the_evening_before_until_issuing_ends(b2, now, day, opens):
    if day is not None:
        t = issue(b2, now, "ho-tich", "online", citizen=ANNA)
        assert t.day == day and t.id == f"{day:%Y%m%d}-2001" and t.channel == "online"
        assert not t.checked_in
    else:
        err = refused(b2, "issuing_closed", commands.issue, now, service="ho-tich", channel="online",
                      citizen=ANNA, history=History(), kind="conflict")
        assert datetime.fromisoformat(err.details["opens_at"]) == opens


def test_online_evening_event_belongs_to_the_next_day(b2):
    evs = commands.issue(b2, at(2026, 5, 18, 20, 30), service="ho-tich", channel="online",
                         citizen=ANNA, history=History())
    assert evs[0]["day"] == "2026-05-19"
    assert evs[0]["t"] == "2026-05-18T20:30:00+07:00"


def test_online_without_citizen_is_unauthorized(b2):
    refused(b2, "citizen_token_required", commands.issue, T9, service="ho-tich", channel="online",
            kind="unauthorized")


def test_unknown_service_and_channel_are_refused(b2, centre):
    refused(b2, "unknown_service", commands.issue, T9, service="nope", channel="kiosk", kind="invalid")
    refused(b2, "invalid_channel", commands.issue, T9, service="ho-tich", channel="phone", kind="invalid")
    b3 = BranchState(centre.branches["3"])            # branch 3 takes no investment files
    refused(b3, "unknown_service", commands.issue, T9, service="dau-tu", channel="kiosk")


# -- channels are equal ----------------------------------------------------------------------------

def test_kiosk_and_online_share_one_sequence_first_registered_first_served(b2):
    a = issue(b2, at(2026, 5, 18, 20, 30), "ho-tich", "online", citizen=ANNA)   # the evening before
    b = issue(b2, at(2026, 5, 19, 8, 1), "ho-tich", "kiosk")
    c = issue(b2, at(2026, 5, 19, 8, 2), "ho-tich", "online", citizen=BAO)
    d = issue(b2, at(2026, 5, 19, 8, 3), "ho-tich", "kiosk")
    assert [t.number for t in (a, b, c, d)] == ["2001", "2002", "2003", "2004"]
    assert a.order < b.order < c.order < d.order
    now = at(2026, 5, 19, 8, 5)
    do(b2, commands.open_counter(b2, now, "7", None))
    calls = [called_ticket(do(b2, commands.call_next(b2, now + timedelta(minutes=i), "7")))
             for i in range(4)]
    assert calls == ["2001", "2002", "2003", "2004"]


# -- number ranges ---------------------------------------------------------------------------------

def test_numbers_start_at_the_fields_first_number_and_count_up(b2):
    hts = [issue(b2, T9 + timedelta(minutes=i), "ho-tich") for i in range(3)]
    dd = issue(b2, T9 + timedelta(minutes=5), "dat-dai")
    ht4 = issue(b2, T9 + timedelta(minutes=6), "ho-tich")
    assert [t.number for t in hts] == ["2001", "2002", "2003"]
    assert dd.number == "1001" and ht4.number == "2004"
    assert b2.issued_count(TUE, "ho-tich") == 4 and b2.issued_count(TUE, "dat-dai") == 1


def test_every_field_of_a_branch_has_its_own_range(b2):
    firsts = {}
    for i, (sid, svc) in enumerate(b2.config.services.items()):
        t = issue(b2, T9 + timedelta(minutes=i), sid)
        assert int(t.number) == svc.first_number
        firsts[sid] = range(svc.first_number, svc.last_number + 1)
    spans = sorted(firsts.values(), key=lambda r: r.start)
    for lo, hi in zip(spans, spans[1:]):
        assert lo.stop <= hi.start, "number ranges of two fields overlap"


def test_numbers_restart_on_the_next_working_day(b2):
    issue(b2, T9, "ho-tich")
    issue(b2, T9, "ho-tich")
    t = issue(b2, at(2026, 5, 20, 9), "ho-tich")
    assert t.number == "2001" and t.id == "20260520-2001"


# -- daily cap -------------------------------------------------------------------------------------

def small_branch(centre, branch="2", *, caps):
    """A bundled branch with some fields' daily caps lowered."""
    b = centre.branches[branch]
    services = {k: (dataclasses.replace(s, daily_cap=caps[k]) if k in caps else s)
                for k, s in b.services.items()}
    return dataclasses.replace(b, services=services)


def test_daily_cap_is_exact_with_the_bundled_config(b2):
    svc = b2.config.services["van-hoa-the-thao-du-lich"]
    numbers = [issue(b2, T9, svc.id).number for _ in range(svc.daily_cap)]
    assert numbers[0] == str(svc.first_number) and numbers[-1] == str(svc.last_number)
    err = refused(b2, "daily_cap_reached", commands.issue, T9, service=svc.id, channel="kiosk", kind="conflict")
    assert err.details["next_working_day"] == "2026-05-20"
    assert issue(b2, T9, "ho-tich").number == "2001"          # other fields are not affected


@pytest.mark.parametrize("now, nxt", [
    (at(2026, 5, 19, 9), "2026-05-20"),
    (at(2026, 5, 22, 9), "2026-05-25"),          # Friday → Monday
    (at(2026, 4, 29, 9), "2026-05-04"),          # the holiday break and the weekend skipped
    (at(2026, 8, 21, 9), "2026-08-22"),          # a make-up Saturday is a working day
])
def test_past_the_daily_cap_the_answer_names_the_next_working_day(centre, now, nxt):
    st = BranchState(small_branch(centre, caps={"ho-tich": 3}))
    assert [issue(st, now, "ho-tich").number for _ in range(3)] == ["2001", "2002", "2003"]
    err = refused(st, "daily_cap_reached", commands.issue, now, service="ho-tich", channel="kiosk")
    assert err.details["next_working_day"] == nxt
    refused(st, "daily_cap_reached", commands.issue, now, service="ho-tich", channel="online",
            citizen=ANNA, history=History())


def test_the_cap_is_per_day_online_for_tomorrow_still_open(centre):
    st = BranchState(small_branch(centre, caps={"ho-tich": 2}))
    issue(st, T9, "ho-tich")
    issue(st, T9, "ho-tich")
    refused(st, "daily_cap_reached", commands.issue, T9, service="ho-tich", channel="kiosk")
    t = issue(st, at(2026, 5, 19, 20, 0), "ho-tich", "online", citizen=ANNA)
    assert t.day == WED and t.number == "2001"


# -- per citizen -----------------------------------------------------------------------------------

def test_one_number_per_field_and_day_across_channels(b2):
    issue(b2, T9, "ho-tich", "kiosk", citizen=ANNA)
    refused(b2, "field_limit_reached", commands.issue, T9, service="ho-tich", channel="online",
            citizen=ANNA, history=hist([b2], ANNA, TUE), kind="conflict")
    refused(b2, "field_limit_reached", commands.issue, T9, service="ho-tich", channel="kiosk",
            citizen=ANNA, history=hist([b2], ANNA, TUE))
    issue(b2, T9, "ho-tich", "kiosk", citizen=BAO)        # someone else may


def test_one_number_per_field_across_branches(centre, b2):
    b3 = BranchState(centre.branches["3"])
    issue(b2, T9, "ho-tich", "online", citizen=ANNA)
    refused(b3, "field_limit_reached", commands.issue, T9, service="ho-tich", channel="kiosk",
            citizen=ANNA, history=hist([b2, b3], ANNA, TUE))


def test_two_numbers_per_day_across_channels_and_branches(centre, b2):
    b3, b4 = BranchState(centre.branches["3"]), BranchState(centre.branches["4"])
    issue(b2, T9, "ho-tich", "kiosk", citizen=ANNA)
    issue(b3, T9, "dat-dai", "online", citizen=ANNA, others=[b2])
    for st, channel in ((b4, "kiosk"), (b4, "online"), (b2, "online")):
        refused(st, "daily_limit_reached", commands.issue, T9, service="cu-tru", channel=channel,
                citizen=ANNA, history=hist([b2, b3, b4], ANNA, TUE), kind="conflict")


def test_limits_are_per_working_day(b2):
    issue(b2, T9, "ho-tich", "kiosk", citizen=ANNA)
    issue(b2, T9, "dat-dai", "kiosk", citizen=ANNA)
    refused(b2, "daily_limit_reached", commands.issue, T9, service="cu-tru", channel="kiosk",
            citizen=ANNA, history=hist([b2], ANNA, TUE))
    t = issue(b2, at(2026, 5, 19, 20, 0), "ho-tich", "online", citizen=ANNA)   # for Wednesday
    assert t.day == WED


def test_kiosk_without_identity_is_counted_against_no_one(b2):
    ts = [issue(b2, T9, "ho-tich", "kiosk") for _ in range(3)] + [issue(b2, T9, "dat-dai", "kiosk")]
    assert all(t.citizen is None for t in ts)
    assert b2.citizens == {}
    issue(b2, T9, "ho-tich", "kiosk", citizen=ANNA)


# -- no-show record --------------------------------------------------------------------------------

def noshow(st: BranchState, now: datetime, citizen: Citizen, counter: str = "7") -> datetime:
    """An online ho-tich number of `citizen`, called at `counter` and skipped at now + 2 min."""
    t = issue(st, now, "ho-tich", "online", citizen=citizen)
    do(st, commands.open_counter(st, now, counter, None))
    do(st, commands.call_next(st, now + timedelta(minutes=1), counter))
    assert st.tickets[t.id].state is State.CALLED
    skipped = now + timedelta(minutes=2)
    do(st, commands.skip(st, skipped, st.tickets[t.id]))
    assert st.tickets[t.id].state is State.SKIPPED
    return skipped


def test_three_online_noshows_in_30_days_suspend_online_booking(b2):
    noshow(b2, at(2026, 5, 4, 9), ANNA)
    noshow(b2, at(2026, 5, 11, 9), ANNA)
    last = noshow(b2, at(2026, 5, 18, 9), ANNA)
    until = last + timedelta(days=30)
    now = at(2026, 5, 19, 9)
    err = refused(b2, "online_booking_suspended", commands.issue, now, service="dat-dai", channel="online",
                  citizen=ANNA, history=hist([b2], ANNA, TUE), kind="forbidden")
    assert datetime.fromisoformat(err.details["until"]) == until
    # the kiosk is still open to the citizen, identity and all
    t = issue(b2, now, "dat-dai", "kiosk", citizen=ANNA)
    assert t.citizen == ANNA.pseudonym
    # suspension in force one second before its end, over at its end (17/06 is a Wednesday)
    refused(b2, "online_booking_suspended", commands.issue, until - timedelta(seconds=1), service="dat-dai",
            channel="online", citizen=ANNA, history=hist([b2], ANNA, until.date()))
    t = issue(b2, until, "dat-dai", "online", citizen=ANNA)
    assert t.day == until.date()


def test_suspension_applies_at_every_branch(centre, b2):
    for d in (4, 11, 18):
        noshow(b2, at(2026, 5, d, 9), ANNA)
    b3 = BranchState(centre.branches["3"])
    refused(b3, "online_booking_suspended", commands.issue, T9, service="ho-tich", channel="online",
            citizen=ANNA, history=hist([b2, b3], ANNA, TUE))


def test_two_noshows_do_not_suspend(b2):
    noshow(b2, at(2026, 5, 11, 9), ANNA)
    noshow(b2, at(2026, 5, 18, 9), ANNA)
    assert issue(b2, T9, "dat-dai", "online", citizen=ANNA).channel == "online"


def test_a_noshow_older_than_the_window_does_not_count(b2):
    noshow(b2, at(2026, 4, 6, 9), ANNA)           # 42 days before the last one
    noshow(b2, at(2026, 5, 11, 9), ANNA)
    noshow(b2, at(2026, 5, 18, 9), ANNA)
    assert len(b2.citizens[ANNA.pseudonym].noshows) == 3
    assert issue(b2, T9, "dat-dai", "online", citizen=ANNA).channel == "online"


def test_a_recalled_then_served_skip_is_not_a_noshow(b2):
    noshow(b2, at(2026, 5, 11, 9), ANNA)
    noshow(b2, at(2026, 5, 18, 9), ANNA)
    now = at(2026, 5, 19, 9)
    t = issue(b2, now, "ho-tich", "online", citizen=ANNA)
    do(b2, commands.open_counter(b2, now, "7", None))
    do(b2, commands.call_next(b2, now, "7"))
    do(b2, commands.skip(b2, now + timedelta(minutes=1), t))
    assert t.id in b2.citizens[ANNA.pseudonym].noshows
    do(b2, commands.recall(b2, now + timedelta(minutes=5), t))
    do(b2, commands.complete(b2, now + timedelta(minutes=15), t))
    assert t.state is State.COMPLETED
    assert t.id not in b2.citizens[ANNA.pseudonym].noshows
    assert suspended_until(hist([b2], ANNA, TUE).noshows, b2.config.policy, now + timedelta(hours=1)) is None
    t2 = issue(b2, now + timedelta(hours=1), "dat-dai", "online", citizen=ANNA)
    assert t2.channel == "online"


def test_a_skipped_kiosk_number_is_not_an_online_noshow(b2):
    now = T9
    t = issue(b2, now, "ho-tich", "kiosk", citizen=ANNA)
    do(b2, commands.open_counter(b2, now, "7", None))
    do(b2, commands.call_next(b2, now, "7"))
    do(b2, commands.skip(b2, now, t))
    assert b2.citizens[ANNA.pseudonym].noshows == {}


# -- priority --------------------------------------------------------------------------------------

def test_priority_tickets_are_called_first_among_a_counters_fields(b2):
    # counter 6 of branch 2 serves dau-tu and dang-ky-kinh-doanh
    a = issue(b2, T9, "dang-ky-kinh-doanh")
    b = issue(b2, T9, "dau-tu")
    other = issue(b2, T9, "ho-tich", priority=True)           # not one of counter 6's fields
    c = issue(b2, T9, "dang-ky-kinh-doanh", priority=True)
    d = issue(b2, T9, "dau-tu", priority=True)
    assert c.priority and not a.priority
    do(b2, commands.open_counter(b2, T9, "6", None))
    calls = [called_ticket(do(b2, commands.call_next(b2, T9, "6"))) for _ in range(4)]
    assert calls == [c.number, d.number, a.number, b.number]
    assert other.state is State.WAITING
    refused(b2, "queue_empty", commands.call_next, T9, "6")


@pytest.mark.parametrize("birth_year, priority", [(1951, True), (1940, True), (1952, False), (1990, False),
                                                  (None, False)])
def test_citizens_aged_75_by_birth_year_get_priority(b2, birth_year, priority):
    t = issue(b2, T9, "ho-tich", "kiosk", citizen=Citizen("p", birth_year))
    assert t.priority is priority
    t2 = issue(b2, T9, "dat-dai", "online", citizen=Citizen("p", birth_year))
    assert t2.priority is priority


def test_staff_priority_flag_is_kept_for_the_young(b2):
    assert issue(b2, T9, "ho-tich", "kiosk", citizen=BAO, priority=True).priority is True
    assert issue(b2, T9, "ho-tich", "kiosk", priority=True).priority is True


@pytest.mark.parametrize("cccd, year", [
    ("001045012345", 1945), ("001145012345", 1945), ("001203012345", 2003), ("079303000001", 2003),
    ("001099012345", 1999), ("001200012345", 2000), ("036451000001", 2151), ("036751000001", 2251),
    ("036951000001", 2351), ("036851000001", 2351),
])
def test_birth_year_from_cccd_century_digit(cccd, year):
    assert identity.birth_year(identity.validate_cccd(cccd)) == year


@pytest.mark.parametrize("cccd", ["036951000001", "036851000001", "001227012345", "001450000000"])
def test_a_cccd_born_in_years_to_come_is_refused(cccd):
    """Century codes 8/9 were once read as the 1800s: a 200-year-old with priority."""
    with pytest.raises(DomainError) as info:
        identity.check_born(cccd, 2026)
    assert (info.value.kind, info.value.code) == ("invalid", "invalid_citizen_id")
    assert identity.check_born("001226012345", 2026) == 2026


# -- call next -------------------------------------------------------------------------------------

def test_a_counter_with_two_fields_takes_the_earliest_registered_across_both(b2):
    a = issue(b2, T9, "dau-tu")
    b = issue(b2, T9 + timedelta(minutes=1), "dang-ky-kinh-doanh")
    c = issue(b2, T9 + timedelta(minutes=2), "dau-tu")
    do(b2, commands.open_counter(b2, T9, "6", None))
    do(b2, commands.open_counter(b2, T9, "4", None))           # dang-ky-kinh-doanh only
    assert called_ticket(do(b2, commands.call_next(b2, T9, "4"))) == b.number
    assert called_ticket(do(b2, commands.call_next(b2, T9, "6"))) == a.number
    assert called_ticket(do(b2, commands.call_next(b2, T9, "6"))) == c.number


def test_two_counters_never_call_the_same_number(b2):
    ts = [issue(b2, T9, "ho-tich") for _ in range(2)]
    do(b2, commands.open_counter(b2, T9, "7", None))
    do(b2, commands.open_counter(b2, T9, "8", None))
    assert called_ticket(do(b2, commands.call_next(b2, T9, "7"))) == ts[0].number
    assert called_ticket(do(b2, commands.call_next(b2, T9, "8"))) == ts[1].number
    assert (ts[0].counter, ts[1].counter) == ("7", "8")
    assert b2.counters["7"].current == ts[0].id and b2.counters["8"].current == ts[1].id


def test_call_next_on_a_closed_counter(b2):
    issue(b2, T9, "ho-tich")
    refused(b2, "counter_closed", commands.call_next, T9, "7", kind="conflict")
    do(b2, commands.open_counter(b2, T9, "7", None))
    do(b2, commands.close_counter(b2, T9, "7"))
    refused(b2, "counter_closed", commands.call_next, T9, "7")


def test_call_next_with_an_empty_queue_changes_nothing_not_even_the_current_ticket(b2):
    do(b2, commands.open_counter(b2, T9, "7", None))
    refused(b2, "queue_empty", commands.call_next, T9, "7", kind="conflict")
    t = issue(b2, T9, "ho-tich")
    issue(b2, T9, "dat-dai")                                    # not a field of counter 7
    do(b2, commands.call_next(b2, T9, "7"))
    refused(b2, "queue_empty", commands.call_next, T9 + timedelta(minutes=5), "7")
    assert t.state is State.CALLED and b2.counters["7"].current == t.id


def test_call_next_completes_the_current_ticket_first(b2):
    a, b = issue(b2, T9, "ho-tich"), issue(b2, T9, "ho-tich")
    do(b2, commands.open_counter(b2, T9, "7", None))
    do(b2, commands.call_next(b2, T9, "7"))
    later = T9 + timedelta(minutes=7)
    evs = do(b2, commands.call_next(b2, later, "7"))
    assert [(e["type"], e["ticket"], e["counter"]) for e in evs] == [
        ("ticket.completed", a.id, "7"), ("ticket.called", b.id, "7")]
    assert a.state is State.COMPLETED and a.finished_at == later
    assert b.state is State.CALLED and b2.counters["7"].current == b.id


def test_call_next_ignores_numbers_for_tomorrow(b2):
    issue(b2, at(2026, 5, 19, 20, 0), "ho-tich", "online", citizen=ANNA)       # for Wednesday
    now = at(2026, 5, 19, 20, 5)
    do(b2, commands.open_counter(b2, now, "7", None))
    refused(b2, "queue_empty", commands.call_next, now, "7")


def test_unknown_counter(b2):
    refused(b2, "counter_not_found", commands.call_next, T9, "99", kind="not_found")
    refused(b2, "counter_not_found", commands.open_counter, T9, "99", None)
    refused(b2, "counter_not_found", commands.close_counter, T9, "99")
    refused(b2, "counter_not_found", commands.open_counter, T9, 7, None)


# -- recall, skip, complete, transfer, cancel ------------------------------------------------------

@pytest.fixture
def serving(b2):
    """Branch 2 with counter 7 serving ho-tich ticket `a`; `b` waiting behind it."""
    a, b = issue(b2, T9, "ho-tich"), issue(b2, T9, "ho-tich")
    do(b2, commands.open_counter(b2, T9, "7", None))
    do(b2, commands.call_next(b2, T9, "7"))
    return b2, a, b


def test_recall_reannounces_a_called_number(serving):
    st, a, _ = serving
    evs = do(st, commands.recall(st, T9 + timedelta(minutes=1), a))
    assert [(e["type"], e["ticket"], e["counter"]) for e in evs] == [("ticket.recalled", a.id, "7")]
    assert a.state is State.CALLED and a.calls == 2 and a.called_at == T9
    assert st.counters["7"].current == a.id


def test_skip_then_recall_within_recall_minutes(serving):
    st, a, _ = serving
    skipped = T9 + timedelta(minutes=1)
    evs = do(st, commands.skip(st, skipped, a))
    assert evs[0]["type"] == "ticket.skipped" and evs[0]["counter"] == "7"
    assert a.state is State.SKIPPED and a.skipped_at == skipped and st.counters["7"].current is None
    limit = skipped + timedelta(minutes=st.config.policy.recall_minutes)
    refused(st, "recall_too_late", commands.recall, limit + timedelta(seconds=1), a, kind="conflict")
    evs = do(st, commands.recall(st, limit, a))
    assert evs[0]["type"] == "ticket.recalled" and evs[0]["counter"] == "7"
    assert a.state is State.CALLED and st.counters["7"].current == a.id and a.skipped_at is None


def test_recall_of_a_skipped_number_to_a_busy_counter(serving):
    st, a, b = serving
    do(st, commands.skip(st, T9, a))
    do(st, commands.call_next(st, T9, "7"))                # counter 7 now serves b
    refused(st, "counter_busy", commands.recall, T9, a)
    do(st, commands.open_counter(st, T9, "8", None))
    evs = do(st, commands.recall(st, T9, a, "8"))          # another counter may take it
    assert evs[0]["counter"] == "8" and a.counter == "8" and st.counters["8"].current == a.id


def test_complete(serving):
    st, a, _ = serving
    done = T9 + timedelta(minutes=9)
    evs = do(st, commands.complete(st, done, a))
    assert evs[0]["type"] == "ticket.completed" and evs[0]["counter"] == "7"
    assert a.state is State.COMPLETED and a.finished_at == done and st.counters["7"].current is None


@pytest.mark.parametrize("action, args", [
    ("complete", ()), ("skip", ()), ("recall", ()), ("check_in", ()),
])
def test_disallowed_transitions_of_a_waiting_kiosk_ticket(serving, action, args):
    st, _, b = serving
    code = "already_checked_in" if action == "check_in" else "invalid_state"
    err = refused(st, code, getattr(commands, action), T9, b, *args, kind="conflict")
    if code == "invalid_state":
        assert err.details["state"] == "waiting"


@pytest.mark.parametrize("action, args", [
    ("complete", ()), ("skip", ()), ("recall", ()), ("check_in", ()), ("cancel", ()),
    ("transfer", ("dat-dai",)),
])
def test_nothing_moves_a_completed_ticket(serving, action, args):
    st, a, _ = serving
    do(st, commands.complete(st, T9, a))
    err = refused(st, "invalid_state", getattr(commands, action), T9, a, *args)
    assert err.details["state"] == "completed"


def test_transfer_keeps_the_number_and_the_registration_order(serving):
    st, a, _ = serving
    before = issue(st, T9, "dat-dai")                    # registered after a, before the transfer
    after = issue(st, T9, "dat-dai")
    evs = do(st, commands.transfer(st, T9, a, "dat-dai"))
    assert evs[0]["type"] == "ticket.transferred" and evs[0]["service"] == "dat-dai"
    assert evs[0]["from_service"] == "ho-tich" and evs[0]["number"] == a.number
    assert a.state is State.WAITING and a.service == "dat-dai" and a.number == "2001"
    assert st.counters["7"].current is None
    do(st, commands.open_counter(st, T9, "1", None))
    calls = [called_ticket(do(st, commands.call_next(st, T9, "1"))) for _ in range(3)]
    assert calls == [a.number, before.number, after.number]   # a was registered first of the three


def test_transfer_of_a_waiting_number_queues_it_by_its_registration_order(b2):
    early_dd = issue(b2, T9, "dat-dai")
    ht = issue(b2, T9, "ho-tich")
    late_dd = issue(b2, T9, "dat-dai")
    do(b2, commands.transfer(b2, T9, ht, "dat-dai"))
    assert b2.people_ahead(ht) == 1
    assert [t.id for t in b2.waiting(TUE, ("dat-dai",))] == [early_dd.id, ht.id, late_dd.id]
    assert b2.issued_count(TUE, "ho-tich") == 1          # the number stays taken in its first range


def test_transfer_refusals(serving, centre):
    st, a, _ = serving
    refused(st, "same_service", commands.transfer, T9, a, "ho-tich", kind="invalid")
    refused(st, "unknown_service", commands.transfer, T9, a, "nope", kind="invalid")
    do(st, commands.skip(st, T9, a))
    refused(st, "invalid_state", commands.transfer, T9, a, "dat-dai")
    b3 = BranchState(centre.branches["3"])
    t = issue(b3, T9, "ho-tich")
    refused(b3, "unknown_service", commands.transfer, T9, t, "dau-tu")   # not served at branch 3


def test_cancel(serving):
    st, a, b = serving
    evs = do(st, commands.cancel(st, T9, b, by="citizen"))
    assert evs[0]["type"] == "ticket.cancelled" and evs[0]["by"] == "citizen"
    assert b.state is State.CANCELLED
    do(st, commands.cancel(st, T9, a))                     # a called number, by staff
    assert a.state is State.CANCELLED and st.counters["7"].current is None
    refused(st, "invalid_state", commands.cancel, T9, a)


def test_a_citizen_cannot_give_back_a_skipped_number_but_staff_can_cancel_it(serving):
    st, a, _ = serving
    do(st, commands.skip(st, T9, a))
    refused(st, "invalid_state", commands.cancel, T9, a, by="citizen")
    do(st, commands.cancel(st, T9, a))
    assert a.state is State.CANCELLED



def test_recall_of_a_skipped_number_to_a_closed_counter_is_refused(serving):
    st, a, b = serving
    do(st, commands.skip(st, T9, a))
    do(st, commands.call_next(st, T9, "7"))
    do(st, commands.complete(st, T9, b))
    do(st, commands.close_counter(st, T9, "7"))
    refused(st, "counter_closed", commands.recall, T9 + timedelta(minutes=1), a)

# -- check-in and absent: hold ---------------------------------------------------------------------

def held_setup(b1: BranchState, now: datetime = T9, issued: datetime | None = None):
    """Branch 1 (absent = hold): online ANNA number called at counter 6 and skipped at `now`,
    a kiosk number `behind` it."""
    issued = issued or now - timedelta(minutes=5)
    t = issue(b1, issued, "ho-tich", "online", citizen=ANNA)
    behind = issue(b1, issued + timedelta(minutes=1), "ho-tich", "kiosk")
    do(b1, commands.open_counter(b1, now, "6", None))
    do(b1, commands.call_next(b1, now, "6"))
    assert t.state is State.CALLED
    evs = do(b1, commands.skip(b1, now, t))
    return t, behind, evs


def test_absent_hold_holds_a_called_online_number_not_checked_in(b1):
    assert b1.config.policy.absent == "hold"
    t, _, evs = held_setup(b1)
    until = T9 + timedelta(minutes=b1.config.policy.hold_minutes)
    assert datetime.fromisoformat(evs[0]["held_until"]) == until
    assert t.state is State.HELD and t.held_until == until and b1.counters["6"].current is None
    assert t.effective_state(until - timedelta(seconds=1)) is State.HELD


def test_check_in_during_the_hold_puts_the_number_back_at_the_head_of_its_field(b1):
    t, behind, _ = held_setup(b1)
    later = issue(b1, T9 + timedelta(minutes=1), "ho-tich", "kiosk")
    evs = do(b1, commands.check_in(b1, T9 + timedelta(minutes=9, seconds=59), t))
    assert evs[0]["type"] == "ticket.checked_in"
    assert t.state is State.WAITING and t.checked_in and t.held_until is None
    assert b1.citizens[ANNA.pseudonym].noshows == {}
    assert b1.people_ahead(t) == 0
    calls = [called_ticket(do(b1, commands.call_next(b1, T9 + timedelta(minutes=10), "6"))) for _ in range(3)]
    assert calls == [t.number, behind.number, later.number]


def test_a_checked_in_online_number_is_skipped_not_held(b1):
    t, _, _ = held_setup(b1)
    do(b1, commands.check_in(b1, T9 + timedelta(minutes=1), t))
    do(b1, commands.call_next(b1, T9 + timedelta(minutes=2), "6"))
    assert t.state is State.CALLED
    do(b1, commands.skip(b1, T9 + timedelta(minutes=3), t))
    assert t.state is State.SKIPPED and t.held_until is None


def test_after_the_hold_runs_out_the_number_is_a_noshow(b1):
    t, _, _ = held_setup(b1)
    until = t.held_until
    assert t.effective_state(until) is State.SKIPPED
    refused(b1, "invalid_state", commands.check_in, until, t)
    refused(b1, "invalid_state", commands.cancel, until, t, by="citizen")
    assert b1.citizens[ANNA.pseudonym].noshows == {t.id: until}
    assert hist([b1], ANNA, TUE).noshows == [until]


def test_a_hold_that_ran_out_stays_a_noshow_when_staff_cancel_the_number(b1):
    t, _, _ = held_setup(b1)
    after = t.held_until + timedelta(minutes=1)
    do(b1, commands.cancel(b1, after, t))                 # staff tidy up the expired hold
    assert t.state is State.CANCELLED
    # as with an ordinary skipped number that staff cancel, the no-show stands
    assert t.id in b1.citizens[ANNA.pseudonym].noshows


def test_giving_back_a_held_number_in_time_is_not_a_noshow(b1):
    t, _, _ = held_setup(b1)
    do(b1, commands.cancel(b1, T9 + timedelta(minutes=5), t, by="citizen"))
    assert t.state is State.CANCELLED and b1.citizens[ANNA.pseudonym].noshows == {}


def test_recall_of_a_held_number(b1):
    t, _, _ = held_setup(b1)
    do(b1, commands.recall(b1, T9 + timedelta(minutes=3), t))
    assert t.state is State.CALLED and t.held_until is None and b1.counters["6"].current == t.id
    assert b1.citizens[ANNA.pseudonym].noshows == {}


def test_the_recall_window_of_a_held_number_starts_when_the_hold_runs_out(b1):
    t, _, _ = held_setup(b1)
    window = timedelta(minutes=b1.config.policy.recall_minutes)
    do(b1, commands.open_counter(b1, T9, "6", None))
    refused(b1, "recall_too_late", commands.recall, t.held_until + window + timedelta(seconds=1), t)
    evs = do(b1, commands.recall(b1, t.held_until + window, t, "6"))
    assert evs[0]["type"] == "ticket.recalled" and t.state is State.CALLED


def test_kiosk_numbers_are_checked_in_and_skipped_outright_under_hold(b1):
    t = issue(b1, T9, "ho-tich", "kiosk", citizen=BAO)
    assert t.checked_in
    refused(b1, "already_checked_in", commands.check_in, T9, t)
    do(b1, commands.open_counter(b1, T9, "6", None))
    do(b1, commands.call_next(b1, T9, "6"))
    do(b1, commands.skip(b1, T9, t))
    assert t.state is State.SKIPPED and t.held_until is None


def test_under_absent_skip_a_skip_is_final(b2):
    t = issue(b2, T9, "ho-tich", "online", citizen=ANNA)
    do(b2, commands.open_counter(b2, T9, "7", None))
    do(b2, commands.call_next(b2, T9, "7"))
    evs = do(b2, commands.skip(b2, T9, t))
    assert "held_until" not in evs[0]
    assert t.state is State.SKIPPED and t.held_until is None
    assert b2.citizens[ANNA.pseudonym].noshows == {t.id: T9}
    refused(b2, "invalid_state", commands.check_in, T9, t)


def test_check_in_of_an_online_number_before_its_call(b2):
    t = issue(b2, at(2026, 5, 18, 21), "ho-tich", "online", citizen=ANNA)
    refused(b2, "wrong_day", commands.check_in, at(2026, 5, 18, 22), t, kind="conflict")
    evs = do(b2, commands.check_in(b2, T9, t))
    assert evs[0]["type"] == "ticket.checked_in" and t.checked_in and t.state is State.WAITING
    refused(b2, "already_checked_in", commands.check_in, T9, t)


# -- counters --------------------------------------------------------------------------------------

def test_open_counter_with_a_list_of_fields(b2):
    evs = do(b2, commands.open_counter(b2, T9, "7", ["ho-tich", "cu-tru"]))
    assert evs == [{"type": "counter.opened", "t": T9.isoformat(), "branch": "2", "day": "2026-05-19",
                    "counter": "7", "services": ["ho-tich", "cu-tru"]}]
    c = b2.counters["7"]
    assert c.open and c.services == ("ho-tich", "cu-tru")
    t = issue(b2, T9, "cu-tru")
    assert called_ticket(do(b2, commands.call_next(b2, T9, "7"))) == t.number
    assert commands.open_counter(b2, T9, "7", ["ho-tich", "cu-tru"]) == []        # already so
    evs = do(b2, commands.open_counter(b2, T9, "7", ["ho-tich"]))                # a change of fields
    assert evs[0]["services"] == ["ho-tich"] and b2.counters["7"].services == ("ho-tich",)


def test_open_counter_without_a_list_uses_the_plan(b2):
    evs = do(b2, commands.open_counter(b2, T9, "6", None))
    assert evs[0]["services"] == ["dau-tu", "dang-ky-kinh-doanh"]
    assert commands.open_counter(b2, T9, "6", None) == []


@pytest.mark.parametrize("services, code", [
    (["nope"], "unknown_service"), (["ho-tich", "nope"], "unknown_service"), ([], "invalid_services"),
    (["ho-tich", "ho-tich"], "invalid_services"), ("ho-tich", "invalid_services"),
])
def test_open_counter_refusals(b2, services, code):
    refused(b2, code, commands.open_counter, T9, "7", services, kind="invalid")
    assert not b2.counters["7"].open


def test_close_counter(serving):
    st, a, _ = serving
    refused(st, "counter_busy", commands.close_counter, T9, "7", kind="conflict")
    do(st, commands.complete(st, T9, a))
    evs = do(st, commands.close_counter(st, T9, "7"))
    assert [e["type"] for e in evs] == ["counter.closed"] and not st.counters["7"].open
    assert commands.close_counter(st, T9, "7") == []                   # already closed


def left_serving_over_the_weekend(st: BranchState):
    """Counter 7 still holds Friday's called number when Monday's first number is issued."""
    fri = at(2026, 5, 22, 16, 30)
    do(st, commands.open_counter(st, fri, "7", None))
    issue(st, at(2026, 5, 22, 15, 0), "ho-tich")
    do(st, commands.call_next(st, fri, "7"))                          # never completed
    mon = at(2026, 5, 25, 8, 5)
    return mon, issue(st, mon, "ho-tich")


def test_call_next_on_monday_at_a_counter_left_serving_since_friday(b2):
    mon, t = left_serving_over_the_weekend(b2)
    evs = do(b2, commands.call_next(b2, mon, "7"))
    assert evs[-1]["type"] == "ticket.called" and evs[-1]["ticket"] == t.id
    assert b2.counters["7"].current == t.id and t.state is State.CALLED


def test_close_on_monday_a_counter_left_serving_since_friday(b2):
    mon, _ = left_serving_over_the_weekend(b2)
    try:
        evs = do(b2, commands.close_counter(b2, mon, "7"))
    except DomainError as e:                    # refusing is acceptable, crashing is not
        assert e.code == "counter_busy"
    else:
        assert [e["type"] for e in evs] == ["counter.closed"] and not b2.counters["7"].open


# -- expiry ----------------------------------------------------------------------------------------

def test_tick_at_closing_time_expires_waiting_and_held_numbers_not_called_ones(b1):
    t_held, behind, _ = held_setup(b1, at(2026, 5, 19, 16, 55), at(2026, 5, 19, 15, 0))   # held until 17:05
    do(b1, commands.call_next(b1, at(2026, 5, 19, 16, 56), "6"))       # behind is being served
    waiting = [issue(b1, at(2026, 5, 19, 15, 0), "dat-dai") for _ in range(2)]
    assert commands.tick(b1, at(2026, 5, 19, 16, 59, 59)) == []
    close = at(2026, 5, 19, 17, 0)
    evs = do(b1, commands.tick(b1, close))
    assert {e["ticket"] for e in evs} == {t_held.id, *(t.id for t in waiting)}
    assert all(e["type"] == "ticket.expired" and e["day"] == "2026-05-19" for e in evs)
    assert t_held.state is State.EXPIRED and all(t.state is State.EXPIRED for t in waiting)
    assert behind.state is State.CALLED and b1.counters["6"].current == behind.id
    assert commands.tick(b1, close + timedelta(minutes=1)) == []


def test_tick_does_not_expire_tomorrows_online_numbers(b2):
    today = issue(b2, T9, "ho-tich")
    tomorrow = issue(b2, at(2026, 5, 19, 20, 0), "ho-tich", "online", citizen=ANNA)
    evs = do(b2, commands.tick(b2, at(2026, 5, 19, 20, 5)))
    assert [e["ticket"] for e in evs] == [today.id]
    assert tomorrow.state is State.WAITING
    assert commands.tick(b2, at(2026, 5, 20, 3, 0)) == []
    assert commands.tick(b2, at(2026, 5, 20, 16, 59)) == []
    assert [e["ticket"] for e in commands.tick(b2, at(2026, 5, 20, 17, 0))] == [tomorrow.id]


def test_tick_expires_a_previous_days_leftovers(b2):
    t = issue(b2, T9, "ho-tich")
    evs = commands.tick(b2, at(2026, 5, 20, 8, 0))
    assert [(e["ticket"], e["day"]) for e in evs] == [(t.id, "2026-05-19")]


# -- events ----------------------------------------------------------------------------------------

def test_public_events_carry_no_identity_or_phone(centre):
    st = BranchState(centre.branches["2"])
    evs = commands.issue(st, T9, service="ho-tich", channel="online", citizen=ANNA, history=History(),
                         phone="+84912345678")
    assert evs[0]["citizen"] == ANNA.pseudonym and evs[0]["phone"] == "+84912345678"
    pub = events.public(evs[0])
    assert "citizen" not in pub and "phone" not in pub
    assert {k: v for k, v in evs[0].items() if k not in ("citizen", "phone")} == pub
    assert "citizen" in evs[0]                        # the original is untouched


def test_trace_fields_are_exactly_those_of_the_contract(centre):
    st = BranchState(centre.branches["1"])
    log: list[dict] = []

    def run(evs):
        log.extend(do(st, evs))

    run(commands.issue(st, T9, service="ho-tich", channel="online", citizen=ANNA, history=History(),
                       phone="+84912345678"))
    run(commands.issue(st, T9, service="ho-tich", channel="kiosk", phone="+84987654321"))
    run(commands.issue(st, T9, service="ho-tich", channel="kiosk"))
    run(commands.issue(st, T9, service="dat-dai", channel="kiosk", priority=True))
    a, b, c, d = (st.by_number(TUE, n) for n in ("2001", "2002", "2003", "1001"))
    run(commands.open_counter(st, T9, "6", None))
    run(commands.check_in(st, T9, a))
    run(commands.call_next(st, T9, "6"))               # a
    run(commands.recall(st, T9, a))
    run(commands.call_next(st, T9, "6"))               # completes a, calls b
    run(commands.skip(st, T9, b))
    run(commands.transfer(st, T9, c, "cu-tru"))
    run(commands.cancel(st, T9, d, by="citizen"))
    run(commands.close_counter(st, T9, "6"))
    run(commands.tick(st, at(2026, 5, 19, 17, 0)))      # c expires
    assert {e["type"] for e in log} == set(TRACE_FIELDS), "every type is exercised"
    for ev in log:
        tr = events.to_trace(ev)
        assert set(tr) == {"t", "type", "branch"} | TRACE_FIELDS[ev["type"]], ev["type"]
        assert tr["t"] == ev["t"] and tr["branch"] == ev["branch"] and tr["type"] == ev["type"]
        assert all(tr[k] == ev[k] for k in TRACE_FIELDS[ev["type"]])
        assert not {"citizen", "phone", "number", "day", "order", "by"} & set(tr)
    assert [events.to_trace(e)["priority"] for e in log if e["type"] == "ticket.issued"] == [
        False, False, False, True]


def test_trace_of_an_issue_without_priority_defaults_to_false():
    ev = {"type": "ticket.issued", "t": "2026-05-19T09:00:00+07:00", "branch": "2", "day": "2026-05-19",
          "ticket": "20260519-2001", "number": "2001", "service": "ho-tich", "channel": "kiosk", "order": 1}
    assert events.to_trace(ev)["priority"] is False
    assert events.to_trace({**ev, "priority": True})["priority"] is True


def test_events_have_type_time_branch_and_day(b2):
    evs = commands.issue(b2, at(2026, 5, 19, 9, 0, 30), service="ho-tich", channel="kiosk")
    e = evs[0]
    assert (e["type"], e["t"], e["branch"], e["day"]) == (
        "ticket.issued", "2026-05-19T09:00:30+07:00", "2", "2026-05-19")
    assert e["ticket"] == "20260519-2001" and e["number"] == "2001" and e["priority"] is False


# -- find_ticket -----------------------------------------------------------------------------------

def test_find_ticket_prefers_today_then_the_next_day(b2):
    today = issue(b2, T9, "ho-tich")
    tomorrow = issue(b2, at(2026, 5, 19, 20, 0), "ho-tich", "online", citizen=ANNA)
    assert commands.find_ticket(b2, at(2026, 5, 19, 20, 1), "2001") is today
    assert commands.find_ticket(b2, at(2026, 5, 20, 8, 0), "2001") is tomorrow
    refused(b2, "ticket_not_found", commands.find_ticket, T9, "9999", kind="not_found")


# -- identity --------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "0912345678", "+84912345678", "84912345678", "84 912 345 678", "0912.345.678", "0912-345-678",
    " 0912 345 678 ", "(+84) 912 345 678", "+84 912 345 678", "0912 345 678",
])
def test_normalize_phone_accepts_vietnamese_mobiles(raw):
    assert normalize_phone(raw) == "+84912345678"


@pytest.mark.parametrize("raw, out", [
    ("0356789012", "+84356789012"), ("0567890123", "+84567890123"), ("0701234567", "+84701234567"),
    ("0812345678", "+84812345678"), ("0522234567", "+84522234567"), ("0559234567", "+84559234567"),
    ("0591234567", "+84591234567"), ("0871234567", "+84871234567"), ("0991234567", "+84991234567"),
])
def test_normalize_phone_every_mobile_prefix(raw, out):
    assert normalize_phone(raw) == out


@pytest.mark.parametrize("raw", [
    "012345", "abcdefghij", "09123456ab", "02438253536", "+842438253536", "091234567", "09123456789",
    "0112345678", "", None, 912345678, "+85912345678", "+1 650 253 0000",
    "0501234567", "0571234567", "0711234567", "0751234567", "0801234567",
    "0521234567", "0551234567",         # unallocated network codes (libphonenumber's data, hub.phones)
    "01212345678", "+841212345678",     # the 11-digit mobiles renumbered in 2018
    "+84 24 3825 3536", "842438253536",  # a Hanoi landline, in international forms
    "091２３４５６７８",                   # full-width digits: not an SMS-able number
    "٠٩١٢٣٤٥٦٧٨",                       # Arabic-Indic digits
])
def test_normalize_phone_rejects_everything_else(raw):
    with pytest.raises(DomainError) as info:
        normalize_phone(raw)
    assert info.value.code == "invalid_phone" and info.value.kind == "invalid"


@pytest.mark.parametrize("phone, masked", [
    ("+84912345678", "+8491*****78"), (None, None), ("", ""),
])
def test_mask_phone(phone, masked):
    assert identity.mask_phone(phone) == masked


def test_mask_phone_hides_the_middle():
    m = identity.mask_phone(normalize_phone("0987654321"))
    assert "765432" not in m and m.startswith("+8498") and m.endswith("21") and len(m) == 12


@pytest.mark.parametrize("value", ["001045012345", "079303000001"])
def test_validate_cccd_accepts_twelve_digits(value):
    assert identity.validate_cccd(value) == value


@pytest.mark.parametrize("value", [
    "00104501234", "0010450123456", "00104501234a", "001 45012345", "", None, 1045012345,
    "001045012345\n",
    "٠٠١٠٤٥٠١٢٣٤٥",                     # Arabic-Indic digits are not a CCCD
    "００１０４５０１２３４５",           # nor are full-width ones
])
def test_validate_cccd_rejects_everything_else(value):
    with pytest.raises(DomainError) as info:
        identity.validate_cccd(value)
    assert info.value.code == "invalid_citizen_id" and info.value.kind == "invalid"
