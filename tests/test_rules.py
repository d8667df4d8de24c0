"""hub.domain.notifications.rules: which messages a number's life makes owed, and which are no longer true.

Driven through the pure domain commands on branch 2 (absent = skip) and branch 1 (absent = hold) of
the bundled configuration; the rules see only the state, the events and the time.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import commands
from hub.domain.calendar import issuing_day
from hub.domain.errors import DomainError
from hub.domain.eta.estimator import Forecast, Quantiles
from hub.domain.limits import Citizen, history
from hub.domain.notifications.rules import Rules, sms_fallback
from hub.domain.state import BranchState, apply
from hub.store.outbox import OutboxItem

from conftest import push_subscription

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T9 = datetime(2026, 5, 19, 9, 0, tzinfo=TZ)              # a Tuesday, a working day
PHONE = "+84912345678"
SUB = push_subscription("https://fcm.googleapis.com/fcm/send/abc")
RULES = Rules(lambda branch, tid: f"https://q.example/t/{branch}-{tid}", ahead=5)


def do(st: BranchState, evs: list[dict], now: datetime) -> list[OutboxItem]:
    """Fold the events, then what the hub would write with them."""
    for ev in evs:
        apply(st, ev)
    return RULES.owed(st, evs, now)


def keys(items: list[OutboxItem]) -> list[str]:
    return [i.key for i in items]


@pytest.fixture
def b2(centre) -> BranchState:
    st = BranchState(centre.branches["2"])
    do(st, commands.open_counter(st, T9 - timedelta(hours=1), "1", ["ho-tich"]), T9 - timedelta(hours=1))
    return st


def issue(st: BranchState, now: datetime, phone: str | None = PHONE, channel: str = "kiosk", service="ho-tich"):
    citizen = None
    if channel == "online":
        citizen = Citizen(f"citizen-{len(st.tickets)}", 1980)
        day = issuing_day(st.config, now, channel)
        kw = {"citizen": citizen, "history": history(citizen, day, [st])}
    else:
        kw = {}
    evs = commands.issue(st, now, service=service, channel=channel, phone=phone, **kw)
    owed = do(st, evs, now)
    return st.tickets[evs[0]["ticket"]], owed


def test_a_number_taken_with_a_phone_is_owed_its_tracking_link_by_sms(b2):
    t, owed = issue(b2, T9)
    issued = next(i for i in owed if i.trigger == "issued")
    assert issued.key == f"2/{t.id}:issued:sms"
    assert (issued.branch, issued.ticket, issued.channel, issued.recipient) == ("2", t.id, "sms", PHONE)
    assert issued.params == {"number": t.number, "service": "Hộ tịch", "branch": "Chi nhánh số 2",
                             "url": f"https://q.example/t/2-{t.id}"}
    # The pipeline files what the rules owe as queued outbox items, due at once.
    item = OutboxItem.owed(issued, T9.timestamp())
    assert item.key == issued.key and item.message == issued
    assert item.status == "queued" and item.next_at == item.created == T9.timestamp()


def test_a_holder_who_asked_in_english_is_written_to_in_english(b2):
    evs = commands.issue(b2, T9, service="ho-tich", channel="kiosk", phone=PHONE, lang="en")
    [issued] = [i for i in do(b2, evs, T9) if i.trigger == "issued"]
    t = b2.tickets[evs[0]["ticket"]]
    assert issued.lang == "en" and issued.params["service"] == "Civil status" \
        and issued.params["branch"] == b2.config.name_en
    # a later opt-in from a Vietnamese page switches every later message back
    do(b2, commands.opt_in(b2, T9, t, channel="push", subscription=SUB, lang="vi"), T9)
    called = do(b2, commands.call_next(b2, T9 + timedelta(minutes=1), "1"), T9 + timedelta(minutes=1))
    assert {(i.channel, i.lang, i.params["service"]) for i in called if i.trigger == "called"} == \
        {("sms", "vi", "Hộ tịch"), ("push", "vi", "Hộ tịch")}


@pytest.mark.parametrize("how", [
    lambda st: commands.issue(st, T9, service="ho-tich", channel="kiosk", phone=PHONE, lang="fr"),
    lambda st: commands.opt_in(st, T9, next(iter(st.tickets.values())), channel="sms", phone=PHONE, lang="EN"),
])
def test_a_language_without_texts_is_refused(b2, how):
    issue(b2, T9)
    with pytest.raises(DomainError) as e:
        how(b2)
    assert e.value.code == "invalid_lang"


def test_no_opt_in_no_message(b2):
    _, owed = issue(b2, T9, phone=None)
    assert owed == []


def test_n_ahead_when_the_queue_before_it_shrinks_to_n(b2):
    tickets = [issue(b2, T9 + timedelta(seconds=i))[0] for i in range(8)]
    # Numbers 0–5 had at most 5 ahead when taken; number 6 and 7 not yet.
    before = {i.ticket: i.params["ahead"] for t in tickets for i in RULES.ahead_due(b2, T9) if i.ticket == t.id}
    assert before == {t.id: n for n, t in enumerate(tickets[:6])}
    owed = do(b2, commands.call_next(b2, T9 + timedelta(minutes=1), "1"), T9 + timedelta(minutes=1))
    ahead = [i for i in owed if i.trigger == "ahead"]
    # Everyone still waiting with ≤ 5 ahead is listed (the store keeps the first of each key); number 6 is new.
    assert {i.ticket: i.params["ahead"] for i in ahead} == {t.id: n for n, t in enumerate(tickets[1:7])}
    assert [i for i in owed if i.trigger == "called"][0].params["counter"] == "1"


def test_the_holders_own_n(b2):
    tickets = [issue(b2, T9 + timedelta(seconds=i), phone=None)[0] for i in range(4)]
    last = tickets[-1]
    owed = do(b2, commands.opt_in(b2, T9 + timedelta(minutes=1), last, channel="push", subscription=SUB, ahead=2),
              T9 + timedelta(minutes=1))
    assert owed == []                                 # 3 ahead > 2
    owed = do(b2, commands.call_next(b2, T9 + timedelta(minutes=2), "1"), T9 + timedelta(minutes=2))
    [item] = [i for i in owed if i.ticket == last.id]
    assert (item.key, item.recipient, item.params["ahead"]) == (f"2/{last.id}:ahead:push", SUB, 2)


def test_no_ahead_on_the_eve_before(b2, centre):
    st = BranchState(centre.branches["2"])
    eve = datetime(2026, 5, 18, 20, 30, tzinfo=TZ)
    t, owed = issue(st, eve, channel="online")
    assert keys(owed) == [f"2/{t.id}:issued:sms"]     # told its number, not "0 ahead" for tomorrow
    morning = datetime(2026, 5, 19, 7, 55, tzinfo=TZ)
    owed = do(st, commands.open_counter(st, morning, "1", ["ho-tich"]), morning)
    assert keys(owed) == [f"2/{t.id}:ahead:sms"]


def test_called_skipped_recalled_on_a_skip_branch(b2):
    t, _ = issue(b2, T9, channel="kiosk")
    now = T9 + timedelta(minutes=1)
    assert f"2/{t.id}:called:sms" in keys(do(b2, commands.call_next(b2, now, "1"), now))
    now += timedelta(minutes=2)
    [skipped] = do(b2, commands.skip(b2, now, t), now)
    assert (skipped.trigger, skipped.params["minutes"]) == ("skipped", b2.config.policy.recall_minutes)
    now += timedelta(minutes=3)
    # A recall makes "called" true again: the same key, which the store already holds (sent once).
    assert keys(do(b2, commands.recall(b2, now, t, "1"), now)) == [f"2/{t.id}:called:sms"]


def test_skipped_under_hold_counts_the_hold(centre):
    st = BranchState(centre.branches["1"])
    eve = datetime(2026, 5, 18, 21, 0, tzinfo=TZ)
    t, _ = issue(st, eve, channel="online", service="dat-dai")
    do(st, commands.open_counter(st, T9, "1", ["dat-dai"]), T9)
    now = T9 + timedelta(minutes=1)
    do(st, commands.call_next(st, now, "1"), now)
    now += timedelta(seconds=30)
    [skipped] = do(st, commands.skip(st, now, t), now)
    assert skipped.params["minutes"] == st.config.policy.hold_minutes == 10


def test_expired_at_closing(b2):
    t, _ = issue(b2, T9)
    closing = datetime(2026, 5, 19, 17, 0, 30, tzinfo=TZ)
    owed = do(b2, commands.tick(b2, closing), closing)
    assert f"2/{t.id}:expired:sms" in keys(owed)
    assert not any(i.trigger == "ahead" for i in owed)


def forecast_for(tid: str, now: datetime, p10: float, p50: float) -> Forecast:
    q = Quantiles(p10, p50, p50 + 20)
    return Forecast(now, {tid: q}, {tid: q}, {})


def test_leave_home_when_the_earliest_likely_call_less_the_trip_has_come(b2, centre):
    st = BranchState(centre.branches["2"])
    eve = datetime(2026, 5, 18, 21, 0, tzinfo=TZ)
    t, _ = issue(st, eve, channel="online")
    do(st, commands.opt_in(st, eve, t, channel="sms", travel_minutes=20), eve)
    now = T9
    # p10 = 30: leave by 9:05 (30 − 20 − 5 margin); not yet at 9:00.
    assert RULES.leave_due(st, forecast_for(t.id, now, 30, 45), now) == []
    [item] = RULES.leave_due(st, forecast_for(t.id, now, 25, 40), now)
    assert item.key == f"2/{t.id}:leave:sms"
    assert (item.params["leave_at"], item.params["call_at"]) == ("09:00", "09:40")
    # At the branch already (checked in): no "leave home".
    do(st, commands.check_in(st, now, t), now)
    assert RULES.leave_due(st, forecast_for(t.id, now, 25, 40), now) == []


def test_a_message_for_a_phone_or_subscription_replaced_since_is_not_sent(b2):
    t, owed = issue(b2, T9)                                   # SMS to PHONE
    issued = next(i for i in owed if i.trigger == "issued")
    assert RULES.still_true(b2, issued, T9) is None
    do(b2, commands.opt_in(b2, T9, t, channel="sms", phone="+84912345670"), T9)       # the holder corrects it
    assert RULES.still_true(b2, issued, T9) == "the holder gave another phone or subscription since"
    do(b2, commands.opt_in(b2, T9, t, channel="push", subscription=SUB), T9)
    push = next(iter(RULES._items(b2, t, "ahead", T9, {"ahead": 1}, only="push")))
    assert RULES.still_true(b2, push, T9) is None
    do(b2, commands.opt_in(b2, T9, t, channel="push", subscription={**SUB, "endpoint": "https://fcm.googleapis.com/fcm/send/new"}), T9)
    assert RULES.still_true(b2, push, T9) is not None


def test_leave_needs_a_trip_time(b2):
    t, _ = issue(b2, T9, channel="kiosk")
    t.checked_in = False                                 # even away from the branch: no trip, no "leave"
    assert RULES.leave_due(b2, forecast_for(t.id, T9, 0, 5), T9) == []


def test_what_is_no_longer_true_is_not_sent(b2):
    tickets = [issue(b2, T9 + timedelta(seconds=i))[0] for i in range(2)]
    first, second = tickets
    ahead = next(i for i in RULES.ahead_due(b2, T9) if i.ticket == first.id)
    assert RULES.still_true(b2, ahead, T9) is None
    now = T9 + timedelta(minutes=1)
    owed = do(b2, commands.call_next(b2, now, "1"), now)
    called = next(i for i in owed if i.trigger == "called")
    assert RULES.still_true(b2, ahead, now) == "the number is already called"
    assert RULES.still_true(b2, called, now) is None
    now += timedelta(minutes=5)
    do(b2, commands.complete(b2, now, first), now)
    assert RULES.still_true(b2, called, now) == "the number is already completed"
    # Turned off: nothing more on that channel.
    issued = next(i for i in RULES.owed(b2, [{"type": "ticket.issued", "ticket": second.id}], now)
                  if i.trigger == "issued")
    do(b2, commands.unsubscribe(b2, now, second, channel="sms"), now)
    assert RULES.still_true(b2, issued, now) == "the holder turned sms off"


def test_a_refused_zalo_message_falls_back_to_sms_once(b2):
    t, _ = issue(b2, T9, phone=None)
    do(b2, commands.opt_in(b2, T9, t, channel="zalo", phone=PHONE), T9)
    [zalo] = [i for i in RULES.owed(b2, [{"type": "ticket.issued", "ticket": t.id}], T9) if i.trigger == "issued"]
    sms = sms_fallback(zalo)
    assert (sms.key, sms.channel, sms.recipient, sms.params) == (f"2/{t.id}:issued:sms", "sms", PHONE, zalo.params)
    assert RULES.still_true(b2, sms, T9) is None         # the Zalo opt-in stands for it
    assert sms_fallback(sms) is None
