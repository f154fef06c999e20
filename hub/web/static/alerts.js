// camhub owner page: the Alerts panel (Web Push on this browser, test alert, snooze,
// per-camera switches) and the link an alert opens (#event-<id>).
//
// Plain JavaScript beside app.js, sharing only the page's elements: data from the hub
// goes on the page with textContent only.
"use strict";

(() => {
  const SNOOZE_SECONDS = 3600;
  const EVENT_WAIT_MS = 15000; // for the events list to show the event an alert opened
  const { $, api: call, el } = camhub;
  const panel = {
    data: null, // the last GET /api/alerts
    subscription: null, // this browser's PushSubscription, if any
  };

  function say(message, bad) {
    const line = $("alerts-message");
    line.textContent = message;
    line.className = bad ? "form-error" : "hint";
    line.hidden = !message;
  }

  function fail(error) {
    say(error instanceof Error ? error.message : String(error), true);
  }

  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  // -- Web Push on this browser ---------------------------------------------------------

  function pushSupport() {
    if (!window.isSecureContext) return "Push needs the page over HTTPS (or on this computer).";
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      return (
        "This browser cannot receive pushes here. On an iPhone or iPad (iOS 16.4 or later), " +
        "add this page to the Home Screen first, then open it from there."
      );
    }
    return null;
  }

  function keyBytes(base64url) {
    const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(text, (c) => c.charCodeAt(0));
  }

  async function currentSubscription() {
    if (pushSupport()) return null;
    const registration = await navigator.serviceWorker.getRegistration("/");
    return registration ? registration.pushManager.getSubscription() : null;
  }

  async function enablePush() {
    const key = panel.data && panel.data.push.public_key;
    if (!key) throw new Error("Web Push is off on this hub (alerts.push in the config).");
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      throw new Error("Notifications are blocked for this page: allow them in the browser.");
    }
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    let subscription = await registration.pushManager.getSubscription();
    if (!subscription) {
      try {
        subscription = await registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: keyBytes(key),
        });
      } catch (error) {
        throw new Error(`The browser's push service refused to subscribe: ${error.message}`);
      }
    }
    await call("POST", "/api/alerts/push", subscription.toJSON());
    panel.subscription = subscription;
    say("Alerts will reach this browser. Send a test alert to check.");
  }

  async function disablePush() {
    const subscription = panel.subscription;
    if (!subscription) return;
    try {
      await call("POST", "/api/alerts/push/remove", { endpoint: subscription.endpoint });
    } catch (error) {
      if (!/no such subscription/.test(error.message)) throw error;
    }
    await subscription.unsubscribe();
    panel.subscription = null;
    say("This browser gets no more alerts.");
  }

  // A push service may replace a subscription (the worker then makes a new one): each
  // time the owner opens the page, this browser's subscription is told to the hub again
  // (kept once; the access log notes only a new one).
  async function resync() {
    const subscription = await currentSubscription();
    if (subscription) await call("POST", "/api/alerts/push", subscription.toJSON());
  }

  // -- the panel ------------------------------------------------------------------------

  function renderPush() {
    const problem = pushSupport();
    const button = $("alerts-push");
    const data = panel.data;
    let text;
    if (!data.push.public_key) text = "Web Push is off on this hub (alerts.push in the config).";
    else if (problem) text = problem;
    else if (panel.subscription) text = "This browser gets alerts.";
    else text = "This browser gets no alerts.";
    $("alerts-push-state").textContent = text;
    button.hidden = Boolean(problem) || !data.push.public_key;
    button.textContent = panel.subscription ? "Turn off on this browser" : "Enable push on this browser";
    const count = data.push.subscriptions.length;
    $("alerts-push-count").textContent =
      count === 0 ? "No browser is subscribed." : `${count} browser(s) subscribed.`;
  }

  function renderSnooze() {
    const until = panel.data.snoozed_until;
    $("alerts-snooze-state").textContent = until
      ? `All alerts are snoozed until ${clock.format(until * 1000)}.`
      : "Alerts are on.";
    $("alerts-snooze").hidden = Boolean(until);
    $("alerts-unsnooze").hidden = !until;
  }

  function renderRules() {
    const data = panel.data;
    const quiet = data.quiet_hours.length ? data.quiet_hours.join(", ") : "none";
    const zone = data.time_zone || "the hub's time zone";
    $("alerts-rules").textContent =
      `One alert per camera per ${data.cooldown_seconds} s. Quiet hours: ${quiet} (${zone}).`;
  }

  function renderCameras() {
    const list = $("alerts-cameras");
    list.replaceChildren();
    for (const cam of panel.data.cameras) {
      const box = el("input", { type: "checkbox", "data-camera": cam.id });
      box.checked = cam.enabled;
      box.addEventListener("change", () => toggleCamera(cam.id, box));
      list.append(el("li", null, el("label", { class: "alerts-camera" }, box, el("span", { text: cam.name }))));
    }
    $("alerts-cameras-empty").hidden = panel.data.cameras.length > 0;
  }

  function renderTargets() {
    const data = panel.data;
    const list = $("alerts-targets");
    list.replaceChildren();
    const named = { push: "Web Push", webhook: `Webhook (${data.webhook || "off"})` };
    if (data.webhook && !data.targets.some((t) => t.target === "webhook")) {
      data.targets.push({ target: "webhook", state: "idle", detail: "", sent: 0, failed: 0 });
    }
    for (const target of data.targets) {
      const state =
        target.state === "failing"
          ? `failing since ${dateTime.format(target.since * 1000)}: ${target.detail}`
          : target.state === "ok"
            ? `working (${target.sent} sent)`
            : "nothing sent yet";
      list.append(
        el(
          "li",
          { class: `alerts-target ${target.state}`, "data-target": target.target },
          el("strong", { text: named[target.target] || target.target }),
          el("span", { class: "muted", text: ` ${state}` }),
        ),
      );
    }
    if (data.mqtt) {
      const mqtt = data.mqtt;
      const failing = ["refused", "unreachable", "failed"].includes(mqtt.state);
      const state = mqtt.detail ? `${mqtt.state}: ${mqtt.detail}` : mqtt.state;
      list.append(
        el(
          "li",
          { class: `alerts-target ${failing ? "failing" : mqtt.state === "connected" ? "ok" : "idle"}`, "data-target": "mqtt" },
          el("strong", { text: `MQTT (${mqtt.broker})` }),
          el("span", { class: "muted", text: ` ${state}` }),
        ),
      );
    }
    $("alerts-targets-empty").hidden = list.childElementCount > 0;
  }

  function render() {
    renderPush();
    renderSnooze();
    renderRules();
    renderCameras();
    renderTargets();
  }

  async function load() {
    panel.data = await call("GET", "/api/alerts");
    panel.subscription = await currentSubscription().catch(() => null);
    render();
  }

  async function open() {
    say("");
    $("alerts-dialog").showModal();
    try {
      await load();
    } catch (error) {
      fail(error);
    }
  }

  async function busy(button, work) {
    button.disabled = true;
    say("");
    try {
      await work();
    } catch (error) {
      fail(error);
    } finally {
      button.disabled = false;
    }
  }

  async function toggleCamera(id, box) {
    await busy(box, async () => {
      try {
        await call("PUT", `/api/alerts/cameras/${encodeURIComponent(id)}`, { enabled: box.checked });
      } catch (error) {
        box.checked = !box.checked;
        throw error;
      }
    });
  }

  function wire() {
    $("alerts-open").addEventListener("click", open);
    $("alerts-push").addEventListener("click", (e) =>
      busy(e.currentTarget, async () => {
        await (panel.subscription ? disablePush() : enablePush());
        await load();
      }),
    );
    $("alerts-test").addEventListener("click", (e) =>
      busy(e.currentTarget, async () => {
        await call("POST", "/api/alerts/test", {});
        say("Test alert sent to every target. The list below shows how it went.");
        setTimeout(() => load().catch(fail), 3000);
      }),
    );
    $("alerts-snooze").addEventListener("click", (e) =>
      busy(e.currentTarget, async () => {
        await call("POST", "/api/alerts/snooze", { seconds: SNOOZE_SECONDS });
        await load();
      }),
    );
    $("alerts-unsnooze").addEventListener("click", (e) =>
      busy(e.currentTarget, async () => {
        await call("POST", "/api/alerts/snooze", { seconds: 0 });
        await load();
      }),
    );
  }

  // -- the link an alert opens: #event-<id> -----------------------------------------------

  let pendingEvent = null;

  function takeEventFromHash() {
    const match = /^#event-(\d{1,18})$/.exec(location.hash);
    if (match) pendingEvent = match[1];
  }

  // Once the owner is logged in, show the events and play the one the alert was about.
  function onAppShown() {
    if ($("app-view").hidden) return;
    resync().catch(() => {}); // push off on the hub, or offline: the panel will say
    openPendingEvent();
  }

  function openPendingEvent() {
    if (pendingEvent === null || $("app-view").hidden) return;
    const id = pendingEvent;
    pendingEvent = null;
    const list = $("events");
    const started = Date.now();
    const play = () => {
      const item = list.querySelector(`button.event[data-event="${id}"]`);
      if (item) item.click();
      return Boolean(item) || Date.now() - started > EVENT_WAIT_MS;
    };
    const watch = new MutationObserver(() => {
      if (play()) watch.disconnect();
    });
    watch.observe(list, { childList: true, subtree: true });
    setTimeout(() => watch.disconnect(), EVENT_WAIT_MS);
    location.hash = "#events";
    if (play()) watch.disconnect();
  }

  function watchLogin() {
    takeEventFromHash();
    window.addEventListener("hashchange", () => {
      takeEventFromHash();
      openPendingEvent();
    });
    new MutationObserver(onAppShown).observe($("app-view"), { attributes: true, attributeFilter: ["hidden"] });
  }

  wire();
  watchLogin();
})();
