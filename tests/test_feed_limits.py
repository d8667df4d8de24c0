"""Live feeds under abuse (issue 14), against real `python -m hub serve` processes over raw sockets:
a cap on the feeds one address may hold open, and every feed (board and ticket, WebSocket and SSE)
cutting a client that does not read after a bounded number of bytes. A client that never reads at
all is then dropped altogether, freeing what it held.

Before these bounds, a ticket-feed client that never read was never cut: the kernel grew the
connection's send buffer to megabytes (about 2 MB piled up over 2,500 events)."""
from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import time
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hub.auth import Tokens

from conftest import SECRET, bearer
from waiting import deadline, wait_until

B = "1"
TOKENS = Tokens(SECRET)
STAFF = bearer(TOKENS.staff(B))
HTTP = deadline(30)
FIELDS = ["dat-dai", "ho-tich"]
# What may pile up for one connection before it is cut, counted as the bytes its client finds once it
# reads at last: the hub's write buffer (hub.feeds.direct.MAX_BUFFER 256 KiB, or for SSE the
# subscriber queue and uvicorn's 64 KiB), the kernel's send buffer (bounded at 2 x 64 KiB), and the
# client's own receive buffer (~130 KiB here). Measured: ~530 KB (WebSocket), ~340 KB (SSE).
MAX_PILED = 1024 * 1024


def http(hub) -> httpx.Client:
    return httpx.Client(base_url=hub.url, timeout=HTTP)


def ws_url(hub, path: str) -> str:
    return hub.url.replace("http://", "ws://") + path


def metric(c: httpx.Client, name: str) -> float:
    r = c.get("/metrics")
    assert r.status_code == 200
    m = re.search(rf"^{name}(?:_total)?(?:\{{[^}}]*\}})?\s+(\S+)$", r.text, re.M)
    assert m, name
    return float(m.group(1))


def feed_gauge(c: httpx.Client, kind: str) -> float:
    r = c.get("/metrics")
    m = re.search(rf'^queuecast_feed_connections\{{feed="{kind}"\}}\s+(\S+)$', r.text, re.M)
    assert m, r.text
    return float(m.group(1))


def take_number(c: httpx.Client, who: int = 0) -> dict:
    """An online number: unlike a kiosk one, it needs no kiosk device."""
    r = c.post(f"/api/branches/{B}/tickets", json={"service": "dat-dai", "channel": "online"},
               headers=bearer(TOKENS.citizen(f"{1090123456 + who:012d}")))
    assert r.status_code == 201, r.text
    return r.json()


def events_until(c: httpx.Client, number: str, done, what: str, limit: float = 120) -> int:
    """Events until `done()`; how many were made. Each moves the number `number` to the other field
    (a staff transfer: one small command, no counter needed), so each changes its holder's view and
    reaches both the board (~350 bytes) and that holder's ticket feed (~900 bytes): a ticket feed
    sends only what changes its holder's view (docs/feeds.md). Bounded by a deadline and a count."""
    made, end = 0, time.monotonic() + deadline(limit)
    for k in range(20_000):
        r = c.post(f"/api/branches/{B}/tickets/{number}/transfer", json={"service": FIELDS[1 - k % 2]},
                   headers=STAFF)
        assert r.status_code == 200, r.text
        made += 1
        if k % 40 == 39 and done():
            return made
        if time.monotonic() > end:
            break
    raise AssertionError(f"{made} events: not yet {what}")


# -- raw clients that never read --------------------------------------------------------------------

