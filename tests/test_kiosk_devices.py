"""Kiosk devices (issue 14, point 1): the kiosk channel takes numbers only from an enrolled, unrevoked
device of the branch (or, where the branch's policy allows it, an anonymous kiosk on its lobby
network), each device keeps to its pace, and each device's numbers are attributable in the log but
nowhere public. The real app in-process on a real SQLite file, with the bundled configuration (no
lobby network) unless a test says otherwise; every refusal is checked for its status, its error
shape and that nothing was issued.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from hub.auth import Tokens
from hub.config import ConfigError, parse_config
from hub.domain.events import public, to_trace
from hub.domain.kiosks import lobby_allows
from hub.settings import Settings, SettingsError

from conftest import SECRET, assert_error, bearer, running_app

pytestmark = pytest.mark.anyio

B = "1"
CULTURE = "van-hoa-the-thao-du-lich"      # branch 1's 60-number field, the one the burst emptied in 62 s
CIVIL = "ho-tich"
TOKENS = Tokens(SECRET)


@pytest.fixture
def bare(settings):
    """The bundled configuration: no branch has a lobby network, so kiosks must be enrolled."""
    return dataclasses.replace(settings, config="")


@pytest.fixture
async def app(bare, clock):
    async with running_app(bare, clock) as c:
        yield c


def manager(branch: str = B) -> dict:
    return bearer(TOKENS.staff(branch))


async def status(client, branch: str = B) -> dict:
    return (await client.get(f"/api/branches/{branch}")).json()


def left(view: dict, service: str) -> int:
    return next(s["numbers_left"] for s in view["services"] if s["id"] == service)


async def issued_events(client, branch: str = B) -> list[dict]:
    return [ev for ev in await client.app.state.service.events_since(branch, 0) if ev["type"] == "ticket.issued"]


async def enrol(client, branch: str = B, name: str | None = None) -> dict:
    """A device enrolled on the admin page and claimed by its kiosk: {token, device, name, branch}."""
    r = await client.post(f"/api/branches/{branch}/kiosks", json={"name": name} if name else {},
                          headers=manager(branch))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["state"] == "pending" and "token" not in made
    assert made["enrol_url"].endswith(f"/kiosk/{branch}#enrol={made['enrol_code']}")
    assert made["enrol_qr"].startswith("<svg")
    r = await client.post(f"/api/branches/{branch}/kiosks/enrol", json={"code": made["enrol_code"]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["device"], got["branch"]) == (made["device"], branch)
    return got


async def take(client, token: str | None = None, service: str = CIVIL, branch: str = B, **body):
    return await client.post(f"/api/branches/{branch}/tickets", json={"service": service, "channel": "kiosk", **body},
                             headers=bearer(token) if token else {})


# -- who may take a kiosk number ------------------------------------------------------------------------

async def test_an_anonymous_kiosk_is_refused_and_nothing_is_issued(app):
    before = await status(app)
    r = await take(app)
    err = assert_error(r, 401, "kiosk_device_required")
    assert r.headers["www-authenticate"] == "Bearer"
    assert "enrol" in err["message"] and "đăng ký" in err["message_vi"]
    assert await status(app) == before and await issued_events(app) == []


async def test_the_burst_from_one_address_without_a_device_token_issues_nothing(app):
    """Issue 14: branch 1's culture field (60 numbers) went in 62 s from one address. Now 0."""
    before = await status(app)
    assert left(before, CULTURE) == 60
    answers = [await take(app, service=CULTURE) for _ in range(70)]
    assert {r.status_code for r in answers} == {401}
    assert {r.json()["error"]["code"] for r in answers} == {"kiosk_device_required"}
    after = await status(app)
    assert left(after, CULTURE) == 60 and after["seq"] == before["seq"] and await issued_events(app) == []


