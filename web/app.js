// The VoiceChatStack web client: chat over the chat service's WebSocket,
// push-to-talk through the voice service (browser microphone → WAV → STT),
// and answers spoken sentence by sentence while they stream (TTS).
// No framework: the page is small and this keeps it fast and inspectable.
"use strict";

const $ = (id) => document.getElementById(id);

// A sentence ends at . ! or ? (optionally closed by a quote or bracket)
// followed by whitespace; the rest waits for more tokens.
const SENTENCE_END = /[.!?]+["')\]]?\s/g;
// Speak at most this much per request; the voice service caps input too.
const MAX_TTS_CHARS = 1000;

const state = {
  token: "",
  voiceUrl: "",
  socket: null,
  sessionId: null,
  // The answer being streamed: its list item and the text not yet spoken.
  answer: null,
  unspoken: "",
  reconnectDelay: 500,
  closing: false,
};

// ---- settings and sign-in ----------------------------------------------

function defaultVoiceUrl() {
  return `${location.protocol}//${location.hostname}:8006`;
}

function readFragment() {
  // The run-local script prints http://host:port/#token=...; the fragment
  // never reaches a server log.
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("token")) sessionStorage.setItem("token", params.get("token"));
  if (params.has("voice")) localStorage.setItem("voiceUrl", params.get("voice"));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}

function signIn(token, voiceUrl) {
  state.token = token.trim();
  state.voiceUrl = voiceUrl.trim().replace(/\/+$/, "");
  sessionStorage.setItem("token", state.token);
  localStorage.setItem("voiceUrl", state.voiceUrl);
  $("login").hidden = true;
  $("app").hidden = false;
  connect(sessionStorage.getItem("sessionId"));
  refreshSessions();
  $("message").focus();
}

function signOut(reason) {
  sessionStorage.removeItem("token");
  state.token = "";
  state.closing = true;
  if (state.socket) state.socket.close(1000);
  $("app").hidden = true;
  $("login").hidden = false;
  setStatus(reason || "signed out");
}

// ---- status and errors ---------------------------------------------------

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

// ---- REST helpers ----------------------------------------------------------

function authHeaders(extra) {
  return Object.assign({ Authorization: `Bearer ${state.token}` }, extra || {});
}

async function refreshSessions() {
  const response = await fetch("/api/v1/sessions", { headers: authHeaders() });
  if (response.status === 401) return signOut("the token was refused: sign in again");
  if (!response.ok) return notice(`sessions: ${await errorText(response)}`);
  const { sessions } = await response.json();
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
    button.dataset.sessionId = s.session_id;
    button.setAttribute("aria-current", String(s.session_id === state.sessionId));
    button.addEventListener("click", () => connect(s.session_id));
    item.append(button);
    list.append(item);
  }
}

// ---- the chat socket -------------------------------------------------------

function connect(sessionId) {
  state.closing = true;
  if (state.socket) state.socket.close(1000);
  state.closing = false;
  stopSpeaking();
  $("messages").replaceChildren();
  notice("");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ token: state.token });
  if (sessionId) query.set("session_id", sessionId);
  const socket = new WebSocket(`${scheme}://${location.host}/ws/chat?${query}`);
  state.socket = socket;
  setStatus("connecting…");
  socket.addEventListener("open", () => {
    state.reconnectDelay = 500;
    setStatus("connected");
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
    if (e.code === 1008 || e.code === 4401) return signOut(`signed out: ${e.reason || "token refused"}`);
    if (state.closing || !state.token) return;
    // Reconnect to the same session, backing off up to 10 s.
    setStatus(`disconnected (${e.code}${e.reason ? ": " + e.reason : ""}); reconnecting…`);
    const delay = state.reconnectDelay;
    state.reconnectDelay = Math.min(delay * 2, 10000);
    setTimeout(() => { if (socket === state.socket) connect(state.sessionId); }, delay);
  });
}

function onEvent(event) {
  switch (event.type) {
    case "session":
      state.sessionId = event.session_id;
      sessionStorage.setItem("sessionId", event.session_id);
      $("session-id").textContent = event.session_id.slice(0, 8);
      if (event.created) refreshSessions();
      break;
    case "history":
      for (const m of event.messages) addMessage(m.role, m.content, m.interrupted);
      if (!event.persisted) notice("history is not available right now");
      break;
    case "ack":
      if (!event.persisted) notice("this message could not be saved to history");
      break;
    case "token":
      if (!state.answer) {
        state.answer = addMessage("assistant", "");
        state.answer.dataset.messageId = event.message_id;
      }
      state.answer.firstChild.textContent += event.content;
      scrollDown();
      speakCompleteSentences(event.content);
      break;
    case "done": {
      const item = state.answer || addMessage("assistant", event.content);
      item.firstChild.textContent = event.content;
      item.dataset.done = "true";
      const timing = document.createElement("span");
      timing.className = "timing";
      const first = event.timing.first_token_ms;
      timing.textContent = `${event.tokens} tokens · first token ${first ?? "–"} ms · total ${event.timing.total_ms} ms`;
      item.append(timing);
      speakRest();
      state.answer = null;
      setBusy(false);
      refreshSessions();
      break;
    }
    case "error":
      notice(`${event.message} (${event.code})`);
      if (state.answer) state.answer.classList.add("interrupted");
      speakRest();
      state.answer = null;
      setBusy(false);
      break;
    case "warning":
      notice(event.message);
      break;
    default:
      break;
  }
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

function send(text) {
  text = text.trim();
  if (!text) return;
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
    return notice("not connected yet: try again in a moment");
  }
  notice("");
  stopSpeaking();
  addMessage("user", text);
  state.answer = null;
  state.unspoken = "";
  state.socket.send(JSON.stringify({ type: "message", content: text }));
  setBusy(true);
}

