"""Real `python -m hub serve` processes on 127.0.0.1: uvicorn, real sockets, SQLite on disk, kill -9."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime, timedelta

import httpx
import pytest

from hub.auth import Tokens

from conftest import SECRET, bearer
from waiting import deadline, until, within

pytestmark = pytest.mark.anyio      # see tests/test_api.py: parametrized coroutines need the module mark

B, LAND = "1", "dat-dai"
TOKENS = Tokens(SECRET)
STAFF = bearer(TOKENS.staff(B))
TIMEOUT = httpx.Timeout(deadline(30))


def http(hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT)


async def issue(c: httpx.AsyncClient, service: str = LAND, **body) -> dict:
    r = await c.post(f"/api/branches/{B}/tickets", json={"service": service, "channel": "kiosk", **body})
    assert r.status_code == 201, r.text
    return r.json()


async def branch(c: httpx.AsyncClient) -> dict:
    r = await c.get(f"/api/branches/{B}")
    assert r.status_code == 200, r.text
    return r.json()


def svc(view: dict, service: str = LAND) -> dict:
    return next(s for s in view["services"] if s["id"] == service)


def command_lines(log) -> list[dict]:
    """The hub's JSON command log lines, in the order they were written."""
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "cmd" in rec:
                out.append(rec)
    return out


