// camhub owner page: login, live view, events and clips, shares, access log.
//
// Plain JavaScript, no build step, no outside code (the CSP allows only our own files).
// Data from the hub is put on the page with textContent only, never as HTML.
"use strict";

(() => {
  const EVENTS_PAGE = 30;
  const LOG_PAGE = 100;
  const LIVE_RETRY_MS = 3000;
  // The hub's updates come over one stream (GET /api/stream, Server-Sent Events). A
  // dropped stream is opened again after a wait doubling from the first to the second;
  // one that lasted STREAM_STEADY_MS was working, and the next drop starts over.
  const STREAM_RETRY_MS = [1000, 60 * 1000];
  const STREAM_STEADY_MS = 60 * 1000;
  // The stream does not count as use of the session on the hub (nor do the pictures the
  // page loads on its own while unattended): input on the page does, by a request at most
  // this often, so a page in use keeps its session and an untouched one lets it time out.
  const TOUCH_MS = 60 * 1000;
  // Past this without input the page is unattended: it loads no pictures on its own and
  // does not retry a refused stream (each would be a request that counts as use).
  const UNATTENDED_MS = 10 * 60 * 1000;

  const state = {
    loggedIn: false,
    tab: null,
    cameras: [], // from /api/cameras
    cameraNames: new Map(),
    cameraStatus: new Map(), // camera id: the newest status from the stream
    moving: new Set(), // cameras that see motion now
    stream: { source: null, retry: null, delay: STREAM_RETRY_MS[0], openedAt: 0, paused: false },
    indexProblem: null,
    events: {
      lastId: null,
      lastDay: null,
      newestId: null,
      loading: false,
      generation: 0,
      shown: new Set(),
      pending: new Map(), // events streamed while a page of the list was loading
    },
    log: { oldest: null, loading: false, generation: 0 },
    playing: null, // the event shown in the player
    lastInput: Date.now(),
  };

  // -- small helpers -------------------------------------------------------------------

  const { $, el, api, ApiError } = camhub;
  const { time: fmtTime, day: fmtDay, duration: fmtDuration, relative: fmtRelative, bytes: fmtBytes } =
    camhub.fmt;

  function show(node, visible) {
    node.hidden = !visible;
  }

  const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

  function cameraName(id) {
    return state.cameraNames.get(id) || id;
  }

  // -- talking to the hub ---------------------------------------------------------------

  function notify(message, info = false) {
    $("notice").classList.toggle("notice-info", info); // news, not an error
    $("notice-text").textContent = message;
    show($("notice"), true);
  }

  function clearNotice() {
    show($("notice"), false);
    $("notice-text").textContent = "";
  }

  function reportError(error) {
    if (error instanceof ApiError && error.status === 401) return; // back at the login form
    notify(error instanceof Error ? error.message : String(error));
  }

  // Media elements (live view, clips) cannot tell us the status of a failed load: when
  // one fails, ask the hub whether the session is still good.
  async function checkSession() {
    try {
      await api("GET", "/api/session");
      return true;
    } catch {
      return false;
    }
  }

  // -- login / logout -----------------------------------------------------------------

  let loginTimer = null;

  function showLogin(message, info = false) {
    state.loggedIn = false;
    closeStream();
    leaveTab();
    closeDialogs();
    clearOwnerData();
    camhub.emit("logout"); // every part drops what it showed of the owner's
    show($("boot"), false);
    show($("app-view"), false);
    show($("login-view"), true);
    setLoginError(message || "", info);
    const password = $("login-password");
    password.value = "";
    password.focus();
  }

  function setLoginError(message, info = false) {
    $("login-error").classList.toggle("form-info", info);
    $("login-error").textContent = message;
    show($("login-error"), Boolean(message));
  }

  function sessionEnded() {
    if (state.loggedIn) showLogin("Your session has ended. Log in again.");
  }

  async function onLogin(event) {
    event.preventDefault();
    const password = $("login-password").value;
    if (!password) {
      setLoginError("Enter your password.");
      return;
    }
    const button = $("login-submit");
    button.disabled = true;
    button.textContent = "Unlocking…";
    setLoginError("");
    let waitSeconds = 0;
    try {
      await api("POST", "/api/login", { password });
      $("login-password").value = "";
      await showApp();
      return;
    } catch (error) {
      if (error.status === 401) setLoginError("Wrong password.");
      else setLoginError(error.message);
      if (error.status === 429) waitSeconds = parseInt(error.retryAfter || "0", 10) || 0;
      $("login-password").select();
    } finally {
      button.textContent = "Log in";
      button.disabled = false;
    }
    if (waitSeconds > 0) throttleLogin(waitSeconds);
  }

  function throttleLogin(seconds) {
    const button = $("login-submit");
    clearInterval(loginTimer);
    let left = seconds;
    button.disabled = true;
    const tick = () => {
      if (left <= 0) {
        clearInterval(loginTimer);
        button.disabled = false;
        button.textContent = "Log in";
        return;
      }
      button.textContent = `Try again in ${left} s`;
      left -= 1;
    };
    tick();
    loginTimer = setInterval(tick, 1000);
  }

  async function onLogout() {
    try {
      await api("POST", "/api/logout", {});
    } catch (error) {
      if (error.status !== 401) {
        reportError(error);
        return;
      }
    }
    showLogin("You have logged out. The footage key is locked again.", true);
  }

  async function showApp() {
    state.loggedIn = true;
    show($("boot"), false);
    show($("login-view"), false);
    show($("app-view"), true);
    clearNotice();
    try {
      await loadCameras();
      await checkIndex();
    } catch (error) {
      reportError(error);
    }
    if (!state.loggedIn) return;
    camhub.emit("login");
    loadStorage().catch(() => {}); // a figure, not worth an error box
    openStream();
    switchTab(tabFromHash());
  }

  function clearOwnerData() {
    // Nothing of the owner's stays on a page left at the login form.
    $("cameras").replaceChildren();
    $("events").replaceChildren();
    $("shares-body").replaceChildren();
    $("log-body").replaceChildren();
    $("verify").replaceChildren();
    $("verify").className = "verify";
    $("storage").textContent = "";
    show($("storage"), false);
    state.cameras = [];
    state.cameraNames.clear();
    state.cameraStatus.clear();
    state.moving.clear();
    state.indexProblem = null;
    show($("hub-status"), false);
    clearNotice();
  }

  // -- tabs ---------------------------------------------------------------------------

  function tabFromHash() {
    const name = location.hash.replace(/^#/, "");
    return camhub.tabs.has(name) ? name : "live";
  }

  function switchTab(name) {
    if (!state.loggedIn) return;
    leaveTab();
    state.tab = name;
    for (const tab of document.querySelectorAll(".tab")) {
      const current = tab.dataset.tab === name;
      tab.classList.toggle("active", current);
      if (current) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    for (const tabName of camhub.tabs.keys()) show($(`tab-${tabName}`), tabName === name);
    Promise.resolve(camhub.tabs.get(name).enter()).catch(reportError);
  }

  function leaveTab() {
    const leave = state.tab && camhub.tabs.get(state.tab).leave;
    if (leave) leave();
    state.tab = null;
  }

  // -- live view ----------------------------------------------------------------------

  async function loadCameras() {
    const cameras = await api("GET", "/api/cameras");
    state.cameras = cameras;
    state.cameraNames = new Map(cameras.map((cam) => [cam.id, cam.name]));
    const select = $("events-camera");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "All cameras" }));
    for (const cam of cameras) select.append(el("option", { value: cam.id, text: cam.name }));
    select.value = state.cameraNames.has(chosen) ? chosen : "";
    camhub.emit("cameras", cameras);
    return cameras;
  }

  function recordText(mode) {
    return (
      { motion: "records on motion", continuous: "records all the time", off: "not recording" }[
        mode
      ] || `records: ${mode}`
    );
  }

  // Live view: the camera's own H.264 (HD main stream or SD substream) played with MSE
  // (live-player.js) where the browser can; the hub's MJPEG otherwise.
  const liveChoice = new Map(); // camera id -> "main" | "sub", for this page's life

  function chosenStream(cam) {
    if (!window.camhubLive || !camhubLive.supported() || cam.mjpegOnly) return null;
    const streams = cam.streams || [];
    const wanted = liveChoice.get(cam.id) || "main";
    return streams.find((s) => s.name === wanted) || streams[0] || null;
  }

  function toggleFullscreen(node) {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (node.requestFullscreen) node.requestFullscreen().catch(() => {});
  }

  function cameraCard(cam) {
    const img = el("img", { class: "live-img", alt: `Live view of ${cam.name}` });
    const video = el("video", {
      class: "live-video",
      muted: true,
      playsinline: true,
      "aria-label": `Live view of ${cam.name}`,
    });
    const placeholder = el("div", { class: "live-placeholder", text: "Waiting for a picture…" });
    const status = el("span", { class: "status" });
    const choices = el("div", { class: "live-choice", role: "group", "aria-label": "Quality" });
    const card = el(
      "article",
      { class: "camera-card", dataset: { camera: cam.id } },
      el("div", { class: "live-frame" }, img, video, placeholder),
      el(
        "div",
        { class: "camera-info" },
        el("h3", { class: "camera-name", text: cam.name }),
        status,
        el("span", { class: "camera-reason", hidden: true }),
        el("span", { class: "motion-badge", text: "Motion", hidden: true }),
        el("span", { class: "live-stats muted" }),
        choices,
        el("span", { class: "camera-meta muted" }),
      ),
    );
    const shown = () => {
      placeholder.hidden = true;
      card.classList.add("has-picture");
    };
    img.addEventListener("load", shown);
    video.addEventListener("playing", shown);
    img.addEventListener("error", () => liveFailed(card, cam));
    img.addEventListener("click", () => toggleFullscreen(img));
    video.addEventListener("click", () => toggleFullscreen(video));
    if (window.camhubSound) camhubSound.attach(card, video); // live-sound.js
    return card;
  }

  function updateChoices(card, cam) {
    const choices = card.querySelector(".live-choice");
    const streams = chosenStream(cam) ? cam.streams : [];
    const current = chosenStream(cam);
    const names = streams.map((s) => s.name).join(" ");
    if (choices.dataset.names !== names) {
      choices.dataset.names = names;
      choices.replaceChildren(
        ...(streams.length > 1 ? streams : []).map((s) =>
          el("button", {
            type: "button",
            class: "chip",
            dataset: { stream: s.name },
            title: `${s.width}×${s.height}`,
            text: s.label,
            onclick: () => {
              liveChoice.set(cam.id, s.name);
              stopStream(card);
              startStream(card, cam);
            },
          }),
        ),
      );
    }
    for (const button of choices.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(current && button.dataset.stream === current.name));
    }
  }

  // A camera's status: the stream's newest, else what /api/cameras said.
  function cameraStatus(cam) {
    const live = state.cameraStatus.get(cam.id);
    if (live) return live;
    const { connected, ...status } = cam.status || {};
    return { ...status, online: connected, viewers: cam.viewers };
  }

  function updateCard(card, cam) {
    const current = cameraStatus(cam);
    const health = camhubHealth.describe(current);
    const status = card.querySelector(".status");
    status.className = `status ${health.ok ? "ok" : "bad"}`;
    status.textContent = health.label;
    const reason = card.querySelector(".camera-reason");
    reason.textContent = health.reason;
    reason.hidden = !health.reason;
    const placeholder = card.querySelector(".live-placeholder");
    const offline = "No picture while the camera is offline.";
    if (health.reason) placeholder.textContent = offline;
    else if (placeholder.textContent === offline) placeholder.textContent = "Waiting for a picture…";
    card.querySelector(".motion-badge").hidden = !state.moving.has(cam.id);
    const meta = [recordText(cam.record), ...health.parts];
    if (current.viewers > 1) meta.push(`${current.viewers} watching`);
    const offsite = current.offsite; // from the page's stream as it changes
    if (offsite) meta.push(offsiteText(offsite));
    // One span a phrase: a narrow card wraps between them. The spaces between are not
    // drawn in a flex box (the gap is), but they keep the text readable as text.
    const phrases = meta.flatMap((text, i) => [i ? " " : "", el("span", { text })]);
    card.querySelector(".camera-meta").replaceChildren(...phrases);
    card.cam = cam;
    updateChoices(card, cam);
    if (card.dataset.mode === "MJPEG") showMjpegStats(card, current.last_frame);
  }

  // The view, its resolution and the time of the newest picture, so the owner sees it
  // is live (the frame rate is in the camera's line, from the hub's status stream).
  function showStats(card, info, mode) {
    const parts = [mode];
    if (info.width) parts.push(`${info.width}×${info.height}`);
    if (info.time) parts.push(`picture of ${timeOnly.format(new Date(info.time * 1000))}`);
    card.querySelector(".live-stats").textContent = parts.join(" · ");
  }

  // An <img> cannot read the parts' X-Timestamp: the clock is the hub's newest picture
  // from its status stream (every 2 s), which the MJPEG view shows within a frame or two.
  function showMjpegStats(card, lastFrame) {
    const img = card.querySelector(".live-img");
    if (!img.naturalWidth) return;
    const info = { width: img.naturalWidth, height: img.naturalHeight, time: lastFrame };
    showStats(card, info, "MJPEG");
  }

  function offsiteText({ working, pending, lag_seconds: lag, error }) {
    const waiting = pending ? `${pending} waiting, ${Math.round(lag)} s behind` : "";
    if (working === false) return `Off-site copy failing (${waiting || "nothing waiting"}): ${error}`;
    return pending ? `Off-site: ${waiting}` : "Off-site: up to date";
  }

  function refreshCard(cameraId) {
    const cam = state.cameras.find((c) => c.id === cameraId);
    const card = document.querySelector(`.camera-card[data-camera="${CSS.escape(cameraId)}"]`);
    if (cam && card) updateCard(card, cam);
  }

  function startStream(card, cam) {
    if (state.tab !== "live") return;
    const img = card.querySelector(".live-img");
    const video = card.querySelector(".live-video");
    const stream = chosenStream(cam);
    card.dataset.mode = stream ? stream.label : "MJPEG";
    show(video, Boolean(stream));
    show(img, !stream);
    updateChoices(card, cam);
    const heard = (audible) => window.camhubSound && camhubSound.show(card, audible);
    heard(false);
    if (stream) {
      card.stopVideo = camhubLive.play(video, stream.url, {
        onInfo: (info) => {
          showStats(card, info, stream.label);
          heard(info.audio);
        },
        onFail: (reason, canRetry) => {
          card.stopVideo = null;
          if (!canRetry) cam.mjpegOnly = true; // e.g. a codec this browser cannot play
          liveFailed(card, cam, canRetry ? reason : null);
        },
      });
      return;
    }
    // A fresh URL each time, so the browser opens a new stream instead of reusing a dead one.
    img.src = `${cam.live_url}?t=${Date.now()}`;
    img.onload = () => showMjpegStats(card, cameraStatus(card.cam || cam).last_frame);
  }

  function stopStream(card) {
    clearTimeout(card.retry);
    if (card.stopVideo) card.stopVideo();
    card.stopVideo = null;
    card.querySelector(".live-img").removeAttribute("src");
  }

  async function liveFailed(card, cam, reason) {
    if (state.tab !== "live" || !card.isConnected) return;
    const img = card.querySelector(".live-img");
    if (reason === undefined && !img.getAttribute("src")) return; // stopped on purpose
    if (reason === null) {
      startStream(card, cam); // this browser cannot play it: MJPEG at once
      return;
    }
    card.classList.remove("has-picture");
    const placeholder = card.querySelector(".live-placeholder");
    placeholder.textContent = "No picture. Retrying…";
    placeholder.hidden = false;
    img.removeAttribute("src");
    if (!(await checkSession())) return;
    card.retry = setTimeout(() => startStream(card, card.cam || cam), LIVE_RETRY_MS);
  }

  async function enterLive() {
    const cameras = await loadCameras();
    if (state.tab !== "live") return;
    const grid = $("cameras");
    grid.replaceChildren();
    show($("cameras-empty"), cameras.length === 0);
    for (const cam of cameras) {
      const card = cameraCard(cam);
      updateCard(card, cam);
      grid.append(card);
      startStream(card, cam);
    }
  }

  // The hub records even when its index fails; the owner must hear of it all the same.
  async function checkIndex() {
    const info = await api("GET", "/api/session");
    if (info.index_problem) notify(`The hub's index is failing: ${info.index_problem}`);
    state.indexProblem = info.index_problem;
  }

  function stopLive() {
    // Closing the streams (WebSockets, <img> sources) ends the live views in the
    // access log, and frees the browser's connections for clips and the API.
    for (const card of document.querySelectorAll(".camera-card")) stopStream(card);
    $("cameras").replaceChildren();
  }

  // -- the hub's updates --------------------------------------------------------------

  function attended() {
    return !document.hidden && Date.now() - state.lastInput < UNATTENDED_MS;
  }

  function openStream() {
    closeStream();
    if (!state.loggedIn) return;
    const stream = state.stream;
    const source = new EventSource("/api/stream");
    stream.source = source;
    stream.openedAt = Date.now();
    // Each message is handled here, then told to the page's other parts as `stream:<name>`.
    const on = (name, handle) =>
      source.addEventListener(name, (message) => {
        if (source !== stream.source) return;
        const data = JSON.parse(message.data);
        handle(data);
        camhub.emit(`stream:${name}`, data);
      });
    on("camera", onCameraStatus);
    on("motion", onMotion);
    on("event", (change) => onEventChange(change.event));
    on("hub", onHubStatus);
    on("ended", () => {
      closeStream();
      sessionEnded();
    });
    source.addEventListener("error", () => streamDropped(source));
  }

  function closeStream() {
    const stream = state.stream;
    clearTimeout(stream.retry);
    stream.retry = null;
    stream.paused = false;
    if (stream.source) stream.source.close();
    stream.source = null;
  }

  // Reopened by the page itself, with its own backoff, rather than by EventSource (which
  // retries at a fixed pace). A stream the hub refused (logged out, or too many open
  // pages) is retried only after asking whether the session holds, and only while the
  // page is attended: that question is use of the session.
  async function streamDropped(source) {
    const stream = state.stream;
    if (source !== stream.source) return;
    const refused = source.readyState === EventSource.CLOSED;
    source.close();
    stream.source = null;
    if (Date.now() - stream.openedAt > STREAM_STEADY_MS) stream.delay = STREAM_RETRY_MS[0];
    if (refused) {
      if (!attended()) {
        stream.paused = true; // the next input opens it again
        return;
      }
      if (!(await checkSession())) return; // logged out: the login form is shown
    }
    if (!state.loggedIn || stream.source || stream.retry) return;
    const wait = stream.delay * (0.5 + Math.random() / 2);
    stream.delay = Math.min(stream.delay * 2, STREAM_RETRY_MS[1]);
    stream.retry = setTimeout(openStream, wait);
  }

  function onCameraStatus(status) {
    state.cameraStatus.set(status.id, { ...state.cameraStatus.get(status.id), ...status });
    refreshCard(status.id);
  }

  function onMotion(change) {
    if (change.moving) state.moving.add(change.camera);
    else state.moving.delete(change.camera);
    refreshCard(change.camera);
  }

  function onEventChange(event) {
    const ev = state.events;
    if (state.tab !== "events") return; // the list is loaded afresh when the tab opens
    if (ev.loading) ev.pending.set(event.id, event);
    else showStreamedEvent(event);
  }

  const MQTT_STATES = {
    connecting: ["connecting…", false],
    connected: ["connected", true],
    refused: ["the broker refused the login", false],
    unreachable: ["the broker cannot be reached", false],
    failed: ["off", false],
    stopped: ["stopped", false],
  };

  function onHubStatus(hub) {
    const mqtt = hub.mqtt;
    show($("hub-status"), Boolean(mqtt));
    if (mqtt) {
      const [text, ok] = MQTT_STATES[mqtt.state] || [mqtt.state, false];
      const shown = $("mqtt-state");
      shown.className = `status ${ok ? "ok" : "bad"}`;
      shown.textContent = mqtt.detail ? `${text}: ${mqtt.detail}` : text;
    }
    if (hub.index_problem && hub.index_problem !== state.indexProblem) {
      notify(`The hub's index is failing: ${hub.index_problem}`);
    }
    state.indexProblem = hub.index_problem;
  }

  // Input on the page: the owner is here. Keep the session open, and do what waited.
  function onInput() {
    const now = Date.now();
    state.lastInput = now;
    if (!state.loggedIn) return;
    if (now - camhub.activity.lastRequest > TOUCH_MS) checkSession();
    if (state.stream.paused) openStream();
    for (const img of document.querySelectorAll("img.thumb[data-src]")) {
      img.src = img.dataset.src;
      delete img.dataset.src;
    }
  }

  // -- events -------------------------------------------------------------------------

  async function enterEvents() {
    if (!state.cameras.length) await loadCameras();
    await loadEvents(true);
  }

  // A newer request (another filter, a refresh) wins over one still under way.
  async function loadEvents(reset) {
    const ev = state.events;
    if (!reset && ev.loading) return;
    const generation = ++ev.generation;
    ev.loading = true;
    const more = $("events-more");
    more.disabled = true;
    try {
      const params = new URLSearchParams({ limit: String(EVENTS_PAGE) });
      if (!reset && ev.lastId !== null) params.set("before", String(ev.lastId));
      const camera = $("events-camera").value;
      if (camera) params.set("camera", camera);
      const page = await api("GET", `/api/events?${params}`);
      if (state.tab !== "events" || generation !== ev.generation) return;
      const list = $("events");
      if (reset) {
        list.replaceChildren();
        ev.lastId = null;
        ev.lastDay = null;
        ev.newestId = page.events.length ? page.events[0].id : null;
        ev.shown.clear();
      }
      for (const event of page.events) {
        // Pages follow a cursor (the last event listed), so none should repeat; an
        // event already shown (a double click on "more") is skipped all the same.
        if (ev.shown.has(event.id)) continue;
        ev.shown.add(event.id);
        const day = fmtDay(event.start);
        if (day !== ev.lastDay) {
          list.append(el("li", { class: "day", text: day }));
          ev.lastDay = day;
        }
        list.append(eventItem(event));
      }
      if (page.events.length) ev.lastId = page.events[page.events.length - 1].id;
      show($("events-empty"), ev.shown.size === 0);
      show(more, page.more);
    } finally {
      if (generation === ev.generation) {
        more.disabled = false;
        ev.loading = false;
        for (const event of ev.pending.values()) showStreamedEvent(event);
        ev.pending.clear();
      }
    }
  }

  // An event from the stream: a new one goes on top of the list, a listed one is
  // replaced (it ended: now with its length and picture). One older than the newest
  // listed and not listed belongs to a page not loaded, or another camera's filter.
  function showStreamedEvent(event) {
    const ev = state.events;
    const camera = $("events-camera").value;
    if (camera && event.camera_id !== camera) return;
    const list = $("events");
    const item = eventItem(event, !attended());
    if (ev.shown.has(event.id)) {
      const old = list.querySelector(`.event[data-event="${event.id}"]`);
      if (old) old.closest("li").replaceWith(item);
      return;
    }
    if (ev.newestId !== null && event.id < ev.newestId) return;
    const day = fmtDay(event.start);
    const first = list.firstElementChild;
    if (first && first.classList.contains("day") && first.textContent === day) first.after(item);
    else list.prepend(el("li", { class: "day", text: day }), item);
    if (ev.lastDay === null) ev.lastDay = day;
    ev.shown.add(event.id);
    ev.newestId = event.id;
    show($("events-empty"), false);
  }

  // `deferPicture`: the page is unattended, so the snapshot (a request that counts as
  // use of the session, and is logged) waits for the owner's next input.
  function eventItem(event, deferPicture = false) {
    const thumb = event.snapshot_url
      ? el("img", {
          class: "thumb",
          src: deferPicture ? null : event.snapshot_url,
          dataset: deferPicture ? { src: event.snapshot_url } : null,
          alt: "",
          loading: "lazy",
          decoding: "async",
        })
      : el("span", {
          class: "thumb thumb-none",
          text: event.end === null ? "Recording…" : "No picture",
        });
    if (event.snapshot_url) {
      thumb.addEventListener("error", () => {
        thumb.replaceWith(el("span", { class: "thumb thumb-none", text: "No picture" }));
      });
    }
    const button = el(
      "button",
      {
        type: "button",
        class: "event",
        dataset: { event: String(event.id) },
        "aria-label": `Play the clip from ${cameraName(event.camera_id)} at ${fmtTime(event.start)}`,
      },
      thumb,
      el(
        "span",
        { class: "event-text" },
        el("span", { class: "event-time", text: timeOnly.format(event.start * 1000) }),
        el("span", { class: "event-camera", text: cameraName(event.camera_id) }),
        el("span", { class: "event-meta muted", text: eventLengthText(event) }),
      ),
      el("span", { class: "event-play", "aria-hidden": "true" }),
    );
    button.addEventListener("click", () => openPlayer(event));
    return el("li", null, button);
  }

  // -- the clip player ----------------------------------------------------------------

  function openPlayer(event) {
    state.playing = event;
    const video = $("player-video");
    const title = `${cameraName(event.camera_id)}`;
    $("player-title").textContent = title;
    $("player-meta").textContent = clipSpanText(event);
    showMotion(event);
    show($("player-error"), false);
    video.src = event.clip_url;
    $("player-download").href = `${event.clip_url}?download=1`;
    $("player-delete").disabled = event.end === null;
    $("player-delete").title = event.end === null ? "It can be deleted once it has ended" : "";
    const dialog = $("player");
    if (!dialog.open) dialog.showModal();
    video.play().catch(() => {}); // the owner can press play if the browser refuses
  }

  // Mark the motion on a strip under the video, as a share of the clip's length.
  function showMotion(event) {
    const track = $("player-motion");
    const length = event.clip_end - event.clip_start;
    if (event.clip_start === null || !(length > 0)) {
      show(track, false);
      return;
    }
    const end = event.end === null ? event.clip_end : Math.min(event.end, event.clip_end);
    const left = Math.min(1, event.motion_offset / length);
    const width = Math.max(0.01, Math.min(1 - left, (end - event.start) / length));
    const span = track.querySelector(".motion-span");
    span.style.left = `${(left * 100).toFixed(2)}%`; // CSSOM: allowed by the CSP
    span.style.width = `${(width * 100).toFixed(2)}%`;
    show(track, true);
  }

  // The list says how long the clip plays (pre-roll, motion, post-roll, whole
  // segments), as the player and the share page do, and how long the motion was.
  function eventLengthText(event) {
    if (event.end === null) return "in progress";
    const motion = `motion ${fmtDuration(event.end - event.start)}`;
    if (event.clip_start === null) return `${motion} · no footage left`;
    return `clip ${fmtDuration(event.clip_end - event.clip_start)} · ${motion}`;
  }

  // The clip's real span, as the event JSON gives it: pre-roll, motion, post-roll.
  function clipSpanText(event) {
    const motion = event.end === null ? "in progress" : fmtDuration(event.end - event.start);
    if (event.clip_start === null) return `${fmtTime(event.start)} · motion ${motion} · no footage left`;
    const clip = fmtDuration(event.clip_end - event.clip_start);
    const offset = fmtDuration(event.motion_offset);
    return `${fmtTime(event.clip_start)} · clip ${clip}, motion ${motion} from ${offset} in`;
  }

  async function playerFailed() {
    const event = state.playing;
    const video = $("player-video");
    if (!event || !video.getAttribute("src")) return;
    let message = "This browser could not play the clip.";
    try {
      const response = await fetch(event.clip_url, { headers: { Range: "bytes=0-0" } });
      if (response.status === 401) {
        sessionEnded();
        return;
      }
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        if (data && typeof data.error === "string") message = `The clip cannot be shown: ${data.error}`;
      }
    } catch {
      message = "The hub cannot be reached.";
    }
    $("player-error").textContent = message;
    show($("player-error"), true);
  }

  function closePlayer() {
    const video = $("player-video");
    video.pause();
    video.removeAttribute("src");
    video.load(); // drops the buffered clip
  }

  // -- deleting -----------------------------------------------------------------------

  function openDeleteDialog() {
    const event = state.playing;
    if (!event || event.end === null) return;
    $("player-video").pause();
    $("delete-what").textContent = `${cameraName(event.camera_id)}, ${clipSpanText(event)}`;
    show($("delete-error"), false);
    $("delete-confirm").disabled = false;
    $("delete-dialog").showModal();
  }

  async function onConfirmDelete() {
    const event = state.playing;
    const button = $("delete-confirm");
    button.disabled = true;
    try {
      const done = await api("DELETE", `/api/events/${event.id}`);
      closeDialogs();
      notify(camhub.fmt.deletion(done), true);
      await loadEvents(true).catch(reportError);
      await loadStorage().catch(() => {});
    } catch (error) {
      if (error.status === 401) return;
      $("delete-error").textContent = error.message;
      show($("delete-error"), true);
      button.disabled = false;
    }
  }

  // -- storage ------------------------------------------------------------------------

  function fmtAge(seconds) {
    if (seconds < 60) return "under a minute";
    if (seconds < 2 * 86400) return fmtDuration(seconds);
    return `${(seconds / 86400).toFixed(1)} days`;
  }

  async function loadStorage() {
    const s = await api("GET", "/api/storage");
    if (!state.loggedIn) return;
    const perCamera = s.cameras.map((c) => `${cameraName(c.id)} ${fmtBytes(c.bytes)}`).join(", ");
    const budget = s.budget_bytes ? ` of a ${fmtBytes(s.budget_bytes)} budget` : "";
    const age = s.kept_days === null ? null : s.kept_days * 86400;
    const limit = s.max_age_days ? ` (retention keeps up to ${s.max_age_days} days)` : "";
    const kept =
      age === null
        ? "no footage yet"
        : `the oldest footage is ${fmtAge(age)} old${limit}`;
    $("storage").textContent =
      `Storage: ${fmtBytes(s.footage_bytes)} of footage${budget}` +
      (perCamera ? ` (${perCamera})` : "") +
      `; ${fmtBytes(s.free_bytes)} free on the disk; ${kept}.`;
    show($("storage"), true);
  }

  // -- sharing ------------------------------------------------------------------------

  function openShareDialog() {
    const event = state.playing;
    if (!event) return;
    $("player-video").pause();
    const form = $("share-form");
    form.reset();
    show(form, true);
    show($("share-result"), false);
    show($("share-error"), false);
    $("share-link").value = "";
    $("share-copied").textContent = "";
    $("share-create").disabled = false;
    $("share-what").textContent = `${cameraName(event.camera_id)}, ${fmtTime(event.start)}`;
    $("share-dialog").showModal();
  }

  async function onCreateShare(submit) {
    submit.preventDefault();
    const event = state.playing;
    const errorBox = $("share-error");
    show(errorBox, false);
    const expires = Number(new FormData($("share-form")).get("expires"));
    const viewsText = $("share-views").value.trim();
    let maxViews = null;
    if (viewsText) {
      maxViews = Number(viewsText);
      if (!Number.isInteger(maxViews) || maxViews < 1 || maxViews > 1000) {
        errorBox.textContent = "Most views: a whole number from 1 to 1000, or leave it empty.";
        show(errorBox, true);
        return;
      }
    }
    const button = $("share-create");
    button.disabled = true;
    try {
      const share = await api("POST", "/api/shares", {
        event_id: event.id,
        expires_in: expires,
        max_views: maxViews,
        label: $("share-label").value.trim(),
      });
      const link = new URL(share.link, location.origin).href;
      show($("share-form"), false);
      show($("share-result"), true);
      const limit = share.max_views ? `, for ${share.max_views} view${share.max_views === 1 ? "" : "s"}` : "";
      $("share-terms").textContent = `Works until ${fmtTime(share.expires)}${limit}. You can revoke it under Shares.`;
      const input = $("share-link");
      input.value = link;
      input.focus();
      input.select();
    } catch (error) {
      if (error.status === 401) return;
      errorBox.textContent = error.message;
      show(errorBox, true);
    } finally {
      button.disabled = false;
    }
  }

  async function onCopyLink() {
    const input = $("share-link");
    const note = $("share-copied");
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(input.value);
      note.textContent = "Copied to the clipboard.";
    } catch {
      // No clipboard access (plain HTTP on the LAN, or refused): select the text instead.
      input.focus();
      input.select();
      input.setSelectionRange(0, input.value.length);
      let copied = false;
      try {
        copied = document.execCommand("copy");
      } catch {
        copied = false;
      }
      note.textContent = copied
        ? "Copied to the clipboard."
        : "The link is selected: copy it with Ctrl+C (or long-press and Copy).";
    }
  }

  // -- shares list --------------------------------------------------------------------

  const STATE_LABELS = { live: "Live", revoked: "Revoked", expired: "Expired", "used up": "Used up" };

  async function loadShares() {
    if (!state.cameras.length) await loadCameras();
    const shares = await api("GET", "/api/shares");
    if (state.tab !== "shares") return;
    const body = $("shares-body");
    body.replaceChildren();
    for (const share of shares) body.append(shareRow(share));
    show($("shares-empty"), shares.length === 0);
    show($("shares"), shares.length > 0);
  }

  function cell(label, ...children) {
    return el("td", { "data-label": label }, el("div", { class: "cell" }, ...children));
  }

  function shareRow(share) {
    const stateName = share.state;
    const views = share.max_views ? `${share.views} of ${share.max_views}` : String(share.views);
    const revoke =
      share.revocable
        ? el("button", {
            type: "button",
            class: "button danger small",
            text: "Revoke",
            onclick: () => revokeShare(share),
          })
        : null;
    const row = el(
      "tr",
      { dataset: { share: share.id, state: stateName } },
      cell("Label", el("span", { class: share.label ? "" : "muted", text: share.label || "No label" })),
      cell(
        "Clip",
        el("span", { class: "cell-main", text: cameraName(share.camera_id) }),
        el("span", { class: "muted small-text", text: fmtTime(share.start) }),
      ),
      cell(
        "State",
        el("span", {
          class: `badge state-${stateName.replace(/\s+/g, "-")}`,
          text: STATE_LABELS[stateName] || stateName,
        }),
      ),
      cell("Views", views),
      cell("Last used", el("span", { title: share.last_used ? fmtTime(share.last_used) : "" }, fmtRelative(share.last_used))),
      cell(
        "Expires",
        el(
          "span",
          { title: fmtTime(share.expires) },
          expiryText(share),
        ),
      ),
      el("td", { class: "actions" }, revoke),
    );
    return row;
  }

  function expiryText(share) {
    if (share.state === "live") return fmtTime(share.expires);
    if (share.grace_until) return `last viewer may seek until ${fmtTime(share.grace_until)}`;
    return `ended (was ${fmtTime(share.expires)})`;
  }

  async function revokeShare(share) {
    const name = share.label ? `“${share.label}”` : "this link";
    if (!window.confirm(`Revoke ${name}? It stops working at once, for everyone who has it.`)) return;
    try {
      await api("DELETE", `/api/shares/${encodeURIComponent(share.id)}`);
    } catch (error) {
      reportError(error);
    }
    await loadShares().catch(reportError);
  }

  // -- access log ---------------------------------------------------------------------

  const KIND_CLASSES = {
    "login failed": "warn",
    "login throttled": "warn",
    "share refused": "warn",
    "login ok": "auth",
    logout: "auth",
    "session expired": "auth",
    "vault unlocked": "auth",
    "password changed": "auth",
    "live view started": "footage",
    "live view stopped": "footage",
    "snapshot served": "footage",
    "snapshots served": "footage",
    "clip served": "footage",
    "clip downloaded": "footage",
    "footage deleted by the owner": "warn",
    "share created": "share",
    "share used": "share",
    "share revoked": "share",
    "share expired": "share",
  };
  const TIME_KEYS = new Set(["start", "end", "expires"]);

  async function loadLog() {
    const [verdict] = await Promise.all([api("GET", "/api/audit/verify"), loadLogPage(true)]);
    if (state.tab === "log") showVerdict(verdict);
  }

  function showVerdict(verdict) {
    const box = $("verify");
    if (verdict.ok) {
      box.className = "verify ok";
      box.replaceChildren(
        el("strong", { text: "Access log verified." }),
        ` All ${verdict.records} records are intact: the hash chain is unbroken. `,
        sealText(verdict),
        verdict.sealed_through == null ? null : el("span", { class: "verify-note", text: SEAL_MEANS }),
      );
    } else {
      box.className = "verify bad";
      box.replaceChildren(
        el("strong", { text: "The access log has been tampered with." }),
        ` Record ${verdict.first_broken} fails verification (${verdict.reason || "unknown reason"}); ` +
          `${verdict.records} records before it hold together.`,
      );
    }
  }

  // What the seal is, in the owner's words: the chain alone can be recomputed by
  // whoever rewrites the database; the seal cannot be made without the owner's key.
  const SEAL_MEANS =
    "The seal is a check only your password's key can make (at each login, at logout " +
    "and every minute while you are logged in). Someone who gets at the hub's database " +
    "could rewrite records and redo the chain, but not the seal: a record up to the " +
    "sealed one that was changed, removed or cut off would show here as tampering.";

  // The seal is made with the owner's key at each login and logout and every minute
  // while logged in: a seal older than the owner's last visit means it was rolled back.
  function sealText(verdict) {
    if (verdict.sealed_through == null) return "Not sealed yet.";
    const newer = verdict.records - verdict.sealed_through;
    return (
      `Sealed with your key through record ${verdict.sealed_through} at ` +
      `${fmtTime(verdict.sealed_at)}` +
      (newer > 0 ? `; ${newer} newer record${newer === 1 ? "" : "s"} not yet sealed.` : ".")
    );
  }

  async function loadLogPage(reset) {
    const lg = state.log;
    if (!reset && lg.loading) return;
    const generation = ++lg.generation;
    lg.loading = true;
    const more = $("log-more");
    more.disabled = true;
    try {
      const params = new URLSearchParams({ limit: String(LOG_PAGE) });
      if (!reset && lg.oldest) params.set("before", String(lg.oldest));
      const records = await api("GET", `/api/audit?${params}`);
      if (state.tab !== "log" || generation !== lg.generation) return;
      const body = $("log-body");
      if (reset) {
        body.replaceChildren();
        lg.oldest = null;
      }
      for (const record of records) body.append(logRow(record));
      if (records.length) lg.oldest = records[records.length - 1].seq;
      show(more, records.length === LOG_PAGE && lg.oldest > 1);
    } finally {
      if (generation === lg.generation) {
        more.disabled = false;
        lg.loading = false;
      }
    }
  }

  function detailText(key, value) {
    if (TIME_KEYS.has(key) && typeof value === "number" && value > 1e9) return fmtTime(value);
    if (key === "camera" && typeof value === "string") return cameraName(value);
    if (value === null) return "—";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function logRow(record) {
    const detail = el("span", { class: "detail" });
    for (const [key, value] of Object.entries(record.detail || {})) {
      detail.append(
        el(
          "span",
          { class: "kv" },
          el("span", { class: "k", text: key.replace(/_/g, " ") }),
          el("span", { class: "v", text: detailText(key, value) }),
        ),
      );
    }
    return el(
      "tr",
      { dataset: { seq: String(record.seq), kind: record.kind } },
      cell("Time", el("span", { class: "nowrap", text: fmtTime(record.time) })),
      cell("What", el("span", { class: `kind ${KIND_CLASSES[record.kind] || ""}`, text: record.kind })),
      cell("Who", record.actor),
      cell("Detail", detail),
    );
  }

  // -- dialogs ------------------------------------------------------------------------

  function closeDialogs() {
    for (const dialog of document.querySelectorAll("dialog")) {
      if (dialog.open) dialog.close();
    }
  }

  function wireDialogs() {
    for (const dialog of document.querySelectorAll("dialog")) {
      dialog.addEventListener("click", (event) => {
        if (event.target.closest("[data-close]")) dialog.close();
        else if (event.target === dialog) dialog.close(); // a tap on the backdrop
      });
    }
    $("player").addEventListener("close", closePlayer);
  }

  // -- start --------------------------------------------------------------------------

  function wire() {
    camhub.tab("live", { enter: enterLive, leave: stopLive });
    camhub.tab("events", { enter: enterEvents });
    camhub.tab("shares", { enter: loadShares });
    camhub.tab("log", { enter: loadLog });
    camhub.on("session-ended", sessionEnded);
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("notice-close").addEventListener("click", clearNotice);
    window.addEventListener("hashchange", () => {
      if (state.loggedIn) switchTab(tabFromHash());
    });
    $("events-camera").addEventListener("change", () => loadEvents(true).catch(reportError));
    $("events-refresh").addEventListener("click", () => loadEvents(true).catch(reportError));
    $("events-more").addEventListener("click", () => loadEvents(false).catch(reportError));
    $("shares-refresh").addEventListener("click", () => loadShares().catch(reportError));
    $("log-refresh").addEventListener("click", () => loadLog().catch(reportError));
    $("log-more").addEventListener("click", () => loadLogPage(false).catch(reportError));
    $("player-video").addEventListener("error", playerFailed);
    $("player-share").addEventListener("click", openShareDialog);
    $("player-delete").addEventListener("click", openDeleteDialog);
    $("delete-confirm").addEventListener("click", onConfirmDelete);
    $("share-form").addEventListener("submit", onCreateShare);
    $("share-copy").addEventListener("click", onCopyLink);
    for (const kind of ["pointerdown", "keydown", "wheel", "touchstart"]) {
      document.addEventListener(kind, onInput, { passive: true });
    }
    // A hidden page stops its live streams; coming back starts them again.
    document.addEventListener("visibilitychange", () => {
      if (!state.loggedIn) return;
      if (!document.hidden) onInput(); // the owner came back to the page
      if (document.hidden && state.tab === "live") stopLive();
      else if (!document.hidden && state.tab === "live" && !$("cameras").childElementCount) {
        enterLive().catch(reportError);
      }
    });
    wireDialogs();
  }

  async function boot() {
    wire();
    try {
      await api("GET", "/api/session");
    } catch (error) {
      showLogin(error.status === 401 ? "" : error.message);
      return;
    }
    await showApp();
  }

  boot();
})();
