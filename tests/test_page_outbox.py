"""The outbox section of the branch manager's page, in a real Chromium against a real hub process whose
SQLite outbox the test fills (as the notifier would): counts per status, dead letters with what went
wrong and a masked recipient, and the "Gửi lại / Redrive" buttons moving them back to the queue."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from hub.auth import Tokens
from hub.store import open_store
from hub.store.outbox import DEAD, DELIVERED, FAILED, QUEUED, SENT, OutboxItem

from conftest import SECRET, TUESDAY_9AM, TV
from waiting import deadline

NOW = TUESDAY_9AM.timestamp()
STAFF = Tokens(SECRET).staff("1")


def item(branch: str, number: str, status: str, channel: str = "sms", **kw) -> OutboxItem:
    ticket = f"20260519-{number}"
    recipient = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": {"p256dh": "x", "auth": "y"}} \
        if channel == "push" else "+84912345678"
    return OutboxItem(f"{branch}/{ticket}:called:{channel}", branch, ticket, "called", channel, recipient,
                      {"number": number}, created=NOW, next_at=NOW, updated=NOW + kw.pop("later", 0), status=status, **kw)


SEED = [
    item("1", "1001", DEAD, attempts=6, error="timeout", detail="no answer in time"),
    item("1", "1002", FAILED, attempts=1, error="invalid_number",
         detail="The 'To' number +84912345678 is not a valid phone number.", later=1),
    item("1", "1003", FAILED, channel="push", attempts=1, error="subscription_gone", later=2),
    item("1", "1004", SENT, provider_id="SM1", later=3),
    item("1", "1005", DELIVERED, provider_id="SM2", later=4),
    item("2", "2001", DEAD, attempts=6, error="gateway_error"),
]


def on_store(db: str, fn):
    """Run `await fn(store)` on the hub's store from a thread of its own: Playwright's sync API keeps
    this thread's event loop busy."""
    async def main():
        async with open_store(db) as store:
            return await fn(store)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=deadline(30))


@pytest.fixture
def outbox_hub(hub_factory, hub_env):
    """A hub that sends nothing itself (QUEUECAST_NOTIFIER=worker), so what the page shows stays put."""
    hub = hub_factory({**hub_env, "QUEUECAST_NOTIFIER": "worker"})
    db = hub_env["QUEUECAST_DATABASE"]

    async def seed(store):
        await store.outbox.add(SEED)
    on_store(db, seed)
    return hub, db


def status_of(db: str, key: str) -> str:
    async def get(store):
        return (await store.outbox.get(key)).status
    return on_store(db, get)


def test_counts_dead_letters_and_redrive(outbox_hub, new_page):
    hub, db = outbox_hub
    page = new_page(TV)
    page.goto(f"{hub.url}/admin/1?token={STAFF}")
    box = page.locator("#outbox")
    expect(box.locator("h2")).to_have_text("Hộp thư thông báo (outbox)")
    counts = {"queued": "0", "sending": "0", "sent": "1", "delivered": "1", "failed": "2", "dead": "1", "dropped": "0"}
    for status, n in counts.items():
        expect(box.locator(f"[data-outbox-count={status}]")).to_have_text(n)
    rows = box.locator("#dead-letters tbody tr")
    expect(rows).to_have_count(3)                                       # branch 2's dead letter is not shown
    bad_number = box.locator(f"#dead-letters tr[data-key='{SEED[1].key}']")
    expect(bad_number).to_contain_text("+8491*****78")
    expect(bad_number).to_contain_text("Số điện thoại không hợp lệ")
    expect(bad_number).to_contain_text("Bị từ chối")
    expect(box.locator(f"#dead-letters tr[data-key='{SEED[2].key}']")).to_contain_text("push · fcm.googleapis.com")
    assert "912345678" not in page.content()

    page.click(f"button[data-redrive='{SEED[0].key}']")
    expect(page.locator("#outbox-msg")).to_have_text("Đã đưa 1 tin trở lại hàng chờ gửi.")
    expect(box.locator("[data-outbox-count=dead]")).to_have_text("0")
    expect(box.locator("[data-outbox-count=queued]")).to_have_text("1")
    expect(rows).to_have_count(2)
    assert status_of(db, SEED[0].key) == QUEUED

    page.click("button.redrive.all")
    expect(page.locator("#outbox-msg")).to_have_text("Đã đưa 2 tin trở lại hàng chờ gửi.")
    expect(box.locator("#no-dead")).to_have_text("Không có tin gửi lỗi.")
    expect(box.locator("[data-outbox-count=queued]")).to_have_text("3")
    expect(box.locator("button.redrive.all")).to_be_disabled()
    assert [status_of(db, i.key) for i in SEED] == [QUEUED, QUEUED, QUEUED, SENT, DELIVERED, DEAD]


def test_a_refused_redrive_is_said_in_the_page(outbox_hub, new_page):
    """Someone else (the CLI, another manager) redrove the message since the page was drawn."""
    hub, db = outbox_hub
    page = new_page(TV)
    page.goto(f"{hub.url}/admin/1?token={STAFF}")
    expect(page.locator("#dead-letters tbody tr")).to_have_count(3)

    async def redrive_elsewhere(store):
        return await store.outbox.redrive(NOW + 60, SEED[0].key)
    assert on_store(db, redrive_elsewhere) == 1
    page.click(f"button[data-redrive='{SEED[0].key}']")
    expect(page.locator("#outbox-msg")).to_have_text("Không gửi lại được: Tin nhắn này không ở trạng thái lỗi.")
    expect(page.locator("#dead-letters tbody tr")).to_have_count(2)       # and the page caught up
    assert status_of(db, SEED[0].key) == QUEUED


def test_the_section_in_english(outbox_hub, new_page):
    hub, _ = outbox_hub
    page = new_page(TV)
    page.goto(f"{hub.url}/admin/1?token={STAFF}&lang=en")
    box = page.locator("#outbox")
    expect(box.locator("h2")).to_have_text("Notification outbox")
    expect(box.locator("button.redrive.all")).to_have_text("Redrive all")
    expect(box.locator(f"#dead-letters tr[data-key='{SEED[1].key}']")).to_contain_text("Invalid number")
