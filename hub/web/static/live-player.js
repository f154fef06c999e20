// camhub HD live view: the camera's own H.264, sent by the hub as fMP4 over a WebSocket
// (hub/web/hdlive.py), played with Media Source Extensions; ManagedMediaSource where that
// is what the browser has (Safari on iOS 17.1+). Nothing here decodes: the browser does.
//
// Messages: a JSON text describing the stream, then the init segment, then one binary
// message per picture or sound (its Unix time as an 8-byte big-endian double, then
// moof+mdat). A stream with sound has both tracks in one SourceBuffer (codecs
// "avc1…,mp4a.40.2"). A new description may come at any time (the camera reconnected,
// its sound came or went): start over with it.
"use strict";

window.camhubLive = (() => {
  const Source = window.ManagedMediaSource || window.MediaSource;
  const AIM = 0.3; // seconds behind the newest picture the playhead aims for
  const MAX_LAG = 1.0; // further behind than this, it jumps to the aim
  const CATCH_UP = 1.1; // playback rate while between the two, to creep back unseen
  const KEEP = 6; // seconds of played picture kept in the buffer
  const MAX_QUEUE = 250; // pictures waiting to be appended: past this, start over

  function supported() {
    return Boolean(Source && window.WebSocket);
  }

  function wsUrl(path) {
    const url = new URL(path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  // Play `path` in `video` (muted unless the page unmuted it: browsers autoplay only
  // muted). onInfo({width, height, time, stream, audio}) a few times a second;
  // onFail(reason, canRetry) once if it ends by itself. Returns stop().
  function play(video, path, { onInfo, onFail }) {
    let ws = null;
    let source = null;
    let buffer = null;
    let queue = [];
    let wantInit = false;
    let stopped = false;
    let description = null;
    let newest = 0;
    let told = 0;

    function fail(reason, canRetry = true) {
      if (stopped) return;
      stop();
      onFail(reason, canRetry);
    }

    function startSource() {
      const type = `video/mp4; codecs="${description.codec}"`;
      if (!description.codec || !Source.isTypeSupported(type)) {
        fail(`this browser cannot play ${description.codec || "this stream"}`, false);
        return;
      }
      buffer = null;
      queue = [];
      source = new Source();
      if (window.ManagedMediaSource && source instanceof window.ManagedMediaSource) {
        video.disableRemotePlayback = true;
      }
      video.src = URL.createObjectURL(source);
      source.addEventListener(
        "sourceopen",
        () => {
          URL.revokeObjectURL(video.src);
          buffer = source.addSourceBuffer(type);
          buffer.mode = "segments";
          buffer.addEventListener("updateend", onAppended);
          buffer.addEventListener("error", () => fail("the picture could not be decoded"));
          pump();
        },
        { once: true },
      );
    }

    function onMessage(event) {
      if (stopped) return;
      if (typeof event.data === "string") {
        description = JSON.parse(event.data);
        wantInit = true;
        startSource();
        return;
      }
      if (wantInit) {
        wantInit = false;
        queue.push(new Uint8Array(event.data));
      } else {
        const time = new DataView(event.data).getFloat64(0);
        newest = Math.max(newest, time); // decode order: B-frames come before their time
        queue.push(new Uint8Array(event.data, 8));
      }
      if (queue.length > MAX_QUEUE) fail("the browser fell behind");
      else pump();
    }

    function pump() {
      if (!buffer || buffer.updating || !queue.length || stopped) return;
      try {
        buffer.appendBuffer(queue.shift());
      } catch (error) {
        // QuotaExceededError: trim harder and go on from the next message.
        trim(1);
      }
    }

    function trim(keep) {
      const ranges = buffer.buffered;
      if (buffer.updating || !ranges.length) return false;
      const until = video.currentTime - keep;
      if (until - ranges.start(0) < 1) return false;
      buffer.remove(ranges.start(0), until);
      return true;
    }

    function onAppended() {
      if (stopped) return;
      const ranges = buffer.buffered;
      if (ranges.length) {
        const end = ranges.end(ranges.length - 1);
        const start = ranges.start(ranges.length - 1);
        // Behind the live edge, or in a gap (a skipped GOP): jump to just behind the edge.
        const lag = end - video.currentTime;
        if (lag > MAX_LAG || video.currentTime < start) {
          video.currentTime = Math.max(start, end - AIM);
        }
        video.playbackRate = lag > AIM + 0.1 && lag <= MAX_LAG ? CATCH_UP : 1;
        if (video.paused) video.play().catch(() => {});
      }
      if (!trim(KEEP)) pump();
      report();
    }

    function report() {
      const now = performance.now();
      if (now - told < 250) return;
      told = now;
      onInfo({
        width: video.videoWidth || description.width,
        height: video.videoHeight || description.height,
        time: newest,
        stream: description.stream,
        audio: Boolean(description.audio),
      });
    }

    function stop() {
      stopped = true;
      if (ws) ws.close();
      video.removeAttribute("src");
      video.load();
    }

    video.playsInline = true;
    ws = new WebSocket(wsUrl(path));
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", () => fail("the live view ended"));
    return stop;
  }

  return { supported, play };
})();
