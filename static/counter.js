/* The counter console. The staff token comes once as ?token= (kept in localStorage, removed from the
   address bar); the console's JSON twin and every action carry it as a bearer token. One press is
   one request with a fresh Idempotency-Key, and every action button stays disabled until the
   answer, so a double click or a held key calls one number. Live: the branch's board feed. */
(function () {
  "use strict";

  var root = document.getElementById("console");
  if (!root) return;
  var W = JSON.parse(document.getElementById("counter-words").textContent);
  var BRANCH = root.dataset.branch, COUNTER = root.dataset.counter, LANG = root.dataset.lang;
  var TOKEN_KEY = "qc.staff.token." + BRANCH;
  var API = "/api/branches/" + encodeURIComponent(BRANCH);

  function $(id) { return document.getElementById(id); }
  function fmt(s, o) { return s.replace(/\{(\w+)\}/g, function (_, k) { return o[k] == null ? "" : o[k]; }); }
  function say(err) { return LANG === "vi" ? (err.message_vi || err.message) : (err.message || err.message_vi); }

  // -- the token ------------------------------------------------------------------------------------
  var memToken = "";
  function getToken() { try { return localStorage.getItem(TOKEN_KEY) || memToken; } catch (e) { return memToken; } }
  function setToken(t) {
    memToken = t || "";
    try { if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY); } catch (e) { /* memory only */ }
  }
  (function takeFromUrl() {
    var params = new URLSearchParams(location.search);
    if (!params.has("token")) return;
    var t = (params.get("token") || "").trim();
    if (t) setToken(t);
    params.delete("token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  })();

  var uuid = QC.uuid;

  function request(method, url, body, key) {
    var headers = { Accept: "application/json" };
    var tok = getToken();
    if (tok) headers.Authorization = "Bearer " + tok;
    if (key) headers["Idempotency-Key"] = key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    var ctl = window.AbortController ? new AbortController() : null;
    var timer = ctl && setTimeout(function () { ctl.abort(); }, 10000);
    return fetch(url, { method: method, headers: headers, cache: "no-store", signal: ctl ? ctl.signal : undefined,
      body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (d) { return { status: r.status, data: d }; });
      })
      .then(function (x) { if (timer) clearTimeout(timer); return x; },
            function (e) { if (timer) clearTimeout(timer); throw e; });
  }

  // -- the hub's clock ------------------------------------------------------------------------------
  var skew = 0;
  function hubNow() { return new Date(Date.now() + skew); }
  function hms(iso) { var m = /T(\d{2}:\d{2}:\d{2})/.exec(iso || ""); return m ? m[1] : ""; }
  function hm(iso) { var m = /T(\d{2}:\d{2})/.exec(iso || ""); return m ? m[1] : ""; }
  function tick() {
    var t;
    try {
      t = new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Ho_Chi_Minh", hour12: false, hour: "2-digit",
        minute: "2-digit", second: "2-digit" }).format(hubNow());
    } catch (e) { t = hubNow().toTimeString().slice(0, 8); }
    $("clock").textContent = t;
  }

  // -- the gate: no token, a bad one, someone else's ------------------------------------------------
  function gate(kind, err) {
    $("app").hidden = true;
    $("loading").hidden = true;
    $("gate").hidden = false;
    $("status-pill").hidden = true;
    $("who").hidden = true;
    $("signout").hidden = !getToken();
    root.dataset.state = kind;
    $("gate-title").textContent = kind === "forbidden" ? W.forbidden : W.needs_token;
    $("gate-message").textContent = W.needs_token_help;
    $("gate-detail").textContent = err ? say(err) : "";
    stopLive();
  }
  $("gate-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var t = $("gate-input").value.trim();
    if (!t) return;
    setToken(t);
    $("gate-input").value = "";
    start();
  });
  $("signout").addEventListener("click", function () { setToken(""); gate("needs"); });

  // -- the view -------------------------------------------------------------------------------------
  var view = null;
  var fieldsDirty = false;

  function serviceName(id) {
    if (!view) return id;
    for (var i = 0; i < view.services.length; i++) {
      if (view.services[i].id === id) return LANG === "en" ? view.services[i].name_en : view.services[i].name;
    }
    return id;
  }

  function render(v) {
    view = v;
    var t = Date.parse(v.now);
    if (!isNaN(t)) { skew = t - Date.now(); tick(); }
    $("gate").hidden = true;
    $("loading").hidden = true;
    $("app").hidden = false;
    root.dataset.state = "ready";

    var open = v.counter.open;
    [$("status-pill"), $("status-pill-2")].forEach(function (p) {
      p.hidden = false;
      p.textContent = open ? W.open : W.closed;
      p.className = "c-pill" + (p.id === "status-pill-2" ? " small" : "") + (open ? " on" : " off");
    });
    root.classList.toggle("is-closed", !open);
    $("who").hidden = false;
    $("who").textContent = W.token_for + ": " + (v.staff.counter ? W.counter + " " + v.staff.counter : W.all_counters);
    $("signout").hidden = false;

    // the current number
    var c = v.current;
    root.classList.toggle("has-current", !!c);
    $("cur-number").textContent = c ? c.number : "—";
    $("cur-number").classList.toggle("empty", !c);
    $("cur-service").textContent = c ? (LANG === "en" ? c.service_name_en : c.service_name) : W.none_current;
    var badges = $("cur-badges");
    badges.innerHTML = "";
    if (c) {
      addBadge(badges, c.channel === "online" ? W.channel_online : W.channel_kiosk, c.channel);
      if (c.priority) addBadge(badges, W.priority, "priority");
      if (c.channel === "online") addBadge(badges, c.checked_in ? W.checked_in : W.not_checked_in, c.checked_in ? "ok" : "warn");
    }
    $("cur-called").textContent = c ? hms(c.called_at) : "—";
    $("cur-calls").textContent = c && c.calls != null ? c.calls : (c ? "1" : "—");
    var ns = $("cur-noshows");
    ns.textContent = c ? String(c.noshows || 0) : "—";
    ns.className = c && c.noshows > 0 ? "alert" : "";

    // fields of the counter
    if (!fieldsDirty) {
      var box = $("fields");
      box.innerHTML = "";
      var chosen = open ? v.counter.services : v.counter.plan;
      v.services.forEach(function (s) {
        var label = document.createElement("label");
        label.className = "c-check";
        var cb = document.createElement("input");
        cb.type = "checkbox";
        cb.value = s.id;
        cb.name = "service";
        cb.checked = chosen.indexOf(s.id) >= 0;
        cb.addEventListener("change", function () { fieldsDirty = true; });
        var span = document.createElement("span");
        span.textContent = LANG === "en" ? s.name_en : s.name;
        label.appendChild(cb);
        label.appendChild(span);
        box.appendChild(label);
      });
    }
    $("btn-open").textContent = open ? W.update_fields : W.open_counter;

    // waiting
    $("waiting-total").textContent = v.waiting;
    var ul = $("waiting");
    ul.innerHTML = "";
    v.services.filter(function (s) { return s.here; }).forEach(function (s) {
      var li = document.createElement("li");
      li.dataset.service = s.id;
      var name = document.createElement("span");
      name.textContent = LANG === "en" ? s.name_en : s.name;
      var n = document.createElement("b");
      n.textContent = s.waiting;
      li.appendChild(name);
      if (s.priority_waiting) {
        var pr = document.createElement("small");
        pr.textContent = s.priority_waiting + " " + W.priority_waiting;
        li.appendChild(pr);
      }
      li.appendChild(n);
      ul.appendChild(li);
    });

    // no-shows that can be brought back
    var rl = $("recallable");
    rl.innerHTML = "";
    $("recallable-panel").hidden = !v.recallable.length;
    v.recallable.forEach(function (r) {
      var li = document.createElement("li");
      var txt = document.createElement("span");
      txt.innerHTML = "";
      var b = document.createElement("b");
      b.textContent = r.number;
      txt.appendChild(b);
      txt.appendChild(document.createTextNode(" " + (LANG === "en" ? r.service_name_en : r.service_name) + " · " +
        (r.state === "held" ? W.held_until + " " + hm(r.held_until) : W.recall_until + " " + hm(r.recall_until))));
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "c-small";
      btn.textContent = W.recall;
      btn.dataset.number = r.number;
      btn.addEventListener("click", function () { recallNumber(btn, r.number); });
      li.appendChild(txt);
      li.appendChild(btn);
      rl.appendChild(li);
    });
    setButtons();
  }

  function addBadge(box, text, cls) {
    var s = document.createElement("span");
    s.className = "c-badge " + cls;
    s.textContent = text;
    box.appendChild(s);
  }

  // -- loading the twin -----------------------------------------------------------------------------
  // A twin read while an action was under way (or before its answer) may predate the action: it is
  // dropped and read again, so the screen never steps back to a number already dealt with.
  var loading = false, again = false, loadTimer = null, acted = 0;
  function load() {
    if (!getToken()) { gate("needs"); return Promise.resolve(); }
    if (loading) { again = true; return Promise.resolve(); }
    loading = true;
    var startedAt = acted;
    return request("GET", location.pathname + "?format=json").then(function (res) {
      if (res.status === 200) {
        if (busy) { /* the action's own read follows its answer */ }
        else if (acted !== startedAt || (view && res.data.seq < view.seq)) again = true;
        else { render(res.data); startLive(); }
      }
      else if (res.status === 401) gate("needs", res.data.error);
      else if (res.status === 403) gate("forbidden", res.data.error);
      else if (res.data && res.data.error) message("err", say(res.data.error));
    }, function () {
      if (!view) { $("loading").textContent = W.network; }
      offline(true);
    }).then(function () {
      loading = false;
      if (again) { again = false; scheduleLoad(100); }
    });
  }
  function scheduleLoad(ms) {
    clearTimeout(loadTimer);
    loadTimer = setTimeout(load, ms == null ? 200 : ms);
  }

  // -- messages -------------------------------------------------------------------------------------
  function message(cls, text) {
    var m = $("message");
    m.className = "c-message " + cls;
    m.textContent = text;
    m.dataset.at = String(Date.now());
  }

  // -- actions --------------------------------------------------------------------------------------
  var busy = false;
  var buttons = {
    call: $("btn-call"), recall: $("btn-recall"), skip: $("btn-skip"), complete: $("btn-complete"),
    transfer: $("btn-transfer"), cancel: $("btn-cancel")
  };

  function setButtons() {
    var v = view, cur = v && v.current, open = v && v.counter.open;
    var canRecall = !!cur || (v && !cur && v.recallable.length > 0 && open);
    buttons.call.disabled = busy || !open;
    buttons.recall.disabled = busy || !canRecall;
    ["skip", "complete", "transfer", "cancel"].forEach(function (k) { buttons[k].disabled = busy || !cur; });
    $("btn-open").disabled = busy;
    $("btn-close").disabled = busy || !open;
    Array.prototype.forEach.call(document.querySelectorAll("#recallable button"), function (b) {
      b.disabled = busy || !!cur || !open;
    });
    Array.prototype.forEach.call(document.querySelectorAll("#transfer-list button, #cancel-yes"), function (b) {
      b.disabled = busy;
    });
    root.classList.toggle("busy", busy);
  }

  // One press → one request: the busy flag is set before anything else, every button is disabled
  // until the answer, and the key is fresh per press (a lost answer is retried with the same key).
  function act(btn, url, body, done) {
    if (busy) return;
    busy = true;
    if (btn) btn.classList.add("working");
    setButtons();
    var key = uuid();
    var tries = 0;
    function go() {
      tries += 1;
      return request("POST", url, body, key).catch(function (e) {
        if (tries < 2) return new Promise(function (ok) { setTimeout(ok, 700); }).then(go);
        throw e;
      });
    }
    go().then(function (res) {
      if (res.status >= 200 && res.status < 300) {
        done(res.data);
      } else if (res.status === 401) {
        gate("needs", res.data.error);
      } else {
        message("err", res.data && res.data.error ? say(res.data.error) : W.network);
      }
    }, function () {
      message("err", W.network);
    }).then(function () {
      busy = false;
      acted += 1;
      if (btn) btn.classList.remove("working");
      setButtons();
      load();
    });
  }

  function current() { return view && view.current; }
  function ticketUrl(number, action) { return API + "/tickets/" + encodeURIComponent(number) + "/" + action; }

  function callNext() {
    act(buttons.call, API + "/counters/" + encodeURIComponent(COUNTER) + "/call-next", undefined, function (d) {
      var msg = fmt(W.called_msg, { n: d.ticket.number });
      if (d.completed && d.completed.length) msg += " · " + fmt(W.completed_msg, { n: d.completed.join(", ") });
      message("ok", msg);
      if (view) { view.current = d.ticket; render(view); }
    });
  }
  function recall() {
    var c = current();
    if (c) {
      act(buttons.recall, ticketUrl(c.number, "recall"), { counter: COUNTER }, function (d) {
        message("ok", fmt(W.recalled_msg, { n: d.ticket.number }));
      });
    } else if (view && view.recallable.length) {
      recallNumber(buttons.recall, view.recallable[0].number);
    }
  }
  function recallNumber(btn, number) {
    act(btn, ticketUrl(number, "recall"), { counter: COUNTER }, function (d) {
      message("ok", fmt(W.recalled_msg, { n: d.ticket.number }));
    });
  }
  function simple(name, okWord) {
    var c = current();
    if (!c) return;
    act(buttons[name], ticketUrl(c.number, name), undefined, function (d) {
      if (name === "skip" && d.ticket.state === "held") message("ok", fmt(W.held_msg, { n: d.ticket.number, t: hm(d.ticket.held_until) }));
      else message("ok", fmt(okWord, { n: d.ticket.number }));
    });
  }

  // transfer: pick a field
  var transferChoices = [];
  function openTransfer() {
    var c = current();
    if (!c || busy) return;
    $("transfer-title").textContent = fmt(W.transfer_to, { n: c.number });
    var list = $("transfer-list");
    list.innerHTML = "";
    transferChoices = view.services.filter(function (s) { return s.id !== c.service; });
    transferChoices.forEach(function (s, i) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "c-choice";
      b.dataset.service = s.id;
      if (i < 9) {
        var k = document.createElement("kbd");
        k.textContent = String(i + 1);
        b.appendChild(k);
      }
      var n = document.createElement("span");
      n.textContent = (LANG === "en" ? s.name_en : s.name);
      var wcount = document.createElement("small");
      wcount.textContent = s.waiting + " " + W.waiting.toLowerCase();
      b.appendChild(n);
      b.appendChild(wcount);
      b.addEventListener("click", function () { transferTo(b, s); });
      list.appendChild(b);
    });
    $("transfer-dialog").hidden = false;
    setButtons();
  }
  function closeDialogs() {
    $("transfer-dialog").hidden = true;
    $("cancel-dialog").hidden = true;
  }
  function transferTo(btn, s) {
    var c = current();
    if (!c) { closeDialogs(); return; }
    act(btn, ticketUrl(c.number, "transfer"), { service: s.id }, function (d) {
      closeDialogs();
      message("ok", fmt(W.transferred_msg, { n: d.ticket.number, s: LANG === "en" ? s.name_en : s.name }));
    });
  }
  function openCancel() {
    var c = current();
    if (!c || busy) return;
    $("cancel-title").textContent = fmt(W.cancel_confirm, { n: c.number });
    $("cancel-dialog").hidden = false;
    setButtons();
  }
  $("cancel-yes").addEventListener("click", function () {
    var c = current();
    if (!c) { closeDialogs(); return; }
    act($("cancel-yes"), ticketUrl(c.number, "cancel"), undefined, function (d) {
      closeDialogs();
      message("ok", fmt(W.cancelled_msg, { n: d.ticket.number }));
    });
  });
  $("cancel-back").addEventListener("click", closeDialogs);
  $("transfer-back").addEventListener("click", closeDialogs);

  var handlers = {
    call: callNext, recall: recall, skip: function () { simple("skip", W.skipped_msg); },
    complete: function () { simple("complete", W.completed_msg); }, transfer: openTransfer, cancel: openCancel
  };
  Object.keys(buttons).forEach(function (k) {
    buttons[k].addEventListener("click", function (e) {
      e.preventDefault();
      buttons[k].blur();                 // a later Space must not press this button again
      if (buttons[k].disabled || busy) return;
      handlers[k]();
    });
  });

  // open / close the counter
  $("fields-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var chosen = Array.prototype.filter.call(document.querySelectorAll("#fields input:checked"), function () { return true; })
      .map(function (cb) { return cb.value; });
    if (!chosen.length) { message("err", W.choose_field); return; }
    act($("btn-open"), API + "/counters/" + encodeURIComponent(COUNTER) + "/open", { services: chosen }, function () {
      fieldsDirty = false;
      message("ok", W.opened_msg);
    });
  });
  $("btn-close").addEventListener("click", function () {
    act($("btn-close"), API + "/counters/" + encodeURIComponent(COUNTER) + "/close", undefined, function () {
      fieldsDirty = false;
      message("ok", W.closed_msg);
    });
  });

  // -- keyboard -------------------------------------------------------------------------------------
  var KEYS = { n: "call", " ": "call", r: "recall", s: "skip", c: "complete", t: "transfer", x: "cancel" };
  function typing(el) {
    var tag = el && el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (el && el.isContentEditable);
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || $("app").hidden) return;
    var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (!$("transfer-dialog").hidden) {
      if (key === "Escape") { closeDialogs(); e.preventDefault(); return; }
      var i = parseInt(key, 10);
      if (i >= 1 && i <= 9 && !e.repeat) {
        e.preventDefault();
        var b = $("transfer-list").children[i - 1];
        if (b && !b.disabled) b.click();
      }
      return;
    }
    if (!$("cancel-dialog").hidden) {
      if (key === "Escape") { closeDialogs(); e.preventDefault(); }
      else if (key === "Enter" && !e.repeat) { e.preventDefault(); if (!$("cancel-yes").disabled) $("cancel-yes").click(); }
      return;
    }
    var action = KEYS[key];
    if (!action) return;
    e.preventDefault();                  // Space must not also press a focused button
    if (e.repeat) return;                // a held key is one press
    var btn = buttons[action];
    if (!btn.disabled && !busy) btn.click();
  });
  document.addEventListener("keyup", function (e) {
    if (e.key === " " && !typing(e.target)) e.preventDefault();
  });

  // -- live: the branch's board feed (static/feed.js) -------------------------------------------------
  var feed = null, feedGone = false, offlineTimer = null;
  var activity = [];

  function offline(on) {
    clearTimeout(offlineTimer);
    if (on) offlineTimer = setTimeout(function () { $("offline").classList.add("shown"); }, 3000);
    else $("offline").classList.remove("shown");
    $("live").classList.toggle("on", !on);
  }
  function startLive() {
    if (feedGone) return;                // no such branch: asking again changes nothing
    if (feed) { feed.start(); return; }
    feed = QC.feed({ url: "/ws/branches/" + encodeURIComponent(BRANCH), retryBase: 1000, retryCap: 15000,
                     onState: onFeedState, onSnapshot: handle, onResume: handle, onEvent: handle });
  }
  function stopLive() {
    if (feed) feed.stop();
  }
  function onFeedState(state, d) {
    if (state === "live") offline(false);
    else if (state === "down" && d.code === 4404) { feedGone = true; feed.stop(); }
    else if (state === "down") offline(true);
  }
  function handle(ev) {
    if (ev.type === "snapshot") { scheduleLoad(50); return; }
    if (ev.type === "resume") { scheduleLoad(50); return; }
    var line = null;
    if (ev.type === "ticket.called") line = fmt(W.other_called, { c: ev.counter, n: ev.number });
    else if (ev.type === "ticket.recalled") line = fmt(W.other_recalled, { c: ev.counter, n: ev.number });
    else if (ev.type === "ticket.issued" && view && view.services.some(function (s) { return s.here && s.id === ev.service; })) {
      line = fmt(W.issued_event, { n: ev.number, s: serviceName(ev.service) });
    }
    if (line) {
      activity.unshift({ t: hms(ev.t), text: line, mine: ev.counter === COUNTER });
      activity = activity.slice(0, 8);
      var ul = $("activity");
      ul.innerHTML = "";
      activity.forEach(function (a) {
        var li = document.createElement("li");
        if (a.mine) li.className = "mine";
        var t = document.createElement("time");
        t.textContent = a.t;
        li.appendChild(t);
        li.appendChild(document.createTextNode(" " + a.text));
        ul.appendChild(li);
      });
    }
    scheduleLoad(200);
  }

  // -- start ----------------------------------------------------------------------------------------
  function start() {
    if (!getToken()) { gate("needs"); return; }
    $("loading").hidden = false;
    $("gate").hidden = true;
    load();
  }
  tick();
  setInterval(tick, 1000);
  setInterval(function () { if (view && !$("app").hidden) load(); }, 30000);
  start();
})();
