// chat.js: the web chat page at /chat, on the server's interactive API
// (POST /v1/chat/interactive, LMDeploy's stateful chat). The server keeps the
// conversation (tokens and KV cache) under a session id, so each turn sends only the
// user's new message; this tab owns one session id until "New conversation".
//
// Model text is untrusted: it only ever reaches the page through text nodes
// (textContent / appendData), never through innerHTML.
(function () {
  "use strict";

  const API = "/v1/chat/interactive";
  // How long Stop waits for the server's last line ("cancelled", with the final
  // count) before dropping the connection, which cancels the request as well.
  const STOP_GRACE_MS = 1500;
  const LIMITS = {
    temperature: { min: 0, max: 2 },
    top_p: { min: 0.01, max: 1 },
    max_tokens: { min: 1, max: 4096 },
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    model: $("model-name"), messages: $("messages"), empty: $("empty-hint"),
    form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"), newChat: $("new-chat"),
    temperature: $("temperature"), temperatureValue: $("temperature-value"),
    topP: $("top-p"), topPValue: $("top-p-value"), maxTokens: $("max-tokens"), status: $("status"),
  };

  const state = {
    sessionId: newSessionId(),
    turns: 0,        // turns sent in this session: an unused session needs no ending
    turn: null,      // the turn streaming now, or null
  };

  // A random id in [1, 2^31 - 1]: the server's session ids are positive int32s.
  function newSessionId() {
    const a = new Uint32Array(1);
    crypto.getRandomValues(a);
    const id = (a[0] % 2147483647) + 1;
    document.body.dataset.sessionId = String(id);
    return id;
  }

  function setStatus(text, kind) {
    el.status.textContent = text;
    el.status.dataset.state = kind || "idle";
  }

  function setBusy(busy) {
    el.send.disabled = busy;
    el.stop.disabled = !busy;
    el.form.dataset.busy = busy ? "true" : "false";
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToEnd() {
    el.messages.scrollTop = el.messages.scrollHeight;
  }

  // A message bubble: role "user", "assistant" or "error". Its text lives in one
  // text node (so streaming appends to it) and an optional meta line below it.
  function addMessage(role, text) {
    if (el.empty) { el.empty.remove(); el.empty = null; }
    const div = document.createElement("div");
    div.className = "message";
    div.dataset.role = role;
    div.dataset.testid = "message-" + role;
    const span = document.createElement("span");
    span.className = "text";
    span.dataset.testid = "message-text";
    const node = document.createTextNode(text);
    span.appendChild(node);
    div.appendChild(span);
    el.messages.appendChild(div);
    scrollToEnd();
    return { div, node };
  }

  function setMeta(bubble, text) {
    let meta = bubble.div.querySelector(".meta");
    if (!meta) {
      meta = document.createElement("span");
      meta.className = "meta";
      meta.dataset.testid = "message-meta";
      bubble.div.appendChild(meta);
    }
    meta.textContent = text;
  }

  function showError(message) {
    addMessage("error", message);
    setStatus(message, "error");
  }

  // Reads one number control; returns [value] or [null, message stating the rule].
  function readNumber(input, name, limits, integer) {
    const v = Number(input.value);
    const ok = input.value.trim() !== "" && Number.isFinite(v) && (!integer || Number.isInteger(v)) &&
      v >= limits.min && v <= limits.max;
    if (ok) return [v];
    const what = integer ? "an integer" : "a number";
    return [null, `${name} must be ${what} in [${limits.min}, ${limits.max}], got "${input.value}"`];
  }

  function readSettings() {
    const fields = [
      ["temperature", readNumber(el.temperature, "temperature", LIMITS.temperature, false), el.temperature],
      ["top_p", readNumber(el.topP, "top-p", LIMITS.top_p, false), el.topP],
      ["max_tokens", readNumber(el.maxTokens, "max tokens", LIMITS.max_tokens, true), el.maxTokens],
    ];
    const out = {};
    for (const [key, [value, err], input] of fields) {
      if (err) { input.focus(); return { error: err }; }
      out[key] = value;
    }
    return out;
  }

  // An Error from a non-2xx response with the server's OpenAI-shaped body
  // {"error":{"message","type","param","code"}} when it sent one.
  async function httpError(res) {
    let message = res.statusText || "request failed", code = null;
    const body = await res.text().catch(() => "");
    try {
      const e = JSON.parse(body).error;
      if (e && e.message) { message = e.message; code = e.code || e.type || null; }
    } catch (_) {
      if (body) message = body.slice(0, 300);
    }
    const err = new Error(`HTTP ${res.status}: ${message}` + (code ? ` (${code})` : ""));
    err.code = code;
    return err;
  }

  function postJSON(body, extra) {
    return fetch(API, Object.assign({
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }, extra || {}));
  }

  // A failed turn's last line carries "error": a message, or an OpenAI-shaped object.
  function streamError(e) {
    const message = typeof e === "string" ? e : (e && e.message) || "generation failed";
    const err = new Error(message);
    err.code = (e && e.code) || (message.includes("context_length_exceeded") ? "context_length_exceeded" : null);
    return err;
  }

  // Streamed text reaches the page once per frame: a fast model sends hundreds of
  // lines a second, and touching the DOM (and measuring the scroll position) for
  // each would cost a layout per line.
  function queueText(turn, text) {
    turn.pending += text;
    if (!turn.frame) turn.frame = requestAnimationFrame(() => flushText(turn));
  }

  function flushText(turn) {
    if (turn.frame) cancelAnimationFrame(turn.frame);
    turn.frame = 0;
    if (turn.pending) {
      const follow = nearBottom();
      turn.bubble.node.appendData(turn.pending);
      turn.pending = "";
      if (follow) scrollToEnd();   // a reader who scrolled up stays where they are
    }
    if (!turn.stopping && state.turn === turn) setStatus(`Generating… ${turn.tokens} tokens`, "streaming");
  }

  // One line of the stream: {"text","tokens","input_tokens","history_tokens","finish_reason"}.
  function handleChunk(obj, turn) {
    if (typeof obj.text === "string" && obj.text.length > 0) queueText(turn, obj.text);
    if (typeof obj.tokens === "number") turn.tokens = obj.tokens;
    if (typeof obj.input_tokens === "number") turn.inputTokens = obj.input_tokens;
    if (typeof obj.history_tokens === "number") turn.historyTokens = obj.history_tokens;
    if (obj.finish_reason) turn.finish = obj.finish_reason;
    if (obj.error) throw streamError(obj.error);
  }

  function handleLine(line, turn) {
    line = line.trim();
    if (line.startsWith("data:")) line = line.slice(5).trim();   // tolerate SSE framing
    if (line === "" || line === "[DONE]") return;
    handleChunk(JSON.parse(line), turn);
  }

  // Newline-delimited JSON, decoded as it arrives; a line may span network reads.
  async function readStream(res, turn) {
    const type = res.headers.get("content-type") || "";
    if (!type.includes("ndjson") && !type.includes("event-stream")) {
      handleChunk(await res.json(), turn);   // a non-streamed answer: one object
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (pending + decoder.decode(value, { stream: true })).split("\n");
      pending = lines.pop();   // the unfinished last line waits for the next read
      for (const line of lines) handleLine(line, turn);
    }
    pending += decoder.decode();
    handleLine(pending, turn);
  }

  async function sendTurn(text) {
    const settings = readSettings();
    if (settings.error) { setStatus(settings.error, "error"); return false; }
    addMessage("user", text);
    const bubble = addMessage("assistant", "");
    bubble.div.dataset.state = "streaming";
    const turn = {
      bubble, sessionId: state.sessionId, controller: new AbortController(),
      tokens: 0, inputTokens: 0, historyTokens: 0, finish: null, error: null, stopping: false, timer: null,
      pending: "", frame: 0,   // text received but not yet shown, and the frame that shows it
    };
    turn.done = new Promise((resolve) => { turn.resolve = resolve; });
    state.turn = turn;
    state.turns += 1;
    setBusy(true);
    setStatus("Generating…", "streaming");
    try {
      const res = await postJSON({
        prompt: text, session_id: turn.sessionId, interactive_mode: true, stream: true,
        request_output_len: settings.max_tokens, temperature: settings.temperature, top_p: settings.top_p,
        top_k: 40, repetition_penalty: 1.0, stop: null, ignore_eos: false,
      }, { signal: turn.controller.signal, headers: { "content-type": "application/json", accept: "application/x-ndjson" } });
      if (!res.ok) throw await httpError(res);
      await readStream(res, turn);
      if (!turn.finish) turn.finish = turn.stopping ? "cancelled" : "incomplete";
      if (turn.finish === "error") throw new Error("generation failed on the server");
    } catch (e) {
      if (e.name === "AbortError") turn.finish = "cancelled";
      else turn.error = e.name === "TypeError" ? new Error("cannot reach the server: " + e.message) : e;
    }
    endTurn(turn);
    return true;
  }

  function endTurn(turn) {
    clearTimeout(turn.timer);
    flushText(turn);
    const b = turn.bubble;
    b.div.dataset.state = "done";
    if (turn.error) {
      b.div.dataset.finish = "error";
      if (b.node.length === 0) b.div.remove();
      const hint = turn.error.code === "context_length_exceeded" ? " Start a new conversation to go on." : "";
      showError(turn.error.message + hint);
    } else {
      b.div.dataset.finish = turn.finish;
      setMeta(b, `${turn.tokens} tokens · ${turn.finish}`);
      setStatus(`Done: ${turn.tokens} tokens, finish: ${turn.finish}` +
        ` (prompt ${turn.inputTokens}, history ${turn.historyTokens}).`, "done");
    }
    el.status.dataset.finish = turn.error ? "error" : turn.finish;
    state.turn = null;
    setBusy(false);
    turn.resolve();
    el.input.focus();
  }

  // Stop: ask the server to cancel this session's running turn (it keeps what was
  // generated), then give the stream a moment to deliver its last line.
  function stop() {
    const turn = state.turn;
    if (!turn || turn.stopping) return;
    turn.stopping = true;
    el.stop.disabled = true;
    setStatus("Stopping…", "streaming");
    postJSON({ session_id: turn.sessionId, cancel: true }).catch(() => {});
    turn.timer = setTimeout(() => turn.controller.abort(), STOP_GRACE_MS);
  }

  // Ends the server's session (its history and KV are freed) and starts a new one.
  async function newConversation() {
    if (state.turn) { stop(); await state.turn.done; }
    const old = state.sessionId, used = state.turns > 0;
    state.sessionId = newSessionId();
    state.turns = 0;
    el.messages.replaceChildren();
    setStatus("New conversation.", "idle");
    delete el.status.dataset.finish;
    el.input.focus();
    if (!used) return;
    try {
      const res = await postJSON({ session_id: old, prompt: "", interactive_mode: false, request_output_len: 0 });
      if (!res.ok) throw await httpError(res);
      await res.text();
    } catch (e) {
      setStatus("Could not end the previous session: " + e.message, "error");
    }
  }

  function submit() {
    const text = el.input.value.trim();
    if (text === "" || state.turn) return;
    el.input.value = "";
    sendTurn(text).then((sent) => { if (!sent) el.input.value = text; });
  }

  async function loadModelName() {
    try {
      const res = await fetch("/v1/models");
      if (!res.ok) throw await httpError(res);
      const list = await res.json();
      const first = list && list.data && list.data[0];
      el.model.textContent = first ? first.id : "no model";
      if (first) document.title = `${first.id} · tmrun chat`;
    } catch (e) {
      el.model.textContent = "model unavailable";
      setStatus("Could not list models: " + e.message, "error");
    }
  }

  function bindSlider(input, output) {
    const show = () => { output.textContent = input.value; };
    input.addEventListener("input", show);
    show();
  }

  el.form.addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });
  el.input.addEventListener("keydown", (ev) => {
    // Enter sends, Shift+Enter is a newline; an IME composing a character keeps Enter.
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(); }
  });
  el.stop.addEventListener("click", stop);
  el.newChat.addEventListener("click", () => { newConversation(); });
  bindSlider(el.temperature, el.temperatureValue);
  bindSlider(el.topP, el.topPValue);
  // Leaving the page ends the session so the server frees its KV cache at once
  // rather than when its LRU evicts it; keepalive lets the request outlive the page.
  window.addEventListener("pagehide", () => {
    if (state.turns === 0) return;
    postJSON({ session_id: state.sessionId, prompt: "", interactive_mode: false, request_output_len: 0 },
      { keepalive: true }).catch(() => {});
  });

  setBusy(false);
  loadModelName();
  el.input.focus();
})();
