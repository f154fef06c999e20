// camhub owner page: what every part of the page shares (app.js, alerts.js and the
// files beside them). Loaded first; everything is on `window.camhub`.
//
// - building nodes (`el`) and formatting times, lengths and sizes;
// - `api()`, the one way to ask the hub: JSON in and out, the hub's error message
//   as the error, and a 401 tells the page the session is over;
// - tabs: a part of the page registers its tab's enter/leave with `tab()`;
// - news between the parts: `on(name, fn)` / `emit(name, detail)` (the page's event
//   stream, login and logout arrive this way).
"use strict";

(() => {
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

  // -- formats --------------------------------------------------------------------------

  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
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

  function fmtBytes(bytes) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
  }

  /** What a deletion's answer (DELETE /api/events/{id} or …/footage) did, in a sentence. */
  function fmtDeletion(done) {
    const kept = done.recording ? ` (${done.recording} segment still recording was kept)` : "";
    const one = done.offsite === 1;
    let offsite = done.offsite ? ` Its ${done.offsite} off-site ${one ? "copy goes" : "copies go"} too.` : "";
    if (done.offsite && done.offsite_locked_until) {
      // Object Lock: the bucket refuses to delete them before then (DESIGN.md §16).
      const until = fmtTime(done.offsite_locked_until);
      offsite = one
        ? ` Its off-site copy is locked until ${until} and goes then.`
        : ` Its ${done.offsite} off-site copies are locked, the last until ${until}; each goes when its lock ends.`;
    }
    const files = done.segments + done.snapshots;
    return `Deleted: ${files} file(s), ${fmtBytes(done.bytes_freed)}${kept}.${offsite}`;
  }

  // -- news between the page's parts ----------------------------------------------------

  const listeners = new Map();

  function on(name, fn) {
    if (!listeners.has(name)) listeners.set(name, []);
    listeners.get(name).push(fn);
  }

  function emit(name, detail) {
    for (const fn of listeners.get(name) || []) {
      try {
        fn(detail);
      } catch (error) {
        console.error(error); // one part's fault does not stop the others hearing the news
      }
    }
  }

  // -- talking to the hub ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  const activity = { lastRequest: Date.now() }; // every request counts as use of the session

  async function api(method, path, body) {
    activity.lastRequest = Date.now();
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
      emit("session-ended");
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

  // -- tabs -----------------------------------------------------------------------------

  const tabs = new Map(); // name: { enter, leave }

  /** Registers a tab's part: `enter()` when the owner opens it, `leave()` on the way out. */
  function tab(name, handlers) {
    tabs.set(name, handlers);
  }

  window.camhub = Object.freeze({
    $,
    el,
    api,
    ApiError,
    activity,
    on,
    emit,
    tab,
    tabs,
    fmt: Object.freeze({
      time: fmtTime,
      day: fmtDay,
      dayKey,
      duration: fmtDuration,
      relative: fmtRelative,
      bytes: fmtBytes,
      deletion: fmtDeletion,
    }),
  });
})();
