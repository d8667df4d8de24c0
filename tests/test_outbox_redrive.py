"""POST /api/outbox/redrive and the outbox part of the admin page's JSON twin, in-process against the
real app and its SQLite store: a branch's staff reach only that branch's dead letters; anything else
is refused in the contract's error shape and changes nothing."""
from __future__ import annotations

import pytest

from hub.store.outbox import DEAD, DELIVERED, FAILED, QUEUED, SENT, OutboxItem

from conftest import TUESDAY_9AM, bearer

pytestmark = pytest.mark.anyio

NOW = TUESDAY_9AM.timestamp()
PUSH = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": {"p256dh": "x", "auth": "y"}}


def item(branch: str, number: str, status: str, channel: str = "sms", trigger: str = "called", **kw) -> OutboxItem:
    ticket = f"20260519-{number}"
    recipient = PUSH if channel == "push" else "+84912345678"
    return OutboxItem(f"{branch}/{ticket}:{trigger}:{channel}", branch, ticket, trigger, channel, recipient,
                      {"number": number}, created=NOW, next_at=NOW, updated=NOW + kw.pop("later", 0),
                      status=status, **kw)


SEED = [
    item("1", "1001", DEAD, attempts=6, error="timeout", detail="no answer in time"),
    item("1", "1002", FAILED, attempts=1, error="invalid_number",
         detail="The 'To' number +84912345678 is not a valid phone number.", later=1),
    item("1", "1003", FAILED, channel="push", attempts=1, error="subscription_gone", later=2),
    item("1", "1004", SENT, provider_id="SM1", later=3),
    item("1", "1005", DELIVERED, provider_id="SM2", later=4),
    item("2", "2001", DEAD, attempts=6, error="gateway_error"),      # another branch's
]


@pytest.fixture
async def seeded(client):
    await client.app.state.storage.outbox.add(SEED)
    return client


def staff(client, branch: str = "1", counter: str | None = None) -> dict:
    return bearer(client.app.state.tokens.staff(branch, counter))


async def statuses(client) -> dict[str, str]:
    store = client.app.state.storage
    return {i.key: i.status for i in await store.outbox.recent(limit=100)}


async def test_the_admin_twin_counts_the_branchs_messages_and_masks_recipients(seeded):
    twin = (await seeded.get("/admin/1?format=json", headers=staff(seeded))).json()["outbox"]
    assert twin["available"] is True
    assert twin["counts"] == {"queued": 0, "sending": 0, "sent": 1, "delivered": 1, "failed": 2, "dead": 1,
                              "dropped": 0}                         # branch 2's dead letter is not here
    assert twin["dead_total"] == 3
    assert [m["number"] for m in twin["dead"]] == ["1003", "1002", "1001"]   # latest first
    by_number = {m["number"]: m for m in twin["dead"]}
    assert by_number["1002"]["recipient"] == "+8491*****78"
    assert by_number["1002"]["detail"] == "The 'To' number +8491*****78 is not a valid phone number."
    assert by_number["1003"]["recipient"] == "push · fcm.googleapis.com"
    assert by_number["1001"]["error"] == "timeout" and by_number["1001"]["attempts"] == 6
    assert by_number["1001"]["updated"] == "2026-05-19T09:00:00+07:00"
    assert len(twin["recent"]) == 5
    assert "912345678" not in str(twin) and "p256dh" not in str(twin)


async def test_redrive_one_then_all_of_the_branch(seeded):
    r = await seeded.post("/api/outbox/redrive", json={"key": SEED[0].key}, headers=staff(seeded))
    assert r.status_code == 200 and r.json() == {"redriven": 1, "more": False}
    moved = await seeded.app.state.storage.outbox.get(SEED[0].key)
    assert (moved.status, moved.attempts, moved.error) == (QUEUED, 0, "timeout")   # what went wrong is kept

    r = await seeded.post("/api/outbox/redrive", headers=staff(seeded))
    assert r.status_code == 200 and r.json() == {"redriven": 2, "more": False}
    after = await statuses(seeded)
    assert [after[i.key] for i in SEED] == [QUEUED, QUEUED, QUEUED, SENT, DELIVERED, DEAD]   # branch 2 untouched


@pytest.mark.parametrize("body, who, status, code", [
    ({"key": SEED[5].key}, "staff", 404, "outbox_item_not_found"),      # another branch's
    ({"key": "1/20260519-9999:called:sms"}, "staff", 404, "outbox_item_not_found"),
    ({"key": SEED[3].key}, "staff", 409, "not_a_dead_letter"),
    ({"key": 5}, "staff", 422, "invalid_field"),
    ({"kye": SEED[0].key}, "staff", 422, "unknown_field"),           # a typo re-drives nothing
    ({}, "citizen", 403, "staff_only"),
    ({}, "none", 401, "token_required"),
    ({}, "forged", 401, None),
])
async def test_refusals_change_nothing(seeded, body, who, status, code):
    headers = {"none": {}, "forged": bearer("qc1.bm90.AAAA"),
               "citizen": bearer(seeded.app.state.tokens.citizen("001085123456")),
               "staff": staff(seeded)}[who]
    before = await statuses(seeded)
    r = await seeded.post("/api/outbox/redrive", json=body, headers=headers)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"]["code"] == code
    assert "error" in r.json()
    assert await statuses(seeded) == before


async def test_garbage_body_is_a_400(seeded):
    before = await statuses(seeded)
    r = await seeded.post("/api/outbox/redrive", content=b"{not json",
                          headers={**staff(seeded), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    assert await statuses(seeded) == before


async def test_the_notification_paths_are_documented(client):
    doc = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (("/api/tickets/{token}/notifications/{channel}", "delete"), ("/api/push/key", "get"),
                         ("/api/outbox/redrive", "post"), ("/hooks/esms", "get"), ("/hooks/twilio", "post")):
        assert method in doc.get(path, {}), path
