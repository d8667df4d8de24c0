/* The one live-feed client of every page: a WebSocket to a branch's board feed (/ws/branches/{b}) or
   a ticket's feed (/ws/tickets/{token}), as docs/feeds.md describes them. No libraries.

     var feed = QC.feed({url: "/ws/branches/1", seq: view.seq, epoch: view.epoch,
                         onSnapshot: fn(msg, was), onResume: fn(msg), onEvent: fn(msg), onState: fn(state, detail),
                         connectTimeout: 10000, retryBase: 500, retryCap: 10000});      // ms; these are the defaults

   - It connects with ?since=SEQ&epoch=E when it knows where it is: the hub then sends a `resume`
     marker and exactly the missed events, or a `snapshot` that replaces the page's state (`was` is
     the position the page had before it).
   - Events come in by seq: one already seen is ignored; one that does not follow the last by
     exactly 1 (or a marker from another epoch) means something was missed, so the connection is
     dropped and the next one resumes from the last good seq. (What is not a feed's business, a
     holder's opt-in on the board say, comes as an `internal` event: the board's seq never skips.)
     A ticket feed's live events carry `prev`, the seq of the message before: its seq may jump
     over events that left the ticket's view as it was, and only a `prev` beyond the last seq seen
     is a gap.
   - A socket that has not started (opened and delivered its first message) within connectTimeout
     is abandoned. Every reconnect waits a random time between 0 and min(retryCap, retryBase × 2^n)
     ("full jitter": a lobby's boards do not come back in step after a hub restart); n counts the
     failures since the last connection that started. Whatever closed it (the network, the hub's
     4008 "too slow", 1012 "restarting", 1013 "try again", ...), the answer is that reconnect;
     after 4009 (history replaced) or 4400 (bad since) it starts afresh, from a snapshot.
   - onState(state, detail): "connecting" {attempt}, "live" (the first message of a connection
     came in), "down" {code, reason, delay, attempt, outage, seq, epoch}: `outage` is false for the
     first quick reconnect after a live connection was cut for flow control (4008, 4009, a gap),
     which is no reason to show a page's "disconnected" banner.
   Each state and each message taken is also dispatched on `document` as a "qc-feed-state" or
   "qc-feed-message" CustomEvent (so a page's tests can watch the feed without reaching inside).
   The returned handle: stop(), start(), reconnect(code), retryNow(), isOpen(), and the position
   it has reached as .seq and .epoch (read only). */
window.QC = window.QC || {};

