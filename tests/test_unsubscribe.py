"""Turning a notification channel off: by the holder (DELETE /api/tickets/{token}/notifications/{channel})
or by the notifier when a push subscription is gone (QueueService.unsubscribe). The pure command first,
then through the real app and its SQLite log, across a restart."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import commands, events
from hub.domain.errors import DomainError
from hub.domain.state import BranchState, apply, fold

from conftest import push_subscription, running_app

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T9 = datetime(2026, 5, 19, 9, 0, tzinfo=TZ)
PUSH = push_subscription("https://fcm.googleapis.com/fcm/send/abc")
OTHER = push_subscription("https://fcm.googleapis.com/fcm/send/xyz")


# -- the pure command -----------------------------------------------------------------------------

def do(st: BranchState, evs: list[dict]) -> list[dict]:
    for i, e in enumerate(evs, start=st.seq + 1):
        e["seq"] = i                         # as the store numbers them, so `fold` can replay the log
        apply(st, e)
    return evs


@pytest.fixture
def st(centre) -> BranchState:
    return BranchState(centre.branches["1"])


def issued(st: BranchState, log: list[dict], **kw):
    evs = do(st, commands.issue(st, T9, service="dat-dai", channel="kiosk", **kw))
    log += evs
    return st.tickets[evs[0]["ticket"]]


def test_unsubscribe_removes_only_that_channel_and_survives_a_replay(st):
    log: list[dict] = []
    t = issued(st, log, phone="+84912345678")              # a phone at issue opts in to SMS
    log += do(st, commands.opt_in(st, T9, t, channel="push", subscription=PUSH, ahead=3))
    assert set(t.notify) == {"sms", "push"}

    evs = do(st, commands.unsubscribe(st, T9 + timedelta(minutes=1), t, channel="push"))
    log += evs
    assert [e["type"] for e in evs] == ["ticket.unsubscribed"]
    assert evs[0]["channel"] == "push" and evs[0]["by"] == "citizen" and evs[0]["number"] == t.number
    assert set(t.notify) == {"sms"}                          # SMS untouched
    assert set(fold(st.config, log).tickets[t.id].notify) == {"sms"}      # the log says the same

    log += do(st, commands.unsubscribe(st, T9, t, channel="sms"))
    assert t.notify == {} and fold(st.config, log).tickets[t.id].notify == {}


def test_nothing_to_remove_is_no_event(st):
    t = issued(st, [])
    assert commands.unsubscribe(st, T9, t, channel="push") == []
    do(st, commands.opt_in(st, T9, t, channel="push", subscription=PUSH))
    do(st, commands.unsubscribe(st, T9, t, channel="push"))
    assert commands.unsubscribe(st, T9, t, channel="push") == []          # a repeat changes nothing


def test_a_gone_endpoint_removes_only_the_subscription_it_names(st):
    t = issued(st, [])
    do(st, commands.opt_in(st, T9, t, channel="push", subscription=PUSH))
    do(st, commands.opt_in(st, T9, t, channel="push", subscription=OTHER))    # subscribed again, elsewhere
    # The message that found PUSH gone was queued before: the new subscription stays.
    assert commands.unsubscribe(st, T9, t, channel="push", by="notifier", endpoint=PUSH["endpoint"]) == []
    evs = do(st, commands.unsubscribe(st, T9, t, channel="push", by="notifier", endpoint=OTHER["endpoint"]))
    assert evs[0]["by"] == "notifier" and "push" not in t.notify


def test_allowed_after_the_number_was_served(st):
    """A push for "called" can find its subscription gone after the citizen was served."""
    t = issued(st, [])
    do(st, commands.opt_in(st, T9, t, channel="push", subscription=PUSH))
    do(st, commands.open_counter(st, T9, "1", ["dat-dai"]))
    do(st, commands.call_next(st, T9, "1"))
    do(st, commands.complete(st, T9, t))
    assert [e["type"] for e in do(st, commands.unsubscribe(st, T9, t, channel="push"))] == ["ticket.unsubscribed"]


def test_an_unknown_channel_is_refused_and_changes_nothing(st):
    t = issued(st, [])
    before = copy.deepcopy(t.notify)
    with pytest.raises(DomainError) as info:
        commands.unsubscribe(st, T9, t, channel="fax")
    assert info.value.code == "invalid_channel" and info.value.message_vi
    assert t.notify == before


def test_the_event_is_private_and_outside_traces(st):
    t = issued(st, [], phone="+84912345678")
    ev = commands.unsubscribe(st, T9, t, channel="sms")[0]
    assert ev["type"] in events.TYPES and not events.in_trace(ev)
    public = events.public(ev)
    assert public["channel"] == "sms" and "phone" not in public and "subscription" not in public
    assert "+84912345678" not in str(public)


# -- through the real app -------------------------------------------------------------------------

async def issue(client, **body) -> str:
    r = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk", **body})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def seq(client) -> int:
    return (await client.get("/api/branches/1")).json()["seq"]


@pytest.mark.anyio
async def test_the_holder_turns_push_off_and_a_repeat_changes_nothing(client):
    token = await issue(client, phone="0912345678")
    r = await client.post(f"/api/tickets/{token}/notifications", json={"channel": "push", "subscription": PUSH})
    assert r.json()["notifications"] == {"sms": {"ahead": None}, "push": {"ahead": None}}

    r = await client.delete(f"/api/tickets/{token}/notifications/push")
    assert r.status_code == 200, r.text
    assert r.json()["notifications"] == {"sms": {"ahead": None}} and r.json()["state"] == "waiting"
    after = await seq(client)
    again = await client.delete(f"/api/tickets/{token}/notifications/push")
    assert again.status_code == 200 and again.json()["notifications"] == {"sms": {"ahead": None}}
    assert await seq(client) == after                                     # nothing to remove: no event

    r = await client.delete(f"/api/tickets/{token}/notifications/sms")
    assert r.json()["notifications"] == {}
    log = await client.app.state.storage.log.events_since("1", 0)
    off = [e for e in log if e["type"] == "ticket.unsubscribed"]
    assert [(e["channel"], e["by"]) for e in off] == [("push", "citizen"), ("sms", "citizen")]


@pytest.mark.anyio
@pytest.mark.parametrize("path, status, code", [
    ("/api/tickets/{token}/notifications/fax", 422, "invalid_channel"),
    ("/api/tickets/not-a-ticket-token/notifications/push", 404, None),
])
async def test_bad_requests_are_refused_and_change_nothing(client, path, status, code):
    token = await issue(client)
    before = await seq(client)
    r = await client.delete(path.format(token=token))
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"]["code"] == code
    assert "error" in r.json()
    assert await seq(client) == before


@pytest.mark.anyio
async def test_the_notifier_removes_only_the_gone_subscription(client):
    token = await issue(client)
    service = client.app.state.service
    ticket = (await client.get(f"/api/tickets/{token}")).json()["ticket"]
    await client.post(f"/api/tickets/{token}/notifications", json={"channel": "push", "subscription": OTHER})
    before = await seq(client)
    assert await service.unsubscribe("1", ticket, "push", endpoint=PUSH["endpoint"]) == {"removed": False}
    assert await seq(client) == before
    assert await service.unsubscribe("1", ticket, "push", endpoint=OTHER["endpoint"]) == {"removed": True}
    assert await service.unsubscribe("1", ticket, "push") == {"removed": False}
    assert (await client.get(f"/api/tickets/{token}")).json()["notifications"] == {}
    with pytest.raises(DomainError) as info:
        await service.unsubscribe("1", "20260519-9999", "push")
    assert info.value.code == "ticket_not_found"


@pytest.mark.anyio
async def test_a_restart_rebuilds_the_state_without_the_removed_channel(settings, clock):
    async with running_app(settings, clock) as client:
        token = await issue(client, phone="0912345678")
        await client.post(f"/api/tickets/{token}/notifications", json={"channel": "push", "subscription": PUSH})
        await client.delete(f"/api/tickets/{token}/notifications/sms")
    async with running_app(settings, clock) as client:
        view = (await client.get(f"/api/tickets/{token}")).json()
        assert view["notifications"] == {"push": {"ahead": None}}
        t = client.app.state.service.state("1").tickets[view["ticket"]]
        assert t.notify["push"]["subscription"] == PUSH       # the notifier still has what it needs


@pytest.mark.anyio
async def test_the_board_feed_shows_only_that_something_happened(client):
    """A holder's opt-out is theirs: the board gets an `internal` mark at its seq (seq still rises
    by one), nothing of what it was or whose it was."""
    token = await issue(client, phone="0912345678")
    seen: list[bytes] = []
    client.app.state.service.on_event.append(lambda branch, ev, data: seen.append(data))
    await client.delete(f"/api/tickets/{token}/notifications/sms")
    assert len(seen) == 1 and b'"type":"internal"' in seen[0]
    assert b"unsubscribed" not in seen[0] and b"912345678" not in seen[0] and b"token" not in seen[0]
