"""The `queuecast` command (README, "Commands"), run as `python -m hub` in a subprocess, and the
trace format of section 5 as `export-trace` writes it."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hub.auth import Tokens

from conftest import SECRET, bearer, running_app
from trace_format import TRACE_FIELDS
from waiting import deadline

pytestmark = pytest.mark.anyio      # see tests/test_api.py: parametrized coroutines need the module mark

B = "1"
CCCD = "001090123456"
CLI_TIMEOUT = deadline(60)       # a hang guard on each command run, scaled

OPTIONAL = {"ticket.issued": {"priority"}}
ISO_LOCAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?\+07:00")


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env.update({"QUEUECAST_DATABASE": f"sqlite:///{tmp_path}/cli.db", "QUEUECAST_SECRET": SECRET})
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)


def assert_usage_error(p: subprocess.CompletedProcess, *words: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in p.stderr
    return lines[0]


def one_token(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout
    return lines[0]


# -- token -----------------------------------------------------------------------------------------

async def test_staff_token_is_accepted_by_the_hub(tmp_path, client):
    token = one_token(run(cli_env(tmp_path), "token", "staff", "--branch", B))
    claims = Tokens(SECRET).verify(token)
    assert (claims.kind, claims.branch, claims.counter) == ("staff", B, None)
    assert 13 * 3600 < claims.exp - time.time() <= 14 * 3600 + 5

    r = await client.post(f"/api/branches/{B}/counters/1/open", json={}, headers=bearer(token))
    assert r.status_code == 200, r.text
    r = await client.post("/api/branches/2/counters/1/open", json={}, headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_branch"
    assert Tokens("another secret").staff(B) != token


async def test_counter_token_is_bound_to_its_counter(tmp_path, client):
    token = one_token(run(cli_env(tmp_path), "token", "staff", "--branch", B, "--counter", "3"))
    assert Tokens(SECRET).verify(token).counter == "3"
    r = await client.post(f"/api/branches/{B}/counters/3/open", json={}, headers=bearer(token))
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/branches/{B}/counters/4/open", json={}, headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_counter"


async def test_citizen_token_is_accepted_for_online_numbers(tmp_path, client):
    token = one_token(run(cli_env(tmp_path), "token", "citizen", "--id", CCCD, "--phone", "0912 345 678"))
    claims = Tokens(SECRET).verify(token)
    assert (claims.kind, claims.cccd, claims.phone) == ("citizen", CCCD, "+84912345678")
    r = await client.post(f"/api/branches/{B}/tickets", json={"service": "ho-tich", "channel": "online"},
                          headers=bearer(token))
    assert r.status_code == 201, r.text


def test_token_without_a_secret_uses_the_one_kept_beside_the_database(tmp_path):
    env = cli_env(tmp_path)
    del env["QUEUECAST_SECRET"]
    first = one_token(run(env, "token", "staff", "--branch", B))
    files = [f for f in tmp_path.iterdir() if f.is_file()]
    assert len(files) == 1 and files[0].name.startswith("cli.db"), files      # beside the database file
    kept = files[0].read_text().strip()
    assert kept and kept != SECRET
    assert Tokens(kept).verify(first).branch == B
    second = one_token(run(env, "token", "staff", "--branch", "2"))
    assert Tokens(kept).verify(second).branch == "2"             # generated once, then reused


@pytest.mark.parametrize("args, words", [
    (["token", "staff", "--branch", "13"], ["13"]),
    (["token", "staff", "--branch", "x"], ["x"]),
    (["token", "staff", "--branch", B, "--counter", "99"], ["99"]),
    (["token", "staff", "--branch", B, "--hours", "0"], ["--hours"]),
    (["token", "citizen", "--id", "12345"], []),
    (["token", "citizen", "--id", "00109012345x"], []),
    (["token", "citizen", "--id", "0010901234567"], []),
    (["token", "citizen", "--id", "\uff10\uff10\uff11\uff10\uff19\uff10\uff11\uff12\uff13\uff14\uff15\uff16"], []),  # full-width digits
    (["token", "citizen", "--id", CCCD, "--phone", "12345"], []),
])
def test_bad_token_arguments_exit_2_with_one_line(tmp_path, args, words):
    assert_usage_error(run(cli_env(tmp_path), *args), *words)


def test_bad_settings_exit_2_naming_the_variable(tmp_path):
    p = run(cli_env(tmp_path, QUEUECAST_DATABASE="postgres://nope"), "token", "staff", "--branch", B)
    assert_usage_error(p, "QUEUECAST_DATABASE")


def test_help(tmp_path):
    p = run(cli_env(tmp_path), "--help")
    assert p.returncode == 0, p.stderr
    for command in ("serve", "demo", "token", "export-trace"):
        assert command in p.stdout
    p = run(cli_env(tmp_path), "token", "staff", "--help")
    assert p.returncode == 0 and "--branch" in p.stdout and "--counter" in p.stdout


def test_missing_arguments_exit_2(tmp_path):
    p = run(cli_env(tmp_path), "token", "staff")
    assert p.returncode == 2 and "--branch" in p.stderr and p.stdout == ""
    p = run(cli_env(tmp_path), "no-such-command")
    assert p.returncode == 2 and p.stdout == ""


# -- export-trace ----------------------------------------------------------------------------------

def parse_trace(text: str) -> list[dict]:
    assert text.endswith("\n") or text == ""
    lines = []
    for i, line in enumerate(text.splitlines(), 1):
        ev = json.loads(line)
        assert isinstance(ev, dict), (i, line)
        lines.append(ev)
    return lines


def check_trace_lines(events: list[dict], branch: str = B) -> None:
    previous = None
    for i, ev in enumerate(events, 1):
        assert ev["type"] in TRACE_FIELDS, (i, ev)
        want = {"t", "type", "branch"} | TRACE_FIELDS[ev["type"]]
        assert set(ev) <= want and set(ev) >= want - OPTIONAL.get(ev["type"], set()), (i, ev)
        assert ev["branch"] == branch
        assert isinstance(ev["t"], str) and ISO_LOCAL.fullmatch(ev["t"]), (i, ev["t"])
        t = datetime.fromisoformat(ev["t"])
        assert t.utcoffset() == timedelta(hours=7)
        if previous is not None:
            assert t >= previous, (i, ev)                    # in time order
        previous = t
        for key in ("phone", "citizen", "cccd", "token", "by", "from_service", "number", "seq", "day"):
            assert key not in ev, (i, ev)
        if ev["type"] == "ticket.issued":
            assert ev["channel"] in ("kiosk", "online")
            assert isinstance(ev.get("priority", False), bool)
        if ev["type"] == "counter.opened":
            assert isinstance(ev["services"], list) and all(isinstance(s, str) for s in ev["services"])


def test_export_trace_of_a_day_run_through_a_real_hub(tmp_path, hub_factory, hub_env):
    hub = hub_factory(hub_env)
    tk = Tokens(SECRET)
    staff = bearer(tk.staff(B))
    with httpx.Client(base_url=hub.url, timeout=deadline(30)) as c:
        def post(path, body=None, headers=staff, status=200):
            r = c.post(path, json=body if body is not None else {}, headers=headers)
            assert r.status_code == status, (path, r.text)
            return r.json()

        post(f"/api/branches/{B}/counters/1/open", {"services": ["dat-dai"]})
        post(f"/api/branches/{B}/counters/6/open")
        a = post(f"/api/branches/{B}/tickets", {"service": "dat-dai", "channel": "kiosk", "phone": "0912345678"},
                 headers={}, status=201)
        b = post(f"/api/branches/{B}/tickets", {"service": "dat-dai", "channel": "online"},
                 headers=bearer(tk.citizen(CCCD, "0987654321")), status=201)
        c3 = post(f"/api/branches/{B}/tickets", {"service": "ho-tich", "channel": "kiosk", "priority": True},
                  headers=staff, status=201)         # staff confirm a priority case
        post(f"/api/branches/{B}/tickets/{b['number']}/check-in")
        assert post(f"/api/branches/{B}/counters/1/call-next")["ticket"]["number"] == a["number"]
        post(f"/api/branches/{B}/tickets/{a['number']}/recall")
        post(f"/api/branches/{B}/tickets/{a['number']}/skip")
        post(f"/api/branches/{B}/tickets/{a['number']}/recall")
        post(f"/api/branches/{B}/tickets/{a['number']}/complete")
        assert post(f"/api/branches/{B}/counters/1/call-next")["ticket"]["number"] == b["number"]
        post(f"/api/branches/{B}/tickets/{b['number']}/transfer", {"service": "ho-tich"})
        assert post(f"/api/branches/{B}/counters/6/call-next")["ticket"]["number"] == c3["number"]   # priority
        post(f"/api/branches/{B}/tickets/{b['number']}/cancel")
        d = post(f"/api/branches/{B}/tickets", {"service": "dat-dai", "channel": "kiosk"}, headers={}, status=201)
        r = c.delete(f"/api/tickets/{d['token']}")
        assert r.status_code == 200
        post(f"/api/branches/{B}/tickets/{c3['number']}/complete")
        post(f"/api/branches/{B}/counters/6/close")
        r = c.post(f"/api/branches/{B}/tickets", json={"service": "nope", "channel": "kiosk"})  # refused: no event
        assert r.status_code == 422
        seq = c.get(f"/api/branches/{B}").json()["seq"]

    live = run(hub_env, "export-trace", "--branch", B, "--date", "2026-05-19")
    assert live.returncode == 0, live.stderr
    hub.stop()
    p = run(hub_env, "export-trace", "--branch", B, "--date", "2026-05-19")
    assert p.returncode == 0, p.stderr
    assert p.stdout == live.stdout                         # read beside a running hub, or after it
    out = tmp_path / "day.jsonl"
    p2 = run(hub_env, "export-trace", "--branch", B, "--date", "2026-05-19", "-o", str(out))
    assert p2.returncode == 0 and p2.stdout == ""
    assert out.read_text(encoding="utf-8") == p.stdout

    for secret in ("912345678", "987654321", CCCD, a["token"], b["token"]):
        assert secret not in p.stdout
    events = parse_trace(p.stdout)
    check_trace_lines(events)
    assert all(e["t"].startswith("2026-05-19T09:") for e in events)
    A, Bt, C, D = a["ticket"], b["ticket"], c3["ticket"], d["ticket"]
    expected = [
        {"type": "counter.opened", "counter": "1", "services": ["dat-dai"]},
        {"type": "counter.opened", "counter": "6", "services": ["ho-tich"]},
        {"type": "ticket.issued", "ticket": A, "service": "dat-dai", "channel": "kiosk", "priority": False},
        {"type": "ticket.issued", "ticket": Bt, "service": "dat-dai", "channel": "online", "priority": False},
        {"type": "ticket.issued", "ticket": C, "service": "ho-tich", "channel": "kiosk", "priority": True},
        {"type": "ticket.checked_in", "ticket": Bt},
        {"type": "ticket.called", "ticket": A, "counter": "1"},
        {"type": "ticket.recalled", "ticket": A, "counter": "1"},
        {"type": "ticket.skipped", "ticket": A, "counter": "1"},
        {"type": "ticket.recalled", "ticket": A, "counter": "1"},
        {"type": "ticket.completed", "ticket": A, "counter": "1"},
        {"type": "ticket.called", "ticket": Bt, "counter": "1"},
        {"type": "ticket.transferred", "ticket": Bt, "service": "ho-tich"},
        {"type": "ticket.called", "ticket": C, "counter": "6"},
        {"type": "ticket.cancelled", "ticket": Bt},
        {"type": "ticket.issued", "ticket": D, "service": "dat-dai", "channel": "kiosk", "priority": False},
        {"type": "ticket.cancelled", "ticket": D},
        {"type": "ticket.completed", "ticket": C, "counter": "6"},
        {"type": "counter.closed", "counter": "6"},
    ]
    got = [{k: v for k, v in e.items() if k not in ("t", "branch", "priority")} for e in events]
    want = [{k: v for k, v in e.items() if k != "priority"} for e in expected]
    assert got == want
    for e, x in zip(events, expected):             # priority may be left out when false
        if x["type"] == "ticket.issued":
            assert e.get("priority", False) is x["priority"]
    assert len(events) == seq

    other_day = run(hub_env, "export-trace", "--branch", B, "--date", "2026-05-18")
    assert other_day.returncode == 0 and other_day.stdout == ""
    other_branch = run(hub_env, "export-trace", "--branch", "2", "--date", "2026-05-19")
    assert other_branch.returncode == 0 and other_branch.stdout == ""


async def test_export_trace_keeps_expiry_and_the_day_of_online_bookings(tmp_path, settings, clock):
    async with running_app(settings, clock) as client:
        tk = client.app.state.tokens
        r = await client.post(f"/api/branches/{B}/tickets", json={"service": "ho-tich", "channel": "kiosk"})
        waiting = r.json()
        clock.advance(hours=8)                                       # 17:00
        assert await client.app.state.service.tick() == 1
        clock.advance(hours=3, minutes=30)                           # 20:30: booking for Wednesday
        r = await client.post(f"/api/branches/{B}/tickets", json={"service": "ho-tich", "channel": "online"},
                              headers=bearer(tk.citizen(CCCD)))
        assert r.status_code == 201, r.text
        tomorrow = r.json()
    env = cli_env(tmp_path, QUEUECAST_DATABASE=settings.database)

    p = run(env, "export-trace", "--branch", B, "--date", "2026-05-19")
    assert p.returncode == 0, p.stderr
    events = parse_trace(p.stdout)
    check_trace_lines(events)
    assert [(e["type"], e["ticket"]) for e in events] == [("ticket.issued", waiting["ticket"]),
                                                          ("ticket.expired", waiting["ticket"])]
    assert events[1]["t"] == "2026-05-19T17:00:00+07:00"

    p = run(env, "export-trace", "--branch", B, "--date", "2026-05-20")
    assert p.returncode == 0, p.stderr
    events = parse_trace(p.stdout)
    check_trace_lines(events)
    assert [(e["type"], e["ticket"], e["channel"]) for e in events] == [("ticket.issued", tomorrow["ticket"], "online")]
    assert events[0]["t"] == "2026-05-19T20:30:00+07:00"             # taken the eve before, for the 20th

    # "-" is stdout, as for simulate; both files cannot be stdout; an unwritable path is one line.
    dash = run(env, "export-trace", "--branch", B, "--date", "2026-05-19", "-o", "-")
    assert dash.returncode == 0 and len(parse_trace(dash.stdout)) == 2 and not (tmp_path / "-").exists()
    preds = run(env, "export-trace", "--branch", B, "--date", "2026-05-19", "-o", str(tmp_path / "t.jsonl"),
                "--predictions", "-")
    assert preds.returncode == 0 and all(set(json.loads(x)) == {"t", "ticket", "p10", "p50", "p90"}
                                         for x in preds.stdout.splitlines())
    assert len(parse_trace((tmp_path / "t.jsonl").read_text())) == 2
    assert_usage_error(run(env, "export-trace", "--branch", B, "--date", "2026-05-19", "--predictions", "-"),
                       "stdout")
    assert_usage_error(run(env, "export-trace", "--branch", B, "--date", "2026-05-19", "-o", "/nonexistent/x"),
                       "cannot write /nonexistent/x")


def test_a_bad_or_busy_port_is_one_line_before_any_banner(tmp_path):
    env = cli_env(tmp_path)
    for command in ("serve", "demo"):
        assert_usage_error(run(env, command, "--port", "99999"), "--port", "1-65535")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("serve", "demo"):
            assert_usage_error(run(env, command, "--port", str(port)), f"127.0.0.1:{port}", "--port")


def test_simulate_into_a_closed_pipe_ends_quietly(tmp_path):
    env = cli_env(tmp_path)
    p = subprocess.run(f"'{sys.executable}' -m hub simulate --branch 12 --days 1 -o - | head -2", shell=True,
                       env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert len(p.stdout.splitlines()) == 2 and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


@pytest.mark.parametrize("date", ["2026-13-01", "19/05/2026", "yesterday", "2026-02-30", ""])
def test_export_trace_bad_date_exits_2(tmp_path, date):
    env = cli_env(tmp_path)
    (tmp_path / "cli.db").touch()
    assert_usage_error(run(env, "export-trace", "--branch", B, "--date", date), "--date")


def test_export_trace_unknown_branch_or_no_database_exits_2(tmp_path):
    env = cli_env(tmp_path)
    assert_usage_error(run(env, "export-trace", "--branch", "13", "--date", "2026-05-19"), "13")
    p = run(env, "export-trace", "--branch", B, "--date", "2026-05-19")
    assert_usage_error(p, "cli.db")
    assert not (tmp_path / "cli.db").exists()                      # a read does not create a database


# -- outbox and notifier ---------------------------------------------------------------------------

async def test_outbox_list_masks_recipients_and_redrive_moves_only_dead_letters(tmp_path, settings, clock):
    from dataclasses import replace

    from hub.store import open_store

    settings = replace(settings, database=f"sqlite:///{tmp_path}/cli.db")
    async with running_app(settings, clock) as client:
        r = await client.post("/api/branches/2/tickets", json={"service": "ho-tich", "channel": "kiosk",
                                                              "phone": "0912345678"})
        ticket, signature = r.json()["ticket"], r.json()["token"].split(".")[1]
    key = f"2/{ticket}:issued:sms"
    async with open_store(settings.database) as store:
        claimed = await store.outbox.claim(clock.now().timestamp(), 2, 60)
        assert sorted(i.key for i in claimed) == [f"2/{ticket}:ahead:sms", key]
        await store.outbox.fail(key, clock.now().timestamp(), "dead", "gateway_error",
                                "HTTP 500: the 'To' number +84912345678 was refused")
        await store.outbox.retry(f"2/{ticket}:ahead:sms", clock.now().timestamp(), clock.now().timestamp(), "timeout")
    env = cli_env(tmp_path)

    listed = run(env, "outbox", "list", "--status", "dead")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["key"], row["status"], row["error"], row["recipient"]) == (key, "dead", "gateway_error", "+8491*****78")
    assert "0912345678" not in listed.stdout and "912345678" not in listed.stdout
    assert signature not in listed.stdout and row["params"]["url"].endswith(".…")   # the holder's key stays out

    queued = run(env, "outbox", "list", "--status", "queued", "--branch", "2")
    assert [json.loads(line)["trigger"] for line in queued.stdout.splitlines()] == ["ahead"]

    assert_usage_error(run(env, "outbox", "redrive", f"2/{ticket}:ahead:sms"), "not a dead letter")
    assert_usage_error(run(env, "outbox", "redrive", "2/nope:issued:sms"), "no message with key")
    moved = run({**env, "QUEUECAST_CLOCK": clock.now().isoformat()}, "outbox", "redrive", key)
    assert (moved.returncode, moved.stdout) == (0, "re-driven: 1\n")
    async with open_store(settings.database) as store:      # due at the hub's clock, not the wall clock's
        claimed = await store.outbox.claim(clock.now().timestamp() + 5, 10, 60)
        assert key in {i.key for i in claimed}
        for i in claimed:
            assert await store.outbox.retry(i.key, clock.now().timestamp(), clock.now().timestamp(), "timeout")
    again = run(env, "outbox", "list", "--status", "queued")
    assert sorted(json.loads(line)["key"] for line in again.stdout.splitlines()) == sorted([key, f"2/{ticket}:ahead:sms"])


@pytest.mark.parametrize("args, words", [
    (["outbox", "list", "--status", "lost"], ["--status", "lost"]),
    (["outbox", "list", "--limit", "0"], ["--limit"]),
    (["outbox", "list", "--branch", "99"], ["99"]),
    (["notifier", "--lease", "0"], ["--lease"]),
])
def test_bad_outbox_and_notifier_arguments_exit_2(tmp_path, args, words):
    (tmp_path / "cli.db").touch()
    assert_usage_error(run(cli_env(tmp_path), *args), *words)
