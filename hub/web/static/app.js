// camhub owner page: login, live view, events and clips, shares, access log.
//
// Plain JavaScript, no build step, no outside code (the CSP allows only our own files).
// Data from the hub is put on the page with textContent only, never as HTML.
"use strict";

(() => {
  const TABS = ["live", "events", "shares", "log"];
  const EVENTS_PAGE = 30;
  const LOG_PAGE = 100;
  const CAMERA_POLL_MS = 5000;
  const LIVE_RETRY_MS = 3000;
  // Status polls reset the session's idle clock on the hub, so an unattended page stops
  // polling after this long without input and lets the session (and the key) time out.
  const UNATTENDED_MS = 10 * 60 * 1000;

  const state = {
    loggedIn: false,
    tab: null,
    cameras: [], // from /api/cameras
    cameraNames: new Map(),
    cameraPoll: null,
    events: { lastId: null, lastDay: null, loading: false, generation: 0, shown: new Set() },
    log: { oldest: null, loading: false, generation: 0 },
    playing: null, // the event shown in the player
    lastInput: Date.now(),
  };

  // -- small helpers -------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  const dateTime = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
  const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const dayName = new Intl.DateTimeFormat(undefined, {
    weekday: "long",
    day: "numeric",
    month: "long",
    year: "numeric",
  });

  function fmtTime(seconds) {
    return seconds === null || seconds === undefined ? "—" : dateTime.format(seconds * 1000);
  }

  function dayKey(date) {
    return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
  }

  function fmtDay(seconds) {
    const date = new Date(seconds * 1000);
    const today = new Date();
    const yesterday = new Date(Date.now() - 86400000);
    if (dayKey(date) === dayKey(today)) return "Today";
    if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
    return dayName.format(date);
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "ongoing";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
    const h = Math.floor(m / 60);
    return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  }

  function fmtRelative(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    const delta = seconds - Date.now() / 1000;
    const abs = Math.abs(delta);
    const units = [
      [86400, "day"],
      [3600, "hour"],
      [60, "minute"],
    ];
    const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    for (const [size, unit] of units) {
      if (abs >= size) return rtf.format(Math.round(delta / size), unit);
    }
    return delta < 0 ? "just now" : "in under a minute";
  }

  function cameraName(id) {
    return state.cameraNames.get(id) || id;
  }

  // -- talking to the hub ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "The hub cannot be reached. Check the connection and try again.");
    }
    if (response.status === 401 && path !== "/api/login") {
      sessionEnded();
      throw new ApiError(401, "Log in first.");
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const data = await response.json();
        if (data && typeof data.error === "string") message = data.error;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(response.status, message, response.headers.get("Retry-After"));
    }
    if (response.status === 204) return null;
    return response.json();
  }

  function notify(message) {
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

  function showLogin(message) {
    state.loggedIn = false;
    leaveTab();
    closeDialogs();
    clearOwnerData();
    show($("boot"), false);
    show($("app-view"), false);
    show($("login-view"), true);
    setLoginError(message || "");
    const password = $("login-password");
    password.value = "";
    password.focus();
  }

  function setLoginError(message) {
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
    showLogin("You have logged out. The footage key is locked again.");
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
    if (state.loggedIn) switchTab(tabFromHash());
  }

  function clearOwnerData() {
    // Nothing of the owner's stays on a page left at the login form.
    $("cameras").replaceChildren();
    $("events").replaceChildren();
    $("shares-body").replaceChildren();
    $("log-body").replaceChildren();
    $("verify").replaceChildren();
    $("verify").className = "verify";
    state.cameras = [];
    state.cameraNames.clear();
    clearNotice();
  }

  // -- tabs ---------------------------------------------------------------------------

  function tabFromHash() {
    const name = location.hash.replace(/^#/, "");
    return TABS.includes(name) ? name : "live";
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
    for (const tabName of TABS) show($(`tab-${tabName}`), tabName === name);
    const enter = { live: enterLive, events: enterEvents, shares: loadShares, log: loadLog }[name];
    Promise.resolve(enter()).catch(reportError);
  }

  function leaveTab() {
    if (state.tab === "live") stopLive();
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

  function updateCard(card, cam) {
    const status = card.querySelector(".status");
    const { connected, reconnects, error } = cam.status || {};
    status.className = `status ${connected ? "ok" : "bad"}`;
    status.textContent = connected ? "Connected" : error ? `Offline: ${error}` : "Connecting…";
    const meta = [recordText(cam.record)];
    if (reconnects) meta.push(`${reconnects} reconnect${reconnects === 1 ? "" : "s"}`);
    if (cam.viewers > 1) meta.push(`${cam.viewers} watching`);
    card.querySelector(".camera-meta").textContent = meta.join(" · ");
    card.cam = cam;
    updateChoices(card, cam);
  }

  // Resolution, frame rate and the time of the newest picture: the owner sees it is live.
  function showStats(card, info, mode) {
    const parts = [mode];
    if (info.width) parts.push(`${info.width}×${info.height}`);
    if (info.fps) parts.push(`${Math.round(info.fps * 10) / 10} fps`);
    if (info.time) parts.push(timeOnly.format(new Date(info.time * 1000)));
    card.querySelector(".live-stats").textContent = parts.join(" · ");
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
    if (stream) {
      card.stopVideo = camhubLive.play(video, stream.url, {
        onInfo: (info) => showStats(card, info, stream.label),
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
    img.onload = () => showStats(card, { width: img.naturalWidth, height: img.naturalHeight }, "MJPEG");
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
    state.cameraPoll = setInterval(pollCameras, CAMERA_POLL_MS);
  }

  // The hub records even when its index fails; the owner must hear of it all the same.
  async function checkIndex() {
    const info = await api("GET", "/api/session");
    if (info.index_problem) notify(`The hub's index is failing: ${info.index_problem}`);
  }

  async function pollCameras() {
    if (state.tab !== "live" || Date.now() - state.lastInput > UNATTENDED_MS) return;
    let cameras;
    try {
      cameras = await loadCameras();
      await checkIndex();
    } catch (error) {
      reportError(error);
      return;
    }
    for (const cam of cameras) {
      const card = document.querySelector(`.camera-card[data-camera="${CSS.escape(cam.id)}"]`);
      if (card) updateCard(card, cam);
    }
  }

  function stopLive() {
    clearInterval(state.cameraPoll);
    state.cameraPoll = null;
    // Closing the streams (WebSockets, <img> sources) ends the live views in the
    // access log, and frees the browser's connections for clips and the API.
    for (const card of document.querySelectorAll(".camera-card")) stopStream(card);
    $("cameras").replaceChildren();
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
      }
    }
  }

  function eventItem(event) {
    const thumb = event.snapshot_url
      ? el("img", {
          class: "thumb",
          src: event.snapshot_url,
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
    const duration = event.end === null ? null : event.end - event.start;
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
        el(
          "span",
          { class: "event-meta muted" },
          event.end === null ? "in progress" : fmtDuration(duration),
        ),
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
    const span = event.end === null ? "in progress" : fmtDuration(event.end - event.start);
    $("player-meta").textContent = `${fmtTime(event.start)} · motion ${span}`;
    show($("player-error"), false);
    video.src = event.clip_url;
    const dialog = $("player");
    if (!dialog.open) dialog.showModal();
    video.play().catch(() => {}); // the owner can press play if the browser refuses
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
      stateName === "live"
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
          stateName === "live" ? fmtTime(share.expires) : `ended (was ${fmtTime(share.expires)})`,
        ),
      ),
      el("td", { class: "actions" }, revoke),
    );
    return row;
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
    "clip served": "footage",
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
    $("share-form").addEventListener("submit", onCreateShare);
    $("share-copy").addEventListener("click", onCopyLink);
    for (const kind of ["pointerdown", "keydown", "wheel", "touchstart"]) {
      document.addEventListener(kind, () => (state.lastInput = Date.now()), { passive: true });
    }
    // A hidden page stops its live streams; coming back starts them again.
    document.addEventListener("visibilitychange", () => {
      if (!state.loggedIn) return;
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
