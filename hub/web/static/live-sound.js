// camhub live sound: a speaker button on a live card whose HD/SD view carries the
// camera's sound (hub/web/hdlive.py sends it as a second track when the camera has
// `audio = true`). Browsers start a live video only muted; the button's click is the
// owner's gesture that lets it be heard, and a second click mutes it again.
"use strict";

window.camhubSound = (() => {
  function label(button, video) {
    button.setAttribute("aria-pressed", String(!video.muted));
    button.textContent = video.muted ? "\u{1F507}" : "\u{1F50A}"; // muted / speaker
    button.title = video.muted ? "Sound is off: click to hear the camera" : "Mute";
  }

  // Give `card` a (hidden) sound button for `video`.
  function attach(card, video) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chip live-sound";
    button.setAttribute("aria-label", "Sound");
    button.hidden = true;
    button.addEventListener("click", () => {
      video.muted = !video.muted;
      if (!video.muted) video.play().catch(() => {});
    });
    video.addEventListener("volumechange", () => label(button, video));
    label(button, video);
    card.querySelector(".camera-info").append(button);
  }

  // Show the button while the view has sound; without it the view is muted again, so
  // that sound coming back later does not start by itself.
  function show(card, audible) {
    const button = card.querySelector(".live-sound");
    if (!button) return;
    button.hidden = !audible;
    if (!audible) card.querySelector(".live-video").muted = true;
  }

  return { attach, show };
})();
