/* Vietnamese call announcements: chime, then the sentence, one announcement at a time.

   QCAnnounce.enqueue(number, counter) — fetches /api/announcement, plays the chime, then speaks the
   text with a vi-VN speechSynthesis voice if the browser has one, else plays the pre-rendered clips in
   order. Events on document: "qc-announce" when one starts and "qc-announced" when it ends, both with
   {detail: {number, counter, text, subtitle, via: "voice"|"clips"}}. Where autoplay is blocked a
   one-time button (#qc-unlock, made here if the page has none) turns the sound on. No libraries. */
(function () {
  "use strict";
  var GAP_MS = 500, FETCH_MS = 5000, CLIP_MS = 6000, SPEECH_MS = 20000;
  var queue = [], busy = false, locked = false, blocked = null;
  var player = new Audio();                     // one element for everything: unlocked once, stays so
  player.preload = "auto";

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function fire(name, detail) { document.dispatchEvent(new CustomEvent(name, {detail: detail})); }

  function viVoice() {
    if (!("speechSynthesis" in window)) return null;
    var voices = speechSynthesis.getVoices() || [];
    return voices.find(function (v) { return /^vi([-_]|$)/i.test(v.lang); }) || null;
  }
  if ("speechSynthesis" in window) speechSynthesis.getVoices();   // voices load asynchronously

  function fetchText(number, counter) {
    var ctl = new AbortController(), timer = setTimeout(function () { ctl.abort(); }, FETCH_MS);
    var url = "/api/announcement?number=" + encodeURIComponent(number) + "&counter=" + encodeURIComponent(counter);
    return fetch(url, {signal: ctl.signal})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .catch(function () {                      // the hub is unreachable: show it at least, say it in digits
        var s = "Mời công dân có số " + number + " đến quầy số " + counter;
        return {text: s, subtitle: s, clips: [], chime: "/static/audio/chime.ogg"};
      })
      .finally(function () { clearTimeout(timer); });
  }

  // Resolves when the clip ends, fails to load, or takes too long; false when autoplay is blocked.
  function play(url) {
    return new Promise(function (resolve) {
      var done = false, timer;
      function finish(ok) {
        if (done) return;
        done = true; clearTimeout(timer);
        player.onended = player.onerror = null;
        resolve(ok);
      }
      player.onended = function () { finish(true); };
      player.onerror = function () { finish(true); };
      timer = setTimeout(function () { player.pause(); finish(true); }, CLIP_MS);
      player.src = url;
      var p = player.play();
      if (p && p.catch) p.catch(function (e) { finish(!(e && e.name === "NotAllowedError")); });
    });
  }

  function speak(text, voice) {
    return new Promise(function (resolve) {
      var u = new SpeechSynthesisUtterance(text), done = false, timer;
      function finish(ok) { if (!done) { done = true; clearTimeout(timer); resolve(ok); } }
      u.voice = voice; u.lang = "vi-VN"; u.rate = 0.9;
      u.onend = function () { finish(true); };
      u.onerror = function (e) { finish(e.error !== "not-allowed"); };
      timer = setTimeout(function () { speechSynthesis.cancel(); finish(true); }, SPEECH_MS);
      speechSynthesis.speak(u);
    });
  }

  async function announce(item) {
    var a = await fetchText(item.number, item.counter);
    var voice = viVoice();
    var detail = {number: item.number, counter: item.counter, text: a.text, subtitle: a.subtitle,
                  via: voice ? "voice" : "clips"};
    fire("qc-announce", detail);
    try {
      var ok = !locked && await play(a.chime || "/static/audio/chime.ogg");
      if (ok && voice) ok = await speak(a.text, voice);
      for (var i = 0; ok && !voice && i < a.clips.length; i++) ok = await play(a.clips[i]);
      if (!ok) { locked = true; blocked = item; showUnlock(); }
    } finally {
      fire("qc-announced", detail);
    }
  }

  async function pump() {
    if (busy) return;
    busy = true;
    try {
      while (queue.length) {
        try { await announce(queue.shift()); } catch (e) { /* the next one still plays */ }
        if (queue.length) await sleep(GAP_MS);
      }
    } finally { busy = false; }
  }

  function enqueue(number, counter) {
    queue.push({number: String(number), counter: String(counter)});
    pump();
  }

  // -- autoplay: a one-time button that turns the sound on ------------------------------------------

  function unlockButton() {
    var b = document.getElementById("qc-unlock");
    if (!b) {
      b = document.createElement("button");
      b.id = "qc-unlock"; b.type = "button"; b.hidden = true;
      b.textContent = document.documentElement.lang === "en" ? "🔊 Click to turn the sound on" : "🔊 Bấm để bật âm thanh";
      document.body.append(b);
    }
    return b;
  }

  function showUnlock() {
    var b = unlockButton();
    if (!b.hidden || showUnlock.used) return;
    b.hidden = false;
    b.addEventListener("click", function () {
      showUnlock.used = true;
      b.hidden = true; locked = false;
      if (ctx && ctx.state === "suspended") ctx.resume();
      // A gesture unlocks media for the page; starting playback here makes sure of it.
      player.src = "/static/audio/chime.ogg";
      var p = player.play();
      if (p && p.catch) p.catch(function () {});
      if ("speechSynthesis" in window) speechSynthesis.speak(new SpeechSynthesisUtterance(""));
      if (blocked && !queue.length) queue.push(blocked);   // say again the call that could not be heard
      blocked = null;
      setTimeout(pump, 1500);
    }, {once: true});
  }

  // An AudioContext made without a gesture starts suspended where autoplay is not allowed: say so now.
  var ctx = null;
  try {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (AC) { ctx = new AC(); if (ctx.state === "suspended") { locked = true; showUnlock(); } }
  } catch (e) { ctx = null; }

  window.QCAnnounce = {enqueue: enqueue, pending: function () { return queue.length + (busy ? 1 : 0); }};
})();
