/* The branch chooser (/branches): ranks branches by expected wait, takes numbers online with a citizen
   token kept in localStorage, and refreshes itself from its JSON twin (/branches?format=json). */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  var D = JSON.parse($("qc-data").textContent), W = D.w, EN = D.lang === "en";
  var TOKEN_KEY = "qc.citizen_token", MINE_KEY = "qc.my_numbers", MINE_MAX = 4;
  var view = D.view, opened = {}, wide = window.matchMedia && matchMedia("(min-width: 900px)").matches;
  var lastHtml = "", busy = false;

  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  function nm(x) { return EN ? x.name_en || x.name : x.name; }
  function store(key, value) {
    try { if (value == null) localStorage.removeItem(key); else localStorage.setItem(key, value); } catch (e) { /* private mode */ }
  }
  function load(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }
  function dmy(iso) { return iso ? iso.slice(8, 10) + "/" + iso.slice(5, 7) + "/" + iso.slice(0, 4) : ""; }
  function msg(id, text, bad) { var el = $(id); el.textContent = text || ""; el.className = "msg" + (bad ? " bad" : text ? " ok" : ""); }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function minutes(s) { return Math.floor(s.expected_wait.p50 + 0.5); }

  // -- rendering: the list is drawn here, from the embedded data, then from each refresh --------------

  function pills(b) {
    return ["kiosk", "online"].map(function (ch) {
      return '<span class="pill ' + (b.issuing[ch] ? "ok" : "off") + '" data-k="' + ch + '" title="' + esc(W[ch]) + ": " +
        esc(b.issuing[ch] ? W.issuing_now : W.not_issuing) + '">' + esc(W[ch]) + ": " +
        esc(b.issuing[ch] ? W.open : W.closed) + "</span>";
    }).join("");
  }

  function stats(s) {
    var m = minutes(s);
    var wait = m < 1 ? esc(W.wait_now) : esc(W.wait_about) + '<b data-k="wait">' + m + "</b> " + esc(W.minutes);
    var left = s.numbers_left ? esc(W.left_pre) + ' <b data-k="left">' + s.numbers_left + "</b>/" + s.daily_cap + " " + esc(W.left_suf)
      : '<b data-k="left" hidden>0</b>' + esc(W.sold_out);
    return '<span class="svc-stats"><span><b data-k="waiting">' + s.waiting + "</b> " + esc(W.waiting_n) + "</span><span>" +
      wait + '</span><span class="' + (s.numbers_left ? "" : "none") + '">' + left + "</span></span>";
  }

  function row(b, s, label, short) {
    var what = esc(W.take + " — " + (short ? nm(s) : nm(b)));
    return '<li class="svc" data-branch="' + esc(b.id) + '" data-service="' + esc(s.id) + '"><span class="svc-name">' + label +
      "</span>" + stats(s) + '<button type="button" class="take" aria-label="' + what + '">' +
      esc(short ? W.take_short : W.take) + "</button></li>";
  }

  function allBranches() {
    return view.branches.map(function (b) {
      var open = opened[b.id] != null ? opened[b.id] : wide;
      return '<article class="br" data-branch="' + esc(b.id) + '"><details' + (open ? " open" : "") + "><summary>" +
        '<span class="br-name"><b>' + esc(nm(b)) + "</b>" + (b.address ? "<small>" + esc(b.address) + "</small>" : "") + "</span>" +
        '<span class="br-stats"><span class="pill"><b data-k="waiting">' + b.waiting + "</b> " + esc(W.waiting_n) + "</span>" +
        pills(b) + "</span></summary>" + '<ul class="svcs">' +
        b.services.map(function (s) { return row(b, s, esc(nm(s)), true); }).join("") + "</ul>" +
        '<p class="hours small muted">' + esc(W.hours.replace("{opens}", b.hours.opens).replace("{until}", b.hours.issuing_until)
          .replace("{online}", b.hours.online_from)) + "</p></details></article>";
    }).join("");
  }

  function ranked(field) {
    var rows = [], missing = 0;
    view.branches.forEach(function (b) {
      var s = b.services.filter(function (x) { return x.id === field; })[0];
      if (s) rows.push([b, s]); else missing++;
    });
    rows.sort(function (x, y) {
      return x[1].expected_wait.p50 - y[1].expected_wait.p50 || x[1].waiting - y[1].waiting || Number(x[0].id) - Number(y[0].id);
    });
    return '<h2 class="ranked-h">' + esc(W.ranked) + '</h2><ol class="svcs ranked">' + rows.map(function (r) {
      var b = r[0];
      return row(b, r[1], "<b>" + esc(nm(b)) + "</b>" + (b.address ? "<small>" + esc(b.address) + "</small>" : "") +
        '<span class="br-stats">' + pills(b) + "</span>");
    }).join("") + "</ol>" + (missing ? '<p class="muted small">' + esc(W.not_served.replace("{n}", missing)) + "</p>" : "");
  }

  function render() {
    var field = $("field").value, html = field ? ranked(field) : allBranches();
    if (html !== lastHtml) { $("list").innerHTML = html; lastHtml = html; }      // keep focus when nothing changed
    var now = view.branches.length ? view.branches[0].now : "";
    $("now").textContent = now.slice(11, 19);
  }

  $("list").addEventListener("toggle", function (e) {
    var art = e.target.closest && e.target.closest(".br");
    if (art) opened[art.getAttribute("data-branch")] = e.target.open;
    lastHtml = "";                                     // the DOM no longer matches the last render exactly
  }, true);

  $("field").addEventListener("change", function () {
    var q = new URLSearchParams(location.search);
    if ($("field").value) q.set("field", $("field").value); else q.delete("field");
    q.delete("lang");
    history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
    render();
    window.scrollTo(0, $("list").offsetTop - 8);
  });

  function refresh() {
    if (document.hidden) return Promise.resolve();     // no data spent on a page nobody looks at
    return fetch("/branches?format=json", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (v) { view = v; render(); $("banner").classList.remove("shown"); })
      .catch(function () { $("banner").classList.add("shown"); });
  }

  // -- signing in: a citizen token (iHanoi fills it in; here it can be pasted) -------------------------

  function claims(token) {
    var p = String(token || "").split(".");
    if (p.length !== 3 || p[0] !== "qc1") return null;
    try { return JSON.parse(atob(p[1].replace(/-/g, "+").replace(/_/g, "/") + "===".slice((p[1].length + 3) % 4))); }
    catch (e) { return null; }
  }

  function problem(c) {
    if (!c) return W.token_bad;
    if (c.kind !== "citizen") return W.token_kind;
    if (!(c.exp * 1000 > Date.now())) return W.token_expired;
    return "";
  }

  function token() {
    var t = load(TOKEN_KEY);
    return t && !problem(claims(t)) ? t : null;
  }

  function renderLogin() {
    var t = token(), c = t && claims(t);
    $("login-out").hidden = !!t;
    $("login-in").hidden = !t;
    if (!t) { $("login-sum").textContent = W.login_title; return; }
    var id = "CCCD ••••" + String(c.cccd || "").slice(-4), exp = new Date(c.exp * 1000);
    $("login-sum").textContent = "✓ " + W.signed_in + " · " + id;
    $("who").textContent = id + " · " + W.expires + " " + pad(exp.getHours()) + ":" + pad(exp.getMinutes()) + " " +
      pad(exp.getDate()) + "/" + pad(exp.getMonth() + 1);
  }

  function signIn(t) {
    t = String(t || "").trim().replace(/^Bearer\s+/i, "");
    var why = problem(claims(t));
    if (why) { msg("login-msg", why, true); return false; }
    store(TOKEN_KEY, t);
    $("token").value = "";
    msg("login-msg", "");
    renderLogin();
    return true;
  }

  $("login-form").addEventListener("submit", function (e) { e.preventDefault(); signIn($("token").value); });
  $("logout").addEventListener("click", function () { store(TOKEN_KEY, null); renderLogin(); });
  if ($("demo-login")) {
    $("demo-login").addEventListener("click", function () {
      fetch("/demo/citizen-token", { method: "POST" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (d) { if (signIn(d.token)) msg("login-msg", "✓ " + W.signed_in, false); })
        .catch(function () { msg("login-msg", W.error, true); });
    });
  }

  // -- taking a number online ---------------------------------------------------------------------------

  function dialog(html, ok) {
    var d = $("result");
    $("result-body").innerHTML = html;
    d.className = "result " + (ok ? "ok" : "bad");
    if (d.open) return;
    if (d.showModal) d.showModal(); else d.setAttribute("open", "");
  }

  function key() {
    return (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function take(branch, service, button) {
    var t = token();
    if (!t) {
      $("login").open = true;
      msg("login-msg", W.login_first, true);
      $("login").scrollIntoView({ block: "center" });
      $("token").focus();
      return;
    }
    if (busy) return;
    busy = true;
    button.disabled = true;
    fetch("/api/branches/" + encodeURIComponent(branch) + "/tickets", {
      method: "POST", cache: "no-store",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + t, "Idempotency-Key": key() },
      body: JSON.stringify({ service: service, channel: "online" })
    }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) { return { r: r, data: data }; });
    }).then(function (x) {
      var d = x.data;
      if (x.r.ok && d && d.token) {
        remember(d);
        dialog('<p class="res-h">✓ ' + esc(W.taken) + '</p><div class="res-num" id="res-num">' + esc(d.number) + "</div><p>" +
          esc(d.service_name) + " · " + esc(d.branch_name) + " · " + esc(dmy(d.day)) + "</p>" +
          (d.people_ahead != null ? "<p>" + esc(W.ahead_n.replace("{n}", d.people_ahead)) + "</p>" : "") +
          '<a class="btn primary" id="res-track" href="/t/' + encodeURIComponent(d.token) + '">' + esc(W.track) + " →</a>", true);
        refresh();
        return;
      }
      var e = d && d.error;
      if (x.r.status === 401) { store(TOKEN_KEY, null); renderLogin(); }
      dialog('<p class="res-h">✕ ' + esc(W.refused) + '</p><p class="res-msg" id="res-msg">' +
        esc(e ? (EN ? e.message : e.message_vi || e.message) : W.error) + "</p>", false);
    }).catch(function () {
      dialog('<p class="res-h">✕ ' + esc(W.refused) + '</p><p class="res-msg" id="res-msg">' + esc(W.error) + "</p>", false);
    }).then(function () { busy = false; button.disabled = false; });
  }

  $("list").addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.take");
    if (!b) return;
    var li = b.closest(".svc");
    take(li.getAttribute("data-branch"), li.getAttribute("data-service"), b);
  });

  // -- the numbers taken from this browser, to find their pages again ---------------------------------

  function mine() { try { return JSON.parse(load(MINE_KEY) || "[]"); } catch (e) { return []; } }

  function remember(d) {
    var list = mine().filter(function (m) { return m.token !== d.token; });
    list.unshift({ number: d.number, service: d.service_name, branch: d.branch_name, day: d.day, token: d.token });
    store(MINE_KEY, JSON.stringify(list.slice(0, MINE_MAX)));
    renderMine();
  }

  function renderMine() {
    var list = mine();
    $("mine").hidden = !list.length;
    $("mine-list").innerHTML = list.map(function (m) {
      return '<li><a href="/t/' + encodeURIComponent(m.token) + '"><b>' + esc(m.number) + "</b> · " + esc(m.service) + " · " +
        esc(m.branch) + " · " + esc(dmy(m.day)) + "</a></li>";
    }).join("");
  }

  renderLogin();
  renderMine();
  render();
  setInterval(refresh, (D.refresh || 15) * 1000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
})();