async def test_tokens_that_are_no_kiosk_devices_are_refused(app):
    before = await status(app)
    citizen = TOKENS.citizen("001090123456")
    assert_error(await take(app, citizen), 403, "kiosk_device_required")
    device = await enrol(app, "2")
    assert_error(await take(app, device["token"]), 403, "wrong_branch")          # another branch's device
    code, _ = TOKENS.enrol_code(B, "k0123456789")
    assert_error(await take(app, code), 401, "invalid_token")                     # a code is no bearer token
    assert_error(await take(app, TOKENS.kiosk(B, "k0123456789")), 401, "device_not_enrolled")
    assert_error(await take(app, Tokens("another secret").kiosk(B, device["device"])), 401, "invalid_token")
    assert (await status(app))["waiting"] == before["waiting"] and await issued_events(app) == []


async def test_an_enrolled_device_issues_and_its_numbers_are_attributed_in_the_log_only(app):
    device = await enrol(app, name="Sảnh A")
    assert device["name"] == "Sảnh A"
    r = await take(app, device["token"], priority=True)                          # staff confirm at the kiosk
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert ticket["number"] == "2001" and ticket["priority"] is True and "device" not in ticket

    [ev] = await issued_events(app)
    assert ev["device"] == device["device"] and ev["channel"] == "kiosk"
    assert "device" not in public(ev) and "device" not in to_trace(ev)
    board = (await app.get(f"/api/branches/{B}")).text
    view = (await app.get(f"/api/tickets/{ticket['token']}")).text
    assert device["device"] not in board and device["device"] not in view and "Sảnh A" not in board

    r = await app.get(f"/api/branches/{B}/kiosks", headers=manager())
    [listed] = r.json()["devices"]
    assert listed["device"] == device["device"] and listed["state"] == "active" and listed["issued_today"] == 1
    assert listed["last_issue"] == ev["t"] and listed["enrolled_at"].startswith("2026-05-19T09:00")
    admin = (await app.get(f"/admin/{B}?format=json", headers=manager())).json()
    assert admin["kiosks"] == r.json()["devices"]


async def test_staff_may_still_issue_at_the_kiosk_channel_but_are_no_device(app):
    r = await take(app, TOKENS.staff(B))
    assert r.status_code == 201, r.text
    [ev] = await issued_events(app)
    assert "device" not in ev
    assert_error(await take(app, TOKENS.staff("2")), 403, "wrong_branch")
    assert len(await issued_events(app)) == 1


async def test_a_device_checks_in_online_holders(app):
    device = await enrol(app)
    r = await app.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "online"},
                       headers=bearer(TOKENS.citizen("001090123456")))
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    r = await app.post(f"/api/branches/{B}/check-in", json={"token": token}, headers=bearer(device["token"]))
    assert r.status_code == 200 and r.json()["checked_in"] is True, r.text
    [ev] = [e for e in await app.app.state.service.events_since(B, 0) if e["type"] == "ticket.checked_in"]
    assert ev["device"] == device["device"] and "device" not in public(ev)
    assert_error(await app.post(f"/api/branches/{B}/check-in", json={"token": token}), 401, "token_required")


# -- the pace -------------------------------------------------------------------------------------------

async def test_a_device_keeps_to_its_pace_in_a_burst(app, clock):
    """The burst again, from an enrolled device: QUEUECAST_KIOSK_PACE's default 6/60 lets 6 numbers go
    in a row, then one every 10 s; the rest are refused with 429 and when to try again, nothing issued."""
    device = await enrol(app)
    answers = [await take(app, device["token"], service=CULTURE) for _ in range(70)]
    assert [r.status_code for r in answers[:6]] == [201] * 6
    for r in answers[6:]:
        err = assert_error(r, 429, "kiosk_pace")
        assert err["retry_after"] == 10 and r.headers["retry-after"] == "10"
    assert left(await status(app), CULTURE) == 54 and len(await issued_events(app)) == 6

    clock.advance(seconds=9)
    assert assert_error(await take(app, device["token"], service=CULTURE), 429, "kiosk_pace")["retry_after"] == 1
    clock.advance(seconds=1)
    assert (await take(app, device["token"], service=CULTURE)).status_code == 201
    assert_error(await take(app, device["token"], service=CULTURE), 429, "kiosk_pace")
    # Touched every second for a minute: one number every 10 s, six in all.
    for _ in range(60):
        clock.advance(seconds=1)
        await take(app, device["token"], service=CULTURE)
    assert len(await issued_events(app)) == 7 + 6

    # Another device has a pace of its own; a repeat of an answered request is no new number.
    other = await enrol(app)
    key = {"Idempotency-Key": "touch-1"}
    first = await app.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "kiosk"},
                           headers=bearer(other["token"], **key))
    assert first.status_code == 201
    for _ in range(8):
        again = await app.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "kiosk"},
                               headers=bearer(other["token"], **key))
        assert again.status_code == 201 and again.json() == first.json()
    assert len(await issued_events(app)) == 14


