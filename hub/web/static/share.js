// camhub share page: opens one shared clip with the secret in the link's fragment.
//
// The secret (after #) is never sent in a URL: it is read here, removed from the address
// bar and the history entry at once, and posted once to `open`. That counts this
// browser's view and sets cookies for this share's path only (the secret, and an open
// token that lets this browser play the clip and open the link again for a while without
// using another view); the <video> then fetches the clip with them. The share's label is
// the owner's own note and never comes here.
"use strict";

(() => {
  const { $ } = camhub;
  const { time: fmtTime, duration: fmtDuration } = camhub.fmt;

  function refuse(title, text) {
    $("share-loading").hidden = true;
    $("share-clip").hidden = true;
    $("share-refused-title").textContent = title;
    $("share-refused-text").textContent = text;
    $("share-refused").hidden = false;
  }

  function takeSecret() {
    const raw = location.hash.replace(/^#/, "");
    if (location.hash) {
      history.replaceState(null, "", location.pathname + location.search);
    }
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw; // not %-encoded after all: let the hub judge it
    }
  }

  function showClip(info) {
    $("share-loading").hidden = true;
    // The clip's own start and length, as the owner's list and player give them.
    const length = fmtDuration(info.end - info.start);
    $("share-camera").textContent = `${info.camera} · recorded ${fmtTime(info.start)} · ${length}`;
    $("share-expires").textContent = `Link works until ${fmtTime(info.expires)}`;
    $("share-views").textContent = info.max_views
      ? `View ${info.views} of ${info.max_views}`
      : `Viewed ${info.views} time${info.views === 1 ? "" : "s"}`;
    const video = $("share-video");
    video.addEventListener("error", () => {
      const box = $("share-error");
      box.textContent =
        "The clip could not be played. The link may have just expired or been revoked.";
      box.hidden = false;
    });
    video.src = info.clip_url;
    $("share-clip").hidden = false;
  }

  async function open() {
    const secret = takeSecret();
    if (!secret) {
      refuse(
        "This link is incomplete",
        "Open the whole link you were sent, including the part after the # sign. " +
          "For your privacy this page forgets that part once it has used it, so reloading " +
          "the page does not work: open the link again instead.",
      );
      return;
    }
    let response;
    try {
      response = await fetch("open", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ secret }),
      });
    } catch {
      refuse("The camera hub cannot be reached", "Check your connection and open the link again.");
      return;
    }
    if (response.status === 403 || response.status === 404) {
      refuse(
        "This link does not work",
        "It may have expired, been revoked by the person who shared it, or been used up. " +
          "Ask them for a new link.",
      );
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok || !data) {
      const message = data && typeof data.error === "string" ? data.error : response.statusText;
      refuse("The clip cannot be opened", message || `Error ${response.status}`);
      return;
    }
    showClip(data);
  }

  open();
})();
