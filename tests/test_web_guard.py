"""The hub's edge against clients that are not honest (issue 14): no token in any log line, proxy
headers believed only from QUEUECAST_TRUSTED_PROXIES, bounded time for a request's headers and
body, and security headers on every HTTP answer. Against real `python -m hub serve` processes over
real sockets; the hub's log file is read as an operator would read it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx
import pytest
from starlette.routing import Route
from websockets.sync.client import connect

from hub.app import create_app
from hub.auth import Tokens
from hub.settings import Settings, SettingsError

from conftest import SECRET, assert_error, bearer, free_port
from waiting import deadline, wait_until

B = "1"
TOKENS = Tokens(SECRET)
CITIZEN_ID = "001090123456"          # born 1990: no age priority
HTTP = deadline(30)
CSP = "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


def http(hub) -> httpx.Client:
    return httpx.Client(base_url=hub.url, timeout=HTTP)


def online(c: httpx.Client, citizen: int = 0, **headers: str) -> httpx.Response:
    """A number taken online by citizen number `citizen` (issuing is limited per address, and to a
    few numbers per citizen and day: each test's requests come from distinct citizens)."""
    return c.post(f"/api/branches/{B}/tickets", json={"service": "dat-dai", "channel": "online"},
                  headers=bearer(TOKENS.citizen(f"{int(CITIZEN_ID) + citizen:012d}"), **headers))


def branch_state(c: httpx.Client) -> tuple[int, int]:
    r = c.get(f"/api/branches/{B}")
    assert r.status_code == 200, r.text
    return r.json()["seq"], r.json()["waiting"]


def port_of(hub) -> int:
    return int(hub.url.rsplit(":", 1)[1])


@contextmanager
def raw(hub):
    s = socket.create_connection(("127.0.0.1", port_of(hub)), timeout=HTTP)
    try:
        yield s
    finally:
        s.close()


def read_to_end(s: socket.socket) -> bytes:
    """Everything the hub sends until it closes the connection (each recv bounded by the socket's timeout)."""
    out = b""
    for _ in range(10_000):
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk
    raise AssertionError("the hub never closed the connection")


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def log_lines(hub) -> list[str]:
    return hub.log.read_text(encoding="utf-8", errors="replace").splitlines()


# == tokens never in logs ==============================================================================

def test_no_token_reaches_the_log(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    staff = TOKENS.staff(B)
    with http(hub) as c:
        t = online(c).json()
        token = t["token"]
        seen = [
            c.get(f"/t/{token}"), c.get(f"/t/{token}", params={"lang": "en"}),
            c.get(f"/api/tickets/{token}"), c.get(f"/api/tickets/{token}", params={"travel_minutes": 5}),
            c.post(f"/api/tickets/{token}/notifications", json={"channel": "sms", "phone": "0912345678"}),
            c.get(f"/kiosk/{B}/ticket", params={"token": token}),
            c.get(f"/admin/{B}", params={"token": staff}), c.get(f"/counter/{B}/1", params={"token": staff}),
            c.get(f"/api/tickets/{token}/nowhere"),
        ]
        assert [r.status_code for r in seen] == [200, 200, 200, 200, 200, 200, 200, 200, 404], \
            [(r.url.path, r.status_code) for r in seen]
        with c.stream("GET", f"/sse/tickets/{token}") as sse:
            assert sse.status_code == 200
            assert any(line.startswith("data: ") for line in sse.iter_lines())
        with connect(f"{hub.url.replace('http', 'ws')}/ws/tickets/{token}?since=0", open_timeout=HTTP) as ws:
            assert json.loads(ws.recv(timeout=HTTP))["type"] in ("snapshot", "resume")
        assert c.delete(f"/api/tickets/{token}").status_code == 200

    # Every request was logged (the access log still says what happened), with the token redacted.
    wait_until(lambda: any('"DELETE /api/tickets/…' in ln for ln in log_lines(hub)), "the last request logged")
    text = "\n".join(log_lines(hub))
    for path in ("/t/…", "/api/tickets/…?travel_minutes=5", "/api/tickets/…/notifications", "/sse/tickets/…",
                 "/ws/tickets/…?since=0", f"/kiosk/{B}/ticket?token=…", f"/admin/{B}?token=…",
                 f"/counter/{B}/1?token=…", "/api/tickets/…/nowhere"):
        assert path in text, path
    signature = token.rsplit(".", 1)[-1]
    for secret in (token, signature, staff, staff.rsplit(".", 1)[-1]):
        assert secret not in text


def test_a_fault_on_a_ticket_path_logs_the_path_without_its_token(settings, clock, caplog):
    """No input gives a 5xx any more, so a route that fails stands in for a fault of the hub: the
    real app, its real error handler, the record it logs."""
    import asyncio

    app = create_app(settings, clock=clock)

    async def boom(request):
        raise RuntimeError("a fault of the hub")

    app.router.routes.append(Route("/api/tickets/{token}/boom", boom))
    token = TOKENS.ticket(B, "t-1")

    async def ask() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
                return await c.get(f"/api/tickets/{token}/boom", params={"token": token})

    with caplog.at_level("INFO", logger="queuecast.web"):
        r = asyncio.run(ask())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    [record] = [rec for rec in caplog.records if rec.getMessage() == "unhandled error"]
    assert record.fields == {"path": "/api/tickets/…/boom"}
    assert token not in caplog.text and token.rsplit(".", 1)[-1] not in caplog.text


# == X-Forwarded-For ===================================================================================

def test_x_forwarded_for_counts_only_from_a_trusted_proxy(hub_factory, hub_env):
    limited = {**hub_env, "QUEUECAST_ISSUE_RATE": "2/3600"}

    # Trusting nobody (the default): the header is ignored; everything counts against 127.0.0.1.
    hub = hub_factory(limited)
    with http(hub) as c:
        for who in (1, 2):
            assert online(c, who, **{"X-Forwarded-For": "1.2.3.4"}).status_code == 201
        before = branch_state(c)
        assert_error(online(c, 3), 429, "rate_limited")                     # 127.0.0.1's own third number
        assert_error(online(c, 4, **{"X-Forwarded-For": "5.6.7.8"}), 429, "rate_limited")  # no new budget
        assert branch_state(c) == before
    hub.stop()

    # Trusting 127.0.0.1 (a proxy on this host): each forwarded client has its own budget.
    hub = hub_factory({**limited, "QUEUECAST_DATABASE": hub_env["QUEUECAST_DATABASE"].replace("hub.db", "hub2.db"),
                       "QUEUECAST_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"})
    with http(hub) as c:
        for who in (1, 2):
            assert online(c, who, **{"X-Forwarded-For": "1.2.3.4"}).status_code == 201
        before = branch_state(c)
        assert_error(online(c, 3, **{"X-Forwarded-For": "1.2.3.4"}), 429, "rate_limited")
        assert branch_state(c) == before
        assert online(c, 4, **{"X-Forwarded-For": "5.6.7.8"}).status_code == 201
        assert online(c, 5).status_code == 201                     # the proxy's own address: untouched so far


# == slow senders ======================================================================================

@pytest.fixture
def quick(hub_factory, hub_env):
    """A hub that gives a request 2 s for its headers and 2 s for its body."""
    return hub_factory({**hub_env, "QUEUECAST_REQUEST_TIMEOUT": "2"})


def test_half_sent_headers_get_408_and_the_connection_closes(quick):
    with http(quick) as c:
        before = branch_state(c)
        with raw(quick) as s:
            started = time.monotonic()
            s.sendall(f"POST /api/branches/{B}/tickets HTTP/1.1\r\nHost: hub\r\nContent-Type: appl".encode())
            status, headers, body = parse_response(read_to_end(s))
            took = time.monotonic() - started
        assert status == 408 and headers["connection"] == "close"
        error = json.loads(body)["error"]
        assert error["code"] == "request_timeout" and error["message"] and error["message_vi"]
        assert 2 <= took < deadline(15), took
        assert branch_state(c) == before
    assert any('"request headers too slow: connection closed"' in ln for ln in log_lines(quick))


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(quick):
    with raw(quick) as s:
        assert read_to_end(s) == b""


def test_half_sent_body_gets_408_in_the_contracts_shape_and_changes_nothing(quick):
    with http(quick) as c:
        before = branch_state(c)
        with raw(quick) as s:
            body = json.dumps({"service": "dat-dai", "channel": "online"}).encode()
            s.sendall(f"POST /api/branches/{B}/tickets HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
                      f"Authorization: Bearer {TOKENS.citizen(CITIZEN_ID)}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
            status, headers, answer = parse_response(read_to_end(s))
        assert status == 408 and headers["connection"] == "close"
        assert headers["content-security-policy"] == CSP            # an answer of the app, like any other
        error = json.loads(answer)["error"]
        assert error["code"] == "request_timeout" and error["message"] and error["message_vi"]
        assert branch_state(c) == before
        assert online(c).status_code == 201                        # the same request, sent whole, works


def test_a_client_dropping_mid_body_is_one_info_line_without_a_traceback(quick):
    with http(quick) as c:
        before = branch_state(c)
        with raw(quick) as s:
            s.sendall(f"POST /api/branches/{B}/tickets HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
                      f"Content-Length: 200\r\n\r\n{{\"service\": ".encode())
        # Closed here with 190 bytes of the body unsent: the handler reading it learns the client is gone.
        gone = wait_until(lambda: [json.loads(ln) for ln in log_lines(quick)
                                   if '"client went away mid-request"' in ln], "the drop logged")
        assert gone == [{**gone[0], "level": "info", "logger": "queuecast.web", "method": "POST",
                         "path": f"/api/branches/{B}/tickets"}]
        text = "\n".join(log_lines(quick))
        assert "Traceback" not in text and '"level": "error"' not in text and "ERROR" not in text
        assert branch_state(c) == before


def test_feeds_and_kept_alive_connections_outlive_the_request_timeout(quick):
    """The headers' deadline ends with the headers: a feed stays open, a kept-alive connection
    serves its next request, however long the first one streamed."""
    with http(quick) as c, connect(f"{quick.url.replace('http', 'ws')}/ws/branches/{B}", open_timeout=HTTP) as ws:
        assert json.loads(ws.recv(timeout=HTTP))["type"] == "snapshot"
        with raw(quick) as s:                     # a half-sent request: answered 408 after the timeout
            s.sendall(b"GET /api/branches HTTP/1.1\r\n")
            assert parse_response(read_to_end(s))[0] == 408
        # Past the timeout now: the feed still carries the next event.
        r = online(c)
        assert r.status_code == 201
        assert json.loads(ws.recv(timeout=HTTP))["number"] == r.json()["number"]
        assert c.get("/healthz").status_code == 200


# == security headers on the API and its errors (pages: tests/test_page_csp.py) =======================

def test_api_answers_errors_static_files_and_feeds_carry_the_security_headers(hub_factory, hub_env):
    hub = hub_factory(hub_env)
    with http(hub) as c:
        answers = [c.get("/api/branches"), c.get(f"/display/{B}", params={"format": "json"}), c.get("/nowhere"),
                   c.post(f"/api/branches/{B}/tickets", content=b"{nope", headers={"Content-Type": "application/json"}),
                   c.get("/static/feed.js"), c.get("/openapi.json"), c.get("/healthz")]
        assert [r.status_code for r in answers] == [200, 200, 404, 400, 200, 200, 200]
        with c.stream("GET", f"/sse/branches/{B}") as sse:
            answers.append(sse)
        for r in answers:
            assert r.headers["content-security-policy"] == CSP, r.url
            assert r.headers["x-content-type-options"] == "nosniff", r.url
            assert r.headers["referrer-policy"] == "no-referrer", r.url
        assert answers[-1].headers["content-type"].startswith("text/event-stream")
        assert answers[-1].headers["cache-control"] == "no-cache"              # the feed keeps its own
        assert c.get(f"/counter/{B}/1", params={"format": "json"}).headers["cache-control"] == "no-store"


# == settings ==========================================================================================

@pytest.mark.parametrize("var, value", [
    ("QUEUECAST_TRUSTED_PROXIES", "proxy.local"),
    ("QUEUECAST_TRUSTED_PROXIES", "10.0.0.0/33"),
    ("QUEUECAST_TRUSTED_PROXIES", "127.0.0.1,,nope"),
    ("QUEUECAST_MAX_FEEDS_PER_ADDRESS", "0"),
    ("QUEUECAST_MAX_FEEDS_PER_ADDRESS", "many"),
    ("QUEUECAST_REQUEST_TIMEOUT", "0"),
    ("QUEUECAST_REQUEST_TIMEOUT", "2.5"),
])
def test_a_bad_new_setting_is_refused_naming_its_variable(var, value):
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({var: value})


def test_new_settings_defaults_and_values():
    s = Settings.from_env({})
    assert (s.proxies(), s.max_feeds_per_address, s.request_timeout) == ([], 50, 20)
    s = Settings.from_env({"QUEUECAST_TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8 ,::1", "QUEUECAST_MAX_FEEDS_PER_ADDRESS": "8",
                           "QUEUECAST_REQUEST_TIMEOUT": "5"})
    assert (s.proxies(), s.max_feeds_per_address, s.request_timeout) == (["127.0.0.1", "10.0.0.0/8", "::1"], 8, 5)
    assert Settings.from_env({"QUEUECAST_TRUSTED_PROXIES": "*"}).proxies() == ["*"]


def test_serve_with_a_bad_proxy_list_stops_at_start_naming_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env.update({"QUEUECAST_DATABASE": f"sqlite:///{tmp_path}/hub.db", "QUEUECAST_SECRET": SECRET,
                "QUEUECAST_TRUSTED_PROXIES": "my-proxy"})
    p = subprocess.run([sys.executable, "-m", "hub", "serve", "--port", str(free_port())], env=env,
                       capture_output=True, text=True, timeout=deadline(60))
    assert p.returncode == 2
    assert "QUEUECAST_TRUSTED_PROXIES" in p.stderr and "my-proxy" in p.stderr
