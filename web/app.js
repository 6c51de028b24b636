// The VoiceChatStack web client, on the chat service's Realtime API
// (/v1/realtime, OpenAI's events): typed messages, push-to-talk and
// hands-free voice (server VAD), answers spoken as they are made, and
// barge-in (speaking over an answer stops it; the server keeps what was
// heard). No framework: the page is small and this keeps it inspectable.
"use strict";

const $ = (id) => document.getElementById(id);

// The Realtime API's audio/pcm: 16-bit mono at 24 kHz, both ways.
const RATE = 24000;
// Microphone audio goes out in pieces of this many samples (100 ms).
const SEND_SAMPLES = 2400;

const state = {
  token: "",
  socket: null,
  sessionId: null,
  mode: "push-to-talk",
  // The answer being streamed: its list item and its item id.
  answer: null,
  answerItem: null,
  // User turns by item id, shown while they are transcribed.
  turns: new Map(),
  // Sessions that hold messages (from the session list).
  knownSessions: new Set(),
  reconnectDelay: 500,
  closing: false,
};

// ---- sign-in -----------------------------------------------------------------

function readFragment() {
  // The run-local script prints http://host:port/#token=...; the fragment
  // never reaches a server log.
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("token")) sessionStorage.setItem("token", params.get("token"));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}

function signIn(token) {
  state.token = token.trim();
  sessionStorage.setItem("token", state.token);
  $("login").hidden = true;
  $("app").hidden = false;
  connect(sessionStorage.getItem("sessionId"));
  $("message").focus();
}

function signOut(reason) {
  sessionStorage.removeItem("token");
  state.token = "";
  state.closing = true;
  if (state.socket) state.socket.close(1000);
  stopMicrophone();
  $("app").hidden = true;
  $("login").hidden = false;
  setStatus(reason || "signed out");
}

// ---- status and errors -------------------------------------------------------

function setStatus(text) {
  $("connection").textContent = text;
}

function notice(text) {
  $("notice").textContent = text || "";
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error.message} (${body.error.code})`;
  } catch (_) { /* not JSON: fall through */ }
  return `HTTP ${response.status}`;
}

function authHeaders() {
  return { Authorization: `Bearer ${state.token}` };
}

// ---- sessions and their history (REST) ------------------------------------

async function refreshSessions() {
  const response = await fetch("/api/v1/sessions", { headers: authHeaders() });
  if (response.status === 401) return signOut("the token was refused: sign in again");
  if (!response.ok) return notice(`sessions: ${await errorText(response)}`);
  const { sessions } = await response.json();
  state.knownSessions = new Set(sessions.map((s) => s.session_id));
  const list = $("sessions");
  list.replaceChildren();
  sessions.sort((a, b) => b.updated_at - a.updated_at);
  for (const s of sessions) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const when = new Date(s.updated_at * 1000).toLocaleString();
    button.textContent = `${when} · ${s.message_count} ${s.message_count === 1 ? "message" : "messages"}`;
    button.title = s.session_id;
    button.setAttribute("aria-current", String(s.session_id === state.sessionId));
    button.addEventListener("click", () => connect(s.session_id));
    item.append(button);
    list.append(item);
  }
}

// A session that holds messages shows them (a new one is not listed yet:
// asking for its messages would be a 404).
async function showHistory(sessionId) {
  if (!state.knownSessions.has(sessionId)) return;
  const response = await fetch(`/api/v1/sessions/${encodeURIComponent(sessionId)}/messages`, { headers: authHeaders() });
  if (!response.ok) return notice(`history: ${await errorText(response)}`);
  const { messages } = await response.json();
  for (const m of messages) addMessage(m.role, m.content, m.interrupted);
}

// ---- the realtime socket -----------------------------------------------------

function connect(sessionId) {
  state.closing = true;
  if (state.socket) state.socket.close(1000);
  state.closing = false;
  stopPlayback(false);
  $("messages").replaceChildren();
  state.turns.clear();
  notice("");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ model: "voicechat" });
  if (sessionId) query.set("session_id", sessionId);
  // Browsers cannot set headers on a WebSocket: OpenAI's form carries the
  // token as a subprotocol, which the server never echoes.
  const socket = new WebSocket(`${scheme}://${location.host}/v1/realtime?${query}`,
    ["realtime", `openai-insecure-api-key.${state.token}`]);
  state.socket = socket;
  setStatus("connecting…");
  socket.addEventListener("open", () => {
    state.reconnectDelay = 500;
    configure();
  });
  socket.addEventListener("message", (e) => {
    if (socket !== state.socket) return;
    let event;
    try {
      event = JSON.parse(e.data);
    } catch (_) {
      return notice("the server sent something that is not JSON");
    }
    onEvent(event);
  });
  socket.addEventListener("close", (e) => {
    if (socket !== state.socket) return;
    setBusy(false);
    if (e.code === 4001) return signOut(`signed out: ${e.reason || "token refused"}`);
    if (state.closing || !state.token) return;
    setStatus(`disconnected (${e.code}${e.reason ? ": " + e.reason : ""}); reconnecting…`);
    const delay = state.reconnectDelay;
    state.reconnectDelay = Math.min(delay * 2, 10000);
    setTimeout(() => { if (socket === state.socket) connect(state.sessionId); }, delay);
  });
}

