/* The citizen's phone page (/t/{token}): live from the ticket feed, no libraries.
   Feed: /ws/tickets/{token} through static/feed.js (resumed with since/epoch after a drop, backoff with
   jitter); while the socket is down the page polls its JSON twin (/t/{token}?format=json). */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("qc-data").textContent);
  var W = D.w, T = encodeURIComponent(D.token);
  var TRAVEL_KEY = "qc.travel_minutes", MARGIN = 5, POLL_MS = 10000, MAX_BACKOFF = 30000;
  var ACTIVE = ["waiting", "called", "held"], OVER = ["completed", "cancelled", "expired", "skipped"];
  var v = D.view, travel = loadTravel(), audio = null;

  function $(id) { return document.getElementById(id); }
  function show(id, on) { $(id).hidden = !on; }
  function fill(s, o) { return String(s || "").replace(/\{(\w+)\}/g, function (m, k) { return o[k] != null ? o[k] : ""; }); }
  function hhmm(iso) { return iso ? iso.slice(11, 16) : ""; }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function msg(id, text, bad) { var el = $(id); el.textContent = text || ""; el.className = "msg" + (bad ? " bad" : text ? " ok" : ""); }

  function loadTravel() {
    var s = null;
    try { s = localStorage.getItem(TRAVEL_KEY); } catch (e) { /* private mode */ }
    var t = s !== null && s !== "" ? Number(s) : v.travel_minutes;
    return t != null && isFinite(t) ? t : null;
  }

  // "Leave home by": the earliest likely call minus travel and a margin, never before now (as the hub computes it).
  function leaveBy() {
    var ec = v.expected_call, eta = v.eta;
    if (travel == null || !ec || !eta) return null;
    var t = Date.parse(ec.earliest), m = /([+-])(\d\d):(\d\d)$/.exec(ec.earliest);
    if (!isFinite(t)) return null;
    var off = m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
    var now = t - eta.p10 * 60000, at = Math.max(t - (travel + MARGIN) * 60000, now);
    var d = new Date(at + off * 60000), text = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    if (v.leave_by && v.travel_minutes === travel) text = hhmm(v.leave_by);     // the hub's own figure
    return { text: text, now: at <= now };
  }

  function render() {
    var st = v.state, waiting = st === "waiting", ec = v.expected_call;
    $("tk").className = "tk st-" + st;
    $("num").textContent = v.number;
    $("state-title").textContent = fill(W["st_" + st] || st, { counter: v.counter });
    $("state-text").textContent = fill(W["tx_" + st], { counter: v.counter, time: hhmm(v.held_until) });
    show("f-ahead", v.people_ahead != null);
    $("ahead").textContent = v.people_ahead != null ? v.people_ahead : "";
    $("serving").textContent = v.now_serving.length ? v.now_serving.map(function (s) {
      return s.number + " → " + W.counter.toLowerCase() + " " + s.counter;
    }).join(", ") : W.serving_none;
    show("f-serving", OVER.indexOf(st) < 0 || st === "skipped");
    show("f-call", waiting && !!ec);
    if (ec) {
      var a = hhmm(ec.earliest), b = hhmm(ec.latest);
      $("call").textContent = v.eta && v.eta.p90 < 1 ? W.soon : a === b ? a : a + " – " + b;
    }
    var lv = waiting ? leaveBy() : null;
    show("f-leave", !!lv);
    if (lv) $("leave").textContent = lv.text + (lv.now ? " — " + W.leave_now : "");
    show("travel-box", waiting);
    show("notify-box", waiting || st === "held");
    renderOn();
    show("push", push.ready && !v.notifications.push);
    show("rate-box", st === "completed" && !v.rated);
    show("thanks", st === "completed" && v.rated);
    show("give-back", ACTIVE.indexOf(st) >= 0);
    show("new-number", OVER.indexOf(st) >= 0);
    document.title = (st === "called" ? "🔔 " : "") + W.number + " " + v.number + " — " + v.branch_name;
  }

  function update(nv) {
    if (!nv || !nv.state) return;
    var prev = v;
    v = nv;
    render();
    if (nv.state === "called" && (prev.state !== "called" || prev.called_at !== nv.called_at)) alertCalled();
  }

  // -- being called: vibration and a short beep (WebAudio, unlocked by the first touch) -------------

  function audioCtx() {
    if (!audio) {
      var AC = window.AudioContext || window.webkitAudioContext;
      if (AC) try { audio = new AC(); } catch (e) { audio = null; }
    }
    return audio;
  }

  function beep(times) {
    var ctx = audioCtx();
    if (!ctx) return;
    if (ctx.state === "suspended" && ctx.resume) ctx.resume();
    var t0 = ctx.currentTime + 0.05;
    for (var i = 0; i < times; i++) {
      var o = ctx.createOscillator(), g = ctx.createGain(), s = t0 + i * 0.35;
      o.type = "sine";
      o.frequency.value = i % 2 ? 660 : 880;
      g.gain.setValueAtTime(0.0001, s);
      g.gain.exponentialRampToValueAtTime(0.5, s + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, s + 0.28);
      o.connect(g);
      g.connect(ctx.destination);
      o.start(s);
      o.stop(s + 0.3);
    }
  }

  function alertCalled() {
    try { if (navigator.vibrate) navigator.vibrate([400, 150, 400, 150, 800]); } catch (e) { /* not allowed */ }
    try { beep(3); } catch (e) { /* no audio */ }
  }

  function setupSound() {
    var ctx = audioCtx();
    if (!ctx) return;
    var unlock = function () {
      if (ctx.state === "suspended") ctx.resume();
      show("sound", false);
    };
    show("sound", ctx.state === "suspended");
    document.addEventListener("pointerdown", unlock, { once: true });
    $("sound").addEventListener("click", function () { unlock(); beep(1); });
  }

  // -- talking to the hub ----------------------------------------------------------------------------

  function send(method, url, body) {
    var opts = { method: method, cache: "no-store", headers: {} };
    if (body) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        if (r.ok) return { ok: true, body: data };
        var e = data && data.error;
        return { ok: false, status: r.status, code: e && e.code,
                 error: e ? (D.lang === "en" ? e.message : e.message_vi || e.message) : W.error };
      });
    }, function () { return { ok: false, error: W.error }; });
  }

  $("travel-box").addEventListener("submit", function (e) {
    e.preventDefault();
    var raw = $("travel").value.trim(), n = Number(raw);
    if (raw === "") {
      travel = null;
      try { localStorage.removeItem(TRAVEL_KEY); } catch (x) { /* private mode */ }
    } else if (!isFinite(n) || n < 0 || n > 600) {
      msg("travel-msg", W.travel_bad, true);
      return;
    } else {
      travel = Math.round(n);
      try { localStorage.setItem(TRAVEL_KEY, String(travel)); } catch (x) { /* private mode */ }
    }
    msg("travel-msg", "");
    render();
  });

  function optIn(body, out, ok, button) {
    body.ahead = Number($("sms-ahead").value) || undefined;
    if (travel != null) body.travel_minutes = travel;
    body.lang = D.lang === "en" ? "en" : "vi";          // messages come in the language of this page
    button.disabled = true;
    return send("POST", "/api/tickets/" + T + "/notifications", body).then(function (r) {
      button.disabled = false;
      if (r.ok) { update(r.body); msg(out, ok); } else msg(out, r.error, true);
      return r.ok;
    });
  }

  $("sms-form").addEventListener("submit", function (e) {
    e.preventDefault();
    optIn({ channel: "sms", phone: $("sms-phone").value.trim() }, "sms-msg", W.sms_ok, $("sms-form").querySelector("button"));
  });

  function b64urlBytes(s) {
    var raw = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  // -- web push: the service worker (/sw.js) shows what the hub pushes; the hub keeps the subscription --

  var push = { ready: false, reg: null };
  var ON_WORDS = { sms: "sms_on", push: "push_on", zalo: "zalo_on" };

  function renderOn() {
    var ul = $("notify-on");
    ul.textContent = "";
    ["sms", "push", "zalo"].forEach(function (ch) {
      if (!v.notifications[ch]) return;
      var li = document.createElement("li"), b = document.createElement("button");
      li.setAttribute("data-channel", ch);
      li.appendChild(document.createTextNode("✓ " + W[ON_WORDS[ch]]));
      b.type = "button";
      b.className = "off";
      b.textContent = W.turn_off;
      b.setAttribute("data-channel", ch);
      li.appendChild(b);
      ul.appendChild(li);
    });
  }

  // Turning a channel off tells the hub only: the browser's subscription is this site's, shared by every
  // number followed in this browser, so unsubscribing it here would silence the others too.
  $("notify-on").addEventListener("click", function (e) {
    var b = e.target.closest("button.off");
    if (!b) return;
    b.disabled = true;
    send("DELETE", "/api/tickets/" + T + "/notifications/" + b.getAttribute("data-channel")).then(function (r) {
      b.disabled = false;
      if (r.ok) { update(r.body); msg("off-msg", W.off_ok); } else msg("off-msg", r.error, true);
    });
  });

  function pushNote(text) {
    var p = $("push-msg");
    p.textContent = text;
    p.className = "push-note";
  }

  function setupPush() {
    if (!("serviceWorker" in navigator && "PushManager" in window && "Notification" in window)) {
      pushNote(W.push_unsupported);
      return;
    }
    if (!D.vapid) return;                          // this hub does not push: SMS only, nothing to say
    navigator.serviceWorker.register("/sw.js", { scope: "/t/" }).then(function (reg) {
      push.reg = reg;
      push.ready = true;
      if (Notification.permission === "denied") { $("push").disabled = true; pushNote(W.push_denied); }
      render();
    }, function () { /* no worker (private mode, an old browser): no push button */ });

    var b = $("push");
    b.addEventListener("click", function () {
      b.disabled = true;
      msg("push-msg", "");
      // Asked for first, straight from the tap: some browsers only ask inside the user's gesture.
      Promise.resolve(Notification.requestPermission()).then(function (perm) {
        if (perm !== "granted") throw new Error("denied");
        return navigator.serviceWorker.ready;
      }).then(function (reg) {
        // An existing subscription made with this hub's key is reused (it may serve another number too).
        return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(D.vapid) });
      }).then(function (sub) {
        return optIn({ channel: "push", subscription: sub.toJSON() }, "push-msg", W.push_ok, b);
      }, function (e) {
        var denied = e && e.message === "denied";
        b.disabled = denied;
        msg("push-msg", denied ? W.push_denied : W.push_failed, true);
      });
    });
  }

  $("give-back").addEventListener("click", function () {
    if (!window.confirm(fill(W.give_back_confirm, { number: v.number }))) return;
    var b = $("give-back");
    b.disabled = true;
    send("DELETE", "/api/tickets/" + T).then(function (r) {
      b.disabled = false;
      if (r.ok) { update(r.body); msg("give-msg", ""); } else msg("give-msg", r.error, true);
    });
  });

  var rating = false;
  function lightStars(n) {
    var stars = $("faces").querySelectorAll(".face");
    for (var i = 0; i < stars.length; i++) stars[i].classList.toggle("lit", i < n);
  }
  $("faces").addEventListener("click", function (e) {
    var face = e.target.closest(".face");
    if (!face || rating) return;                       // one rating, however many taps
    rating = true;
    var score = Number(face.getAttribute("data-score"));
    lightStars(score);
    $("faces").classList.add("busy");
    var body = { score: score }, c = $("rate-comment").value.trim();
    if (c) body.comment = c;
    send("POST", "/api/tickets/" + T + "/rating", body).then(function (r) {
      $("faces").classList.remove("busy");
      if (r.ok) { update(r.body); return; }
      if (r.code === "already_rated") { v.rated = true; render(); return; }
      rating = false;
      lightStars(0);
      msg("rate-msg", r.error, true);
    });
  });

  // -- the live feed (static/feed.js), with polling while it is down --------------------------------------

  var feed = null, live = false, pollTimer = null, over = false;

  function status(kind) {
    $("live").textContent = kind === "live" ? "● " + W.live : kind === "poll" ? "○ " + W.polling : "";
    $("live").className = "live is-" + kind;
    $("banner").textContent = kind === "gone" ? W.gone : W.disconnected;
    $("banner").classList.toggle("shown", kind === "down" || kind === "gone");
  }

  function onState(state, d) {
    if (state === "live") { live = true; stopPolling(); status("live"); return; }
    if (state !== "down") return;
    live = false;
    if (d.code === 4404) { gone(); return; }
    startPolling();
  }

  function connect() {
    if (!("WebSocket" in window)) { startPolling(); return; }
    feed = QC.feed({ url: "/ws/tickets/" + T, retryBase: 1000, retryCap: MAX_BACKOFF, onState: onState,
                     onSnapshot: function (m) { update(m.ticket); }, onEvent: function (m) { update(m.ticket); } });
  }

  function startPolling() {
    if (pollTimer || over) return;
    pollTimer = setInterval(poll, POLL_MS);
    poll();
  }

  function stopPolling() { clearInterval(pollTimer); pollTimer = null; }

  function poll() {
    fetch(location.pathname + "?format=json", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 404) { gone(); return null; }
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(function (nv) { if (nv && !live) { update(nv); status("poll"); } })
      .catch(function () { if (!live) status("down"); });
  }

  function gone() {
    over = true;
    stopPolling();
    if (feed) feed.stop();
    status("gone");
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && feed && !over) feed.retryNow();     // phones drop sockets in the background
  });

  if (travel != null) $("travel").value = travel;
  render();
  setupSound();
  setupPush();
  connect();
})();