async def test_the_pace_is_a_setting(bare, clock):
    async with running_app(dataclasses.replace(bare, kiosk_pace="2/10"), clock) as app:
        device = await enrol(app)
        codes = [(await take(app, device["token"])).status_code for _ in range(4)]
        assert codes == [201, 201, 429, 429]
        clock.advance(seconds=10)
        assert (await take(app, device["token"])).status_code == 201


@pytest.mark.parametrize("value", ["6", "0/60", "6/0", "121/60", "x/60", "6/100000"])
def test_a_bad_pace_is_refused_naming_the_variable(value):
    with pytest.raises(SettingsError, match="QUEUECAST_KIOSK_PACE"):
        Settings.from_env({"QUEUECAST_KIOSK_PACE": value})


# -- enrolment and revocation --------------------------------------------------------------------------

async def test_managing_devices_needs_the_branch_managers_token(app):
    before = await status(app)
    url = f"/api/branches/{B}/kiosks"
    assert_error(await app.post(url, json={}), 401, "token_required")
    assert_error(await app.get(url), 401, "token_required")
    assert_error(await app.post(url, json={}, headers=bearer(TOKENS.staff(B, "3"))), 403, "manager_only")
    assert_error(await app.post(url, json={}, headers=manager("2")), 403, "wrong_branch")
    assert_error(await app.post(url, json={}, headers=bearer(TOKENS.citizen("001090123456"))), 403, "staff_only")
    device = await enrol(app)
    after_enrol = await status(app)
    assert_error(await app.post(url, json={}, headers=bearer(device["token"])), 403, "staff_only")
    assert_error(await app.delete(f"{url}/{device['device']}", headers=bearer(device["token"])), 403, "staff_only")
    assert_error(await app.delete(f"{url}/{device['device']}", headers=bearer(TOKENS.staff(B, "3"))), 403,
                 "manager_only")
    assert_error(await app.delete(f"{url}/k0000000000", headers=manager()), 404, "device_not_found")
    # Not a device id at all: no such path (/openapi.json gives the ids' pattern).
    assert_error(await app.delete(f"{url}/nonsense", headers=manager()), 404, "not_found")
    assert_error(await app.post(url, json={"name": "x" * 61}, headers=manager()), 422, "invalid_name")
    assert_error(await app.post(url, json={"name": "a\x00b"}, headers=manager()), 422, "invalid_text")    # at the door (hub.web.decode)
    assert (await status(app))["seq"] == after_enrol["seq"] == before["seq"] + 2      # enrolled, claimed
    assert (await take(app, device["token"])).status_code == 201                      # still enrolled


async def test_an_enrolment_code_works_once_and_only_where_it_belongs(app):
    r = await app.post(f"/api/branches/{B}/kiosks", json={"name": "Sảnh B"}, headers=manager())
    code = r.json()["enrol_code"]
    claim = f"/api/branches/{B}/kiosks/enrol"
    seq = (await status(app))["seq"]
    assert_error(await app.post("/api/branches/2/kiosks/enrol", json={"code": code}), 409, "wrong_branch")
    assert_error(await app.post(claim, json={"code": code[:-2] + "AA"}), 404, "enrolment_code_not_found")
    assert_error(await app.post(claim, json={"code": "ke1.é.x"}), 404, "enrolment_code_not_found")
    assert_error(await app.post(claim, json={"code": "x" * 500}), 404, "enrolment_code_not_found")
    assert_error(await app.post(claim, json={}), 422, "missing_field")
    assert (await status(app))["seq"] == seq
    first = await app.post(claim, json={"code": code})
    assert first.status_code == 200 and first.json()["name"] == "Sảnh B"
    assert_error(await app.post(claim, json={"code": code}), 409, "enrolment_code_used")
    assert (await status(app))["seq"] == seq + 1

    # An expired code, and the code of a device revoked before its kiosk used it.
    r = await app.post(f"/api/branches/{B}/kiosks", json={}, headers=manager())
    late = r.json()["device"]
    expired, _ = TOKENS.enrol_code(B, late, ttl=-1)
    assert_error(await app.post(claim, json={"code": expired}), 409, "enrolment_code_expired")
    assert (await app.delete(f"/api/branches/{B}/kiosks/{late}", headers=manager())).json()["state"] == "revoked"
    assert_error(await app.post(claim, json={"code": r.json()["enrol_code"]}), 409, "device_revoked")