async def test_the_flow_over_uvicorn(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    async with http(hub) as c:
        a = await issue(c)
        b = await issue(c)
        assert (a["number"], b["number"], a["position"], b["position"]) == ("1001", "1002", 1, 2)
        assert a["issued_at"].startswith("2026-05-19T09:") and a["issued_at"].endswith("+07:00")

        r = await c.post(f"/api/branches/{B}/counters/1/open", json={"services": [LAND]},
                         headers=bearer(TOKENS.staff(B, "1")))
        assert r.status_code == 200 and r.json()["counter"]["open"] is True
        r = await c.post(f"/api/branches/{B}/counters/1/call-next", headers=bearer(TOKENS.staff(B, "1")))
        assert r.status_code == 200, r.text
        assert r.json()["ticket"]["number"] == "1001" and r.json()["ticket"]["counter"] == "1"

        r = await c.get(f"/api/tickets/{a['token']}")
        assert r.status_code == 200 and r.json()["state"] == "called" and r.json()["counter"] == "1"
        r = await c.get(f"/api/tickets/{b['token']}", params={"travel_minutes": 5})
        t = r.json()
        assert r.status_code == 200 and t["state"] == "waiting" and t["position"] == 1 and t["people_ahead"] == 0
        assert t["eta"]["p10"] <= t["eta"]["p50"] <= t["eta"]["p90"]
        assert t["leave_by"].endswith("+07:00")

        v = await branch(c)
        assert v["seq"] == 4 and svc(v)["waiting"] == 1
        assert svc(v)["now_serving"] == [{"number": "1001", "counter": "1"}]

        r = await c.post(f"/api/branches/{B}/tickets", content=b"{nope", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
        r = await c.get("/nowhere")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await branch(c))["seq"] == 4
        r = await c.get("/readyz")
        assert r.status_code == 200 and r.json()["store"] == "ok" and r.json()["broker"] == "ok"


async def test_deeply_nested_json_is_a_bad_request_not_a_fault(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    nested = b'{"service": ' + b"[" * 5000 + b"]" * 5000 + b"}"       # 10 KB, within the body limit
    async with http(hub) as c:
        before = await branch(c)
        r = await c.post(f"/api/branches/{B}/tickets", content=nested, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "malformed_json"
        after = await branch(c)
        assert (after["seq"], after["waiting"]) == (before["seq"], before["waiting"])


async def test_concurrent_call_next_calls_every_number_once(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    counters = [str(i) for i in range(1, 7)]            # 1-5 serve dat-dai, 6 is opened for it too
    async with http(hub) as c:
        for cid in counters:
            r = await c.post(f"/api/branches/{B}/counters/{cid}/open", json={"services": [LAND]}, headers=STAFF)
            assert r.status_code == 200, r.text
        issued = [await issue(c) for _ in range(60)]
        numbers = [t["number"] for t in issued]
        assert len(set(numbers)) == 60
        seq0 = (await branch(c))["seq"]

        gate = asyncio.Semaphore(30)

        async def press(i: int):
            cid = counters[i % len(counters)]
            async with gate:
                r = await c.post(f"/api/branches/{B}/counters/{cid}/call-next",
                                 headers=bearer(TOKENS.staff(B, cid)))
            return cid, r

        answers = await within(asyncio.gather(*(press(i) for i in range(120))), "120 presses answered", 120)

    ok = [(cid, r.json()) for cid, r in answers if r.status_code == 200]
    refused = [r for _, r in answers if r.status_code != 200]
    for r in refused:
        assert r.status_code == 409 and r.json()["error"]["code"] == "queue_empty", r.text
    called = [body["ticket"]["number"] for _, body in ok]
    completed = [n for _, body in ok for n in body["completed"]]
    assert len(called) == len(set(called)) == 60, sorted(called)
    assert set(called) == set(numbers)
    assert len(refused) == 60
    assert len(completed) == len(set(completed)) == 54
    for cid, body in ok:
        assert body["ticket"]["counter"] == cid and body["ticket"]["state"] == "called"

    async with http(hub) as c:
        v = await branch(c)
        assert v["waiting"] == 0 and svc(v)["waiting"] == 0
        current = {ct["id"]: ct["current"]["number"] for ct in v["counters"] if ct["current"]}
        assert set(current) == set(counters)
        assert set(current.values()) | set(completed) == set(called)
        assert not set(current.values()) & set(completed)
        assert v["seq"] == seq0 + 60 + 54                     # one event per call, one per completion
        states = {}
        for t in issued:
            r = await c.get(f"/api/tickets/{t['token']}")
            states[t["number"]] = r.json()["state"]
        assert {n for n, s in states.items() if s == "called"} == set(current.values())
        assert {n for n, s in states.items() if s == "completed"} == set(completed)


async def test_acknowledged_commands_survive_kill_9(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    expected: dict[str, tuple[str, str]] = {}      # token → (number, state) from acknowledged answers
    async with http(hub) as c:
        r = await c.post(f"/api/branches/{B}/counters/1/open", json={}, headers=STAFF)
        assert r.status_code == 200
        first = [await issue(c) for _ in range(10)]
        for t in first:
            expected[t["token"]] = (t["number"], "waiting")
        for i in range(3):
            r = await c.post(f"/api/branches/{B}/counters/1/call-next", headers=STAFF)
            assert r.status_code == 200
            if i:
                expected[first[i - 1]["token"]] = (first[i - 1]["number"], "completed")
            expected[first[i]["token"]] = (first[i]["number"], "called")
        base_events = 1 + 10 + 1 + 2 + 2          # open, issues, call, (complete + call) twice
        assert (await branch(c))["seq"] == base_events

    # mid-traffic: kiosks keep issuing while the process is killed
    acked: list[dict] = []
    enough = asyncio.Event()

    async def kiosk(c: httpx.AsyncClient):
        for _ in range(300):
            try:
                r = await c.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "kiosk"})
            except httpx.HTTPError:
                return
            if r.status_code != 201:
                return
            acked.append(r.json())
            if len(acked) >= 40:
                enough.set()

    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        workers = [asyncio.create_task(kiosk(c)) for _ in range(4)]
        try:
            await within(enough.wait(), "40 numbers acknowledged before the kill", 60)
        finally:
            await asyncio.to_thread(hub.kill9)
            await within(asyncio.gather(*workers, return_exceptions=True), "the kiosks to stop after the kill")
    assert len(acked) >= 40
    assert hub.proc.returncode == -9
    for t in acked:
        expected[t["token"]] = (t["number"], "waiting")

    again = hub_factory(hub_env)                     # same database, same secret
    async with http(again) as c:
        for token, (number, state) in expected.items():
            r = await c.get(f"/api/tickets/{token}")
            assert r.status_code == 200, (number, r.text)
            assert (r.json()["number"], r.json()["state"]) == (number, state)

        v = await branch(c)
        seq = v["seq"]
        unacked = seq - base_events - len(acked)   # committed, but the answer was lost in the kill
        assert 0 <= unacked <= 4, (seq, len(acked))
        assert svc(v)["waiting"] == 7 + len(acked) + unacked
        assert v["counters"][0]["id"] == "1" and v["counters"][0]["open"] is True
        assert v["counters"][0]["current"] == {"number": first[2]["number"], "service": LAND}

        t = await issue(c)
        known = {n for n, _ in expected.values()}
        assert t["number"] not in known
        assert int(t["number"]) == 1001 + 10 + len(acked) + unacked        # no number reused or skipped
        assert (await branch(c))["seq"] == seq + 1
        r = await c.post(f"/api/branches/{B}/counters/1/call-next", headers=STAFF)
        assert r.status_code == 200
        assert r.json()["completed"] == [first[2]["number"]] and r.json()["ticket"]["number"] == first[3]["number"]
        assert (await branch(c))["seq"] == seq + 3


async def test_one_json_log_line_per_command_with_the_phone_masked(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    async with http(hub) as c:
        await issue(c, "ho-tich", phone="0912345678")
        r = await c.post(f"/api/branches/{B}/tickets",
                         json={"service": "phong-thuy", "channel": "kiosk", "phone": "0912345678"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_service"
        r = await c.post(f"/api/branches/{B}/counters/6/open", json={}, headers=STAFF)
        assert r.status_code == 200

    def commands() -> list[dict]:
        return command_lines(hub.log)

    await until(lambda: len(commands()) >= 3, lambda: f"3 command lines in the hub's log: {commands()}")
    hub.stop()
    text = hub.log.read_text(encoding="utf-8", errors="replace")
    recs = commands()

    issues = [r for r in recs if r["cmd"] == "issue"]
    assert len(issues) == 2, recs
    ok, refused = issues
    assert ok["outcome"] == "ok" and ok["branch"] == B and ok["service"] == "ho-tich"
    assert refused["outcome"] == "unknown_service"
    for rec in issues:
        assert "*" in rec["phone"] and rec["phone"].endswith("78"), rec
    assert [r["cmd"] for r in recs].count("counter.open") == 1
    assert "0912345678" not in text
    assert "912345678" not in text


@pytest.mark.slow             # the hub's SQLite busy_timeout (5 s) runs out once
async def test_a_failed_write_leaves_no_phantom_for_the_next_command(hub_factory, hub_env):
    """The store fails one write (the database is locked by another writer past the hub's busy
    timeout). A call-next queued behind the failed one must be decided on the log as it is: the
    failed call changed nothing, so the next call calls the same first number and completes none.

    Two presses go at once while the lock is held; whichever the hub takes first is the one that
    fails (no sleep orders them), and the lock goes as soon as its answer is back. The hub's log
    then shows the other one had arrived while the first was still waiting: it was queued behind."""
    hub = hub_factory(hub_env)
    db = hub_env["QUEUECAST_DATABASE"].removeprefix("sqlite:///")
    async with http(hub) as c:
        r = await c.post(f"/api/branches/{B}/counters/1/open", json={}, headers=STAFF)
        assert r.status_code == 200
        a, b, _ = await issue(c), await issue(c), await issue(c)
        seq0 = (await branch(c))["seq"]

        other = sqlite3.connect(db, timeout=deadline(30), isolation_level=None)     # another writer on the file
        try:
            other.execute("BEGIN IMMEDIATE")
            presses = [asyncio.create_task(c.post(f"/api/branches/{B}/counters/1/call-next", headers=STAFF))
                       for _ in range(2)]
            done, pending = await within(asyncio.wait(presses, return_when=asyncio.FIRST_COMPLETED),
                                         "the first press to be answered while the file is locked", 60)
        finally:
            other.rollback()
            other.close()
        [first] = done
        [second] = pending
        r1 = first.result()
        r2 = await within(second, "the second press to be answered once the lock is gone", 60)

        assert r1.status_code == 503 and r1.json()["error"]["code"] == "store_unavailable", r1.text
        assert r1.headers["retry-after"] == "2"
        assert r2.status_code == 200, r2.text
        assert r2.json()["completed"] == [], r2.json()          # the failed call completed nothing
        assert r2.json()["ticket"]["number"] == a["number"]     # and called no one
        r = await c.get(f"/api/tickets/{a['token']}")
        assert r.json()["state"] == "called"
        r = await c.get(f"/api/tickets/{b['token']}")
        assert r.json()["state"] == "waiting" and r.json()["position"] == 1
        v = await branch(c)
        assert v["seq"] == seq0 + 1 and svc(v)["waiting"] == 2

    calls = [rec for rec in command_lines(hub.log) if rec["cmd"] == "call-next"]
    assert [rec["outcome"] for rec in calls] == ["store_unavailable", "ok"], calls
    failed, ok = calls
    failed_at = datetime.fromisoformat(failed["ts"])
    ok_arrived = datetime.fromisoformat(ok["ts"]) - timedelta(milliseconds=ok["ms"])
    # "ms" runs from the command's arrival (before the branch lock) to its log line; ts is kept to
    # the millisecond, hence the one of slack.
    assert ok_arrived <= failed_at + timedelta(milliseconds=1), (
        "the second press was not queued behind the failing one", failed, ok)


async def test_one_idempotency_key_sent_to_two_processes_at_once_is_one_number(hub_factory, hub_env):
    """Two hub processes on one SQLite file, the same kiosk request (same Idempotency-Key) sent to
    both at the same instant, 30 times: whichever appends second meets a conflict, and must find the
    first one's answer under the key, not decide again and trip over the key (that was a 500)."""
    a, b = hub_factory(hub_env), hub_factory(hub_env)
    body = {"service": LAND, "channel": "kiosk"}
    async with http(a) as ca, http(b) as cb:
        for i in range(30):
            headers = {"Idempotency-Key": f"race-{i}"}
            ra, rb = await asyncio.gather(ca.post(f"/api/branches/{B}/tickets", json=body, headers=headers),
                                          cb.post(f"/api/branches/{B}/tickets", json=body, headers=headers))
            assert (ra.status_code, rb.status_code) == (201, 201), (ra.text, rb.text)
            assert ra.json()["number"] == rb.json()["number"], i
        numbers = {s["id"]: s for s in (await branch(ca))["services"]}[LAND]
    db = sqlite3.connect(hub_env["QUEUECAST_DATABASE"].removeprefix("sqlite:///"))
    try:
        issued = db.execute("SELECT COUNT(*) FROM events WHERE branch = ? AND body LIKE '%ticket.issued%'",
                            (B,)).fetchone()[0]
    finally:
        db.close()
    assert issued == 30, numbers
