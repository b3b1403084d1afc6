// The live view of one browser tab: draws the frames its socket sends and, unless read-only, sends the
// viewer's mouse, wheel and keyboard input back. The protocol is described in inspector/live.py.
"use strict";

(() => {
  const MAX_SIDE = 4096;
  const MAX_TEXT = 10000;
  const FINAL = { "session ended": "Session ended", "tab closed": "Tab closed", "tab crashed": "Tab crashed" };
  const BUTTONS = ["left", "middle", "right", "back", "forward"];

  const canvas = document.getElementById("screen");
  const context = canvas.getContext("2d");
  const statusBox = document.getElementById("status");
  const badge = document.getElementById("badge");

  // Read by people debugging and by the tests.
  const view = (window.liveView = {
    state: "connecting", // connecting | live | closed
    reason: "",
    frames: 0,
    header: null, // the last frame's metadata: deviceWidth, deviceHeight, offsetTop, ...
    readOnly: true, // until the server says otherwise
    targetId: null,
  });

  let socket = null;
  let opened = false;
  let retries = 0;
  let inputAttached = false;

  function setStatus(text) {
    statusBox.textContent = text;
    statusBox.hidden = !text;
  }

  function wantedSize() {
    const ratio = window.devicePixelRatio || 1;
    const side = (css) => Math.max(64, Math.min(MAX_SIDE, Math.round(css * ratio)));
    return [side(innerWidth), side(innerHeight)];
  }

  function socketUrl(protocol) {
    const url = new URL("ws", location.href); // next to this page: …/live/ws
    const query = new URLSearchParams(location.search);
    const [width, height] = wantedSize();
    query.set("w", width);
    query.set("h", height);
    url.search = query.toString();
    url.protocol = protocol;
    return url;
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function sendInput(message) {
    if (!view.readOnly) send(message);
  }

  // -- the connection ------------------------------------------------------------------------------

  function connect() {
    view.state = "connecting";
    setStatus(retries ? "Reconnecting…" : "Connecting…");
    opened = false;
    socket = new WebSocket(socketUrl(location.protocol === "https:" ? "wss:" : "ws:"));
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") onText(event.data);
      else onFrame(event.data);
    };
    socket.onclose = (event) => onClose(event);
  }

  async function onClose(event) {
    socket = null;
    keysDown.clear();
    pressed = 0;
    if (FINAL[event.reason]) return finish(FINAL[event.reason], event.reason);
    if (!opened) {
      // The upgrade was refused: ask over plain HTTP why (401 bad token, 410 ended, 404 no such tab…).
      const refusal = await whyRefused();
      if (refusal) return finish(refusal, "refused");
    }
    if (retries < 5) {
      retries += 1;
      setStatus("Reconnecting…");
      setTimeout(connect, 500 * 2 ** retries);
      return;
    }
    finish(event.reason ? `Disconnected: ${event.reason}` : "Disconnected", "disconnected");
  }

  async function whyRefused() {
    try {
      const response = await fetch(socketUrl(location.protocol), { cache: "no-store" });
      const body = await response.json();
      return body.message || `Error ${response.status}`;
    } catch {
      return null; // the server is unreachable: try again
    }
  }

  function finish(text, reason) {
    view.state = "closed";
    view.reason = reason;
    document.body.classList.add("closed");
    setStatus(text);
  }

  function onText(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type !== "hello") return;
    view.targetId = message.targetId;
    view.readOnly = Boolean(message.readOnly);
    if (message.title || message.url) document.title = `${message.title || message.url} · live view`;
    badge.hidden = !view.readOnly;
    canvas.classList.toggle("readonly", view.readOnly);
    if (!view.readOnly) attachInput();
  }

  // -- frames: [u32 header length][JSON header][JPEG] ----------------------------------------------

  async function onFrame(buffer) {
    try {
      const length = new DataView(buffer).getUint32(0);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
      const jpeg = new Blob([new Uint8Array(buffer, 4 + length)], { type: "image/jpeg" });
      const bitmap = await createImageBitmap(jpeg);
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
        layout();
      }
      context.drawImage(bitmap, 0, 0);
      bitmap.close();
      view.header = header;
      view.frames += 1;
      if (view.state !== "live") {
        view.state = "live";
        retries = 0;
        setStatus("");
        canvas.focus({ preventScroll: true });
      }
    } catch (error) {
      console.warn("live view: frame not drawn", error);
    } finally {
      send({ type: "ack" }); // the server sends the next frame only now
    }
  }

  // The frame, as large as fits the window, its aspect kept.
  function layout() {
    if (!canvas.width || !canvas.height) return;
    const scale = Math.min(innerWidth / canvas.width, innerHeight / canvas.height);
    canvas.style.width = `${Math.floor(canvas.width * scale)}px`;
    canvas.style.height = `${Math.floor(canvas.height * scale)}px`;
  }

  let resizeTimer = 0;
  addEventListener("resize", () => {
    layout();
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const [width, height] = wantedSize();
      send({ type: "size", width, height });
    }, 250);
  });

  // -- input -----------------------------------------------------------------------------------------

  function modifiers(event) {
    return (event.altKey ? 1 : 0) | (event.ctrlKey ? 2 : 0) | (event.metaKey ? 4 : 0) | (event.shiftKey ? 8 : 0);
  }

  // Where the pointer is, as fractions of the frame; the server maps them to the tab's CSS pixels.
  function position(event) {
    const rect = canvas.getBoundingClientRect();
    const clamp = (value) => Math.min(1, Math.max(0, value));
    return {
      x: clamp((event.clientX - rect.left) / rect.width),
      y: clamp((event.clientY - rect.top) / rect.height),
    };
  }

  function heldButton(buttons) {
    if (buttons & 1) return "left";
    if (buttons & 2) return "right";
    if (buttons & 4) return "middle";
    return "none";
  }

  function mouse(kind, event, button) {
    return {
      type: "mouse",
      event: kind,
      ...position(event),
      button,
      buttons: event.buttons & 31,
      clickCount: kind === "move" ? 0 : Math.min(Math.max(event.detail, 1), 3),
      modifiers: modifiers(event),
    };
  }

  let pressed = 0; // buttons pressed on the frame and not yet released (anywhere)
  let lastMouse = null; // the last mouse message sent, for releasing buttons when focus goes
  let pendingMove = null;
  let moveScheduled = false;

  function sendMouse(message) {
    lastMouse = message;
    sendInput(message);
  }

  function flushMove() {
    if (pendingMove) sendMouse(pendingMove);
    pendingMove = null;
  }

  function onMouseDown(event) {
    event.preventDefault();
    canvas.focus({ preventScroll: true });
    flushMove();
    pressed |= 1 << event.button;
    sendMouse(mouse("down", event, BUTTONS[event.button] || "none"));
  }

  function onMouseUp(event) {
    if (!(pressed & (1 << event.button))) return;
    pressed &= ~(1 << event.button);
    flushMove();
    sendMouse(mouse("up", event, BUTTONS[event.button] || "none"));
  }

  function onMouseMove(event) {
    if (!pressed && event.target !== canvas) return;
    pendingMove = mouse("move", event, heldButton(event.buttons));
    if (moveScheduled) return;
    moveScheduled = true;
    requestAnimationFrame(() => {
      moveScheduled = false;
      flushMove(); // at most one move a display frame
    });
  }

  function onWheel(event) {
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? innerHeight : 1;
    flushMove();
    sendInput({
      type: "wheel",
      ...position(event),
      deltaX: event.deltaX * unit,
      deltaY: event.deltaY * unit,
      modifiers: modifiers(event),
    });
  }

  const keysDown = new Map(); // code → the keydown message, to release them when focus goes

  function onKey(event) {
    if (event.isComposing || !event.key || event.key.length > 32) return;
    const pasting = (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "v";
    if (pasting) return; // the paste event sends the clipboard's text
    event.preventDefault();
    const message = {
      type: "key",
      event: event.type === "keydown" ? "down" : "up",
      key: event.key,
      code: event.code.slice(0, 32),
      keyCode: event.keyCode & 255,
      location: event.location,
      repeat: event.repeat,
      modifiers: modifiers(event),
    };
    if (message.event === "down") keysDown.set(event.code, message);
    else keysDown.delete(event.code);
    flushMove();
    sendInput(message);
  }

  // Focus went elsewhere (or the socket closed): nothing may stay pressed in the tab.
  function releaseAll() {
    for (const message of keysDown.values()) sendInput({ ...message, event: "up", repeat: false });
    keysDown.clear();
    for (let bit = 0; bit < BUTTONS.length; bit += 1) {
      if (!(pressed & (1 << bit)) || !lastMouse) continue;
      sendMouse({ ...lastMouse, event: "up", button: BUTTONS[bit], buttons: 0, clickCount: 1 });
    }
    pressed = 0;
  }

  function onPaste(event) {
    const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
    if (!text) return;
    event.preventDefault();
    sendInput({ type: "text", text: text.slice(0, MAX_TEXT) });
  }

  function attachInput() {
    if (inputAttached) return;
    inputAttached = true;
    canvas.addEventListener("mousedown", onMouseDown);
    addEventListener("mouseup", onMouseUp);
    addEventListener("mousemove", onMouseMove);
    canvas.addEventListener("wheel", onWheel, { passive: false });
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    addEventListener("keydown", onKey);
    addEventListener("keyup", onKey);
    addEventListener("paste", onPaste);
    addEventListener("blur", releaseAll);
  }

  if (!new URLSearchParams(location.search).get("t")) {
    finish("This live view link has no token.", "refused");
  } else {
    connect();
  }
})();