function sendEvent(event) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
    notice("not connected yet: try again in a moment");
    return false;
  }
  state.socket.send(JSON.stringify(event));
  return true;
}

function speaking() {
  return $("speak").checked;
}

// The session as the page's controls say: answers spoken or not, and
// hands-free (server VAD answers each turn) or push-to-talk.
function configure() {
  const handsFree = state.mode === "hands-free";
  sendEvent({
    type: "session.update",
    session: {
      type: "realtime",
      output_modalities: [speaking() ? "audio" : "text"],
      audio: {
        input: {
          format: { type: "audio/pcm", rate: RATE },
          turn_detection: handsFree
            ? { type: "server_vad", silence_duration_ms: 500, create_response: true, interrupt_response: true }
            : null,
        },
        output: { format: { type: "audio/pcm", rate: RATE } },
      },
    },
  });
}

function onEvent(event) {
  switch (event.type) {
    case "session.created":
      state.sessionId = event.session.id;
      sessionStorage.setItem("sessionId", state.sessionId);
      $("session-id").textContent = state.sessionId.slice(0, 8);
      refreshSessions().then(() => showHistory(state.sessionId));
      break;
    case "session.updated":
      setStatus(`connected · ${state.mode}${speaking() ? " · spoken answers" : ""}`);
      break;
    case "input_audio_buffer.speech_started":
      // The user talks over the answer: it stops at once, and the server
      // keeps what was heard.
      stopPlayback(true);
      userTurn(event.item_id).classList.add("listening");
      break;
    case "input_audio_buffer.committed":
      userTurn(event.item_id).classList.add("listening");
      break;
    case "conversation.item.input_audio_transcription.delta":
      userTurn(event.item_id).firstChild.textContent += event.delta;
      break;
    case "conversation.item.input_audio_transcription.completed": {
      const turn = userTurn(event.item_id);
      turn.firstChild.textContent = event.transcript;
      turn.classList.remove("listening");
      if (!event.transcript) turn.remove();
      break;
    }
    case "conversation.item.input_audio_transcription.failed":
      userTurn(event.item_id).remove();
      notice(`speech to text: ${event.error.message}`);
      break;
    case "response.created":
      state.answer = addMessage("assistant", "");
      setBusy(true);
      break;
    case "response.output_item.added":
      state.answerItem = event.item.id;
      break;
    case "response.output_text.delta":
    case "response.output_audio_transcript.delta":
      if (state.answer) {
        state.answer.firstChild.textContent += event.delta;
        scrollDown();
      }
      break;
    case "response.output_audio.delta":
      play(event.item_id, event.delta);
      break;
    case "response.done":
      finishAnswer(event.response);
      break;
    case "error":
      notice(`${event.error.message} (${event.error.code})`);
      break;
    default:
      break;
  }
}