QC.feed = function (opts) {
  "use strict";
  var GAP = 4000;                                          // our own close code: we saw a gap
  var FLOW = { 4008: true, 4009: true, 4000: true };       // cut for flow control, not an outage
  var AFRESH = { 4009: true, 4400: true };                 // our position is no good: take a snapshot
  var connectTimeout = opts.connectTimeout || 10000;
  var base = opts.retryBase || 500, cap = opts.retryCap || 10000;
  var noop = function () {};
  var onSnapshot = opts.onSnapshot || noop, onResume = opts.onResume || noop;
  var onEvent = opts.onEvent || noop, onState = opts.onState || noop;

  var handle = { seq: opts.seq != null ? opts.seq : null, epoch: opts.epoch || null };
  var sock = null, started = false, failures = 0, stopped = false;
  var startTimer = null, retryTimer = null;

  function address() {
    var u = opts.url;
    if (!/^wss?:/.test(u)) u = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + u;
    if (handle.seq == null) return u;
    return u + (u.indexOf("?") < 0 ? "?" : "&") + "since=" + handle.seq +
      (handle.epoch ? "&epoch=" + encodeURIComponent(handle.epoch) : "");
  }

  function tell(kind, detail) {
    detail.url = opts.url;
    try { document.dispatchEvent(new CustomEvent(kind, { detail: detail })); } catch (e) { /* an old browser */ }
  }

  function state(name, detail) {
    onState(name, detail);
    detail.state = name;
    tell("qc-feed-state", detail);
  }

  function connect() {
    retryTimer = null;
    if (stopped || sock) return;
    var url = address(), s;
    started = false;
    state("connecting", { attempt: failures });
    if (stopped) return;
    try { s = new WebSocket(url); } catch (e) { closed(1006, "error"); return; }
    sock = s;
    startTimer = setTimeout(function () { if (sock === s) drop(1006, "timeout"); }, connectTimeout);
    s.onmessage = function (m) { if (sock === s) take(m.data); };
    s.onclose = function (e) { if (sock === s) { sock = null; closed(e.code, "closed"); } };
    s.onerror = noop;                                      // onclose follows
  }

  // Gives up on the socket now (its own close can take long on a dead link) and reconnects.
  function drop(code, reason) {
    var s = sock;
    if (!s) return;
    sock = null;
    try { s.close(code === GAP ? GAP : 1000); } catch (e) { /* already closing */ }
    closed(code, reason);
  }

  function closed(code, reason) {
    clearTimeout(startTimer);
    var detail = { code: code, reason: reason, seq: handle.seq, epoch: handle.epoch };
    if (AFRESH[code] || reason === "epoch") { handle.seq = null; handle.epoch = null; }
    detail.outage = !(FLOW[code] && started && failures === 0);
    started = false;
    detail.delay = Math.round(Math.random() * Math.min(cap, base * Math.pow(2, Math.min(failures, 20))));
    failures++;
    detail.attempt = failures;
    state("down", detail);
    if (!stopped && !retryTimer && !sock) retryTimer = setTimeout(connect, detail.delay);
  }

  function begin() {                                       // the connection's first message came in
    clearTimeout(startTimer);
    started = true;
    failures = 0;
    state("live", {});
  }

  function taken(m) {
    var detail = { type: m.type, seq: m.seq, epoch: handle.epoch };
    if (typeof m.prev === "number") detail.prev = m.prev;
    tell("qc-feed-message", detail);
  }

  function take(data) {
    var m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (!m || typeof m.seq !== "number") return;           // not a feed message
    if (m.type === "snapshot") {
      var was = { seq: handle.seq, epoch: handle.epoch };
      handle.seq = m.seq; handle.epoch = m.epoch || null;
      if (!started) begin();
      taken(m);
      onSnapshot(m, was);
      return;
    }
    if (m.type === "resume") {
      if (m.epoch && handle.epoch && m.epoch !== handle.epoch) { drop(GAP, "epoch"); return; }   // another history
      if (handle.seq == null || m.seq > handle.seq) { drop(GAP, "gap"); return; }
      if (m.epoch) handle.epoch = m.epoch;
      if (!started) begin();
      taken(m);
      onResume(m);
      return;
    }
    if (!started) { drop(GAP, "gap"); return; }            // an event before the start: out of step
    if (m.epoch && handle.epoch && m.epoch !== handle.epoch) { drop(GAP, "epoch"); return; }
    if (m.seq <= handle.seq) return;                       // seen already
    // A ticket feed skips events that leave its view as it was: its messages name the one before (prev).
    var prev = typeof m.prev === "number" ? m.prev : m.seq - 1;
    if (prev > handle.seq) { drop(GAP, "gap"); return; }         // missed some: resume from here
    handle.seq = m.seq;
    taken(m);
    onEvent(m);
  }

  handle.stop = function () {
    stopped = true;
    clearTimeout(retryTimer); retryTimer = null;
    clearTimeout(startTimer);
    var s = sock;
    sock = null; started = false;
    if (s) try { s.close(1000); } catch (e) { /* already closing */ }
  };
  handle.start = function () {
    if (!stopped) return;
    stopped = false; failures = 0;
    connect();
  };
  // The page has reason to think the link is dead (a request to the hub failed): reconnect.
  handle.reconnect = function (code) { drop(code || 1006, "page"); };
  // Waiting to reconnect, and there is reason to try now (a phone's page is shown again).
  handle.retryNow = function () {
    if (stopped || sock) return;
    clearTimeout(retryTimer); retryTimer = null;
    failures = 0;
    connect();
  };
  handle.isOpen = function () { return !!sock && sock.readyState === 1; };

  connect();
  return handle;
};
