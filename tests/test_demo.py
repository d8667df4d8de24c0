"""`queuecast demo`: where its clock starts, the citizens it makes up, and the real thing coming alive
in a subprocess whatever today's date is."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from datetime import datetime

import httpx
import pytest

from hub.demo import demo_clock, demo_start, fake_citizen
from hub.domain import calendar, identity
from hub.phones import normalize_phone
from hub.settings import Settings

from conftest import SECRET, TZ, free_port
from waiting import deadline, wait_until


def at(*args) -> datetime:
    return datetime(*args, tzinfo=TZ)


@pytest.mark.parametrize("real_now, expected", [
    (at(2026, 5, 24, 23, 0), at(2026, 5, 25, 8, 30)),     # Sunday night → Monday morning
    (at(2026, 5, 22, 18, 0), at(2026, 5, 25, 8, 30)),     # Friday evening → next Monday
    (at(2026, 5, 23, 10, 0), at(2026, 5, 25, 8, 30)),     # Saturday daytime → Monday
    (at(2026, 5, 19, 7, 0), at(2026, 5, 19, 8, 30)),      # Tuesday before opening → that morning
    (at(2026, 5, 19, 10, 0), None),                       # Tuesday 10:00: real time will do
    (at(2026, 5, 19, 8, 0), None),                        # kiosk issuing just opened
    (at(2026, 5, 19, 15, 45), at(2026, 5, 20, 8, 30)),    # 15 min of issuing left: too little
    (at(2026, 5, 19, 16, 30), at(2026, 5, 20, 8, 30)),    # after the cut-off → Wednesday
    (at(2026, 4, 29, 18, 0), at(2026, 5, 4, 8, 30)),      # eve of 30/4 and 1/5, then a weekend
    (at(2026, 4, 30, 10, 0), at(2026, 5, 4, 8, 30)),      # a holiday in working hours
    (at(2026, 11, 23, 20, 0), at(2026, 11, 25, 8, 30)),   # Monday night before 24/11 (a holiday)
    (at(2026, 8, 21, 18, 0), at(2026, 8, 22, 8, 30)),     # Friday before a make-up Saturday
])
def test_demo_start(centre, real_now, expected):
    branch = centre.branches["1"]
    start = demo_start(branch, real_now)
    assert start == expected
    if start is not None:        # the hub clock then starts where a kiosk issues numbers for that day
        assert calendar.issuing_day(branch, start, "kiosk") == start.date()


def test_demo_clock_honours_queuecast_clock(centre):
    clock, note = demo_clock(Settings(clock="2026-05-24T23:00:00+07:00", secret=SECRET), centre)
    assert note is None
    assert abs((clock.now() - at(2026, 5, 24, 23, 0)).total_seconds()) < 5


def test_made_up_citizens_are_valid():
    rng = random.Random(7)
    people = [fake_citizen(rng, 2026) for _ in range(2000)]
    for cccd, phone in people:
        assert identity.validate_cccd(cccd) == cccd and cccd[3] in "0123"
        assert 18 <= 2026 - identity.birth_year(cccd) <= 92
        if phone is not None:
            assert normalize_phone(phone) == "+84" + phone[1:]
    assert sum(2026 - identity.birth_year(c) >= 75 for c, _ in people) > 100       # priority shows
    assert 800 < sum(p is not None for _, p in people) < 1200                      # about half


def test_demo_comes_alive_whatever_the_date(tmp_path, centre):
    """The real command, real time (QUEUECAST_CLOCK unset): numbers are issued and called."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env.update(QUEUECAST_DATABASE=f"sqlite:///{tmp_path}/demo.db", QUEUECAST_SECRET=SECRET)
    shifted_before = demo_start(centre.branches["1"], datetime.now(TZ)) is not None
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", "demo", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        last = [None]

        def moving():
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n{log.read_text()}"
            try:
                last[0] = view = httpx.get(f"{url}/api/branches/1", timeout=deadline(5)).json()
            except (httpx.HTTPError, ValueError):
                return None
            issued = sum(s["daily_cap"] - s["numbers_left"] for s in view["services"])
            return view if issued > 0 and view["now_serving"] else None
        view = wait_until(moving, lambda: f"branch 1 moving (last view {last[0]}):\n{log.read_text()}",
                          timeout=60, interval=0.5)
        assert view["issuing"]["kiosk"], view          # the demo clock is within issuing hours
        assert sum(c["open"] for c in view["counters"]) > 0

        text = log.read_text()
        for line in (f"{url}/", f"{url}/api", f"{url}/api/branches/1"):
            assert line in text
        shifted_after = demo_start(centre.branches["1"], datetime.now(TZ)) is not None
        if shifted_before == shifted_after:            # not straddling a boundary of the hours
            assert ("Demo clock: " in text) == shifted_after
        token = re.search(r"qc1\.[\w-]+\.[\w-]+", text).group(0)
        r = httpx.post(f"{url}/api/branches/1/counters/16/call-next",
                       headers={"Authorization": f"Bearer {token}"}, timeout=deadline(30))
        assert r.status_code in (200, 409), r.text   # the printed staff token is accepted
    finally:
        proc.terminate()                                # only the process this test started
        try:
            proc.wait(timeout=deadline(30))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=deadline(30))
    text = log.read_text()
    # uvicorn re-raises the SIGTERM it caught once shut down; what matters is a clean lifespan end
    assert proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in text, text
    assert "demo step failed" not in text and "Traceback" not in text, text
