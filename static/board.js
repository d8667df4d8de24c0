/* The lobby TV board, live: the branch's board feed (snapshot or exact resume, docs/feeds.md) drives
   the calls; the page's JSON twin refreshes the waiting counts and expected waits. No libraries. */
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("board-data").textContent);
  var view = boot.view, W = boot.words;
  var branch = view.id;
  var fields = view.fields ? new Set(view.fields) : null;
  var RECENT = 10, FLASH_MS = 6000, REPLAY_QUIET_MS = 400, REPLAY_ANNOUNCE = 2;
  var MAX_BACKOFF_MS = 10000, CONNECT_TIMEOUT_MS = 10000, REFRESH_EVERY_MS = 30000, REFRESH_MIN_MS = 1000;

  var $ = function (id) { return document.getElementById(id); };
  var recent = view.recent_calls.slice();
  var feed = null;                              // QC.feed: starts where the page was rendered (view.seq)
  var replay = null;                            // calls replayed after a resume, announced once it is quiet
  var speaking = null;                          // the number being said now
  var lost = null;                              // where we were when told to start again from a snapshot
  var lastUpdate = Date.now();
  var hubOffset = 0, hubTz = 0;                 // hub clock minus ours (ms); the hub's UTC offset (ms)

  function hubClock(nowIso) {
    var m = /([+-])(\d\d):(\d\d)$/.exec(nowIso || "");
    if (m) hubTz = (m[1] === "-" ? -1 : 1) * (+m[2] * 60 + +m[3]) * 60000;
    var t = Date.parse(nowIso);
    if (!isNaN(t)) hubOffset = t - Date.now();
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function hubDate(ms) { return new Date(ms + hubOffset + hubTz); }   // read with getUTC*
  function hhmm(d, seconds) {
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + (seconds ? ":" + pad(d.getUTCSeconds()) : "");
  }
  function tick() {
    var d = hubDate(Date.now());
    $("clock-time").textContent = hhmm(d);
    $("clock-date").textContent = W.weekdays[(d.getUTCDay() + 6) % 7] + ", " + pad(d.getUTCDate()) + "/" +
      pad(d.getUTCMonth() + 1) + "/" + d.getUTCFullYear();
  }

  // -- calls -----------------------------------------------------------------------------------------

  function subtitle(c) { return "Mời công dân có số " + c.number + " đến quầy số " + c.counter; }

  function renderCalls(flash) {
    var list = $("recent"), latest = recent[0];
    list.textContent = "";
    recent.forEach(function (c, i) {
      var li = document.createElement("li"), n = document.createElement("span"), k = document.createElement("span");
      li.dataset.number = c.number; li.dataset.counter = c.counter;
      li.className = (i === 0 ? "first " : "") + (c.number === speaking ? "speaking" : "");
      n.className = "r-number"; n.textContent = c.number;
      k.className = "r-counter"; k.textContent = W.to_counter + " " + c.counter;
      li.append(n, k); list.append(li);
    });
    var box = $("latest");
    box.classList.toggle("empty", !latest);
    $("latest-number").textContent = latest ? latest.number : "—";
    $("latest-counter").textContent = latest ? latest.counter : "—";
    $("subtitle").textContent = latest ? subtitle(latest) : W.no_calls;
    if (flash && latest) {
      box.classList.remove("flash");
      void box.offsetWidth;                   // restart the animation
      box.classList.add("flash");
      clearTimeout(renderCalls.timer);
      renderCalls.timer = setTimeout(function () { box.classList.remove("flash"); }, FLASH_MS);
    }
  }

  function addCall(ev) {
    var c = {number: ev.number, counter: ev.counter, service: ev.service, t: ev.t, seq: ev.seq,
             recall: ev.type === "ticket.recalled"};
    recent = [c].concat(recent.filter(function (r) { return r.number !== c.number; })).slice(0, RECENT);
    return c;
  }

  function announce(c) { if (window.QCAnnounce) window.QCAnnounce.enqueue(c.number, c.counter); }

  function onCall(ev) {
    if (fields && !fields.has(ev.service)) return;
    var c = addCall(ev);
    if (replay) { replay.push(c); renderCalls(false); return; }
    renderCalls(true);
    announce(c);
  }

  function endReplay() {
    var calls = replay || [];
    replay = null;
    if (!calls.length) return;
    renderCalls(true);                        // every missed call is listed; only the last ones are said
    calls.slice(-REPLAY_ANNOUNCE).forEach(announce);
  }

  // -- fields (from the JSON twin) ---------------------------------------------------------------------

  function renderFields(v) {
    var body = $("fields").tBodies[0];
    v.services.forEach(function (s) {
      var row = body.querySelector('tr[data-service="' + s.id + '"]');
      if (!row) return;
      row.cells[1].textContent = s.waiting;
      row.cells[2].firstChild.textContent = Math.round(s.expected_wait.p50) + " ";
    });
  }

  var refreshing = false, lastRefresh = 0, refreshTimer = null;
  function refreshSoon() {                      // at most one twin request a second
    if (refreshTimer) return;
    var wait = Math.max(0, lastRefresh + REFRESH_MIN_MS - Date.now());
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, wait);
  }
  function refresh() {
    if (refreshing) { refreshSoon(); return; }
    refreshing = true; lastRefresh = Date.now();
    var q = new URLSearchParams(location.search); q.delete("lang"); q.set("format", "json");
    var ctl = new AbortController(), timer = setTimeout(function () { ctl.abort(); }, 8000);
    fetch(location.pathname + "?" + q, {cache: "no-store", signal: ctl.signal})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (v) {
        hubClock(v.now); renderFields(v); tick();
        if (v.epoch === feed.epoch && v.seq >= feed.seq && !replay) {   // not behind what the feed told us
          recent = v.recent_calls.slice(0, RECENT);
          var missed = lost && lost.epoch === v.epoch ? recent.filter(function (c) { return c.seq > lost.seq; }) : [];
          lost = null;
          renderCalls(missed.length > 0);
          missed.slice(0, REPLAY_ANNOUNCE).reverse().forEach(announce);
        }
        if (feed.isOpen()) touched();
      })
      .catch(function (e) {
        // The hub is unreachable although the socket looks open (a dead link sends no close): reconnect.
        if (e instanceof TypeError && feed.isOpen()) feed.reconnect(1006);
      })
      .finally(function () { clearTimeout(timer); refreshing = false; lastRefresh = Date.now(); });
  }

  // -- the feed (static/feed.js: resume by seq, gaps, timeouts, backoff) --------------------------------

  function touched() { lastUpdate = Date.now(); $("last-update").textContent = hhmm(hubDate(lastUpdate), true); }
  function banner(shown) { $("banner").classList.toggle("shown", shown); document.body.classList.toggle("offline", shown); }
  function feedState(state) { document.body.dataset.feed = state; }   // "connecting" | "live" | "down"

  function onState(state, d) {
    if (state === "connecting") { if (document.body.dataset.feed !== "down") feedState("connecting"); return; }
    if (state === "live") { banner(false); touched(); feedState("live"); return; }
    feedState("down");
    if (replay) { clearTimeout(quiet.timer); endReplay(); }
    if ((d.code === 4009 || d.code === 4400) && d.seq != null) lost = {seq: d.seq, epoch: d.epoch};   // the twin
    if (d.outage) banner(true);                                       // then says which calls we missed
  }

  function onSnapshot(msg, was) {
    if (was.seq != null && !lost) lost = was;
    if (replay) endReplay();
    hubClock(msg.now); renderFields(msg); refresh();
  }

  function onResume() { replay = replay || []; quiet(); }

  function onEvent(msg) {
    touched();
    if (replay) quiet();
    if (msg.type === "ticket.called" || msg.type === "ticket.recalled") onCall(msg);
    refreshSoon();
  }

  function quiet() {                                                  // the replay ends when frames stop
    clearTimeout(quiet.timer);
    quiet.timer = setTimeout(endReplay, REPLAY_QUIET_MS);
  }

  // A recent-list row is lit while its call is being said (calls can queue up behind each other).
  document.addEventListener("qc-announce", function (e) { speaking = e.detail.number; renderCalls(false); });
  document.addEventListener("qc-announced", function () { speaking = null; renderCalls(false); });

  hubClock(view.now);
  tick(); touched();
  setInterval(tick, 1000);
  setInterval(refresh, REFRESH_EVERY_MS);
  feed = QC.feed({url: "/ws/branches/" + encodeURIComponent(branch), seq: view.seq, epoch: view.epoch,
                  connectTimeout: CONNECT_TIMEOUT_MS, retryCap: MAX_BACKOFF_MS,
                  onState: onState, onSnapshot: onSnapshot, onResume: onResume, onEvent: onEvent});
})();
