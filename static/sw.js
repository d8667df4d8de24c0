/* queuecast's service worker: shows the hub's web push messages on the citizen's phone, and opens the
   ticket page when one is tapped. Served at /sw.js and registered by static/citizen.js with the scope
   /t/ (the phone pages); it has no fetch handler, so it never stands between a page and the hub.

   A push message's payload is what notifier/webpush.py encrypts for this browser:
     {"title": ..., "body": ..., "url": "<tracking link>", "tag": "<branch>/<ticket>", "lang": "vi"|"en"}
   The tag is one per ticket, so news about a number replaces the notification already on the screen
   instead of stacking up, and `renotify` makes the phone sound and vibrate again for the newer one (a
   push sent twice after an unclear failure therefore shows once).

   No `pushsubscriptionchange` handler: the worker cannot tell which numbers a replaced subscription
   served (the tokens live in the pages), and a number lives one day; the page offers the button again
   when the hub no longer has a subscription for it. */
"use strict";

var DEFAULT_TITLE = { vi: "Số thứ tự của bạn", en: "Your queue number" };
var FALLBACK_PATH = "/branches";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

function payload(data) {
  if (!data) return {};
  try {
    var m = data.json();
    return m && typeof m === "object" ? m : {};
  } catch (e) {
    return { body: data.text() };          // not JSON: show the text as it came
  }
}

function text(value) { return typeof value === "string" ? value : ""; }

self.addEventListener("push", function (event) {
  var m = payload(event.data);
  var lang = m.lang === "en" ? "en" : "vi";
  var tag = text(m.tag);
  var options = {
    body: text(m.body),
    lang: lang,
    data: { url: text(m.url) },
    vibrate: [300, 100, 300],
  };
  if (tag) { options.tag = tag; options.renotify = true; }   // renotify without a tag is an error
  // A push must show something (userVisibleOnly): an empty title still gets the default one.
  event.waitUntil(self.registration.showNotification(text(m.title) || DEFAULT_TITLE[lang], options));
});

// Only this origin's pages are opened: the link comes from the hub, but its host is QUEUECAST_PUBLIC_URL's,
// which may differ from the one the phone reached the page on; the path (/t/{token}) is what matters.
function target(url) {
  try {
    var u = new URL(url || FALLBACK_PATH, self.location.origin);
    return new URL(u.pathname + u.search, self.location.origin).href;
  } catch (e) {
    return new URL(FALLBACK_PATH, self.location.origin).href;
  }
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var href = target(event.notification.data && event.notification.data.url);
  var path = new URL(href).pathname;
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (new URL(list[i].url).pathname === path && "focus" in list[i]) return list[i].focus();
    }
    return self.clients.openWindow ? self.clients.openWindow(href) : null;
  }));
});
