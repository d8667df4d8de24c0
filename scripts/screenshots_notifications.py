"""Screenshots of the notification parts for docs/screenshots/, in Debian's headless Chromium:

- phone-notifications.png: the citizen's page (390×844, whole page) with SMS on (and its "Tắt"
  button) and the web push button;
- admin-outbox.png: the branch manager's outbox (1920×1080): counts per status, dead letters with
  their errors and masked recipients, the "Gửi lại / Redrive" buttons, the latest messages.

    .venv/bin/python scripts/screenshots_notifications.py [--out docs/screenshots]

Starts its own `queuecast serve` on a free port of 127.0.0.1 (fixed clock Tuesday 2026-05-19 08:30,
a fresh database, QUEUECAST_NOTIFIER=worker so that nothing sends), makes a little traffic through
the API, writes the outbox rows a notifier would have written into the same SQLite file, and stops
the hub by its pid.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.auth import Tokens  # noqa: E402
from hub.store import open_store  # noqa: E402
from hub.store.outbox import DEAD, DELIVERED, DROPPED, FAILED, QUEUED, SENT, OutboxItem  # noqa: E402

SECRET = "screenshots-only"
START = "2026-05-19T08:30:00+07:00"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hub(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "QUEUECAST_DATABASE": f"sqlite:///{workdir}/hub.db", "QUEUECAST_SECRET": SECRET,
           "QUEUECAST_CLOCK": START, "QUEUECAST_NOTIFIER": "worker", "QUEUECAST_ISSUE_RATE": "1000/60",
           "QUEUECAST_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    log = open(workdir / "hub.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the hub did not start; see " + str(workdir / "hub.log"))


def traffic(api: httpx.Client) -> list[dict]:
    staff = {"Authorization": f"Bearer {Tokens(SECRET).staff('1')}"}
    for counter, fields in (("1", ["dat-dai"]), ("6", ["ho-tich"])):
        api.post(f"/api/branches/1/counters/{counter}/open", json={"services": fields}, headers=staff).raise_for_status()
    tickets = []
    for i in range(12):
        # A clerk issues them (staff may; an anonymous kiosk off a lobby network may not).
        r = api.post("/api/branches/1/tickets", json={"service": "dat-dai" if i % 3 else "ho-tich", "channel": "kiosk",
                                                     **({"phone": f"09123456{i:02d}"} if i % 2 == 0 else {})},
                     headers=staff)
        r.raise_for_status()
        tickets.append(r.json())
    for counter in ("1", "6", "1"):
        api.post(f"/api/branches/1/counters/{counter}/call-next", headers=staff).raise_for_status()
    return tickets


def outbox_rows(tickets: list[dict], now: float) -> list[OutboxItem]:
    """What a notifier would have owed and done in the quarter hour after these numbers were taken, with
    a few things gone wrong (the hub's clock stays at 08:30; the rows are dated up to 08:45)."""
    push = {"endpoint": "https://fcm.googleapis.com/fcm/send/dGVzdA", "keys": {"p256dh": "x", "auth": "y"}}
    rows = []

    def add(t: dict, trigger: str, channel: str, status: str, minutes: float, **kw):
        recipient = push if channel == "push" else kw.pop("phone", "+84912345600")
        rows.append(OutboxItem(f"1/{t['ticket']}:{trigger}:{channel}", "1", t["ticket"], trigger, channel, recipient,
                               {"number": t["number"]}, created=now + minutes * 60 - 30,
                               next_at=now + minutes * 60, updated=now + minutes * 60, status=status, **kw))

    for i, t in enumerate(tickets):
        if i % 2 == 0:
            add(t, "issued", "sms", DELIVERED if i < 8 else SENT, 0.1 * i + 0.2, phone=f"+849123456{i:02d}",
                attempts=1, provider_id=f"sms-{i}")
    add(tickets[0], "called", "sms", DELIVERED, 14, phone="+84912345600", attempts=1, provider_id="sms-c0")
    add(tickets[1], "ahead", "push", SENT, 12, attempts=1)
    add(tickets[4], "ahead", "sms", DEAD, 11, phone="+84912345604", attempts=6, error="timeout",
        detail="no answer in time")
    add(tickets[6], "ahead", "sms", FAILED, 12.5, phone="+84912345606", attempts=1, error="invalid_number",
        detail="The 'To' number +84912345606 is not a valid phone number.")
    add(tickets[7], "ahead", "push", FAILED, 13, attempts=1, error="subscription_gone",
        detail="Received 410 Gone: subscription expired or unsubscribed")
    add(tickets[3], "ahead", "sms", DROPPED, 10, phone="+84912345603", attempts=0, detail="served before its turn came")
    add(tickets[10], "ahead", "sms", QUEUED, 15, phone="+84912345610")
    return rows


async def seed(db: str, rows: list[OutboxItem]) -> None:
    async with open_store(db) as store:
        await store.outbox.add(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_hub(Path(tmp))
        try:
            with httpx.Client(base_url=url, timeout=10) as api:
                tickets = traffic(api)
                mine = tickets[-2]                  # waiting, with a phone: SMS already on
                now = datetime.fromisoformat(api.get("/api/branches/1").json()["now"]).timestamp()
            asyncio.run(seed(f"sqlite:///{tmp}/hub.db", outbox_rows(tickets, now)))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                            locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
                page = phone.new_page()
                page.goto(f"{url}/t/{mine['token']}")
                page.locator("#push").wait_for(state="visible")     # shown once the worker is registered
                page.screenshot(path=str(out / "phone-notifications.png"), full_page=True)
                admin = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="vi-VN",
                                            timezone_id="Asia/Ho_Chi_Minh")
                page = admin.new_page()
                page.goto(f"{url}/admin/1?token={Tokens(SECRET).staff('1')}")
                page.locator("#outbox").scroll_into_view_if_needed()
                page.evaluate("document.getElementById('outbox').scrollIntoView({block: 'start'})")
                page.screenshot(path=str(out / "admin-outbox.png"))
                browser.close()
        finally:
            proc.terminate()                        # the hub this script started, by its pid
            proc.wait(timeout=10)
    print(f"wrote {out / 'phone-notifications.png'} and {out / 'admin-outbox.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
