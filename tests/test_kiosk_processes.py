"""Kiosk devices across processes: `queuecast token kiosk` enrols through the log, so its token works
against running hubs; a revocation in one hub process refuses the device in another at once (two
hubs on one SQLite file; two hubs on the test Redis); the pace holds across processes, because it
is judged from the log."""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys

import httpx
import pytest

from hub.auth import Tokens

from conftest import SECRET, bearer, running_app
from waiting import deadline

pytestmark = pytest.mark.anyio

B = "1"
CIVIL = "ho-tich"
TOKENS = Tokens(SECRET)
HTTP = deadline(30)


def bare_env(hub_env: dict[str, str]) -> dict[str, str]:
    """hub_env on the bundled configuration: no lobby network, kiosks must be enrolled."""
    return {k: v for k, v in hub_env.items() if k != "QUEUECAST_CONFIG"}


def queuecast(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "hub", *args], env=full, capture_output=True, text=True,
                          timeout=deadline(60))


def issued_in(database: str) -> int:
    db = sqlite3.connect(database.removeprefix("sqlite:///"))
    try:
        return db.execute("SELECT COUNT(*) FROM events WHERE branch = ? AND body LIKE '%ticket.issued%'",
                          (B,)).fetchone()[0]
    finally:
        db.close()


def take(client: httpx.Client, token: str | None) -> httpx.Response:
    return client.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "kiosk"},
                       headers=bearer(token) if token else {})


def test_the_cli_enrols_a_device_and_a_revocation_in_one_process_holds_in_another(hub_factory, hub_env):
    env = bare_env(hub_env)
    a, b = hub_factory(env), hub_factory(env)                # two hub processes, one SQLite file
    with httpx.Client(base_url=a.url, timeout=HTTP) as ca, httpx.Client(base_url=b.url, timeout=HTTP) as cb:
        assert take(ca, None).status_code == 401                  # no lobby here: a device is needed

        p = queuecast(env, "token", "kiosk", "--branch", B, "--name", "Sảnh A")
        assert p.returncode == 0, p.stderr
        [token] = p.stdout.split()
        claims = TOKENS.verify(token)
        assert (claims.kind, claims.branch) == ("kiosk", B) and claims.device
        assert "Sảnh A" in p.stderr and claims.device in p.stderr

        # Both running hubs honour it at once (each reads the log for a device it does not know).
        assert take(ca, token).status_code == 201
        assert take(cb, token).status_code == 201
        r = cb.get(f"/api/branches/{B}/kiosks", headers=bearer(TOKENS.staff(B)))
        [listed] = r.json()["devices"]
        assert (listed["name"], listed["state"], listed["by"], listed["issued_today"]) == ("Sảnh A", "active", "cli", 2)

        r = ca.delete(f"/api/branches/{B}/kiosks/{claims.device}", headers=bearer(TOKENS.staff(B)))
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        r = take(cb, token)                                       # the other process, straight away
        assert r.status_code == 401 and r.json()["error"]["code"] == "device_revoked", r.text
        r = cb.get(f"/api/branches/{B}/kiosks/me", headers=bearer(token))
        assert r.status_code == 401 and r.json()["error"]["code"] == "device_revoked", r.text
        assert issued_in(env["QUEUECAST_DATABASE"]) == 2

    again = hub_factory(env)                                      # and after a restart
    with httpx.Client(base_url=again.url, timeout=HTTP) as c:
        r = take(c, token)
        assert r.status_code == 401 and r.json()["error"]["code"] == "device_revoked"
    assert issued_in(env["QUEUECAST_DATABASE"]) == 2


@pytest.mark.parametrize("args, words", [
    (["token", "kiosk", "--branch", "13"], ["13"]),
    (["token", "kiosk"], ["--branch"]),
    (["token", "kiosk", "--branch", B, "--name", "x" * 61], ["60"]),
])
def test_bad_kiosk_enrolments_exit_2_with_one_line(tmp_path, args, words):
    db = tmp_path / "cli.db"
    sqlite3.connect(db).close()                               # an existing (empty) database
    p = queuecast({"QUEUECAST_DATABASE": f"sqlite:///{db}", "QUEUECAST_SECRET": SECRET}, *args)
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_the_cli_will_not_enrol_into_a_database_that_is_not_there(tmp_path):
    env = {"QUEUECAST_DATABASE": f"sqlite:///{tmp_path}/nowhere.db", "QUEUECAST_SECRET": SECRET}
    p = queuecast(env, "token", "kiosk", "--branch", B)
    assert p.returncode == 2 and "no database" in p.stderr and p.stdout == ""
    assert not (tmp_path / "nowhere.db").exists()


async def test_on_redis_a_revocation_in_one_hub_refuses_the_device_in_the_other_and_the_pace_spans_both(
        redis_url, settings, clock):
    """Two hubs on the test Redis (in this process, each with its own store, broker and state, one clock)."""
    shared = dataclasses.replace(settings, database=redis_url, config="")
    async with running_app(shared, clock) as a, running_app(shared, clock) as b:
        r = await a.post(f"/api/branches/{B}/kiosks", json={"name": "Sảnh R"}, headers=bearer(TOKENS.staff(B)))
        assert r.status_code == 201, r.text
        r = await b.post(f"/api/branches/{B}/kiosks/enrol", json={"code": r.json()["enrol_code"]})
        assert r.status_code == 200, r.text
        token, device = r.json()["token"], r.json()["device"]

        # A burst alternating between the two hubs: one bucket for the device, whichever hub answers.
        codes = []
        for i in range(20):
            c = (a, b)[i % 2]
            codes.append((await c.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "kiosk"},
                                       headers=bearer(token))).status_code)
        assert codes.count(201) == 6 and codes.count(429) == 14, codes

        clock.advance(seconds=10)
        r = await b.delete(f"/api/branches/{B}/kiosks/{device}", headers=bearer(TOKENS.staff(B)))
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        r = await a.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "kiosk"},
                         headers=bearer(token))
        assert r.status_code == 401 and r.json()["error"]["code"] == "device_revoked", r.text
        issued = [ev for ev in await a.app.state.service.events_since(B, 0) if ev["type"] == "ticket.issued"]
        assert len(issued) == 6 and {ev["device"] for ev in issued} == {device}
