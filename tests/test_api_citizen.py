"""What a ticket's holder can do with the ticket token: opt in to notifications, rate the service."""
from __future__ import annotations

import pytest

from hub.domain import events

from conftest import bearer, push_subscription

pytestmark = pytest.mark.anyio

PUSH = push_subscription()


async def issue(client, **body) -> str:
    r = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk", **body})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def seq(client) -> int:
    return (await client.get("/api/branches/1")).json()["seq"]


async def test_phone_at_issue_opts_in_to_sms(client):
    token = await issue(client, phone="0912345678")
    assert (await client.get(f"/api/tickets/{token}")).json()["notifications"] == {"sms": {"ahead": None}}


async def test_opt_in_to_push_and_sms_with_ahead_and_travel(client):
    token = await issue(client)
    r = await client.post(f"/api/tickets/{token}/notifications", json={"channel": "push", "subscription": PUSH, "ahead": 3})
    assert r.status_code == 200 and r.json()["notifications"] == {"push": {"ahead": 3}}
    r = await client.post(f"/api/tickets/{token}/notifications",
                          json={"channel": "sms", "phone": "+84 912 345 678", "travel_minutes": 25})
    view = r.json()
    assert view["notifications"] == {"push": {"ahead": 3}, "sms": {"ahead": None}}
    assert view["travel_minutes"] == 25 and view["leave_by"] is not None     # remembered for "leave home by"
    assert "912345678" not in r.text and "p256dh" not in r.text              # the holder's view keeps them out


@pytest.mark.parametrize("body, code", [
    ({"channel": "fax"}, "invalid_channel"),
    ({"channel": "sms"}, "phone_required"),
    ({"channel": "sms", "phone": "12345"}, "invalid_phone"),
    ({"channel": "push"}, "invalid_subscription"),
    ({"channel": "push", "subscription": {"endpoint": "http://insecure.test", "keys": {"p256dh": "a", "auth": "b"}}}, "invalid_subscription"),
    ({"channel": "push", "subscription": PUSH, "ahead": 0}, "invalid_ahead"),
    ({"channel": "sms", "phone": "0912345678", "travel_minutes": 601}, "invalid_travel_minutes"),
    ({"channel": "sms", "phone": "0912345678", "ahead": "5"}, "invalid_field"),
    ({"channel": "sms", "phone": "0912345678", "lang": "fr"}, "invalid_lang"),
    ({"channel": "sms", "phone": "0912345678", "lang": 1}, "invalid_field"),
])
async def test_bad_opt_ins_are_refused_and_change_nothing(client, body, code):
    token = await issue(client)
    before = await seq(client)
    r = await client.post(f"/api/tickets/{token}/notifications", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
    assert await seq(client) == before


async def test_messages_are_written_in_the_language_the_holder_asked_in(client):
    store = client.app.state.storage
    token = await issue(client, phone="0912345678", lang="en")
    owed = await store.outbox.recent()
    assert {(i.trigger, i.lang, i.params["service"]) for i in owed} >= {("issued", "en", "Land")}
    assert {i.lang for i in owed} == {"en"}
    before = await seq(client)
    r = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk", "lang": "de"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_lang"
    assert await seq(client) == before                           # no number was taken
    r = await client.post(f"/api/tickets/{token}/notifications", json={"channel": "push", "subscription": PUSH, "lang": "vi"})
    assert r.status_code == 200
    st = client.app.state.service.state("1")
    assert st.tickets[r.json()["ticket"]].lang == "vi"
    board = (await client.get("/api/branches/1")).text
    assert '"lang"' not in board                                  # the holder's language is theirs


async def test_rating_once_after_service(client):
    token = await issue(client)
    staff = bearer(client.app.state.tokens.staff("1"))
    r = await client.post(f"/api/tickets/{token}/rating", json={"score": 5})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"      # not served yet
    await client.post("/api/branches/1/counters/1/open", json={}, headers=staff)
    number = (await client.post("/api/branches/1/counters/1/call-next", headers=staff)).json()["ticket"]["number"]
    await client.post(f"/api/branches/1/tickets/{number}/complete", headers=staff)
    for bad in ({"score": 0}, {"score": 6}, {"score": True}, {"score": 4, "comment": "x" * 501}):
        assert (await client.post(f"/api/tickets/{token}/rating", json=bad)).status_code == 422
    r = await client.post(f"/api/tickets/{token}/rating", json={"score": 4, "comment": "Nhanh, chu đáo"})
    assert r.status_code == 200 and r.json()["rated"] is True
    st = client.app.state.service.state("1")
    assert st.tickets[r.json()["ticket"]].rating == (4, "Nhanh, chu đáo")
    again = await client.post(f"/api/tickets/{token}/rating", json={"score": 1})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_rated"


async def test_opt_in_and_rating_events_stay_private_and_out_of_traces(client):
    token = await issue(client)
    await client.post(f"/api/tickets/{token}/notifications", json={"channel": "push", "subscription": PUSH})
    log = await client.app.state.storage.log.events_since("1", 0)
    notify = [e for e in log if e["type"] == "ticket.notify"]
    assert len(notify) == 1 and notify[0]["subscription"] == PUSH               # the log keeps it for the notifier
    assert "subscription" not in events.public(notify[0])                         # the board feed does not
    assert not events.in_trace(notify[0])
    assert events.public({"type": "ticket.rated", "comment": "tên tôi là An", "score": 5})["score"] == 5
    assert "comment" not in events.public({"type": "ticket.rated", "comment": "tên tôi là An", "score": 5})