async def test_a_revoked_device_is_refused_for_good_even_after_a_restart(bare, clock):
    async with running_app(bare, clock) as app:
        device = await enrol(app)
        assert (await take(app, device["token"])).status_code == 201
        r = await app.get(f"/api/branches/{B}/kiosks/me", headers=bearer(device["token"]))
        assert r.status_code == 200 and r.json()["device"] == device["device"] and r.json()["kind"] == "kiosk"
        r = await app.delete(f"/api/branches/{B}/kiosks/{device['device']}", headers=manager())
        assert r.status_code == 200 and r.json()["state"] == "revoked" and r.json()["revoked_at"]
        seq = (await status(app))["seq"]
        again = await app.delete(f"/api/branches/{B}/kiosks/{device['device']}", headers=manager())
        assert again.json() == r.json() and (await status(app))["seq"] == seq      # a repeat changes nothing
        assert_error(await take(app, device["token"]), 401, "device_revoked")
        assert_error(await app.get(f"/api/branches/{B}/kiosks/me", headers=bearer(device["token"])), 401,
                     "device_revoked")
    async with running_app(bare, clock) as app:                                  # the log rebuilds it
        assert_error(await take(app, device["token"]), 401, "device_revoked")
        assert_error(await app.post(f"/api/branches/{B}/check-in", json={"token": "x.y"},
                                    headers=bearer(device["token"])), 401, "device_revoked")
        assert len(await issued_events(app)) == 1
        [listed] = (await app.get(f"/api/branches/{B}/kiosks", headers=manager())).json()["devices"]
        assert listed["state"] == "revoked" and listed["issued_today"] == 1


async def test_device_events_stay_out_of_feeds_and_traces(app):
    device = await enrol(app, name="Sảnh C")
    assert (await take(app, device["token"])).status_code == 201
    app.app.state.service.clock.advance(minutes=1)
    await app.delete(f"/api/branches/{B}/kiosks/{device['device']}", headers=manager())
    frames, sub = await app.app.state.feeds.open_board(B, since=0, epoch=None)
    sub.close("test")
    messages = [json.loads(f.text) for f in frames]
    assert [m["type"] for m in messages] == ["resume", "internal", "internal", "ticket.issued", "internal"]
    assert [m["seq"] for m in messages[1:]] == [1, 2, 3, 4]                     # contiguous: nothing to resync
    text = "".join(f.text for f in frames)
    assert device["device"] not in text and "Sảnh C" not in text and "kiosk.enrolled" not in text
    log = await app.app.state.service.events_since(B, 0)
    assert [ev["type"] for ev in log] == ["kiosk.enrolled", "kiosk.claimed", "ticket.issued", "kiosk.revoked"]
    assert [to_trace(ev)["type"] for ev in log if ev["type"].startswith("ticket.")] == ["ticket.issued"]


# -- the lobby network ----------------------------------------------------------------------------------

async def test_a_lobby_network_lets_anonymous_kiosks_there_issue(settings, bare, clock, tmp_path):
    async with running_app(settings, clock) as app:           # conftest's lobby: 127.0.0.0/8 (the test client)
        r = await take(app)
        assert r.status_code == 201, r.text
        [ev] = await issued_events(app)
        assert "device" not in ev
        page = (await app.get(f"/kiosk/{B}")).text
        assert 'data-lobby="1"' in page
    elsewhere = tmp_path / "elsewhere.toml"
    from hub.config import BUNDLED

    elsewhere.write_text(BUNDLED.read_text(encoding="utf-8").replace(
        "\n[policy]\n", '\n[policy]\nkiosk_lobby_networks = ["10.1.0.0/16"]\n', 1), encoding="utf-8")
    async with running_app(dataclasses.replace(bare, config=str(elsewhere),
                                               database=f"sqlite:///{tmp_path}/other.db"), clock) as app:
        assert_error(await take(app), 401, "kiosk_device_required")
        assert 'data-lobby="0"' in (await app.get(f"/kiosk/{B}")).text
        assert await issued_events(app) == []


