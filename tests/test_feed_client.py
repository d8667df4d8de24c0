"""The pages' one feed client (static/feed.js, QC.feed) in a real headless Chromium: against real
hub processes killed with -9 and restarted, against a hub that is down (backoff), a TCP listener
that never answers (connect timeout) and a small scripted WebSocket server on 127.0.0.1 that sends
gaps, duplicates, another epoch and the hub's close codes. Orderings are waited for as conditions
(expect, wait_for_function, bounded polls), never as fixed sleeps."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from hub.auth import Tokens

from conftest import PHONE, SECRET, TV, bearer
from waiting import wait_for_page

FEED_JS = Path(__file__).resolve().parent.parent / "static" / "feed.js"
STAFF = bearer(Tokens(SECRET).staff("1"))

# Before the page's own scripts: every state and every message the page's feed client takes.
WATCH = """
window.__feedStates = []; window.__feedMsgs = [];
document.addEventListener("qc-feed-state", e => window.__feedStates.push(Object.assign({t: performance.now()}, e.detail)));
document.addEventListener("qc-feed-message", e => window.__feedMsgs.push(e.detail));
"""

# A client of our own on a blank page: what its callbacks were given, with the page's clock. With
# stopAfter: n, it is stopped from inside its n-th "down" (so no attempt starts after the count).
CLIENT = """(o) => {
  window.__states = []; window.__applied = [];
  const now = () => performance.now();
  let downs = 0;
  window.__feed = QC.feed(Object.assign(o, {
    onState: (state, d) => {
      window.__states.push(Object.assign({state: state, t: now()}, d));
      if (state === "down" && ++downs === o.stopAfter) window.__feed.stop();
    },
    onSnapshot: (m, was) => window.__applied.push({type: m.type, seq: m.seq, epoch: m.epoch, was: was}),
    onResume: (m) => window.__applied.push({type: m.type, seq: m.seq, epoch: m.epoch}),
    onEvent: (m) => window.__applied.push({type: m.type, seq: m.seq}),
  }));
}"""


def blank_page_with_client(new_page, script_url: str | None = None):
    """A blank page that has loaded feed.js (from a hub when given, else the file itself)."""
    page = new_page(PHONE)
    page.set_content("<!doctype html><meta charset='utf-8'><title>feed</title>")
    if script_url:
        page.add_script_tag(url=script_url)
    else:
        page.add_script_tag(path=str(FEED_JS))
    assert page.evaluate("typeof QC.feed") == "function"
    return page


def states(page, name: str | None = None) -> list[dict]:
    got = page.evaluate("window.__states")
    return [s for s in got if name is None or s["state"] == name]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def post(base: str, path: str, **kw) -> dict:
    r = httpx.post(f"{base}{path}", timeout=10, **kw)
    assert r.status_code in (200, 201), r.text
    return r.json()


def issue(base: str) -> dict:
    return post(base, "/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})


def call(base: str, counter: str) -> str:
    return post(base, f"/api/branches/1/counters/{counter}/call-next", headers=STAFF)["ticket"]["number"]


def head_seq(base: str) -> int:
    return httpx.get(f"{base}/display/1?format=json", timeout=10).json()["seq"]


def walk(msgs: list[dict]) -> tuple[list[int], list[tuple[str, int]]]:
    """Replays what a page's client took: every event must follow the position by exactly 1 (or name it as `prev`), a
    resume marker must name the position, a snapshot sets it. Returns the event seqs and the starts."""
    position, events, starts = None, [], []
    for m in msgs:
        if m["type"] == "snapshot":
            position = m["seq"]
            starts.append(("snapshot", m["seq"]))
        elif m["type"] == "resume":
            assert position is None or m["seq"] <= position, (m, position)
            position = m["seq"] if position is None else position
            starts.append(("resume", m["seq"]))
        else:       # a ticket feed's live events name the one before (`prev`): seqs between told nothing
            assert position is not None and m.get("prev", m["seq"] - 1) <= position < m["seq"], (m, position, msgs)
            position = m["seq"]
            events.append(m["seq"])
    return events, starts


# -- 1. a hub killed with -9: the pages come back with every call made while it was down --------------

def test_pages_miss_nothing_across_a_hub_killed_with_kill_9(hub_factory, hub_env, new_page):
    first = hub_factory(hub_env)
    port = port_of(first.url)
    tickets = [issue(first.url) for _ in range(6)]
    mine = tickets[-1]
    post(first.url, "/api/branches/1/counters/1/open", headers=STAFF)
    post(first.url, "/api/branches/1/counters/2/open", headers=STAFF)
    before = call(first.url, "1")

    board = new_page(TV)
    board.add_init_script(WATCH)
    board.goto(f"{first.url}/display/1")
    expect(board.locator("body")).to_have_attribute("data-feed", "live")
    phone = new_page(PHONE)
    phone.add_init_script(WATCH)
    phone.goto(f"{first.url}/t/{mine['token']}")
    expect(phone.locator("#live")).to_have_class(re.compile(r"\bis-live\b"))
    expect(phone.locator("#ahead")).to_have_text("4")
    expect(board.locator("#latest-number")).to_have_text(before)
    last_seen = head_seq(first.url)
    for page in (board, phone):
        wait_for_page(page, f"window.__feedMsgs.length > 0 && window.__feedMsgs.at(-1).seq === {last_seen}")

    first.kill9()
    expect(board.locator("#banner")).to_be_visible(timeout=10_000)
    expect(board.locator("#banner")).to_contain_text("Mất kết nối")
    expect(board.locator("body")).to_have_attribute("data-feed", "down")
    expect(phone.locator("#banner")).to_have_class(re.compile(r"\bshown\b"), timeout=10_000)
    expect(phone.locator("#banner")).to_have_text("Mất kết nối — đang kết nối lại")

    # While nothing listens where the pages look, another process on the same database takes calls.
    elsewhere = hub_factory(hub_env)
    missed = [call(elsewhere.url, "2"), call(elsewhere.url, "1")]
    late = issue(elsewhere.url)
    post(elsewhere.url, f"/api/branches/1/tickets/{missed[0]}/recall", headers=STAFF)
    head = head_seq(elsewhere.url)
    elsewhere.kill9()
    assert head >= last_seen + 4

    again = hub_factory(hub_env, port=port)          # where the pages look, same database
    assert head_seq(again.url) == head               # nothing acknowledged was lost to kill -9

    # The board: banner gone, every missed call listed, the recalled one on top.
    expect(board.locator("#banner")).to_be_hidden(timeout=30_000)     # backoff capped at 10 s
    expect(board.locator("body")).to_have_attribute("data-feed", "live")
    wait_for_page(board, f"window.__feedMsgs.at(-1).seq === {head}", timeout=30_000)
    for number in missed:
        expect(board.locator(f'#recent li[data-number="{number}"]')).to_have_count(1)
    expect(board.locator("#latest-number")).to_have_text(missed[0])
    assert [li.get_attribute("data-number") for li in board.locator("#recent li").all()][:3] == \
        [missed[0], missed[1], before]

    # The phone: live again on the socket (not just polling), two fewer ahead.
    expect(phone.locator("#live")).to_have_class(re.compile(r"\bis-live\b"), timeout=45_000)   # cap 30 s
    wait_for_page(phone, f"window.__feedMsgs.at(-1).seq === {head}", timeout=45_000)
    expect(phone.locator("#ahead")).to_have_text("2")
    expect(phone.locator("#serving")).to_contain_text(missed[0])

    # Both feeds: an exact resume from the last seq seen before the kill, then each missed event
    # once, in order; no gap, no duplicate, no snapshot after the restart.
    for page in (board, phone):
        events, starts = walk(page.evaluate("window.__feedMsgs"))
        assert starts[-1] == ("resume", last_seen), starts
        assert [e for e in events if e > last_seen] == list(range(last_seen + 1, head + 1)), events
        assert len(events) == len(set(events))
        downs = [s for s in page.evaluate("window.__feedStates") if s["state"] == "down"]
        assert downs and all(d["outage"] for d in downs)      # a dead hub is an outage: banner shown
    assert late["number"] not in [li.get_attribute("data-number") for li in board.locator("#recent li").all()]


# -- 2. a hub that is down: reconnects wait a jittered, capped, exponential time -----------------------

def test_reconnects_back_off_with_full_jitter_up_to_a_cap_and_reset_after_a_good_connection(
        hub_factory, hub_env, new_page):
    hub = hub_factory(hub_env)
    port = port_of(hub.url)
    page = blank_page_with_client(new_page, f"{hub.url}/static/feed.js")    # the file the hub serves
    attempts = []
    page.on("websocket", lambda ws: attempts.append(ws.url))
    base, cap, wanted = 100, 1000, 14
    page.evaluate(CLIENT, {"url": f"ws://127.0.0.1:{port}/ws/branches/1", "retryBase": base, "retryCap": cap,
                           "stopAfter": wanted})
    page.wait_for_function("window.__states.some(s => s.state === 'live')")

    hub.kill9()
    page.wait_for_function(f"window.__states.filter(s => s.state === 'down').length >= {wanted}", timeout=60_000)
    log = states(page)
    downs = [s for s in log if s["state"] == "down"]
    assert len(downs) == wanted                                            # stopped means stopped
    connects = [s for s in log if s["state"] == "connecting"]

    for i, d in enumerate(downs):
        assert d["attempt"] == i + 1
        assert 0 <= d["delay"] <= min(cap, base * 2 ** i), d               # exponential, capped
    capped = [d["delay"] for d in downs if base * 2 ** (d["attempt"] - 1) >= cap]
    assert len(capped) >= 8
    assert max(capped) - min(capped) >= 100, capped                        # jittered: never in step

    # Each attempt came its delay after the failure before it: not sooner, and not much later.
    after_kill = [c for c in connects if c["t"] > downs[0]["t"]]
    for d, c in zip(downs, after_kill):
        assert d["delay"] - 2 <= c["t"] - d["t"] <= d["delay"] + 3000, (d, c)
    # Bounded: one socket per attempt, and the run took at least the sum of its waits.
    span = downs[-1]["t"] - downs[0]["t"]
    assert sum(d["delay"] for d in downs[:-1]) - 2 <= span <= sum(d["delay"] for d in downs[:-1]) + 1000 * wanted
    assert len(attempts) == len(connects) == wanted, (len(attempts), len(connects))
    assert all(re.search(r"/ws/branches/1\?since=\d+&epoch=\w+$", a) for a in attempts[1:]), attempts

    # A connection that started resets the backoff: after failing a few times more, it reaches a hub
    # again, and the first failure after that waits at most `base` again.
    page.evaluate("window.__states = []; window.__feed.start()")
    page.wait_for_function("window.__states.filter(s => s.state === 'down').length >= 4", timeout=30_000)
    hub2 = hub_factory(hub_env, port=port)
    page.wait_for_function("window.__states.some(s => s.state === 'live')", timeout=30_000)
    grown = states(page, "down")
    assert grown[-1]["attempt"] >= 4
    hub2.kill9()
    page.wait_for_function(f"window.__states.filter(s => s.state === 'down').length > {len(grown)}")
    first_down = states(page, "down")[len(grown)]
    assert first_down["attempt"] == 1 and first_down["delay"] <= base and first_down["outage"] is True
    page.evaluate("window.__feed.stop()")


# -- 3. a listener that accepts and never answers: the socket is abandoned and tried again ---------------

class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never answers; records what each sent, and when the
    client hung up. Every wait is bounded."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.hung_up: list[int] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        deadline = time.monotonic() + 60
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with self.lock:
                i = len(self.requests)
                self.requests.append(b"")
            t = threading.Thread(target=self._hold, args=(conn, i), daemon=True)
            self.threads.append(t)
            t.start()

    def _hold(self, conn: socket.socket, i: int):
        conn.settimeout(0.2)
        deadline = time.monotonic() + 60
        with conn:
            while not self.done.is_set() and time.monotonic() < deadline:
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    with self.lock:
                        self.hung_up.append(i)
                    return
                with self.lock:
                    self.requests[i] += data

    def close(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=5)
        self.sock.close()


def wait_until(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_socket_that_never_opens_is_abandoned_and_retried(new_page):
    listener = SilentListener()
    try:
        page = blank_page_with_client(new_page)
        timeout_ms = 800
        page.evaluate(CLIENT, {"url": f"ws://127.0.0.1:{listener.port}/ws/branches/1", "connectTimeout": timeout_ms,
                               "retryBase": 50, "retryCap": 100})
        page.wait_for_function("window.__states.filter(s => s.reason === 'timeout').length >= 3", timeout=30_000)
        log = states(page)
        assert not [s for s in log if s["state"] == "live"]
        downs = [s for s in log if s["state"] == "down"][:3]
        connects = [s for s in log if s["state"] == "connecting"][:3]
        for c, d in zip(connects, downs):
            assert d["reason"] == "timeout" and d["code"] == 1006 and d["outage"] is True
            assert timeout_ms - 2 <= d["t"] - c["t"] <= timeout_ms + 3000, (c, d)     # gave up after the timeout

        # They were real attempts: each sent its upgrade request, and the client hung up on the
        # ones it abandoned (none left open behind it).
        wait_until(lambda: len(listener.hung_up) >= 3, what="the abandoned sockets to be closed")
        with listener.lock:
            first = listener.requests[0].decode("latin-1")
        assert first.startswith("GET /ws/branches/1 HTTP/1.1\r\n") and re.search(r"(?i)^upgrade: websocket", first, re.M)
        page.evaluate("window.__feed.stop()")
        wait_until(lambda: len(listener.hung_up) == len(listener.requests), what="the last socket to be closed")
    finally:
        listener.close()


# -- 4. gaps, duplicates, another epoch and the hub's close codes, from a scripted server ----------------

def snapshot(seq: int, epoch: str) -> dict:
    return {"type": "snapshot", "seq": seq, "epoch": epoch, "resumed": False, "services": [], "counters": []}


def resume(seq: int, epoch: str) -> dict:
    return {"type": "resume", "seq": seq, "epoch": epoch, "resumed": True}


def event(seq: int) -> dict:
    return {"type": "ticket.issued", "seq": seq, "t": "2026-05-19T09:00:00+07:00", "branch": "1",
            "number": str(1000 + seq), "service": "dat-dai"}


def internal(seq: int) -> dict:
    """What a feed shows of an event that is not its business (hub.domain.events.for_board)."""
    return {"type": "internal", "seq": seq, "t": "2026-05-19T09:00:00+07:00", "branch": "1", "day": "2026-05-19"}


class ScriptedFeed:
    """A WebSocket server on 127.0.0.1: connection i sends scripts[i] (messages, then a close code
    or nothing: it stays open until the client closes); records each request's path and the code
    the client closed with."""

    def __init__(self, scripts: list[list]):
        self.scripts = scripts
        self.paths: list[str] = []
        self.client_closed: dict[int, int | None] = {}
        self.lock = threading.Lock()
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = serve(self._handle, sock=sock, compression=None)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, conn):
        with self.lock:
            i = len(self.paths)
            self.paths.append(conn.request.path)
        script = self.scripts[i] if i < len(self.scripts) else [1013]    # unplanned: "try again"
        for step in script:
            if isinstance(step, int):
                conn.close(step, "scripted")
                return
            conn.send(json.dumps(step))
        try:
            conn.recv(timeout=60)
        except ConnectionClosed as e:
            self.client_closed[i] = e.rcvd.code if e.rcvd else None
        except TimeoutError:
            conn.close()

    def close(self):
        self.server.shutdown()
        self.thread.join(timeout=10)


def test_gaps_duplicates_epochs_and_close_codes_lead_to_an_exact_resume(new_page):
    feed = ScriptedFeed([
        [snapshot(5, "e1"), event(6), event(6), event(5), event(7), event(9)],   # duplicates ignored; 9 is a gap
        [resume(7, "e1"), event(8), event(9), 4008],                    # the hub's "too slow"
        [resume(9, "e1"), 1013],                                        # the hub's "try again later"
        [resume(9, "e9")],                                              # another history: start afresh
        [snapshot(3, "e2"), event(4)],                                  # then it stays open
    ])
    try:
        page = blank_page_with_client(new_page)
        page.evaluate(CLIENT, {"url": f"ws://127.0.0.1:{feed.port}/feed", "retryBase": 50, "retryCap": 200})
        page.wait_for_function("window.__applied.some(m => m.epoch === 'e2') && window.__applied.at(-1).seq === 4"
                               " && window.__applied.at(-1).type !== 'snapshot'", timeout=30_000)
        applied = page.evaluate("window.__applied")
        assert [(m["type"], m["seq"]) for m in applied] == [
            ("snapshot", 5), ("ticket.issued", 6), ("ticket.issued", 7),
            ("resume", 7), ("ticket.issued", 8), ("ticket.issued", 9),
            ("resume", 9),
            ("snapshot", 3), ("ticket.issued", 4)]
        assert applied[7]["was"] == {"seq": None, "epoch": None}      # the old history was let go
        assert page.evaluate("[window.__feed.seq, window.__feed.epoch]") == [4, "e2"]

        assert feed.paths == ["/feed", "/feed?since=7&epoch=e1", "/feed?since=9&epoch=e1",
                              "/feed?since=9&epoch=e1", "/feed"]
        downs = states(page, "down")
        assert [(d["code"], d["reason"], d["outage"]) for d in downs] == [
            (4000, "gap", False),          # a live connection cut for a gap: resumed at once, no banner
            (4008, "closed", False),       # too slow: the same
            (1013, "closed", True),        # the hub cannot serve: that is an outage
            (4000, "epoch", True)]
        assert [d["seq"] for d in downs] == [7, 9, 9, 9]                # where each reconnect resumed from
        assert all(d["delay"] <= 200 for d in downs)
        wait_until(lambda: 0 in feed.client_closed and 3 in feed.client_closed, what="the server to see the drops")
        assert feed.client_closed[0] == 4000 and feed.client_closed[3] == 4000      # ours: "a gap"

        page.evaluate("window.__feed.stop()")
        wait_until(lambda: 4 in feed.client_closed, what="the client to close the last connection")
        assert feed.client_closed[4] == 1000 and len(feed.paths) == 5    # stopped means stopped
    finally:
        feed.close()


def test_internal_events_keep_the_count_and_a_skip_is_a_gap(new_page):
    """What is not the board's business comes as `internal` at its seq (seqs 6 and 9 here): the
    client counts it and shows nothing; an event that skips a seq is a gap, whatever it is."""
    feed = ScriptedFeed([
        [snapshot(5, "e1"), internal(6), event(7), internal(9)],          # 8 never came: a gap
        [resume(7, "e1"), event(8), internal(9), event(10)],              # then it stays open
    ])
    try:
        page = blank_page_with_client(new_page)
        page.evaluate(CLIENT, {"url": f"ws://127.0.0.1:{feed.port}/feed", "retryBase": 50, "retryCap": 200})
        page.wait_for_function("window.__applied.length && window.__applied.at(-1).seq === 10")   # the scaled default
        applied = page.evaluate("window.__applied")
        assert [(m["type"], m["seq"]) for m in applied] == [
            ("snapshot", 5), ("internal", 6), ("ticket.issued", 7), ("resume", 7), ("ticket.issued", 8),
            ("internal", 9), ("ticket.issued", 10)]
        assert feed.paths == ["/feed", "/feed?since=7&epoch=e1"]
        assert [(d["code"], d["reason"], d["seq"]) for d in states(page, "down")] == [(4000, "gap", 7)]
        page.evaluate("window.__feed.stop()")
    finally:
        feed.close()


def test_a_ticket_feeds_prev_lets_seqs_jump_and_a_prev_beyond_is_a_gap(new_page):
    """A ticket feed skips events that leave its view as it was: each live event names the one
    before as `prev`. A jump with `prev` at (or below) the last seq is no gap; a `prev` beyond it is."""
    def moved(seq: int, prev: int) -> dict:
        return {**event(seq), "prev": prev}

    feed = ScriptedFeed([
        [snapshot(5, "e1"), moved(8, 5), moved(12, 8), moved(15, 13)],    # 13 never came: a gap
        [resume(12, "e1"), event(13), moved(20, 13)],                    # replayed, then live again
    ])
    try:
        page = blank_page_with_client(new_page)
        page.evaluate(CLIENT, {"url": f"ws://127.0.0.1:{feed.port}/feed", "retryBase": 50, "retryCap": 200})
        page.wait_for_function("window.__applied.length && window.__applied.at(-1).seq === 20")
        applied = page.evaluate("window.__applied")
        assert [(m["type"], m["seq"]) for m in applied] == [
            ("snapshot", 5), ("ticket.issued", 8), ("ticket.issued", 12),
            ("resume", 12), ("ticket.issued", 13), ("ticket.issued", 20)]
        assert feed.paths == ["/feed", "/feed?since=12&epoch=e1"]
        assert [(d["code"], d["reason"], d["seq"]) for d in states(page, "down")] == [(4000, "gap", 12)]
        page.evaluate("window.__feed.stop()")
    finally:
        feed.close()