function finishAnswer(response) {
  const item = state.answer;
  state.answer = null;
  setBusy(false);
  refreshSessions();
  if (!item) return;
  if (response.status !== "completed") item.classList.add("interrupted");
  if (!item.firstChild.textContent) {
    item.remove();
    return;
  }
  item.dataset.done = "true";
  const timing = document.createElement("span");
  timing.className = "timing";
  const t = response.voicechat_timing || {};
  const parts = [`${response.usage ? response.usage.output_tokens : 0} tokens`];
  if (t.llm_first_token_ms != null) parts.push(`first token ${t.llm_first_token_ms} ms`);
  if (t.first_audio_ms != null) parts.push(`first audio ${t.first_audio_ms} ms`);
  parts.push(`total ${t.total_ms} ms`);
  timing.textContent = parts.join(" · ");
  item.append(timing);
}

function userTurn(itemId) {
  let turn = state.turns.get(itemId);
  if (!turn) {
    turn = addMessage("user", "");
    state.turns.set(itemId, turn);
  }
  return turn;
}

function addMessage(role, content, interrupted) {
  const item = document.createElement("li");
  item.className = role;
  if (interrupted) item.classList.add("interrupted");
  const text = document.createElement("span");
  text.textContent = content;
  item.append(text);
  $("messages").append(item);
  scrollDown();
  return item;
}

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function setBusy(busy) {
  $("stop").disabled = !busy;
}

function sendText(text) {
  text = text.trim();
  if (!text) return;
  notice("");
  stopPlayback(true);
  const sent = sendEvent({
    type: "conversation.item.create",
    item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
  }) && sendEvent({ type: "response.create", response: { output_modalities: [speaking() ? "audio" : "text"] } });
  if (sent) addMessage("user", text);
}

// ---- playing answers -----------------------------------------------------------

// Pieces of 24 kHz PCM scheduled back to back on one audio context; what
// has played of the current item is known, for truncation.
const playback = { context: null, next: 0, sources: [], item: null, itemStart: 0, played: 0 };

function audioContext() {
  if (!playback.context) playback.context = new AudioContext({ sampleRate: RATE });
  return playback.context;
}

function play(itemId, base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
  const context = audioContext();
  const buffer = context.createBuffer(1, samples.length, RATE);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  const at = Math.max(context.currentTime + 0.02, playback.next);
  if (playback.item !== itemId) {
    playback.item = itemId;
    playback.itemStart = at;
  }
  source.start(at);
  source.onended = () => {
    playback.sources = playback.sources.filter((s) => s !== source);
    playback.played += buffer.duration;
    $("player-status").dataset.playedMs = String(Math.round(playback.played * 1000));
    $("player-status").textContent = `played ${playback.played.toFixed(1)} s of answers`;
  };
  playback.sources.push(source);
  playback.next = at + buffer.duration;
}

// Stops what plays; `truncate`: tell the server how much of the answer
// was heard.
function stopPlayback(truncate) {
  const context = playback.context;
  const playing = playback.sources.length > 0;
  for (const s of playback.sources) {
    s.onended = null;
    try { s.stop(); } catch (_) { /* not started */ }
  }
  playback.sources = [];
  if (context) playback.next = context.currentTime;
  if (truncate && playing && playback.item && context) {
    const heardMs = Math.max(0, Math.round((context.currentTime - playback.itemStart) * 1000));
    sendEvent({ type: "conversation.item.truncate", item_id: playback.item, content_index: 0, audio_end_ms: heardMs });
  }
  playback.item = null;
}

// ---- the microphone ------------------------------------------------------------

const mic = { context: null, stream: null, node: null, pending: [], pendingLength: 0, on: false };