def raw_socket(hub) -> socket.socket:
    """A client whose receive buffer is set (so fixed: Linux grows only a buffer nobody set), as
    MAX_PILED counts it: left to autotuning, a loopback socket fed many small writes was once seen
    to take in 1.6 MB without being read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(HTTP)
    s.connect(("127.0.0.1", int(hub.url.rsplit(":", 1)[1])))
    return s


def raw_ws(hub, path: str) -> socket.socket:
    """A WebSocket handshake sent, and nothing ever read (until the test decides to)."""
    s = raw_socket(hub)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    return s


def raw_sse(hub, path: str) -> socket.socket:
    s = raw_socket(hub)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n".encode())
    return s


def read_to_end(s: socket.socket) -> bytes:
    out = bytearray()
    for _ in range(100_000):
        chunk = s.recv(1 << 20)
        if not chunk:
            return bytes(out)
        out += chunk
    raise AssertionError("the hub never closed the connection")


def ws_frames(data: bytes) -> tuple[list[dict], int | None]:
    """The text messages of an unmasked server stream after its handshake, and its close code."""
    pos = data.index(b"\r\n\r\n") + 4
    messages, code = [], None
    while pos < len(data):
        op, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if size == 126:
            size, pos = struct.unpack("!H", data[pos:pos + 2])[0], pos + 2
        elif size == 127:
            size, pos = struct.unpack("!Q", data[pos:pos + 8])[0], pos + 8
        payload, pos = data[pos:pos + size], pos + size
        if op == 0x1:
            messages.append(json.loads(payload))
        elif op == 0x8:
            code = struct.unpack("!H", payload[:2])[0]
    return messages, code


def sse_events(data: bytes) -> tuple[list[dict], str | None, bool]:
    """The data events of a chunked SSE answer, its `event: close` reason, and whether it ended."""
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    text, pos = bytearray(), 0
    ended = False
    while pos < len(body):
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end], 16)
        if size == 0:
            ended = True
            break
        text += body[line_end + 2:line_end + 2 + size]
        pos = line_end + 2 + size + 2
    messages = [json.loads(m) for m in re.findall(r"^data: (\{.*\})$", text.decode(), re.M)]
    close = re.search(r"^event: close\ndata: (\w+)$", text.decode(), re.M)
    return messages, close.group(1) if close else None, ended


def assert_consecutive(messages: list[dict]) -> None:
    """No gap in what reached the client: a board's live seqs rise by one, and a ticket feed's
    frames each name the one before as `prev` (CONTRACTS section 4)."""
    assert messages[0]["type"] == "snapshot"
    for before, m in zip(messages, messages[1:]):
        assert m.get("prev", m["seq"] - 1) == before["seq"] < m["seq"], f"a gap in what reached the client: {before} then {m}"


# == the cap per address =================================================================================

def test_feeds_over_the_cap_of_an_address_are_refused_before_any_data(hub_factory, hub_env):
    hub = hub_factory({**hub_env, "QUEUECAST_MAX_FEEDS_PER_ADDRESS": "3"})
    with http(hub) as c, ExitStack() as held:
        token = take_number(c)["token"]
        board = held.enter_context(connect(ws_url(hub, f"/ws/branches/{B}"), open_timeout=HTTP))
        held.enter_context(connect(ws_url(hub, f"/ws/tickets/{token}"), open_timeout=HTTP))
        sse = held.enter_context(c.stream("GET", f"/sse/branches/{B}"))
        assert sse.status_code == 200
        assert json.loads(board.recv(timeout=HTTP))["type"] == "snapshot"
        wait_until(lambda: feed_gauge(c, "board") + feed_gauge(c, "ticket") == 3, "three feeds open")
        seq = c.get(f"/api/branches/{B}").json()["seq"]

        # A fourth WebSocket: accepted only to be told why, before any frame of the feed.
        with connect(ws_url(hub, f"/ws/tickets/{token}"), open_timeout=HTTP) as over:
            with pytest.raises(ConnectionClosed) as closed:
                over.recv(timeout=HTTP)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4029, "too many connections from your address")
        # A fourth SSE stream: 429 in the contract's shape.
        r = c.get(f"/sse/tickets/{token}")
        assert r.status_code == 429 and r.headers["retry-after"] == "10"
        error = r.json()["error"]
        assert error["code"] == "too_many_feeds" and error["message"] and error["message_vi"]
        assert "3" in error["message"]

        # Nothing of theirs stayed behind, nothing changed; the refusals are counted.
        assert feed_gauge(c, "board") + feed_gauge(c, "ticket") == 3
        assert metric(c, "queuecast_feed_refused") == 2
        assert c.get(f"/api/branches/{B}").json()["seq"] == seq

        # A feed that closes gives its place back.
        board.close()
        wait_until(lambda: feed_gauge(c, "board") == 1, "the closed board feed gone")

        def accepted() -> bool:
            with connect(ws_url(hub, f"/ws/branches/{B}"), open_timeout=HTTP) as again:
                try:
                    return json.loads(again.recv(timeout=HTTP))["type"] == "snapshot"
                except ConnectionClosed:          # the slot is given back just after the gauge moves
                    return False
        wait_until(accepted, "a feed accepted in the freed place")


# == clients that do not read ============================================================================

@pytest.mark.slow
def test_a_ticket_websocket_that_never_reads_is_cut_after_a_bounded_pile(hub_factory, hub_env):
    """...while the same holder's other phone, which reads (into an unbounded buffer), gets every
    frame and stays connected."""
    hub = hub_factory(hub_env)
    with http(hub) as c:
        mine = take_number(c)
        with (raw_ws(hub, f"/ws/tickets/{mine['token']}") as s,
              connect(ws_url(hub, f"/ws/tickets/{mine['token']}"), open_timeout=HTTP, max_queue=None) as reader):
            wait_until(lambda: feed_gauge(c, "ticket") == 2, "both ticket feeds open")
            made = events_until(c, mine["number"], lambda: metric(c, "queuecast_feed_slow_cuts") >= 1, "cut")
            data = read_to_end(s)
            head = c.get(f"/api/branches/{B}").json()["seq"]
            read = [json.loads(reader.recv(timeout=HTTP))]
            for _ in range(made + 1):
                if read[-1]["seq"] == head:
                    break
                read.append(json.loads(reader.recv(timeout=HTTP)))
            assert feed_gauge(c, "ticket") == 1 and metric(c, "queuecast_feed_slow_cuts") == 1
    messages, code = ws_frames(data)
    assert code == 4008
    assert len(data) <= MAX_PILED, len(data)
    assert messages[0]["type"] == "snapshot" and len(messages) <= made     # the snapshot, not all `made` events
    assert_consecutive(messages)
    assert read[-1]["seq"] == head and len(read) == made + 1       # its snapshot, then every transfer
    assert_consecutive(read)
    print(f"\nticket WebSocket: cut after {made} events; {len(data)} bytes reached the client")


@pytest.mark.slow
@pytest.mark.parametrize("feed", ["board", "ticket"])
def test_an_sse_stream_that_is_never_read_is_cut_and_ended_after_a_bounded_pile(hub_factory, hub_env, feed):
    hub = hub_factory(hub_env)
    with http(hub) as c:
        mine = take_number(c)
        path = f"/sse/branches/{B}" if feed == "board" else f"/sse/tickets/{mine['token']}"
        s = raw_sse(hub, path)
        try:
            wait_until(lambda: feed_gauge(c, feed) == 1, "the feed open")
            made = events_until(c, mine["number"], lambda: metric(c, "queuecast_feed_slow_cuts") >= 1, "cut")
            data = read_to_end(s)
        finally:
            s.close()
    messages, reason, ended = sse_events(data)
    assert reason == "slow" and ended                 # told why, and the answer complete: the stream ended
    assert len(data) <= MAX_PILED, len(data)
    assert messages[0]["type"] == "snapshot" and len(messages) <= made     # the snapshot, not all `made` events
    assert_consecutive(messages)
    print(f"\n{feed} SSE: cut after {made} events; {len(data)} bytes reached the client")


@contextmanager
def never_read(hub, kind: str, path: str):
    s = raw_ws(hub, path) if kind == "ws" else raw_sse(hub, path)
    try:
        yield s
    finally:
        s.close()


def feeds_accepted(hub, n: int) -> bool:
    """Whether `n` new board feeds from this address are accepted at once (each sends its snapshot)."""
    with ExitStack() as opened:
        feeds = [opened.enter_context(connect(ws_url(hub, f"/ws/branches/{B}"), open_timeout=HTTP)) for _ in range(n)]
        try:
            return all(json.loads(ws.recv(timeout=HTTP))["type"] == "snapshot" for ws in feeds)
        except ConnectionClosed:                  # 4029: a place is still taken
            return False


@pytest.mark.slow
def test_clients_that_never_read_at_all_are_dropped_and_free_their_places(hub_factory, hub_env):
    """After the cut, a client that still reads nothing would hold its connection, the task writing
    to it (blocked on a write that never drains) and so its place under the cap, for ever: it is
    dropped once it has taken nothing for 30 s."""
    hub = hub_factory({**hub_env, "QUEUECAST_MAX_FEEDS_PER_ADDRESS": "2"})
    with http(hub) as c:
        mine = take_number(c)
        token = mine["token"]
        with never_read(hub, "ws", f"/ws/tickets/{token}"), never_read(hub, "sse", f"/sse/tickets/{token}"):
            wait_until(lambda: feed_gauge(c, "ticket") == 2, "both feeds open")
            events_until(c, mine["number"], lambda: metric(c, "queuecast_feed_slow_cuts") >= 2, "both cut")

            def dropped() -> list[dict]:
                lines = [json.loads(ln) for ln in hub.log.read_text().splitlines() if ln.startswith("{")]
                return [ln for ln in lines if ln["msg"] == "peer took nothing for a while: connection dropped"]
            gone = wait_until(lambda: len(dropped()) == 2 and dropped(), "both connections dropped", timeout=120)
            assert all(d["level"] == "info" and d["peer"] == "127.0.0.1" and d["pending_bytes"] > 0 for d in gone)
            # Both places are free again, while the two sockets are still open on this side.
            wait_until(lambda: feeds_accepted(hub, 2), "two new feeds accepted from the same address")
        assert "Traceback" not in hub.log.read_text()
