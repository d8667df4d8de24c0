// The branch manager's page: keeps the staff token, and keeps the page live.
//
// - A `?token=` in the address is kept in localStorage (per branch) and removed from the address bar
//   (the server has also set an HttpOnly cookie for this page's path).
// - The board feed (/ws/branches/{b}, through static/feed.js) says when anything happens; the page
//   then fetches itself again (with the token as a bearer header) and swaps in every [data-live]
//   section, so the live tables, figures and charts are rendered in one place, the server. At most
//   one fetch runs at a time.
// - Without the feed (closed, reconnecting), the page polls every 10 s; with it, every 30 s anyway,
//   so that running waits and holds move on.
(function () {
  "use strict";
  var KEY = "qc_staff_token:";
  var screen = document.getElementById("token-screen");
  var root = document.getElementById("admin");
  var params = new URLSearchParams(location.search);

  function storageGet(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
  function storageSet(k, v) { try { localStorage.setItem(k, v); } catch (e) { /* private mode */ } }
  function storageDel(k) { try { localStorage.removeItem(k); } catch (e) { /* private mode */ } }

  if (screen) {
    // The token screen: a token kept from an earlier visit is tried once; a refused one is forgotten.
    var b = screen.dataset.branch, kept = storageGet(KEY + b);
    if (screen.dataset.reason === "missing" && kept && !sessionStorage.getItem("qc_tried:" + b)) {
      sessionStorage.setItem("qc_tried:" + b, "1");
      params.set("token", kept);
      location.replace(location.pathname + "?" + params.toString());
    } else if (screen.dataset.reason !== "missing") {
      storageDel(KEY + b);
    }
    return;
  }
  if (!root) return;

  var branch = root.dataset.branch;
  try { sessionStorage.removeItem("qc_tried:" + branch); } catch (e) { /* ignore */ }
  if (params.has("token")) {
    storageSet(KEY + branch, params.get("token"));
    params.delete("token");
    var q = params.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : "") + location.hash);
  }
  var token = storageGet(KEY + branch);
  var conn = document.getElementById("conn");
  var feed = null, pollTimer = null;
  var inFlight = false, again = false, lastRefresh = 0;

  function setConn(online) {
    conn.classList.toggle("online", online);
    conn.classList.toggle("offline", !online);
    conn.querySelector(".conn-text").textContent = online ? conn.dataset.online : conn.dataset.offline;
  }

  function pageUrl() {
    var p = new URLSearchParams(location.search);
    p.delete("token");
    p.delete("format");
    var q = p.toString();
    return location.pathname + (q ? "?" + q : "");
  }

  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    lastRefresh = Date.now();
    var headers = { "Accept": "text/html" };
    if (token) headers["Authorization"] = "Bearer " + token;
    fetch(pageUrl(), { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { storageDel(KEY + branch); location.reload(); throw new Error("auth"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("admin");
        if (!fresh) return;
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var next = doc.getElementById(el.id);
          if (next) el.replaceWith(document.importNode(next, true));
        });
        root.dataset.seq = fresh.dataset.seq;
        document.dispatchEvent(new CustomEvent("admin:refreshed", { detail: { seq: fresh.dataset.seq } }));
      })
      .catch(function () { /* the next event or poll tries again */ })
      .then(function () {
        inFlight = false;
        if (again) { again = false; setTimeout(refresh, 250); }
      });
  }

  var pending = null;
  function soon() {                       // a burst of events → one fetch
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, 300);
  }

  function onSnapshot(ev) {
    if (Number(root.dataset.seq) !== ev.seq) soon();                  // else: already shown
  }

  function poll() {
    var open = feed.isOpen();
    if (!open || Date.now() - lastRefresh > 30000) refresh();
  }

  // -- the outbox: "Gửi lại / Redrive" puts dead letters back in the queue ------------------------------
  // The section is swapped on every refresh, so clicks are taken at the document, and the answer is
  // written again into the fresh section once the refresh that shows its effect has landed.
  var outboxNote = null;

  function showOutboxNote() {
    var el = document.getElementById("outbox-msg");
    if (!el || !outboxNote) return;
    el.textContent = outboxNote.text;
    el.className = "msg " + (outboxNote.ok ? "ok" : "bad");
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-redrive]");
    if (!b || b.disabled) return;
    var key = b.getAttribute("data-redrive");
    var msg = document.getElementById("outbox-msg");
    b.disabled = true;
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    fetch("/api/outbox/redrive", { method: "POST", headers: headers, cache: "no-store",
                                   body: JSON.stringify(key ? { key: key } : {}) })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (body) {
          if (r.ok) {
            outboxNote = { ok: true, text: msg.dataset.ok.replace("{n}", body.redriven) };
          } else {
            var err = body && body.error;
            var lang = document.documentElement.lang === "en";
            outboxNote = { ok: false, text: msg.dataset.bad + (err ? (lang ? err.message : err.message_vi || err.message) : "HTTP " + r.status) };
          }
        });
      }, function () { outboxNote = { ok: false, text: msg.dataset.bad + "—" }; })
      .then(function () { b.disabled = false; showOutboxNote(); refresh(); });
  });
  document.addEventListener("admin:refreshed", showOutboxNote);

  // -- kiosk devices: enrol one (its one-time link and QR code shown once), revoke one -----------------
  var kioskMsg = document.getElementById("kiosk-msg");
  var kioskNote = null;
  function showKioskNote() {
    var el = document.getElementById("kiosk-msg");
    if (!el || !kioskNote) return;
    el.textContent = kioskNote.text;
    el.className = "msg " + (kioskNote.ok ? "ok" : "bad");
  }
  function errorText(body, status) {
    var err = body && body.error;
    var en = document.documentElement.lang === "en";
    return err ? (en ? err.message : err.message_vi || err.message) : "HTTP " + status;
  }
  function kioskCall(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch(url, { method: method, headers: headers, cache: "no-store", credentials: "same-origin",
                        body: body ? JSON.stringify(body) : undefined })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (data) { return { ok: r.ok, status: r.status, data: data }; });
      });
  }
  var kioskForm = document.getElementById("kiosk-enrol");
  if (kioskForm) {
    kioskForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var input = document.getElementById("kiosk-name"), button = kioskForm.querySelector("button");
      var name = input.value.trim();
      button.disabled = true;
      kioskCall("POST", "/api/branches/" + encodeURIComponent(branch) + "/kiosks", name ? { name: name } : {})
        .then(function (res) {
          if (res.ok) {
            var d = res.data;
            document.getElementById("kiosk-qr").innerHTML = d.enrol_qr;        // our own SVG
            var link = document.getElementById("kiosk-link");
            link.textContent = d.enrol_url;
            link.href = d.enrol_url;
            document.getElementById("kiosk-code").textContent = d.enrol_code;
            var exp = /T(\d{2}:\d{2})/.exec(d.expires_at || "");
            document.getElementById("kiosk-expires").textContent = exp ? exp[1] : d.expires_at;
            document.getElementById("kiosk-enrolment").hidden = false;
            input.value = "";
            kioskNote = { ok: true, text: kioskMsg.dataset.enrolled.replace("{name}", d.name) };
          } else {
            kioskNote = { ok: false, text: kioskMsg.dataset.bad + errorText(res.data, res.status) };
          }
        }, function () { kioskNote = { ok: false, text: kioskMsg.dataset.bad + "—" }; })
        .then(function () { button.disabled = false; showKioskNote(); refresh(); });
    });
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-revoke]");
    if (!b || b.disabled) return;
    var name = b.getAttribute("data-name");
    if (!window.confirm(kioskMsg.dataset.confirm.replace("{name}", name))) return;
    b.disabled = true;
    kioskCall("DELETE", "/api/branches/" + encodeURIComponent(branch) + "/kiosks/" + encodeURIComponent(b.getAttribute("data-revoke")))
      .then(function (res) {
        kioskNote = res.ok ? { ok: true, text: kioskMsg.dataset.revoked.replace("{name}", name) }
                           : { ok: false, text: kioskMsg.dataset.bad + errorText(res.data, res.status) };
      }, function () { kioskNote = { ok: false, text: kioskMsg.dataset.bad + "—" }; })
      .then(function () { b.disabled = false; showKioskNote(); refresh(); });
  });

  setConn(false);
  feed = QC.feed({ url: "/ws/branches/" + encodeURIComponent(branch), retryBase: 1000, retryCap: 30000,
                   onState: function (state) { if (state !== "connecting") setConn(state === "live"); },
                   onSnapshot: onSnapshot, onEvent: soon });
  pollTimer = setInterval(poll, 10000);
  window.addEventListener("online", function () { refresh(); });
})();
