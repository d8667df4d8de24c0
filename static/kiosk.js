/* The kiosk screen: field buttons → issue a number → show (and print) the ticket → back to the
   buttons. And the printable ticket page, which prints itself with ?autoprint=1. */
(function () {
  "use strict";

  // -- the printable ticket page --------------------------------------------------------------------
  var ticketEl = document.getElementById("ticket");
  if (ticketEl) {
    // The roll is cut where the ticket ends: the page is as long as the ticket (Chromium has no
    // "size: 80mm auto"), measured on screen, where the ticket is laid out 80 mm wide as on paper.
    var pageStyle = document.createElement("style");
    document.head.appendChild(pageStyle);
    var fitPage = function () {
      var mm = Math.ceil(ticketEl.getBoundingClientRect().height * 25.4 / 96) + 6;
      if (mm > 20) pageStyle.textContent = "@page { size: 80mm " + mm + "mm; margin: 0; }";
    };
    var printTicket = function () { fitPage(); window.print(); };
    var again = document.getElementById("print-again");
    if (again) again.addEventListener("click", printTicket);
    if (document.readyState === "complete") fitPage();
    else window.addEventListener("load", fitPage);
    if (ticketEl.dataset.autoprint === "1") {
      if (document.readyState === "complete") setTimeout(printTicket, 50);
      else window.addEventListener("load", function () { setTimeout(printTicket, 50); });
    }
    return;
  }

  var root = document.getElementById("kiosk");
  if (!root) return;

  var W = JSON.parse(document.getElementById("kiosk-words").textContent);
  var view = JSON.parse(document.getElementById("kiosk-view").textContent);
  var BRANCH = root.dataset.branch;
  var LANG = root.dataset.lang;
  var AUTOPRINT = root.dataset.autoprint === "1";
  var HOLD = parseInt(root.dataset.hold, 10) || 12;
  var TOKEN_KEY = "qc.kiosk.token." + BRANCH;
  var REFRESH_MS = 15000;
  var IDLE_MS = 90000;

  function $(id) { return document.getElementById(id); }

  // -- priority toggle -----------------------------------------------------------------------------
  var priority = false;
  function setPriority(on) {
    priority = on;
    $("priority").setAttribute("aria-pressed", on ? "true" : "false");
  }
  $("priority").addEventListener("click", function () { setPriority(!priority); });

  // -- the device token: kept in localStorage; given once by ?token= (a kiosk token from
  //    `queuecast token kiosk`, or a staff token), or fetched once with the one-time code of #enrol=
  //    (the admin page's link: in the fragment, which the browser never sends; ?enrol= is taken too).
  //    Neither is left in the address bar or in the history. -----------------------------------------
  var LOBBY = root.dataset.lobby === "1";           // the branch lets anonymous kiosks here issue
  // The enrolment code (or token) the address carries, taken out of it: on load, and when only the
  // fragment changes (the link opened on a kiosk already showing this page does not reload it).
  function fromAddress() {
    var params = new URLSearchParams(location.search);
    var fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
    var code = fragment.get("enrol") || params.get("enrol");
    if (params.has("token") || params.has("enrol") || fragment.has("enrol")) {
      if (params.has("token")) storeToken(params.get("token").trim());
      params.delete("token");
      params.delete("enrol");
      var rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
    }
    return code ? code.trim() : null;
  }
  var enrolCode = fromAddress();
  function storeToken(tok) {
    window.__qcToken = tok;
    try {
      if (tok) localStorage.setItem(TOKEN_KEY, tok); else localStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* private mode: keep it for this page only */ }
  }
  function deviceToken() {
    var kept = null;
    try { kept = localStorage.getItem(TOKEN_KEY); } catch (e) { kept = null; }
    return kept != null ? kept : (window.__qcToken || "");
  }
  var tokenBad = false;
  var deviceName = "";
  function showDevice() {
    var el = $("device");
    if (!deviceToken()) { el.textContent = ""; el.className = "k-device"; return; }
    el.textContent = tokenBad ? "⚠ " + W.device_bad : "● " + W.device_ok + (deviceName ? ": " + deviceName : "");
    el.className = "k-device" + (tokenBad ? " bad" : "");
  }
  // Refusals that mean "this token will never issue here again": forget it.
  var GONE = { device_revoked: 1, device_not_enrolled: 1, invalid_token: 1, wrong_branch: 1, staff_only: 1 };
  function forgetToken() {
    storeToken("");
    tokenBad = false;
    deviceName = "";
    showDevice();
    needsEnrolment();
  }
  function needsEnrolment() {
    var need = !deviceToken() && !LOBBY;
    $("enrol").hidden = !need;
    // Priority is staff's to confirm, at a kiosk they enrolled: the lobby's anonymous kiosk has none.
    $("priority").hidden = !deviceToken();
    if (!deviceToken()) setPriority(false);
    return need;
  }

  // -- enrolment: a one-time code (or a link carrying it), or a device token, for this branch ----------
  function enrolText(err) {
    if (!err) return W.network;
    return (err.message_vi || err.message) + (err.message && err.message_vi ? " / " + err.message : "");
  }
  function enrolResult(cls, text) {
    var el = $("e-result");
    el.textContent = "";
    var span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    el.appendChild(span);
  }
  function checkDevice() {
    var tok = deviceToken();
    if (!tok) { needsEnrolment(); return Promise.resolve(false); }
    return fetch("/api/branches/" + encodeURIComponent(BRANCH) + "/kiosks/me",
                 { headers: { Accept: "application/json", Authorization: "Bearer " + tok }, cache: "no-store" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (r.ok) {
            tokenBad = false;
            deviceName = body.name || "";
            showDevice();
            needsEnrolment();
            return true;
          }
          if (r.status === 401 || r.status === 403) { forgetToken(); return false; }
          return true;                                  // the hub is unwell: keep the token, try later
        });
      }, function () { return true; });                 // offline: keep the token
  }
  var enrolKey = null;
  function enrol(code) {
    enrolResult("", W.enrolling);
    $("e-submit").disabled = true;
    enrolKey = enrolKey || uuid();                     // a retry after a lost answer gets the same token
    return post("/api/branches/" + encodeURIComponent(BRANCH) + "/kiosks/enrol", { code: code }, enrolKey, false)
      .then(function (res) {
        if (res.status === 200 && res.data.token) {
          storeToken(res.data.token);
          deviceName = res.data.name || "";
          tokenBad = false;
          enrolKey = null;
          showDevice();
          enrolResult("ok", W.enrol_ok + (deviceName ? ": " + deviceName : ""));
          setTimeout(needsEnrolment, 1500);              // the answer a moment on screen, then the fields
          refresh();
        } else {
          enrolKey = null;
          enrolResult("err", W.enrol_failed + ". " + enrolText(res.data && res.data.error));
        }
      }, function () { enrolResult("err", W.enrol_failed + ". " + W.network); })
      .then(function () { $("e-submit").disabled = false; });
  }
  function enrolInput(text) {
    text = (text || "").trim();
    var m = /[?&#]enrol=([^&#\s]+)/.exec(text);
    if (m) return enrol(decodeURIComponent(m[1]));
    if (/^qc1\./.test(text)) {                          // a device token from `queuecast token kiosk`
      storeToken(text);
      return checkDevice().then(function (ok) {
        if (ok && deviceToken()) {
          $("enrol").hidden = false;
          enrolResult("ok", W.enrol_ok + (deviceName ? ": " + deviceName : ""));
          setTimeout(needsEnrolment, 1500);
        } else enrolResult("err", W.enrol_failed + ". " + W.device_bad);
      });
    }
    return enrol(text);
  }

  var uuid = QC.uuid;

  // -- the hub's clock (it may run shifted: training, demos) ------------------------------------------
  var skew = 0;
  function syncClock(nowIso) {
    var t = Date.parse(nowIso);
    if (!isNaN(t)) skew = t - Date.now();
  }
  function hubNow() { return new Date(Date.now() + skew); }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  var TZ = "Asia/Ho_Chi_Minh";
  function parts(d) {
    try {
      var f = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, hour12: false, year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", weekday: "short" });
      var o = {};
      f.formatToParts(d).forEach(function (p) { o[p.type] = p.value; });
      return o;
    } catch (e) {
      return { hour: pad(d.getHours()), minute: pad(d.getMinutes()), day: pad(d.getDate()),
        month: pad(d.getMonth() + 1), year: String(d.getFullYear()), weekday: "" };
    }
  }
  var WEEKDAYS_VI = { Mon: "Thứ Hai", Tue: "Thứ Ba", Wed: "Thứ Tư", Thu: "Thứ Năm", Fri: "Thứ Sáu", Sat: "Thứ Bảy", Sun: "Chủ Nhật" };
  function tickClock() {
    var p = parts(hubNow());
    $("clock-time").textContent = (p.hour === "24" ? "00" : p.hour) + ":" + p.minute;
    var wd = LANG === "vi" ? (WEEKDAYS_VI[p.weekday] || "") : p.weekday;
    $("clock-date").textContent = (wd ? wd + ", " : "") + p.day + "/" + p.month + "/" + p.year;
  }
  function dmy(iso) {               // "2026-05-20" or a full ISO time → "20/05/2026"
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
    return m ? m[3] + "/" + m[2] + "/" + m[1] : iso;
  }
  function hm(iso) {
    var m = /T(\d{2}):(\d{2})/.exec(iso || "");
    return m ? m[1] + ":" + m[2] : "";
  }

  // -- minutes, in words ---------------------------------------------------------------------------
  function minutes(m) {
    var n = Math.max(1, Math.round(m));
    var unit = LANG === "vi" ? "phút" : "min", hours = LANG === "vi" ? "giờ" : "h";
    if (n < 60) return n + " " + unit;
    var h = Math.floor(n / 60), r = n % 60;
    return h + " " + hours + (r ? " " + r + " " + unit : "");
  }
  function waitText(eta) {
    if (!eta) return "";
    if (eta.p50 < 1.5) return W.no_wait;
    return W.wait_about + " " + minutes(eta.p50);
  }
  function rangeText(eta) {
    if (!eta) return "—";
    var lo = Math.max(1, Math.round(eta.p10)), hi = Math.max(1, Math.round(eta.p90));
    if (lo === hi) return minutes(lo);
    if (hi < 60) return lo + "–" + minutes(hi);
    return minutes(lo) + " – " + minutes(hi);
  }

  // -- the field buttons, from the JSON twin -------------------------------------------------------
  var buttons = {};
  Array.prototype.forEach.call(document.querySelectorAll(".k-field"), function (b) { buttons[b.dataset.service] = b; });

  function render(v) {
    view = v;
    syncClock(v.now);
    $("closed-banner").classList.toggle("shown", !v.issuing);
    v.services.forEach(function (s) {
      var b = buttons[s.id];
      if (!b) return;
      b.querySelector("[data-waiting]").textContent = s.waiting;
      b.querySelector("[data-wait]").textContent = waitText(s.expected_wait);
      b.classList.toggle("sold-out", s.numbers_left === 0);
    });
  }

  var refreshing = false;
  function refresh() {
    if (refreshing) return;
    refreshing = true;
    var url = location.pathname + "?format=json";
    var ctl = window.AbortController ? new AbortController() : null;
    var timer = ctl && setTimeout(function () { ctl.abort(); }, 10000);
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", signal: ctl ? ctl.signal : undefined })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (v) { if (v && v.services) render(v); })
      .catch(function () { /* keep the last known figures; try again at the next tick */ })
      .then(function () { refreshing = false; if (timer) clearTimeout(timer); });
  }

  // -- overlays --------------------------------------------------------------------------------------
  var overlays = ["busy", "issued", "refusal", "checkin"];
  function show(id) {
    overlays.forEach(function (o) { $(o).hidden = o !== id; });
  }
  function home(keepPending) {
    show(null);
    clearInterval(countdown);
    countdown = null;
    busy = false;
    if (keepPending !== true) pending = null;
    $("t-frame").removeAttribute("src");
    setPriority(false);
    refresh();
  }


  // -- issuing -------------------------------------------------------------------------------------
  // One touch is one number: a touch is ignored while another is being answered or its ticket is on
  // screen, and the same request (same field, same priority) keeps its Idempotency-Key until the
  // screen goes back to the buttons, so a retry after a lost answer cannot issue a second number.
  var busy = false;
  var pending = null;        // {service, priority, key}
  var countdown = null;

  function post(url, body, key, useToken) {
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (key) headers["Idempotency-Key"] = key;
    var tok = useToken ? deviceToken() : "";
    if (tok) headers.Authorization = "Bearer " + tok;
    var ctl = window.AbortController ? new AbortController() : null;
    var timer = ctl && setTimeout(function () { ctl.abort(); }, 12000);
    return fetch(url, { method: "POST", headers: headers, body: JSON.stringify(body), cache: "no-store",
      signal: ctl ? ctl.signal : undefined })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) { return { status: r.status, data: data }; });
      })
      .then(function (res) { if (timer) clearTimeout(timer); return res; },
            function (err) { if (timer) clearTimeout(timer); throw err; });
  }

  function issue(service) {
    if (busy) return;
    busy = true;
    if (!pending || pending.service !== service || pending.priority !== priority) {
      pending = { service: service, priority: priority, key: uuid() };
    }
    var req = pending;
    show("busy");
    var body = { service: service, channel: "kiosk" };
    if (req.priority) body.priority = true;
    if (LANG === "en") body.lang = "en";                // later messages to this number in English
    var url = "/api/branches/" + encodeURIComponent(BRANCH) + "/tickets";
    var useToken = !!deviceToken();
    var attempt = 0;

    function go() {
      attempt += 1;
      return post(url, body, req.key, useToken).then(function (res) {
        var code = res.data && res.data.error && res.data.error.code;
        if ((res.status === 401 || res.status === 403) && useToken) {
          // The device token is no good any more (revoked, another branch's, expired): forget it. On
          // the lobby network the citizen is served anyway; elsewhere the kiosk asks to be enrolled.
          forgetToken();
          useToken = false;
          if (LOBBY) { req.key = uuid(); return go(); }
        } else if (code === "kiosk_device_required") {
          needsEnrolment();
        }
        return res;
      }, function (err) {
        if (attempt < 3) {                 // the same key: a retry cannot issue a second number
          return new Promise(function (ok) { setTimeout(ok, 600 * attempt); }).then(go);
        }
        throw err;
      });
    }

    go().then(function (res) {
      if (res.status === 201 || res.status === 200) issued(res.data);
      else refused(res.data && res.data.error, res.status);
    }, function () {
      refused(null, 0);
    });
  }

  function issued(t) {
    $("t-number").textContent = t.number;
    $("t-service").textContent = t.service_name || "";
    $("t-priority").hidden = !t.priority;
    $("t-ahead").textContent = t.people_ahead == null ? "—" : t.people_ahead;
    $("t-eta").textContent = rangeText(t.eta);
    var src = "/kiosk/" + encodeURIComponent(BRANCH) + "/ticket?embed=1&lang=" + LANG +
      "&token=" + encodeURIComponent(t.token) + (AUTOPRINT ? "&autoprint=1" : "");
    var frame = $("t-frame");
    frame.onload = function () {        // the preview as long as the ticket (same origin)
      try {
        var h = frame.contentDocument.documentElement.scrollHeight;
        if (h > 100) frame.style.height = h + "px";
      } catch (e) { /* keep the default height */ }
    };
    frame.src = src;
    root.dataset.lastNumber = t.number;
    show("issued");
    startCountdown(HOLD);
    refresh();
  }

  function startCountdown(seconds) {
    var left = seconds;
    $("t-count").textContent = left;
    clearInterval(countdown);
    countdown = setInterval(function () {
      left -= 1;
      $("t-count").textContent = Math.max(left, 0);
      if (left <= 0) home();
    }, 1000);
  }

  function refused(err, status) {
    var title = W.refused, message = "", detail = "";
    if (!err) {
      message = W.network;
    } else {
      message = LANG === "vi" ? (err.message_vi || err.message) : (err.message || err.message_vi);
      if (err.code === "daily_cap_reached") {
        title = W.refused_cap;
        if (err.next_working_day) detail = W.come_back + ": " + dmy(err.next_working_day);
      } else if (err.code === "issuing_closed") {
        title = W.refused_hours;
        if (err.opens_at) detail = W.reopens + " " + hm(err.opens_at) + " " + dmy(err.opens_at);
      }
    }
    $("r-title").textContent = title;
    $("r-message").textContent = message;
    $("r-detail").textContent = detail;
    // A refusal is an answer: nothing was issued, the next touch starts afresh. Without an answer
    // the number may have been issued all the same: the next touch of that field, with the same
    // key, gets that number back instead of a second one.
    if (err) pending = null;
    show("refusal");
    startRefusalTimer();
    refresh();
  }
  var refusalTimer = null;
  function startRefusalTimer() {
    clearTimeout(refusalTimer);
    refusalTimer = setTimeout(function () { if (!$("refusal").hidden) home(true); }, Math.max(HOLD, 15) * 1000);
  }

  Object.keys(buttons).forEach(function (id) {
    var b = buttons[id];
    b.addEventListener("click", function (e) {
      e.preventDefault();
      issue(id);
    });
  });
  $("t-done").addEventListener("click", home);
  $("r-ok").addEventListener("click", function () { clearTimeout(refusalTimer); home(true); });

  // -- check-in of an online number --------------------------------------------------------------------
  function extractToken(text) {
    text = (text || "").trim();
    var m = /\/t\/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)/.exec(text);
    if (m) return m[1];
    m = /[?&]token=([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)/.exec(text);
    if (m) return m[1];
    return text;           // whatever it is: the hub says "not found" in words
  }
  var checkinBusy = false;
  function openCheckin() {
    if (busy) return;
    busy = true;
    $("c-input").value = "";
    $("c-result").innerHTML = "";
    $("c-nodevice").hidden = !!deviceToken();
    show("checkin");
    setTimeout(function () { $("c-input").focus(); }, 50);
    clearTimeout(checkinTimer);
    checkinTimer = setTimeout(home, 60000);
  }
  var checkinTimer = null;
  function result(cls, text, big) {
    var el = $("c-result");
    el.innerHTML = "";
    var p = document.createElement("span");
    p.className = cls;
    if (big) {
      var b = document.createElement("span");
      b.className = "big";
      b.textContent = big;
      el.appendChild(b);
    }
    p.textContent = text;
    el.appendChild(p);
  }
  $("checkin-open").addEventListener("click", openCheckin);
  $("c-back").addEventListener("click", function () { clearTimeout(checkinTimer); home(); });
  $("c-form").addEventListener("submit", function (e) {
    e.preventDefault();
    if (checkinBusy) return;
    var token = extractToken($("c-input").value);
    if (!token) { result("err", W.checkin_empty); return; }
    if (!deviceToken()) { result("err", W.checkin_no_device); return; }
    checkinBusy = true;
    $("c-submit").disabled = true;
    clearTimeout(checkinTimer);
    checkinTimer = setTimeout(home, 60000);
    post("/api/branches/" + encodeURIComponent(BRANCH) + "/check-in", { token: token }, null, true)
      .then(function (res) {
        if (res.status === 200) {
          var t = res.data;
          var line = W.checkin_ok + " — " + (t.service_name || "") +
            (t.people_ahead != null ? ". " + W.people_ahead + ": " + t.people_ahead : "") + ". " + W.checkin_wait;
          result("ok", line, t.number);
          $("c-input").value = "";
          clearTimeout(checkinTimer);
          checkinTimer = setTimeout(home, HOLD * 1000);
          refresh();
        } else {
          var err = res.data && res.data.error;
          if (res.status === 401 || (res.status === 403 && err && err.code !== "other_counter")) {
            if (err && GONE[err.code]) forgetToken(); else { tokenBad = true; showDevice(); }
            result("err", W.device_bad + ". " + W.checkin_no_device);
          } else if (err) {
            result("err", LANG === "vi" ? (err.message_vi || err.message) : (err.message || err.message_vi));
          } else {
            result("err", W.network);
          }
        }
      }, function () { result("err", W.network); })
      .then(function () { checkinBusy = false; $("c-submit").disabled = false; });
  });

  // -- a language chosen by one citizen does not stay for the next ------------------------------------
  var idleTimer = null;
  function resetIdle() {
    clearTimeout(idleTimer);
    if (LANG !== "vi") {
      idleTimer = setTimeout(function () {
        if (!busy) {
          var p = new URLSearchParams(location.search);
          p.set("lang", "vi");
          location.replace(location.pathname + "?" + p.toString());
        } else resetIdle();
      }, IDLE_MS);
    }
  }
  ["pointerdown", "keydown"].forEach(function (ev) { document.addEventListener(ev, resetIdle, true); });

  $("e-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("e-input").value;
    if (!text.trim()) return;
    $("e-input").value = "";
    enrolInput(text);
  });

  // -- start -----------------------------------------------------------------------------------------
  render(view);
  showDevice();
  function enrolFromLink(code) {
    $("enrol").hidden = false;                          // the answer is shown where the code would be typed
    enrol(code);
  }
  if (enrolCode) enrolFromLink(enrolCode);
  else checkDevice();
  window.addEventListener("hashchange", function () {
    var code = fromAddress();
    if (code) enrolFromLink(code);
  });
  tickClock();
  setInterval(tickClock, 1000);
  setInterval(refresh, REFRESH_MS);
  resetIdle();
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
})();