// ---- speaking answers (TTS), sentence by sentence --------------------------

// Clips are fetched as soon as their sentence is complete, and played in order.
const speech = { queue: [], playing: false, generation: 0 };

function speakCompleteSentences(piece) {
  if (!$("speak").checked) return;
  state.unspoken += piece;
  let cut = 0;
  for (const match of state.unspoken.matchAll(SENTENCE_END)) cut = match.index + match[0].length;
  if (cut > 0) {
    enqueueSpeech(state.unspoken.slice(0, cut));
    state.unspoken = state.unspoken.slice(cut);
  }
}

function speakRest() {
  if ($("speak").checked) enqueueSpeech(state.unspoken);
  state.unspoken = "";
}

function enqueueSpeech(text) {
  text = text.trim();
  if (!text) return;
  for (let i = 0; i < text.length; i += MAX_TTS_CHARS) {
    const generation = speech.generation;
    const clip = synthesize(text.slice(i, i + MAX_TTS_CHARS)).catch((e) => {
      if (generation === speech.generation) notice(`speech: ${e.message}`);
      return null;
    });
    speech.queue.push(clip);
  }
  if (!speech.playing) playNext();
}

async function synthesize(text) {
  const response = await fetch(`${state.voiceUrl}/api/v1/tts`, {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify({ text }),
  });
  if (!response.ok) throw new Error(await errorText(response));
  return response.blob();
}

async function playNext() {
  const next = speech.queue.shift();
  if (!next) {
    speech.playing = false;
    return;
  }
  speech.playing = true;
  const generation = speech.generation;
  const blob = await next;
  if (generation !== speech.generation) return;
  if (!blob) return playNext();
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(blob);
  player.onended = () => {
    player.dataset.played = String(Number(player.dataset.played || 0) + 1);
    playNext();
  };
  try {
    await player.play();
  } catch (e) {
    // Autoplay refused (no user gesture yet): leave the clip in the player.
    notice(`press play to hear the answer (${e.message})`);
    speech.playing = false;
  }
}

function stopSpeaking() {
  speech.generation += 1;
  speech.queue = [];
  speech.playing = false;
  $("player").pause();
}

// ---- push-to-talk (STT) ----------------------------------------------------

const mic = { context: null, stream: null, node: null, chunks: [], recording: false };

async function startTalking() {
  if (mic.recording) return;
  mic.recording = true;
  $("talk").setAttribute("aria-pressed", "true");
  stopSpeaking();
  try {
    mic.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    mic.context = new AudioContext();
    await mic.context.audioWorklet.addModule("recorder-worklet.js");
    const source = mic.context.createMediaStreamSource(mic.stream);
    mic.node = new AudioWorkletNode(mic.context, "recorder");
    mic.chunks = [];
    mic.node.port.onmessage = (e) => mic.chunks.push(e.data);
    source.connect(mic.node);
    if (!mic.recording) await stopTalking();
  } catch (e) {
    mic.recording = false;
    $("talk").setAttribute("aria-pressed", "false");
    notice(`microphone: ${e.message}`);
  }
}

async function stopTalking() {
  if (!mic.context) {
    mic.recording = false;
    return;
  }
  mic.recording = false;
  $("talk").setAttribute("aria-pressed", "false");
  const sampleRate = mic.context.sampleRate;
  mic.stream.getTracks().forEach((t) => t.stop());
  await mic.context.close();
  mic.context = null;
  const samples = concat(mic.chunks);
  mic.chunks = [];
  if (samples.length < sampleRate * 0.2) return notice("hold the button while you speak");
  setStatus("transcribing…");
  const response = await fetch(`${state.voiceUrl}/api/v1/stt`, {
    method: "POST",
    headers: authHeaders({ "Content-Type": "audio/wav" }),
    body: encodeWav(samples, sampleRate),
  });
  setStatus("connected");
  if (!response.ok) return notice(`speech to text: ${await errorText(response)}`);
  const { text } = await response.json();
  if (!text || !text.trim()) return notice("no speech was recognized");
  send(text);
}

function concat(chunks) {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// 16-bit PCM mono WAV; the voice service resamples to what its engines take.
function encodeWav(samples, sampleRate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

// ---- wiring ----------------------------------------------------------------

function init() {
  readFragment();
  $("voice-url").value = localStorage.getItem("voiceUrl") || defaultVoiceUrl();
  const saved = sessionStorage.getItem("token");
  if (saved) $("token").value = saved;
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("token").value, $("voice-url").value);
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send($("message").value);
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
    stopSpeaking();
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify({ type: "cancel" }));
    }
  });
  const talk = $("talk");
  talk.addEventListener("pointerdown", (e) => { e.preventDefault(); startTalking(); });
  talk.addEventListener("pointerup", () => stopTalking());
  talk.addEventListener("pointerleave", () => { if (mic.recording) stopTalking(); });
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
  if (saved) signIn(saved, $("voice-url").value);
}

init();
