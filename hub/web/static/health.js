// camhub owner page: a camera's health in words, for its live card. The hub says what
// went wrong in the owner's words already (`error`, from the capture code); this
// turns the figures (frame rate, bit rate, size, last picture, reconnects) into short
// phrases the card lays out one beside the other, wrapping on a phone.
"use strict";

(() => {
  const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

  function bitRate(kbits) {
    if (kbits >= 1000) return `${(kbits / 1000).toFixed(kbits >= 10000 ? 0 : 1)} Mbit/s`;
    return `${Math.round(kbits)} kbit/s`;
  }

  /** The card's status (label and class), the reason when it is down, and the figures. */
  function describe(status) {
    const { online, error, reconnects, fps, kbit_s: kbits, width, height, last_frame } = status;
    const label = online ? "Connected" : error ? "Offline" : "Connecting…";
    const parts = [];
    if (online && width && height) parts.push(`${width}×${height}`);
    // Whole numbers from 10 on: measured over 2 s, 10 fps would flicker with 10.5.
    if (online && fps) parts.push(`${fps >= 10 ? Math.round(fps) : fps} fps`);
    if (online && kbits) parts.push(bitRate(kbits));
    if (!online && last_frame) parts.push(`last picture ${timeOnly.format(last_frame * 1000)}`);
    if (reconnects) parts.push(`${reconnects} reconnect${reconnects === 1 ? "" : "s"} since start`);
    return { ok: Boolean(online), label, reason: online ? "" : error || "", parts };
  }

  window.camhubHealth = Object.freeze({ describe });
})();
