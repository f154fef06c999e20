// camhub owner page: the timeline of recordings (its own tab, registered through kit.js).
//
// One camera and one day at a time: a bar shows where footage exists (recorded all the
// time, or on motion), the motion and the events; a click or drag plays from that moment,
// Shift-drag (or "Select range" on a touch screen, or Mark start / Mark end) selects a
// range to download or delete. Zoom from the whole day to two minutes with the buttons,
// the wheel or a pinch.
//
// Playback across segments: the hub assembles any range of footage into one MP4
// (GET /api/cameras/{camera}/clip.mp4), made of whole segments. The timeline plays a
// window of a few minutes at a time inside one recorded stretch; while it plays, the
// next window is loaded into a second, hidden <video> and seeked to where the first
// ends, and swapped in when the first ends. A gap in the recording is skipped to the
// next stretch. GET .../clip-span says where a window's clip really starts, so the
// time of the picture is the clip's start plus its playing time.
"use strict";

(() => {
  const { $, el, api, ApiError } = camhub;

  const DAY = 86400;
  const ZOOMS = [DAY, 12 * 3600, 6 * 3600, 3 * 3600, 3600, 1800, 600, 300, 120]; // visible span, s
  // A clip window: a few minutes, shorter at a high bitrate, so the window playing and the
  // one loading behind it stay well inside the hub's clip memory (192 MiB for all clips).
  const WINDOW = 300; // seconds, at most
  const WINDOW_MIN = 30;
  const WINDOW_BYTES = 32e6;
  const MAX_CLIP = 6 * 3600; // the longest range the hub assembles into one clip
  const REFRESH_MS = 30 * 1000; // today's bar is asked again this often while shown
  const DAY_PAGES = 10; // answers of up to 2000 stretches each for one day's bar
  const STEP = 10; // seconds per arrow key
  const TICK_STEPS = [30, 60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600];
  const TICK_MIN_PX = 70; // room for one tick's label
  const END_SLACK = 0.05; // seconds: a window ending this close to its stretch ends it

  const clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const shortClock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dateLong = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

  const state = {
    cameras: [],
    camera: null, // id
    day: null, // local midnight (Unix seconds) of the day shown
    dayEnd: null,
    data: null, // the recordings answer for the day
    view: [0, DAY], // visible [start, end) in Unix seconds
    zoom: 0, // index in ZOOMS
    position: null, // the time shown by the playhead (Unix seconds)
    selection: null, // { start, end } (Unix seconds)
    selecting: false, // "Select range" pressed: a drag selects instead of playing
    active: false, // the tab is shown
    generation: 0, // bumped on every change of camera or day: late answers are dropped
  };

  // Two <video> elements: the one playing, and the next window loading behind it.
  const player = {
    videos: [],
    current: null, // { video, clipStart, rangeEnd }
    next: null, // a promise of the same for the window after
    token: 0, // bumped when playback is stopped or restarted: stale loads give up
    frame: 0, // requestAnimationFrame handle
    wantPlay: false,
    unlocked: false, // see unlockVideos()
  };

  // -- days and the bar's geometry --------------------------------------------------------

  function midnight(date) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime() / 1000;
  }

  function dayAfter(day, days) {
    const date = new Date(day * 1000);
    return midnight(new Date(date.getFullYear(), date.getMonth(), date.getDate() + days));
  }

  function dateValue(day) {
    const date = new Date(day * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  function cameraName(id) {
    const cam = state.cameras.find((c) => c.id === id);
    return cam ? cam.name : id;
  }

  function percent(time) {
    const [start, end] = state.view;
    return ((time - start) / (end - start)) * 100;
  }

  function timeAt(clientX) {
    const box = $("tl-bar").getBoundingClientRect();
    const [start, end] = state.view;
    const fraction = Math.min(1, Math.max(0, (clientX - box.left) / box.width));
    return Math.min(state.dayEnd, Math.max(state.day, start + fraction * (end - start)));
  }

  /** The span a zoom step shows: the whole day (23 or 25 h when the clocks change), or less. */
  function spanOf(zoom) {
    return zoom === 0 ? state.dayEnd - state.day : Math.min(ZOOMS[zoom], state.dayEnd - state.day);
  }

  function setView(center, zoom) {
    state.zoom = Math.min(ZOOMS.length - 1, Math.max(0, zoom));
    const span = spanOf(state.zoom);
    let start = center - span / 2;
    start = Math.max(state.day, Math.min(state.dayEnd - span, start));
    state.view = [start, start + span];
    $("tl-bar").dataset.start = String(start); // what the bar shows, for tests and tools
    $("tl-bar").dataset.end = String(start + span);
    $("tl-zoom-label").textContent = camhub.fmt.duration(span);
    $("tl-zoom-out").disabled = state.zoom === 0;
    $("tl-zoom-in").disabled = state.zoom === ZOOMS.length - 1;
    drawBar();
  }

  /** Zoom by `steps` keeping the time under `anchor` (Unix seconds) where it is on the bar. */
  function zoomAround(anchor, steps) {
    const [start, end] = state.view;
    const fraction = (anchor - start) / (end - start);
    const zoom = Math.min(ZOOMS.length - 1, Math.max(0, state.zoom + steps));
    const span = spanOf(zoom);
    setView(anchor - fraction * span + span / 2, zoom);
  }

  // -- drawing ------------------------------------------------------------------------------

  function block(cls, start, end, extra) {
    const [viewStart, viewEnd] = state.view;
    if (end <= viewStart || start >= viewEnd) return null;
    const left = Math.max(0, percent(start));
    const right = Math.min(100, percent(end));
    const node = el("span", { class: cls, ...extra });
    node.style.left = `${left}%`; // CSSOM: allowed by the CSP, a style attribute is not
    node.style.width = `${Math.max(right - left, 0.15)}%`;
    return node;
  }

  function drawBar() {
    const track = $("tl-track");
    const parts = [];
    const data = state.data;
    if (data) {
      const motionCamera = data.record === "motion";
      for (const range of data.ranges) {
        const kind = range.motion && motionCamera ? "tl-range tl-range-motion" : "tl-range";
        parts.push(block(kind, range.start, range.end));
      }
      for (const span of data.motion) parts.push(block("tl-motion", span.start, span.end));
      for (const event of data.events) {
        const end = event.end === null ? event.start : event.end;
        const marker = block("tl-event", event.start, Math.max(end, event.start), {
          title: `Motion at ${clock.format(event.start * 1000)}`,
        });
        parts.push(marker);
      }
    }
    if (state.selection) {
      parts.push(block("tl-selected", state.selection.start, state.selection.end));
    }
    const [viewStart, viewEnd] = state.view;
    if (state.position !== null && state.position >= viewStart && state.position <= viewEnd) {
      const head = el("span", { class: "tl-playhead" });
      head.style.left = `${percent(state.position)}%`;
      parts.push(head);
    }
    track.replaceChildren(...parts.filter(Boolean));
    drawTicks();
    const bar = $("tl-bar");
    const now = state.position === null ? state.view[0] : state.position;
    bar.setAttribute("aria-valuenow", String(Math.round(now - state.day)));
    bar.setAttribute("aria-valuetext", clock.format(now * 1000));
  }

  function tickStep() {
    const width = $("tl-bar").clientWidth || 320;
    const span = state.view[1] - state.view[0];
    const most = Math.max(2, Math.floor(width / TICK_MIN_PX));
    return TICK_STEPS.find((step) => span / step <= most) || TICK_STEPS[TICK_STEPS.length - 1];
  }

  function drawTicks() {
    const step = tickStep();
    const [start, end] = state.view;
    const ticks = [];
    // Ticks at whole local steps from midnight (the day starts at a local midnight).
    for (let t = state.day + Math.ceil((start - state.day) / step) * step; t <= end; t += step) {
      const left = percent(t);
      if (left < 0 || left > 100) continue;
      const label = step < 60 ? clock.format(t * 1000) : shortClock.format(t * 1000);
      const tick = el("span", { class: "tl-tick", text: label });
      tick.style.left = `${left}%`;
      ticks.push(tick);
    }
    $("tl-ticks").replaceChildren(...ticks);
  }

  function showClock(time) {
    $("tl-clock").textContent = time === null ? "--:--:--" : clock.format(time * 1000);
    $("tl-clock").dataset.time = time === null ? "" : String(time);
  }

  function message(text) {
    $("tl-message").textContent = text || "";
    $("tl-message").hidden = !text;
  }

  // -- loading a day ----------------------------------------------------------------------

  async function loadDay() {
    const generation = ++state.generation;
    stopPlayback();
    message("");
    const cam = state.camera;
    if (!cam) return;
    $("tl-date").value = dateValue(state.day);
    $("tl-next-day").disabled = state.dayEnd > Date.now() / 1000;
    const data = await fetchDay();
    if (generation !== state.generation) return;
    takeDay(data);
    if (!data.ranges.length) {
      message(`${cameraName(cam)} recorded nothing on ${dateLong.format(state.day * 1000)}.`);
    } else if (data.more) {
      const last = data.ranges[data.ranges.length - 1].end * 1000;
      message(`More recordings than the bar can take: it shows them up to ${clock.format(last)}.`);
    }
    drawSelection();
  }

  /** The day's recordings. An answer holds at most 2000 stretches (`more` says when it
   * was cut): the rest are asked for from where it ended, up to DAY_PAGES answers. */
  async function fetchDay() {
    const path = `/api/cameras/${encodeURIComponent(state.camera)}/recordings`;
    let day = null;
    let from = state.day;
    for (let page = 0; page < DAY_PAGES; page += 1) {
      const params = new URLSearchParams({ start: from, end: state.dayEnd });
      const data = await api("GET", `${path}?${params}`);
      if (day === null) day = data;
      else {
        const known = new Set(day.events.map((event) => event.id));
        day.ranges.push(...data.ranges);
        day.motion.push(...data.motion);
        day.events.push(...data.events.filter((event) => !known.has(event.id)));
        day.more = data.more;
      }
      if (!data.more || !data.ranges.length) break;
      from = data.ranges[data.ranges.length - 1].end;
    }
    return day;
  }

  function takeDay(data) {
    state.data = data;
    $("tl-track").dataset.camera = data.camera; // whose bar it is, for tests and tools
    $("tl-play").disabled = !data.ranges.length;
    drawBar();
  }

  /** The day's bar asked again, playback going on; whether it was taken. */
  async function refreshDay() {
    const generation = state.generation;
    const data = await fetchDay().catch(() => null);
    if (!data || generation !== state.generation || !state.active) return false;
    takeDay(data);
    return true;
  }

  function chooseDay(day) {
    state.day = day;
    state.dayEnd = dayAfter(day, 1);
    state.position = null;
    state.selection = null;
    showClock(null);
    setView((state.day + state.dayEnd) / 2, 0);
    loadDay().catch(failed);
  }

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) return;
    message(error instanceof Error ? error.message : String(error));
  }

  // -- playback across windows ------------------------------------------------------------

  /** The recorded stretch that holds `time`, or else the first one after it. */
  function stretchFrom(time) {
    if (!state.data) return null;
    return state.data.ranges.find((range) => range.end - END_SLACK > time) || null;
  }

  function waitFor(video, name) {
    return new Promise((resolve, reject) => {
      const done = () => {
        video.removeEventListener(name, done);
        video.removeEventListener("error", fail);
        resolve();
      };
      const fail = () => {
        video.removeEventListener(name, done);
        video.removeEventListener("error", fail);
        // A <video> cannot tell why its request failed: an ended session is told by
        // asking the hub (api() takes the page back to the login form on a 401).
        api("GET", "/api/session").catch(() => {});
        reject(new Error("This footage cannot be played now: try again, or another moment."));
      };
      video.addEventListener(name, done);
      video.addEventListener("error", fail);
    });
  }

  /** Loads the window of footage from `time` (or the next stretch after it) into
   * `video`, seeked to that moment; null when no footage follows on this day. */
  async function loadWindow(video, time, token) {
    let stretch = stretchFrom(time);
    while (stretch) {
      const from = Math.max(time, stretch.start);
      const to = Math.min(from + windowLength(stretch), stretch.end);
      const cam = encodeURIComponent(state.camera);
      const params = new URLSearchParams({ start: from, end: Math.max(to, from + 0.1) });
      let span;
      try {
        span = await api("GET", `/api/cameras/${cam}/clip-span?${params}`);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        span = null; // only a segment still being written: nothing to play yet
      }
      if (token !== player.token) return null;
      if (span && span.end > from) {
        video.src = `/api/cameras/${cam}/clip.mp4?${params}`;
        await waitFor(video, "loadedmetadata");
        if (token !== player.token) return null;
        const seeked = waitFor(video, "seeked");
        video.currentTime = Math.max(0, from - span.start);
        await seeked;
        if (token !== player.token) return null;
        return { video, clipStart: span.start, rangeEnd: stretch.end };
      }
      time = stretch.end;
      stretch = stretchFrom(time + END_SLACK);
    }
    return null;
  }

  function windowLength(stretch) {
    const forced = Number($("tab-timeline").dataset.window); // tests shorten it
    if (forced) return forced;
    const rate = stretch.bytes / Math.max(1, stretch.end - stretch.start); // bytes per second
    return Math.min(WINDOW, Math.max(WINDOW_MIN, WINDOW_BYTES / Math.max(rate, 1)));
  }

  function videoTime(current) {
    return current.clipStart + current.video.currentTime;
  }

  /** The wall time the current window's clip ends at: where the next window starts. */
  function windowEnd(current) {
    const end = current.clipStart + current.video.duration;
    return end >= current.rangeEnd - END_SLACK ? current.rangeEnd + END_SLACK : end;
  }

  function otherVideo(video) {
    return player.videos[0] === video ? player.videos[1] : player.videos[0];
  }

  function preloadNext() {
    const current = player.current;
    const token = player.token;
    const video = otherVideo(current.video);
    video.muted = current.video.muted;
    video.volume = current.video.volume;
    player.next = loadWindow(video, windowEnd(current), token).catch((error) => {
      failed(error);
      return null;
    });
  }

  /** Shows the footage from `time`, playing or paused at that picture. */
  async function playFrom(time, play = true) {
    stopPlayback();
    const token = player.token;
    state.position = time;
    showClock(time);
    drawBar();
    message("");
    player.wantPlay = play;
    $("tl-placeholder").hidden = true;
    const video = player.videos[0];
    const loaded = await loadWindow(video, time, token).catch((error) => {
      failed(error);
      return null;
    });
    if (token !== player.token) return;
    start(loaded, "No recording after this moment on this day.");
  }

  /** Shows and plays a loaded window, and loads the one after it; with none, says why. */
  function start(loaded, otherwise) {
    if (!loaded) {
      player.wantPlay = false;
      updatePlayButton();
      message(otherwise);
      return;
    }
    const previous = player.current;
    player.current = loaded;
    loaded.video.hidden = false;
    if (previous && previous.video !== loaded.video) {
      previous.video.hidden = true;
      unload(previous.video);
    }
    if (player.wantPlay) loaded.video.play().catch(() => {});
    preloadNext();
    followPlayhead();
    updatePlayButton();
  }

  async function onEnded(event) {
    const current = player.current;
    if (!current || event.target !== current.video) return;
    const token = player.token;
    let next = await player.next;
    if (token !== player.token) return;
    if (!next && state.dayEnd > Date.now() / 1000 && (await refreshDay())) {
      // Today: footage recorded since the bar was drawn follows on.
      if (token !== player.token) return;
      const video = otherVideo(current.video);
      next = await loadWindow(video, windowEnd(current), token).catch(() => null);
      if (token !== player.token) return;
    }
    start(next, "End of this day's recordings.");
  }

  function unload(video) {
    video.pause();
    video.removeAttribute("src");
    video.load(); // lets go of the clip
  }

  function stopPlayback() {
    player.token += 1;
    player.wantPlay = false;
    player.current = null;
    player.next = null;
    for (const video of player.videos) unload(video);
    player.videos[1].hidden = true;
    player.videos[0].hidden = false;
    cancelAnimationFrame(player.frame);
    updatePlayButton();
  }

  function followPlayhead() {
    cancelAnimationFrame(player.frame);
    const tick = () => {
      const current = player.current;
      if (!current) return;
      const time = videoTime(current);
      // (while a finger or the mouse drags, the playhead shows where it would go)
      if (!drag && Math.abs(time - (state.position ?? 0)) >= 0.05) {
        state.position = time;
        showClock(time);
        const [start, end] = state.view;
        // Out of sight: the bar moves on, the playhead a tenth in from its left.
        if (time < start || time > end) setView(time + (end - start) * 0.4, state.zoom);
        else movePlayhead(time);
      }
      player.frame = requestAnimationFrame(tick);
    };
    player.frame = requestAnimationFrame(tick);
  }

  function movePlayhead(time) {
    const head = $("tl-track").querySelector(".tl-playhead");
    if (head) head.style.left = `${percent(time)}%`;
    else drawBar();
    const bar = $("tl-bar");
    bar.setAttribute("aria-valuenow", String(Math.round(time - state.day)));
    bar.setAttribute("aria-valuetext", clock.format(time * 1000));
  }

  function updatePlayButton() {
    $("tl-play").textContent = player.wantPlay ? "Pause" : "Play";
  }

  function togglePlay() {
    unlockVideos();
    const current = player.current;
    if (current && player.wantPlay) {
      player.wantPlay = false;
      current.video.pause();
    } else if (current && !current.video.ended) {
      player.wantPlay = true;
      current.video.play().catch(() => {});
    } else if (current) {
      playFrom(state.position).catch(failed); // at the end: look again for what follows
    } else {
      const from = state.position ?? (stretchFrom(state.view[0]) || {}).start;
      if (from !== undefined) playFrom(from).catch(failed);
    }
    updatePlayButton();
  }

  /** Lets both <video> elements play later without a tap of their own. Safari (iOS) allows
   * sound only to an element first played in answer to the user; the hand-over plays the
   * second one from an `ended` event, so both are played and paused once in the first
   * gesture, while still empty (a no-op in Chromium, which asks for a gesture per page). */
  function unlockVideos() {
    if (player.unlocked) return;
    player.unlocked = true;
    for (const video of player.videos) {
      if (video.getAttribute("src")) continue;
      const playing = video.play();
      if (playing) playing.catch(() => {});
      video.pause();
    }
  }

  function seekTo(time) {
    if (!state.data) return;
    unlockVideos();
    const play = !player.current || player.wantPlay; // a paused picture stays paused
    if (!seekWithin(time, play)) playFrom(time, play).catch(failed);
  }

  /** A seek inside the clip playing now: no new clip, nothing more in the access log. */
  function seekWithin(time, play) {
    const current = player.current;
    if (!current || !Number.isFinite(current.video.duration)) return false;
    const offset = time - current.clipStart;
    if (offset < 0 || offset >= current.video.duration - 0.25) return false;
    current.video.currentTime = offset;
    state.position = time;
    showClock(time);
    drawBar();
    player.wantPlay = play;
    if (play) current.video.play().catch(() => {});
    else current.video.pause();
    updatePlayButton();
    return true;
  }

  // -- the bar: pointer, wheel, pinch, keys ------------------------------------------------

  const pointers = new Map(); // pointerId: clientX
  let drag = null; // { mode: "seek" | "select", from }
  let pinch = null; // { distance }

  function onPointerDown(event) {
    if (!state.data) return;
    const bar = $("tl-bar");
    bar.focus({ preventScroll: true }); // the arrow keys step from here next
    bar.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, event.clientX);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = { distance: Math.abs(a - b), center: timeAt((a + b) / 2) };
      if (drag && drag.mode === "seek") preview(drag.before); // two fingers: a zoom, not a seek
      drag = null;
      return;
    }
    const time = timeAt(event.clientX);
    const mode = event.shiftKey || state.selecting ? "select" : "seek";
    drag = { mode, from: time, before: state.position };
    if (mode === "select") setSelection(time, time);
    else preview(time);
    event.preventDefault();
  }

  function onPointerMove(event) {
    if (!pointers.has(event.pointerId)) return;
    pointers.set(event.pointerId, event.clientX);
    if (pinch && pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const distance = Math.abs(a - b);
      if (distance > pinch.distance * 1.4 || distance < pinch.distance / 1.4) {
        zoomAround(pinch.center, distance > pinch.distance ? 1 : -1);
        pinch.distance = distance;
      }
      return;
    }
    if (!drag) return;
    const time = timeAt(event.clientX);
    if (drag.mode === "select") setSelection(drag.from, time);
    else preview(time);
  }

  function onPointerUp(event) {
    if (!pointers.delete(event.pointerId)) return;
    if (pinch) {
      if (pointers.size === 0) pinch = null;
      return;
    }
    const current = drag;
    drag = null;
    if (!current || event.type === "pointercancel") return;
    const time = timeAt(event.clientX);
    if (current.mode === "select") {
      setSelection(current.from, time);
      if (state.selection && state.selection.end - state.selection.start < 1) clearSelection();
    } else {
      seekTo(time);
    }
  }

  function preview(time) {
    state.position = time;
    showClock(time);
    if (time === null) drawBar();
    else movePlayhead(time);
  }

  function onWheel(event) {
    if (!state.data) return;
    event.preventDefault();
    if (Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
      const span = state.view[1] - state.view[0];
      setView((state.view[0] + state.view[1]) / 2 + (event.deltaX / 500) * span, state.zoom);
      return;
    }
    if (event.deltaY === 0) return;
    zoomAround(timeAt(event.clientX), event.deltaY < 0 ? 1 : -1);
  }

  function onKey(event) {
    if (!state.data) return;
    const here = state.position ?? state.view[0];
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      const step = event.shiftKey ? tickStep() : STEP;
      const to = here + (event.key === "ArrowLeft" ? -step : step);
      seekTo(Math.min(state.dayEnd, Math.max(state.day, to)));
    } else if (event.key === "+" || event.key === "=") {
      zoomAround(here, 1);
    } else if (event.key === "-") {
      zoomAround(here, -1);
    } else if (event.key === " ") {
      togglePlay();
    } else {
      return;
    }
    event.preventDefault();
  }

  // -- selection: download and delete ------------------------------------------------------

  function setSelection(a, b) {
    state.selection = { start: Math.min(a, b), end: Math.max(a, b) };
    drawBar();
    drawSelection();
  }

  function clearSelection() {
    state.selection = null;
    drawBar();
    drawSelection();
  }

  function describe(selection) {
    const length = camhub.fmt.duration(selection.end - selection.start);
    return (
      `${clock.format(selection.start * 1000)} to ${clock.format(selection.end * 1000)} ` +
      `(${length}) on ${dateLong.format(selection.start * 1000)}`
    );
  }

  function drawSelection() {
    const selection = state.selection;
    for (const id of ["tl-download", "tl-delete", "tl-clear"]) $(id).hidden = !selection;
    if (!selection) {
      $("tl-selection").textContent =
        "No range selected: Shift-drag on the bar (on a touch screen, press Select range, then " +
        "drag), or mark the start and end while it plays.";
      return;
    }
    const tooLong = selection.end - selection.start > MAX_CLIP;
    $("tl-download").hidden = tooLong;
    $("tl-selection").textContent =
      `Selected: ${cameraName(state.camera)}, ${describe(selection)}.` +
      (tooLong ? " A download covers at most 6 h: select less to download it." : "");
    const params = new URLSearchParams({
      start: selection.start,
      end: selection.end,
      download: "1",
    });
    $("tl-download").href = `/api/cameras/${encodeURIComponent(state.camera)}/clip.mp4?${params}`;
  }

  function mark(which) {
    if (state.position === null) {
      message("Play or click on the bar first: the mark goes where the playhead is.");
      return;
    }
    const selection = state.selection || { start: state.position, end: state.position };
    if (which === "start") setSelection(state.position, Math.max(state.position, selection.end));
    else setSelection(Math.min(state.position, selection.start), state.position);
  }

  function openDelete() {
    if (!state.selection) return;
    $("tl-delete-what").textContent = `${cameraName(state.camera)}: ${describe(state.selection)}`;
    $("tl-delete-error").hidden = true;
    $("tl-delete-confirm").disabled = false;
    $("tl-delete-dialog").showModal();
  }

  async function confirmDelete() {
    const selection = state.selection;
    const button = $("tl-delete-confirm");
    button.disabled = true;
    const params = new URLSearchParams({ start: selection.start, end: selection.end });
    try {
      stopPlayback(); // the player lets go of the clips about to be shredded
      const path = `/api/cameras/${encodeURIComponent(state.camera)}/footage?${params}`;
      const done = await api("DELETE", path);
      $("tl-delete-dialog").close();
      clearSelection();
      await loadDay();
      message(camhub.fmt.deletion(done));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      $("tl-delete-error").textContent = error.message;
      $("tl-delete-error").hidden = false;
      button.disabled = false;
    }
  }

  // -- the tab ------------------------------------------------------------------------------

  function fillCameras(cameras) {
    state.cameras = cameras;
    const select = $("tl-camera");
    const options = cameras.map((cam) => el("option", { value: cam.id, text: cam.name }));
    select.replaceChildren(...options);
    if (!cameras.some((cam) => cam.id === state.camera)) {
      state.camera = cameras.length ? cameras[0].id : null;
    }
    select.value = state.camera || "";
  }

  async function enter() {
    state.active = true;
    clearInterval(ticking);
    ticking = setInterval(() => {
      if (state.day !== null && state.dayEnd > Date.now() / 1000) refreshDay();
    }, REFRESH_MS);
    if (!state.cameras.length) fillCameras(await api("GET", "/api/cameras"));
    if (state.day === null) chooseDay(midnight(new Date()));
    else await loadDay();
  }

  function leave() {
    state.active = false;
    clearInterval(ticking);
    clearTimeout(refresh);
    stopPlayback();
    $("tl-placeholder").hidden = false;
  }

  function forget() {
    leave();
    state.cameras = [];
    state.camera = null;
    state.data = null;
    state.day = null;
    state.selection = null;
    state.position = null;
    $("tl-track").replaceChildren();
    $("tl-camera").replaceChildren();
    message("");
  }

  let refresh = null; // a day's answer is asked again once events settle
  let ticking = null; // today's bar, asked again every REFRESH_MS

  function onEventNews(change) {
    const event = change && change.event;
    if (!state.active || !event || event.camera_id !== state.camera) return;
    if (event.start < state.day || event.start >= state.dayEnd) return;
    clearTimeout(refresh);
    refresh = setTimeout(refreshDay, 2000);
  }

  function wire() {
    player.videos = [$("tl-video-a"), $("tl-video-b")];
    for (const video of player.videos) video.addEventListener("ended", onEnded);
    const bar = $("tl-bar");
    bar.addEventListener("pointerdown", onPointerDown);
    bar.addEventListener("pointermove", onPointerMove);
    bar.addEventListener("pointerup", onPointerUp);
    bar.addEventListener("pointercancel", onPointerUp);
    bar.addEventListener("wheel", onWheel, { passive: false });
    bar.addEventListener("keydown", onKey);
    $("tl-camera").addEventListener("change", () => {
      state.camera = $("tl-camera").value;
      state.selection = null;
      state.position = null;
      showClock(null);
      loadDay().catch(failed);
    });
    $("tl-date").addEventListener("change", () => {
      const value = $("tl-date").value;
      if (!value) return;
      const [y, m, d] = value.split("-").map(Number);
      chooseDay(midnight(new Date(y, m - 1, d)));
    });
    $("tl-prev-day").addEventListener("click", () => chooseDay(dayAfter(state.day, -1)));
    $("tl-next-day").addEventListener("click", () => chooseDay(dayAfter(state.day, 1)));
    $("tl-play").addEventListener("click", togglePlay);
    // The buttons zoom around the playhead, or else the newest recording in view.
    const anchor = () => {
      const [start, end] = state.view;
      const inView = (t) => t !== null && t !== undefined && t >= start && t <= end;
      const ranges = state.data ? state.data.ranges : [];
      const newest = ranges.length ? Math.min(ranges[ranges.length - 1].end, end) : null;
      if (inView(state.position)) return state.position;
      return inView(newest) ? newest : (start + end) / 2;
    };
    $("tl-zoom-in").addEventListener("click", () => zoomAround(anchor(), 1));
    $("tl-zoom-out").addEventListener("click", () => zoomAround(anchor(), -1));
    $("tl-select-mode").addEventListener("click", () => {
      state.selecting = !state.selecting;
      $("tl-select-mode").setAttribute("aria-pressed", String(state.selecting));
    });
    $("tl-mark-start").addEventListener("click", () => mark("start"));
    $("tl-mark-end").addEventListener("click", () => mark("end"));
    $("tl-clear").addEventListener("click", clearSelection);
    $("tl-delete").addEventListener("click", openDelete);
    $("tl-delete-confirm").addEventListener("click", confirmDelete);
    window.addEventListener("resize", () => {
      if (state.active) drawTicks();
    });
    camhub.on("cameras", (cameras) => {
      const before = state.camera;
      fillCameras(cameras);
      if (state.active && state.camera !== before) loadDay().catch(failed);
    });
    camhub.on("logout", forget);
    camhub.on("stream:event", onEventNews);
    camhub.tab("timeline", { enter, leave });
  }

  wire();
})();
