"""On one Redis, a branch's forecast is simulated once per change, by the hub process that appended
it; the others adopt what it sends (hub.service.pipeline, hub.service.follow) and simulate nothing
for the branch, watched or not (issue 16).

Two hubs in this process, each with its own store, broker and state, on one manual clock: the
views of both are compared at the same instant, so "the same forecast" is exact equality. Then
two real hub processes, whose count is read from /metrics.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from test_predictions_live import DAY1, LAND, at, ok, staff
from test_predictions_live import issue as issue_at

from hub.domain.eta.estimator import Forecast, Quantiles
from hub.service import relayed
from hub.service.relayed import RelayedForecast
from hub.settings import Settings

from conftest import SECRET, running_app
from test_feeds import call_next, feed, http, issue, metric, open_counter, recv, redis_env
from waiting import until

pytestmark = pytest.mark.anyio

B = "1"
FORECASTS = "queuecast_forecasts_computed"


def made(hub) -> int:
    """Forecasts the hub simulated for branch B."""
    return hub.app.state.service.branches.forecasts(B)


async def follows(b, a) -> None:
    await until(lambda: b.app.state.service.states[B].seq >= a.app.state.service.states[B].seq,
                "b to follow a through the Redis broker", interval=0.01)


async def test_the_process_that_appends_simulates_and_the_other_shows_its_forecast(redis_url, clock, lobby_config):
    settings = Settings(database=redis_url, secret=SECRET, issue_rate="1000/60", notifier="worker",
                        config=lobby_config)
    async with running_app(settings, clock) as a, running_app(settings, clock) as b:
        at(clock, DAY1, 9, 2)
        await staff(a, "counters/1/open", {"services": [LAND]})
        tickets = []
        for s in (10, 20, 30, 40):
            at(clock, DAY1, 9, 3, s)
            tickets.append(await issue_at(a))
        await follows(b, a)
        changes = 1 + 4                                  # the counter opened, four numbers issued
        assert made(a) == changes
        assert made(b) == 0                             # no watcher, no reads: nothing at all
        r = await b.get("/metrics")                     # the count, as an operator reads it
        assert f'{FORECASTS}_total{{branch="{B}"}} 0.0' in r.text

        at(clock, DAY1, 9, 3, 45)
        for tk in tickets:                              # b's pages show a's forecast, to the tenth
            va = await ok(await a.get(f"/api/tickets/{tk['token']}"))
            vb = await ok(await b.get(f"/api/tickets/{tk['token']}"))
            assert va["eta"] is not None and va["eta"] == vb["eta"]
            assert va["expected_call"] == vb["expected_call"]
        ba, bb = await ok(await a.get(f"/api/branches/{B}")), await ok(await b.get(f"/api/branches/{B}"))
        assert [s["expected_wait"] for s in ba["services"]] == [s["expected_wait"] for s in bb["services"]]
        assert ba["services"][0]["expected_wait"]["p50"] is not None
        assert made(b) == 0

        # A watcher of the last number at b: every frame it gets carries a's forecast, made once at a.
        watched = tickets[-1]
        frames, sub = await b.app.state.feeds.open_ticket(watched["token"], None, None)
        assert frames[0].seq == b.app.state.service.states[B].seq
        at(clock, DAY1, 9, 4, 5)
        await staff(a, "counters/1/call-next")          # the first number: the watched one moves up
        await follows(b, a)
        got = json.loads((await sub.next(timeout=10)).text)
        assert got["type"] == "ticket.called"
        va = await ok(await a.get(f"/api/tickets/{watched['token']}"))
        assert got["ticket"]["eta"] == va["eta"] and va["eta"] is not None
        assert got["ticket"]["position"] == va["position"] == 3
        at(clock, DAY1, 9, 4, 15)
        await issue_at(a)                               # behind the watched one: its view may not move
        await follows(b, a)
        assert made(a) == changes + 2
        assert made(b) == 0                             # watched, and still relaying

        # The 09:05 boundary point: a simulates it and sends it; b publishes it without simulating.
        at(clock, DAY1, 9, 5, 1)
        pa, pb = a.app.state.predictions, b.app.state.predictions
        await pa.step()
        assert made(a) == changes + 3

        async def b_done() -> bool:        # every point published or passed over: b waits for none
            await pb.step()
            return pb.published + pb.passed_over >= pa.published
        await until(b_done, lambda: f"b to publish the boundary point a sent: {pb.published} of "
                    f"{pa.published} published, {pb.passed_over} passed over", interval=0.01)
        assert pb.published == pa.published
        assert made(b) == 0 and pb.passed_over == pa.passed_over == 0
        r = await b.get("/metrics")
        assert f'{FORECASTS}_total{{branch="{B}"}} 0.0' in r.text
        r = await a.get("/metrics")
        assert f'{FORECASTS}_total{{branch="{B}"}} {changes + 3}.0' in r.text
        sub.close("gone")


async def test_sqlite_single_process_sends_no_forecast_and_simulates_on_read(client, clock):
    """One process on SQLite: as before, a forecast is simulated when something reads it."""
    at(clock, DAY1, 9, 2)
    await staff(client, "counters/1/open", {"services": [LAND]})
    at(clock, DAY1, 9, 3, 10)
    tk = await issue_at(client)                         # its answer shows the forecast: one simulation
    service = client.app.state.service
    assert service.branches.forecasts(B) == 1 and not service.branches.outgoing
    await ok(await client.get(f"/api/tickets/{tk['token']}"))
    assert service.branches.forecasts(B) == 1           # young enough: shown again, not simulated


async def test_two_real_hub_processes_simulate_only_where_the_branch_changed(hub_factory, redis_url, hub_env):
    a, b = hub_factory(redis_env(redis_url, hub_env)), hub_factory(redis_env(redis_url, hub_env))
    async with http(a) as ca, http(b) as cb:
        await open_counter(ca, "1", [LAND])
        tickets = [await issue(ca) for _ in range(3)]
        async with feed(b, f"/ws/tickets/{tickets[-1]['token']}") as wb:   # a watcher at b
            snapshot = await recv(wb)
            assert snapshot["type"] == "snapshot" and snapshot["ticket"]["eta"] is not None
            await call_next(ca, "1")                    # the watched number moves up: a frame
            frames = [await recv(wb)]
            va = (await ca.get(f"/api/tickets/{tickets[2]['token']}")).json()
            tickets.append(await issue(ca))             # behind it: b sends only if its ETA moved
            assert [f["type"] for f in frames] == ["ticket.called"]
            assert frames[-1]["ticket"]["position"] == 2 and frames[-1]["ticket"]["eta"] is not None
            # Each process runs its own clock from QUEUECAST_CLOCK, started a moment apart: the same
            # forecast, shifted to two nows a few seconds apart, is within a tenth or two of a minute.
            for q in ("p10", "p50", "p90"):
                assert abs(frames[-1]["ticket"]["eta"][q] - va["eta"][q]) <= 0.2
        assert await metric(cb, FORECASTS, f'branch="{B}"') == 0
        assert await metric(ca, FORECASTS, f'branch="{B}"') >= 1 + 3 + 2     # every change, at a


async def test_a_point_the_appending_process_never_sends_is_made_by_another_after_its_grace(
        redis_url, clock, lobby_config):
    """The process that appended the last event stops before a boundary: the other waits for the
    point (it may be on its way), then makes and records it itself."""
    settings = Settings(database=redis_url, secret=SECRET, issue_rate="1000/60", notifier="worker",
                        config=lobby_config)
    async with running_app(settings, clock) as b:
        async with running_app(settings, clock) as a:
            at(clock, DAY1, 9, 2)
            await staff(a, "counters/1/open", {"services": [LAND]})
            at(clock, DAY1, 9, 3, 10)
            await issue_at(a)
            await follows(b, a)
        pb = b.app.state.predictions
        at(clock, DAY1, 9, 4)
        await pb.step()
        assert pb.published == 1 and made(b) == 0        # the issue point, a's forecast
        at(clock, DAY1, 9, 5, 1)
        await pb.step()
        assert pb.published == 1 and made(b) == 0        # the boundary's is awaited
        clock.current = at(clock, DAY1, 9, 5, 1) + pb.grace       # past the 09:05:00 point's grace
        await pb.step()
        assert pb.published == 2 and made(b) == 1 and pb.passed_over == 0
        lines = await b.app.state.storage.predictions.of_day(B, DAY1)
        assert [x["t"][11:19] for x in lines] == ["09:03:10", "09:05:00"]


def test_a_relayed_forecast_is_decoded_when_read_and_is_the_one_sent():
    """What a follower adopts with an event (hub.service.relayed): its time at once, the per-number
    part only when something reads it, and then exactly the forecast the appending process made."""
    made_at = datetime(2026, 5, 19, 9, 3, 10, tzinfo=timezone(timedelta(hours=7)))
    sent = Forecast(made_at, {"1-A001": Quantiles(1.2345678901, 4.5, 9.87654321)},
                    {"1-A001": Quantiles(1.2, 4.5, 9.9)}, {LAND: Quantiles(2.0, 6.5, 12.25)},
                    made_at + timedelta(minutes=3), 0.75)
    head, body = relayed.split(sent.to_dict())
    assert set(head) == {"at", "quiet_until", "lead"}          # the event's line stays small
    got = RelayedForecast(json.loads(json.dumps(head)), body)
    assert (got.at, got.quiet_until, got.lead) == (sent.at, sent.quiet_until, sent.lead)
    assert not {"raw", "tickets", "new_number"} & set(vars(got))    # nothing read, nothing decoded
    assert got.ticket("1-A001", made_at) == Quantiles(1.2, 4.5, 9.9)
    assert got == sent and sent == got and got.to_dict() == sent.to_dict()
    with pytest.raises(AttributeError):
        got.missing  # noqa: B018
