"""Screenshots of every page for docs/screenshots/, taken in Debian's headless Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--warmup 25]

Starts its own `queuecast demo` on a free port of 127.0.0.1 with a fixed clock (Tuesday
2026-05-19 09:00) and a fresh database, lets the simulated traffic build up, then captures the TV
board at 1920×1080, the phone page and the branch chooser at 375×740, the kiosk at 1080×1920 and
its printed ticket, the counter console and the admin page at 1280×800. Stops the demo by its pid.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SECRET = "screenshots-only"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "QUEUECAST_DATABASE": f"sqlite:///{workdir}/demo.db", "QUEUECAST_SECRET": SECRET,
           "QUEUECAST_CLOCK": "2026-05-19T09:00:00+07:00"}
    log = open(workdir / "demo.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "hub", "demo", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the demo did not start; see " + str(workdir / "demo.log"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--warmup", type=float, default=25.0, help="seconds of simulated traffic first")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from hub.auth import Tokens

    staff = Tokens(SECRET).staff("1")
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_demo(Path(tmp))
        try:
            time.sleep(args.warmup)
            # One ticket of our own to show on the phone page and the printed ticket.
            ticket = httpx.post(f"{url}/api/branches/1/tickets", json={"service": "ho-tich", "channel": "kiosk"},
                                timeout=5).json()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

                def shot(name: str, path: str, viewport: dict, *, full_page: bool = False, wait: float = 2.0,
                         media: str | None = None) -> None:
                    ctx = browser.new_context(viewport=viewport, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
                    page = ctx.new_page()
                    if media:
                        page.emulate_media(media=media)
                    page.goto(url + path)
                    page.wait_for_timeout(wait * 1000)
                    page.screenshot(path=str(out / name), full_page=full_page)
                    ctx.close()
                    print("wrote", out / name)

                shot("board-1080p.png", "/display/1", {"width": 1920, "height": 1080}, wait=4)
                shot("phone.png", f"/t/{ticket['token']}", {"width": 375, "height": 740})
                shot("branches-phone.png", "/branches", {"width": 375, "height": 740}, full_page=True)
                shot("kiosk.png", "/kiosk/1", {"width": 1080, "height": 1920})
                shot("kiosk-ticket-print.png", f"/kiosk/1/ticket?token={ticket['token']}", {"width": 302, "height": 600},
                     media="print", full_page=True)
                shot("counter.png", f"/counter/1/6?token={staff}", {"width": 1280, "height": 800})
                shot("admin.png", f"/admin/1?token={staff}", {"width": 1280, "height": 800})
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)          # only the demo this script started
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