async function startMicrophone() {
  if (mic.on) return true;
  mic.on = true;
  try {
    mic.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    // The context resamples the microphone to the API's 24 kHz.
    mic.context = new AudioContext({ sampleRate: RATE });
    await mic.context.audioWorklet.addModule("recorder-worklet.js");
    const source = mic.context.createMediaStreamSource(mic.stream);
    mic.node = new AudioWorkletNode(mic.context, "recorder");
    mic.node.port.onmessage = (e) => queueSamples(e.data);
    source.connect(mic.node);
    return mic.on;
  } catch (e) {
    mic.on = false;
    notice(`microphone: ${e.message}`);
    return false;
  }
}

function queueSamples(floats) {
  mic.pending.push(floats);
  mic.pendingLength += floats.length;
  if (mic.pendingLength >= SEND_SAMPLES) flushSamples();
}

function flushSamples() {
  if (!mic.pendingLength) return;
  const pcm = new Int16Array(mic.pendingLength);
  let at = 0;
  for (const chunk of mic.pending) {
    for (let i = 0; i < chunk.length; i++) {
      const s = Math.max(-1, Math.min(1, chunk[i]));
      pcm[at++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    }
  }
  mic.pending = [];
  mic.pendingLength = 0;
  const bytes = new Uint8Array(pcm.buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  sendEvent({ type: "input_audio_buffer.append", audio: btoa(binary) });
}

async function stopMicrophone() {
  if (!mic.on) return;
  mic.on = false;
  flushSamples();
  if (mic.stream) mic.stream.getTracks().forEach((t) => t.stop());
  if (mic.context) await mic.context.close();
  mic.context = null;
  mic.stream = null;
}

// Push-to-talk: the turn is what was said while the button was held.
async function startTalking() {
  if (state.mode !== "push-to-talk" || mic.on) return;
  $("talk").setAttribute("aria-pressed", "true");
  stopPlayback(true);
  sendEvent({ type: "input_audio_buffer.clear" });
  if (!(await startMicrophone())) $("talk").setAttribute("aria-pressed", "false");
}

async function stopTalking() {
  if (state.mode !== "push-to-talk" || !mic.on) return;
  $("talk").setAttribute("aria-pressed", "false");
  await stopMicrophone();
  if (sendEvent({ type: "input_audio_buffer.commit" })) {
    sendEvent({ type: "response.create", response: { output_modalities: [speaking() ? "audio" : "text"] } });
  }
}

// Hands-free: the microphone stays open and the server finds the turns.
async function setHandsFree(on) {
  state.mode = on ? "hands-free" : "push-to-talk";
  $("hands-free").setAttribute("aria-pressed", String(on));
  $("talk").disabled = on;
  configure();
  if (on) {
    if (!(await startMicrophone())) setHandsFree(false);
  } else {
    await stopMicrophone();
    sendEvent({ type: "input_audio_buffer.clear" });
  }
}

// ---- wiring ----------------------------------------------------------------------

function init() {
  readFragment();
  const saved = sessionStorage.getItem("token");
  if (saved) $("token").value = saved;
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("token").value);
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    sendText($("message").value);
    $("message").value = "";
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("new-session").addEventListener("click", () => {
    sessionStorage.removeItem("sessionId");
    state.sessionId = null;
    connect(null);
  });
  $("stop").addEventListener("click", () => {
    stopPlayback(true);
    sendEvent({ type: "response.cancel" });
  });
  $("speak").addEventListener("change", configure);
  $("hands-free").addEventListener("click", () => setHandsFree(state.mode !== "hands-free"));
  const talk = $("talk");
  talk.addEventListener("pointerdown", (e) => { e.preventDefault(); startTalking(); });
  talk.addEventListener("pointerup", () => stopTalking());
  talk.addEventListener("pointerleave", () => stopTalking());
  talk.addEventListener("keydown", (e) => { if (e.key === " " || e.key === "Enter") { e.preventDefault(); startTalking(); } });
  talk.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") stopTalking(); });
  document.addEventListener("keydown", (e) => {
    if (e.key === " " && !e.repeat && e.target === document.body && !$("app").hidden) {
      e.preventDefault();
      startTalking();
    }
  });
  document.addEventListener("keyup", (e) => {
    if (e.key === " " && e.target === document.body) stopTalking();
  });
  if (saved) signIn(saved);
}

init();
