// camhub owner page: the Settings tab. Per camera: on/off, recording, pre/post roll,
// motion sensitivity and detect rate, a new URL (the current one is shown with its
// password hidden: the hub never sends it back), and motion masks drawn as polygons
// on the camera's live picture. Below: the session idle time and the password.
//
// Plain JavaScript beside app.js, talking to it only through kit.js (a tab, news):
// data from the hub goes on the page with textContent only.
"use strict";

(() => {
  const { $, el, api } = camhub;
  const SVG = "http://www.w3.org/2000/svg";
  const CLOSE_RADIUS_PX = 14; // a click this near the first point closes the shape
  const NO_PICTURE = { width: 640, height: 360 }; // drawn on when the camera shows none
  const RECORD_MODES = [
    ["motion", "On motion"],
    ["continuous", "Always (24/7)"],
    ["off", "Off (live view only)"],
  ];
  const view = {
    data: null, // the last GET /api/settings
    editor: null, // the open mask editor, if any
  };

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  function say(line, message, bad) {
    line.textContent = message || "";
    line.className = bad ? "form-error" : "hint settings-saved";
    line.hidden = !message;
  }

  function errorText(error) {
    return error instanceof Error ? error.message : String(error);
  }

  function readOnly() {
    return Boolean(view.data && view.data.read_only);
  }

  function field(label, input, hint) {
    return el(
      "label",
      { class: "field" },
      el("span", { class: "field-label", text: label }),
      input,
      hint ? el("span", { class: "hint", text: hint }) : null,
    );
  }

  function numberInput(name, value, min, max, step) {
    return el("input", { type: "number", name, value, min, max, step, inputmode: "decimal" });
  }

  // -- loading --------------------------------------------------------------------------

  async function enter() {
    // On a phone the tab bar scrolls: keep this tab's name in sight.
    document.querySelector('.tab[data-tab="settings"]').scrollIntoView({ block: "nearest", inline: "nearest" });
    const data = await api("GET", "/api/settings");
    view.data = data;
    closeEditor();
    const note = $("settings-read-only");
    note.textContent = data.read_only ? `Settings cannot be changed here: ${data.read_only}.` : "";
    note.hidden = !data.read_only;
    $("settings-file").textContent = data.file
      ? `Saved to ${data.file} (the previous version is kept as .bak).`
      : "";
    $("settings-cameras").replaceChildren(...data.cameras.map(cameraCard));
    $("settings-idle").value = data.session_idle_minutes;
    $("settings-new-password").minLength = data.min_password_length;
    for (const control of $("settings-session-form").querySelectorAll("input, button")) {
      control.disabled = Boolean(data.read_only); // the password is not in the config file
    }
  }

  function leave() {
    closeEditor();
  }

  // -- a camera -------------------------------------------------------------------------

  function cameraCard(cam) {
    const form = el("form", { class: "card settings-camera", dataset: { camera: cam.id }, novalidate: true });
    const enabled = el("input", { type: "checkbox", name: "enabled", checked: cam.enabled });
    const record = el("select", { name: "record" });
    for (const [value, text] of RECORD_MODES) record.append(el("option", { value, text }));
    record.value = cam.record;
    const sensitivity = el("select", { name: "sensitivity" });
    if (cam.sensitivity === null) {
      sensitivity.append(
        el("option", {
          value: "",
          text: `Set by hand (threshold ${cam.threshold}, ${(cam.min_area * 100).toFixed(2)} % of the picture)`,
        }),
      );
    }
    for (const level of view.data.sensitivity_levels) {
      sensitivity.append(el("option", { value: level.level, text: level.name }));
    }
    sensitivity.value = cam.sensitivity === null ? "" : String(cam.sensitivity);
    const newUrl = el("input", {
      type: "text",
      name: "url",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "rtsp://user:password@192.168.1.20/stream",
      hidden: true,
    });
    const changeUrl = el("button", {
      type: "button",
      class: "button small",
      text: "Change URL",
      onclick: () => {
        newUrl.hidden = false;
        changeUrl.hidden = true;
        newUrl.focus();
      },
    });
    const message = el("p", { class: "hint", role: "status", hidden: true });
    const masks = el("span", { class: "settings-mask-count", text: maskCount(cam.masks.length) });
    const fields = el(
      "div",
      { class: "settings-fields" },
      field("Recording", record),
      field("Motion sensitivity", sensitivity, "Higher notices smaller movements."),
      field("Before motion (s)", numberInput("pre_roll", cam.pre_roll, 0, 30, 0.5)),
      field("After motion (s)", numberInput("post_roll", cam.post_roll, 0, 300, 1)),
      field("Motion checks per second", numberInput("detect_fps", cam.detect_fps, 0.5, 30, 0.5)),
    );
    form.append(
      el(
        "div",
        { class: "settings-camera-head" },
        el("h3", { class: "settings-camera-name", text: cam.name }),
        el("label", { class: "settings-switch" }, enabled, el("span", { text: "Camera on" })),
      ),
      fields,
      el(
        "div",
        { class: "settings-url" },
        el("span", { class: "field-label", text: "Address" }),
        el("code", { class: "settings-url-text", text: cam.url }),
        changeUrl,
        newUrl,
        el("span", { class: "hint", text: "A password in the address is never shown again." }),
      ),
      el(
        "div",
        { class: "settings-actions" },
        el("button", { type: "submit", class: "button primary", text: "Save" }),
        el("button", {
          type: "button",
          class: "button settings-masks-open",
          text: "Motion masks",
          onclick: () => openEditor(cam, form),
        }),
        masks,
      ),
      message,
    );
    for (const control of form.querySelectorAll("input, select, button")) {
      if (readOnly() && !control.classList.contains("settings-masks-open")) control.disabled = true;
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveCamera(cam, form, message).catch((error) => say(message, errorText(error), true));
    });
    return form;
  }

  function maskCount(n) {
    if (n === 0) return "No masks: motion anywhere counts.";
    return n === 1 ? "1 mask" : `${n} masks`;
  }

  /** The fields that differ from what the hub has: only those are sent. */
  function changedFields(cam, form) {
    const body = {};
    const value = (name) => form.elements[name].value;
    if (form.elements.enabled.checked !== cam.enabled) body.enabled = form.elements.enabled.checked;
    if (value("record") !== cam.record) body.record = value("record");
    if (value("sensitivity") !== "" && Number(value("sensitivity")) !== cam.sensitivity) {
      body.sensitivity = Number(value("sensitivity"));
    }
    for (const name of ["pre_roll", "post_roll", "detect_fps"]) {
      const text = value(name).trim();
      const number = Number(text);
      // A number the hub checks; anything else goes as typed, for the hub to name.
      if (text === "" || Number.isNaN(number)) body[name] = text;
      else if (number !== cam[name]) body[name] = number;
    }
    if (value("url").trim()) body.url = value("url").trim();
    return body;
  }

  async function saveCamera(cam, form, message) {
    const body = changedFields(cam, form);
    if (!Object.keys(body).length) {
      say(message, "Nothing to save: no setting was changed.");
      return;
    }
    if (view.editor && view.editor.cam.id === cam.id) closeEditor();
    say(message, "Saving…");
    const result = await api("PUT", `/api/settings/cameras/${encodeURIComponent(cam.id)}`, body);
    replaceCamera(result.camera, form);
    const card = $("settings-cameras").querySelector(`[data-camera="${CSS.escape(cam.id)}"]`);
    say(card.querySelector("[role=status]"), savedText(result));
    for (const warning of result.warnings) {
      card.append(el("p", { class: "settings-warning", role: "status", text: `Note: ${warning}` }));
    }
  }

  function savedText(result) {
    if (!result.restarted) return "Saved.";
    return result.camera.enabled
      ? "Saved. The camera restarted with its new settings; the others kept recording."
      : "Saved. The camera is off; the others kept recording.";
  }

  function replaceCamera(cam, form) {
    const cameras = view.data.cameras;
    cameras[cameras.findIndex((c) => c.id === cam.id)] = cam;
    form.replaceWith(cameraCard(cam));
  }

  // -- the mask editor ------------------------------------------------------------------

  function openEditor(cam, form) {
    closeEditor();
    const picture = el("img", { class: "mask-picture", alt: `Live picture of ${cam.name}` });
    const drawing = svg("svg", { class: "mask-svg", role: "img", "aria-label": "Masks" });
    const stage = el("div", { class: "mask-stage" }, picture, drawing);
    const message = el("p", { class: "hint", role: "status", hidden: true });
    const list = el("ol", { class: "mask-list" });
    const closeShape = el("button", { type: "button", class: "button small", text: "Close shape" });
    const undo = el("button", { type: "button", class: "button small", text: "Undo point" });
    const save = el("button", { type: "button", class: "button primary", text: "Save masks" });
    const done = el("button", { type: "button", class: "button ghost", text: "Close" });
    const panel = el(
      "div",
      { class: "mask-editor", dataset: { camera: cam.id } },
      el("h4", { class: "mask-title", text: `Motion masks: ${cam.name}` }),
      el("p", {
        class: "hint",
        text:
          "Motion inside a mask is ignored. Click on the picture to place corners; " +
          "click the first corner again (or Close shape) to finish a mask.",
      }),
      el(
        "div",
        { class: "mask-body" },
        stage,
        el(
          "div",
          { class: "mask-side" },
          el("div", { class: "mask-tools" }, closeShape, undo),
          list,
          el("div", { class: "settings-actions" }, save, done),
          message,
        ),
      ),
    );
    const editor = {
      cam,
      form,
      panel,
      drawing,
      list,
      closeShape,
      undo,
      save,
      size: NO_PICTURE,
      masks: cam.masks.map((polygon) => polygon.map((point) => point.slice())),
      draft: [],
    };
    view.editor = editor;
    form.after(panel);
    picture.addEventListener("load", () => {
      editor.size = { width: picture.naturalWidth, height: picture.naturalHeight };
      draw(editor);
    });
    picture.addEventListener("error", () => {
      stage.classList.add("no-picture");
      say(message, "No live picture (the camera is off or has not sent one yet): masks are drawn on a blank frame.");
    });
    picture.src = `/api/cameras/${encodeURIComponent(cam.id)}/snapshot.jpg?at=${Date.now()}`;
    drawing.addEventListener("click", (event) => addPoint(editor, event));
    closeShape.addEventListener("click", () => finishShape(editor));
    undo.addEventListener("click", () => {
      editor.draft.pop();
      draw(editor);
    });
    save.addEventListener("click", () =>
      saveMasks(editor, message).catch((error) => say(message, errorText(error), true)),
    );
    done.addEventListener("click", closeEditor);
    if (readOnly()) save.disabled = true;
    draw(editor);
    panel.scrollIntoView({ block: "nearest" });
  }

  function closeEditor() {
    if (view.editor) view.editor.panel.remove();
    view.editor = null;
  }

  function addPoint(editor, event) {
    const box = editor.drawing.getBoundingClientRect();
    const px = event.clientX - box.left;
    const py = event.clientY - box.top;
    const first = editor.draft[0];
    if (
      first &&
      editor.draft.length >= 3 &&
      Math.hypot(first[0] * box.width - px, first[1] * box.height - py) <= CLOSE_RADIUS_PX
    ) {
      finishShape(editor);
      return;
    }
    const fraction = (value, size) => Math.round(Math.min(1, Math.max(0, value / size)) * 10000) / 10000;
    editor.draft.push([fraction(px, box.width), fraction(py, box.height)]);
    draw(editor);
  }

  function finishShape(editor) {
    if (editor.draft.length < 3) return;
    editor.masks.push(editor.draft);
    editor.draft = [];
    draw(editor);
  }

  function points(editor, polygon) {
    const { width, height } = editor.size;
    return polygon.map(([x, y]) => `${x * width},${y * height}`).join(" ");
  }

  /** The masks and the shape being drawn, in the picture's own pixels (uniform scale). */
  function draw(editor) {
    const { width, height } = editor.size;
    const unit = Math.max(width, height) / 200; // line widths and dots at any picture size
    editor.drawing.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const shapes = editor.masks.map((polygon) =>
      svg("polygon", { class: "mask-shape", points: points(editor, polygon), "stroke-width": unit / 2 }),
    );
    const draft = editor.draft;
    if (draft.length) {
      shapes.push(svg("polyline", { class: "mask-draft", points: points(editor, draft), "stroke-width": unit / 2 }));
      draft.forEach(([x, y], i) => {
        shapes.push(
          svg("circle", {
            class: i === 0 ? "mask-dot mask-dot-first" : "mask-dot",
            cx: x * width,
            cy: y * height,
            r: i === 0 && draft.length >= 3 ? unit * 1.6 : unit,
          }),
        );
      });
    }
    editor.drawing.replaceChildren(...shapes);
    editor.closeShape.disabled = draft.length < 3;
    editor.undo.disabled = draft.length === 0;
    editor.list.replaceChildren(
      ...editor.masks.map((polygon, i) =>
        el(
          "li",
          { class: "mask-item" },
          el("span", { text: `Mask ${i + 1} · ${polygon.length} corners` }),
          el("button", {
            type: "button",
            class: "button small danger",
            text: "Delete",
            "aria-label": `Delete mask ${i + 1}`,
            onclick: () => {
              editor.masks.splice(i, 1);
              draw(editor);
            },
          }),
        ),
      ),
    );
  }

  async function saveMasks(editor, message) {
    if (editor.draft.length) {
      say(message, "Finish the shape you are drawing (Close shape) or undo its corners first.", true);
      return;
    }
    say(message, "Saving…");
    const result = await api("PUT", `/api/settings/cameras/${encodeURIComponent(editor.cam.id)}`, {
      masks: editor.masks,
    });
    const fresh = cameraCard(result.camera);
    editor.form.replaceWith(fresh);
    const cameras = view.data.cameras;
    cameras[cameras.findIndex((c) => c.id === result.camera.id)] = result.camera;
    editor.cam = result.camera;
    editor.form = fresh;
    say(message, result.restarted ? `Saved: ${maskCount(result.camera.masks.length)}. Motion detection restarted with them.` : "Saved (no change).");
  }

  // -- the session and the password -----------------------------------------------------

  async function saveIdle(event) {
    event.preventDefault();
    const message = $("settings-session-message");
    const text = $("settings-idle").value.trim();
    const minutes = Number(text);
    try {
      const result = await api("PUT", "/api/settings/session", {
        idle_minutes: text === "" || Number.isNaN(minutes) ? text : minutes,
      });
      say(message, `Saved: the page locks after ${result.session_idle_minutes} minutes without use.`);
    } catch (error) {
      say(message, errorText(error), true);
    }
  }

  async function changePassword(event) {
    event.preventDefault();
    const message = $("settings-password-message");
    const current = $("settings-current-password");
    const fresh = $("settings-new-password");
    const again = $("settings-repeat-password");
    const least = view.data ? view.data.min_password_length : 10;
    if (fresh.value.length < least) {
      say(message, `The new password must have at least ${least} characters.`, true);
      return;
    }
    if (fresh.value !== again.value) {
      say(message, "The two new passwords differ.", true);
      return;
    }
    try {
      await api("POST", "/api/settings/password", { current: current.value, new: fresh.value });
      for (const input of [current, fresh, again]) input.value = "";
      say(message, "Password changed. The footage keys are the same; your recovery code still works.");
    } catch (error) {
      say(message, errorText(error), true);
    }
  }

  function forget() {
    closeEditor();
    view.data = null;
    $("settings-cameras").replaceChildren();
    for (const id of ["settings-current-password", "settings-new-password", "settings-repeat-password"]) {
      $(id).value = "";
    }
    for (const id of ["settings-session-message", "settings-password-message"]) say($(id), "");
  }

  $("settings-session-form").addEventListener("submit", saveIdle);
  $("settings-password-form").addEventListener("submit", changePassword);
  camhub.tab("settings", { enter, leave });
  camhub.on("logout", forget);
})();