def test_lobby_networks_match_addresses():
    nets = ("10.1.0.0/16", "2001:db8::/48")
    assert lobby_allows(nets, "10.1.200.7") and lobby_allows(nets, "::ffff:10.1.0.1")
    assert lobby_allows(nets, "2001:db8::5")
    assert not lobby_allows(nets, "10.2.0.1") and not lobby_allows(nets, "testclient")
    assert not lobby_allows(nets, None) and not lobby_allows((), "10.1.0.1")


def test_the_lobby_policy_is_read_and_checked_from_the_toml(raw_config):
    raw_config["policy"] = {"kiosk_lobby_networks": ["10.1.0.0/16", "192.168.5.7"]}
    raw_config["branches"][1]["policy"] = {"kiosk_lobby_networks": []}
    centre = parse_config(raw_config, "x.toml")
    assert centre.branches["1"].policy.kiosk_lobby_networks == ("10.1.0.0/16", "192.168.5.7/32")
    assert centre.branches["2"].policy.kiosk_lobby_networks == ()                 # a branch may opt out
    raw_config["policy"] = {"kiosk_lobby_networks": ["10.1.2.3/16"]}
    with pytest.raises(ConfigError, match=r"x.toml: policy.kiosk_lobby_networks\[0\]: not an address range"):
        parse_config(raw_config, "x.toml")
    raw_config["policy"] = {"kiosk_lobby_networks": "10.1.0.0/16"}
    with pytest.raises(ConfigError, match="policy.kiosk_lobby_networks: expected an array"):
        parse_config(raw_config, "x.toml")


@pytest.fixture
def raw_config():
    import tomllib

    from hub.config import BUNDLED

    return tomllib.loads(BUNDLED.read_text(encoding="utf-8"))


def test_a_pace_window_counts_the_log_not_the_process(centre):
    """The pace is judged from the device's issues as folded from the log: the same log, the same answer."""
    from datetime import datetime

    from hub.domain import commands, kiosk_commands
    from hub.domain.errors import DomainError
    from hub.domain.state import apply, fold

    from conftest import TUESDAY_9AM

    st = fold(centre.branches[B], [])
    log = []

    def run(evs: list[dict]) -> None:
        for i, ev in enumerate(evs):
            ev["seq"] = len(log) + i + 1
            apply(st, ev)
        log.extend(evs)

    run(kiosk_commands.enrol(st, TUESDAY_9AM, "k00000000aa", by="cli"))
    for s in (0, 0, 0):                                          # a bucket of 3, refilled one every 20 s
        run(commands.issue(st, TUESDAY_9AM + timedelta(seconds=s), service=CIVIL, channel="kiosk",
                           device="k00000000aa", pace=(3, 60)))
    at: datetime = TUESDAY_9AM + timedelta(seconds=19)
    with pytest.raises(DomainError) as refused:
        commands.issue(st, at, service=CIVIL, channel="kiosk", device="k00000000aa", pace=(3, 60))
    assert refused.value.code == "kiosk_pace" and refused.value.details["retry_after"] == 1
    again = fold(centre.branches[B], log)                                         # another process, or a restart
    with pytest.raises(DomainError):
        commands.issue(again, at, service=CIVIL, channel="kiosk", device="k00000000aa", pace=(3, 60))
    assert commands.issue(again, at + timedelta(seconds=1), service=CIVIL, channel="kiosk", device="k00000000aa",
                          pace=(3, 60))[0]["device"] == "k00000000aa"
    with pytest.raises(DomainError) as online:
        commands.issue(again, at, service=CIVIL, channel="online", device="k00000000aa")
    assert online.value.code == "invalid_channel"
