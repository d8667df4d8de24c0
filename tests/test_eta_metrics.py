"""The classical ETA predictors and the scoring of predictions, on small cases with known answers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hub.domain.eta import baselines
from hub.domain.eta.baselines import LES, NAIVE, QL
from hub.domain.eta.metrics import LEAVE_MARGIN, Sample, by_ticket, departure, leave_home, scores
from hub.domain.eta.observed import Observed
from hub.domain.eta.plans import Setting
from hub.domain.trace import TraceEvent

TZ = timezone(timedelta(hours=7))
TUESDAY = datetime(2026, 5, 19, tzinfo=TZ)          # a working day; Monday the 18th before it


def at(hh: int, mm: int = 0, day: datetime = TUESDAY) -> datetime:
    return day.replace(hour=hh, minute=mm)


def fold(*events: tuple) -> Observed:
    obs = Observed("b")
    for t, type_, kw in events:
        obs.observe(TraceEvent(t=t, type=type_, branch="b", **kw))
    return obs


def opened(t, counter, *services):
    return (t, "counter.opened", {"counter": counter, "services": tuple(services)})


def issued(t, ticket, service="a", channel="kiosk"):
    return (t, "ticket.issued", {"ticket": ticket, "service": service, "channel": channel})


def called(t, ticket, counter):
    return (t, "ticket.called", {"ticket": ticket, "counter": counter})


def completed(t, ticket, counter):
    return (t, "ticket.completed", {"ticket": ticket, "counter": counter})


SETTING = Setting(counters={"c1": ("a",), "c2": ("a", "b")}, service_means={"a": 10.0, "b": 6.0})


# -- baselines -------------------------------------------------------------------------------------

def test_one_counter_three_ahead_mean_ten():
    obs = fold(opened(at(8), "c1", "a"), *(issued(at(8, i), f"t{i}") for i in range(1, 5)))
    got = baselines.predict(obs, SETTING, at(9), ["t4", "t1"])
    assert got[NAIVE] == {"t4": 30.0, "t1": 0.0}
    assert got[QL] == {"t4": 40.0, "t1": 10.0}


def test_mean_service_is_learned_from_completed_services():
    obs = fold(opened(at(8), "c1", "a"), issued(at(8, 1), "s1"), called(at(8, 1), "s1", "c1"),
               completed(at(8, 9), "s1", "c1"), issued(at(8, 10), "s2"), called(at(8, 10), "s2", "c1"),
               completed(at(8, 22), "s2", "c1"),
               *(issued(at(8, 30 + i), f"t{i}") for i in range(1, 5)))
    assert baselines.mean_service(obs, SETTING, "a") == pytest.approx(10.0)      # (8 + 12) / 2
    assert baselines.mean_service(obs, SETTING, "b") == 6.0                      # nothing seen: configured
    got = baselines.predict(obs, SETTING, at(9), ["t4"])
    assert got[NAIVE]["t4"] == pytest.approx(30.0)
    assert got[QL]["t4"] == pytest.approx(40.0)


def test_a_counter_shared_by_two_fields_counts_half():
    obs = fold(opened(at(8), "c1", "a"), opened(at(8), "c2", "a", "b"),
               *(issued(at(8, i), f"t{i}") for i in range(1, 5)))
    assert baselines.servers(obs, SETTING, "a") == 1.5
    assert baselines.predict(obs, SETTING, at(9), ["t4"])[QL]["t4"] == pytest.approx(40 / 1.5)


def test_les_is_the_last_wait_less_what_this_number_already_waited():
    obs = fold(opened(at(8), "c1", "a"), issued(at(8, 5), "first"), issued(at(8, 20), "mine"),
               called(at(8, 30), "first", "c1"))                         # waited 25 minutes
    assert baselines.les_wait(obs, SETTING, "a") == 25.0
    assert baselines.predict(obs, SETTING, at(8, 30), ["mine"])[LES]["mine"] == 15.0     # 25 − 10
    assert baselines.predict(obs, SETTING, at(9), ["mine"])[LES]["mine"] == 0.0         # waited longer


def test_before_opening_everyone_adds_the_time_to_opening():
    monday = TUESDAY - timedelta(days=1)
    obs = fold(opened(at(8, 0, monday), "c1", "a"), issued(at(9, 0, monday), "m1"),
               called(at(9, 20, monday), "m1", "c1"), (at(17, 0, monday), "counter.closed", {"counter": "c1"}),
               issued(at(20, 0, monday), "e1", channel="online"), issued(at(20, 5, monday), "e2", channel="online"))
    now = at(21, 0, monday)
    assert baselines.until_opening(obs, SETTING, now) == 11 * 60
    assert baselines.servers(obs, SETTING, "a") == 1.0          # nobody open: yesterday's c1, not c2
    got = baselines.predict(obs, SETTING, now, ["e1", "e2"])
    assert got[NAIVE] == {"e1": 660.0, "e2": 670.0}
    assert got[QL] == {"e1": 670.0, "e2": 680.0}
    assert got[LES] == {"e1": 680.0, "e2": 680.0}               # Monday's last wait, 20 min, not yet eaten into


def test_les_counts_an_evening_number_from_the_opening():
    monday = TUESDAY - timedelta(days=1)
    obs = fold(issued(at(20, 0, monday), "e1", channel="online"), opened(at(8), "c1", "a"),
               issued(at(8, 2), "k1"), called(at(8, 10), "e1", "c1"))
    assert obs.last_wait["a"] == pytest.approx(12 * 60 + 10)      # from issue, overnight
    assert baselines.les_wait(obs, SETTING, "a") == pytest.approx(10.0)     # from the opening
    assert baselines.predict(obs, SETTING, at(8, 10), ["k1"])[LES]["k1"] == pytest.approx(2.0)


# -- scores ----------------------------------------------------------------------------------------

def sample(t, called, q, *, ticket="x", issued=0.0, online=True, service_hours=True, name="ours"):
    return Sample(t=t, ticket=ticket, issued=issued, called=called, online=online,
                  service_hours=service_hours, day=1, q={name: q})


def test_scores_of_a_known_set():
    got = scores([sample(0, 10, (5, 10, 15)),      # inside, exact
                  sample(0, 20, (5, 10, 15)),      # above p90, p50 off by −10
                  sample(0, 4, (5, 8, 15)),        # below p10, off by +4
                  sample(0, 30, (20, 32, 40)),     # inside, off by +2
                  sample(0, None, (1, 2, 3))], "ours")     # never called: left out, counted
    assert got.n == 4 and got.never_called == 1
    assert got.mae == pytest.approx((0 + 10 + 4 + 2) / 4)
    assert got.bias == pytest.approx((0 - 10 + 4 + 2) / 4)
    assert got.coverage == 0.5
    # pinball of the second: p10 0.1·15, p50 0.5·10, p90 0.9·5 → mean 11/3
    assert got.mae_by_band[0] == (2, 2.0) and got.mae_by_band[1] == (1, 10.0) and got.mae_by_band[2] == (1, 2.0)
    first = scores([sample(0, 20, (5, 10, 15))], "ours")
    assert first.pinball == pytest.approx((1.5 + 5 + 4.5) / 3)


def test_a_point_predictor_has_no_coverage_and_half_its_mae_as_pinball():
    got = scores([sample(0, 10, (12, 12, 12), name="QL"), sample(0, 20, (14, 14, 14), name="QL")], "QL")
    assert got.coverage is None
    assert got.mae == 4.0 and got.pinball == pytest.approx(2.0)


# -- leave home ------------------------------------------------------------------------------------

def watched(call: float, low, name="ours", ticket="x", online=True):
    """A number issued at 0 and called at `call`, predicted every 5 minutes with p10 = low(t)."""
    return [sample(t, call, (low(t), low(t), low(t)), ticket=ticket, online=online, name=name)
            for t in range(0, int(call), 5)]


def test_a_perfect_low_quantile_gets_there_margin_minutes_early():
    pts = watched(60, lambda t: 60 - t)
    # p10 − 20 − 5 reaches 5 minutes ahead at t = 30: leave at 35, arrive at 55
    assert departure(pts, "ours", 20, LEAVE_MARGIN) == 35
    got = leave_home(by_ticket(pts), "ours", 20)
    assert (got.n, got.late, got.idle_mean, got.idle_median) == (1, 0.0, 5.0, 5.0)


def test_an_optimistic_prediction_makes_the_citizen_late():
    pts = watched(60, lambda t: 2 * (60 - t))         # says twice the real wait
    assert departure(pts, "ours", 20, LEAVE_MARGIN) == 50      # t = 45: leave-by 50, arrive 70 > 60
    got = leave_home(by_ticket(pts), "ours", 20)
    assert got.late == 1.0 and got.idle_mean is None


def test_never_leaving_before_the_call_is_late():
    assert departure(watched(60, lambda t: 500), "ours", 20, LEAVE_MARGIN) is None
    assert leave_home(by_ticket(watched(60, lambda t: 500)), "ours", 20).late == 1.0


def test_numbers_called_too_soon_or_never_are_left_out():
    tickets = by_ticket(watched(60, lambda t: 60 - t, ticket="ok") + watched(22, lambda t: 0, ticket="soon")
                        + [sample(0, None, (9, 9, 9), ticket="gone")])
    got = leave_home(tickets, "ours", 20)
    assert (got.n, got.too_short, got.never_called) == (1, 1, 1)
    assert leave_home(tickets, "ours", 40).n == 1          # 60 ≥ 45: still followed at 40 min
