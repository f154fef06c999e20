// camhub service worker: shows the hub's alerts (Web Push) and opens the event on a tap.
//
// Served at /sw.js so its scope is the whole page. It caches nothing and fetches nothing:
// the push message (decrypted by the browser) holds the camera's name, the time and the
// page's path to the event, and only the page, after login, shows anything more.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function alertOf(event) {
  try {
    const data = event.data ? event.data.json() : {};
    return data && typeof data === "object" ? data : {};
  } catch {
    return {};
  }
}

// Only a path on this hub: a push could otherwise send a tap anywhere.
function pagePath(url) {
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : "/";
}

// The off-site copy's notices (hub/alerts/offsite_notice.py).
const OFFSITE = {
  offsite_failing: { title: "camhub: off-site copy failing", body: "Footage is not being copied off the box" },
  offsite_working: { title: "camhub: off-site copy working again", body: "Footage is copied off the box again" },
};

self.addEventListener("push", (event) => {
  const data = alertOf(event);
  const camera = typeof data.camera === "string" ? data.camera : "A camera";
  const when = typeof data.time === "number" ? new Date(data.time * 1000) : new Date();
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const offsite = Object.hasOwn(OFFSITE, String(data.offsite)) ? OFFSITE[data.offsite] : null;
  const reason = typeof data.reason === "string" ? ` (${data.reason})` : "";
  let title = data.test ? "camhub: test alert" : `Motion: ${camera}`;
  let body = data.test ? `Alerts reach this device (${time}).` : `${camera} saw motion at ${time}.`;
  let tag = data.test ? "camhub-test" : `camhub-${camera}`;
  if (offsite && !data.test) {
    [title, body, tag] = [offsite.title, `${offsite.body}${reason}, ${time}.`, "camhub-offsite"];
  }
  event.waitUntil(
    self.registration.showNotification(title, {
      body,
      tag,
      renotify: true,
      data: { url: pagePath(data.url) },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(pagePath(event.notification.data && event.notification.data.url), self.location.origin);
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (new URL(client.url).origin !== self.location.origin) continue;
        await client.focus();
        if ("navigate" in client) await client.navigate(url.href);
        return;
      }
      await self.clients.openWindow(url.href);
    })(),
  );
});

// The push service replaced the subscription: make the new one with the same key and
// tell the hub (with the owner's session cookie, if it is still valid; otherwise the
// page tells it at the next login).
self.addEventListener("pushsubscriptionchange", (event) => {
  const options = event.oldSubscription && event.oldSubscription.options;
  if (!options) return;
  event.waitUntil(
    (async () => {
      const subscription = event.newSubscription || (await self.registration.pushManager.subscribe(options));
      await fetch("/api/alerts/push", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(subscription.toJSON()),
      });
    })(),
  );
});
