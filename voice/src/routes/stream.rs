//! `GET /ws/stt`: streaming speech-to-text. The client sends binary frames
//! of 16 kHz mono 16-bit little-endian PCM and `{"type":"end"}` when an
//! utterance is over; the server sends `ready` once, then `partial`
//! results as they change and a `final` result at each pause the engine
//! detects (`"reason":"pause"`) and in answer to `end` (`"reason":"end"`);
//! the connection then takes the next utterance.
//! Query: `token`, `language`, `engine`, `grammar` (JSON array, Vosk).
//! Close codes: 4001 unauthorized, 4400 bad parameters, 1009 frame or
//! stream too large, 1007 invalid UTF-8 in a text frame.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use voicechat_common::ws::{self, close, code};

use crate::state::AppState;
use crate::stt::router::{self, RouteRequest};
use crate::stt::{StreamUpdate, SttOptions, Transcript};

const MAX_FRAME_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    token: Option<String>,
    language: Option<String>,
    engine: Option<String>,
    grammar: Option<String>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ws = ws
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES);
    let (ws, auth) =
        ws::authenticate_upgrade(ws, query.token.as_deref(), &headers, &state.verifier).await;
    ws.on_upgrade(move |socket| async move {
        match auth {
            Ok(_) => run(socket, state, query).await,
            Err(e) => ws::refuse(socket, &e).await,
        }
    })
}

async fn send(socket: &mut WebSocket, value: serde_json::Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// `reason`: `pause` (the engine settled an utterance mid-stream) or
/// `end` (the answer to the client's `end`).
fn final_event(t: &Transcript, engine: &str, reason: &str) -> serde_json::Value {
    json!({"type": "final", "reason": reason, "text": t.text, "language": t.language, "engine": engine, "segments": t.segments})
}

async fn run(mut socket: WebSocket, state: AppState, query: StreamQuery) {
    let Some(engines) = state.engines.get().cloned() else {
        return close(socket, code::TRY_AGAIN_LATER, "models are still loading").await;
    };
    let grammar = match query
        .grammar
        .as_deref()
        .map(serde_json::from_str::<Vec<String>>)
        .transpose()
    {
        Ok(g) => g,
        Err(e) => return close(socket, code::BAD_REQUEST, &format!("grammar: {e}")).await,
    };
    let language = query.language.map(|l| l.to_ascii_lowercase());
    let facts = engines.stt_facts(language.as_deref());
    // Streaming counts as short audio: Vosk first where it has the language.
    let request = RouteRequest {
        engine: query.engine.as_deref(),
        duration_secs: 0.0,
        has_grammar: grammar.is_some(),
    };
    let index = match router::plan(
        &facts,
        &request,
        engines.profile,
        state.config.vosk_max_secs,
    ) {
        Ok(order) => order[0],
        Err(e) => return close(socket, code::BAD_REQUEST, &e.to_string()).await,
    };
    let options = SttOptions { language, grammar };
    let engine_name = engines.stt[index].name();
    let max_samples = state.config.max_audio_secs as usize * crate::audio::STT_SAMPLE_RATE as usize;

    // The recognizer lives on one blocking thread for the whole connection
    // (engine streams borrow the engine and are not moved between threads);
    // audio goes to it over a channel, updates come back the same way.
    let (audio_tx, audio_rx) = std::sync::mpsc::sync_channel::<Option<Vec<i16>>>(32);
    let (update_tx, mut update_rx) = tokio::sync::mpsc::channel::<Result<Update, String>>(32);
    let worker_engines = engines.clone();
    let worker_options = options.clone();
    let worker = tokio::task::spawn_blocking(move || {
        let engine = &worker_engines.stt[index];
        let mut stream = match engine.start_stream(&worker_options) {
            Ok(s) => s,
            Err(e) => {
                let _ = update_tx.blocking_send(Err(e.to_string()));
                return;
            }
        };
        while let Ok(message) = audio_rx.recv() {
            let result = match message {
                Some(samples) => stream.accept(&samples).map(Update::Stream),
                None => stream.finish().map(Update::Ended),
            };
            if update_tx
                .blocking_send(result.map_err(|e| e.to_string()))
                .is_err()
            {
                return;
            }
        }
    });

    if !send(&mut socket, json!({"type": "ready", "engine": engine_name, "language": options.language, "sample_rate": 16000})).await {
        return;
    }
    let mut received = 0usize;
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => match ws::for_read_error(e) {
                        Some((code, reason)) => return close(socket, code, reason).await,
                        None => break,
                    },
                    None => break,
                };
                match frame {
                    Message::Binary(bytes) => {
                        if bytes.len() % 2 != 0 {
                            let _ = send(&mut socket, json!({"type": "error", "code": "invalid_audio", "message": "frames must hold whole 16-bit samples"})).await;
                            continue;
                        }
                        received += bytes.len() / 2;
                        if received > max_samples {
                            return close(socket, code::TOO_BIG, "stream longer than the audio limit").await;
                        }
                        let samples = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                        if audio_tx.send(Some(samples)).is_err() {
                            break;
                        }
                    }
                    Message::Text(text) => {
                        if serde_json::from_str::<serde_json::Value>(text.as_str()).is_ok_and(|v| v["type"] == "end") {
                            if audio_tx.send(None).is_err() {
                                break;
                            }
                        } else {
                            let _ = send(&mut socket, json!({"type": "error", "code": "invalid_message", "message": "send binary PCM frames, or {\"type\":\"end\"}"})).await;
                        }
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            update = update_rx.recv() => {
                let event = match update {
                    None => break,
                    Some(Err(e)) => json!({"type": "error", "code": "engine_failed", "message": e}),
                    Some(Ok(Update::Stream(StreamUpdate::Nothing))) => continue,
                    Some(Ok(Update::Stream(StreamUpdate::Partial(text)))) => json!({"type": "partial", "text": text}),
                    Some(Ok(Update::Stream(StreamUpdate::Final(t)))) => final_event(&t, engine_name, "pause"),
                    Some(Ok(Update::Ended(t))) => final_event(&t, engine_name, "end"),
                };
                if !send(&mut socket, event).await {
                    break;
                }
            }
        }
    }
    drop(audio_tx);
    let _ = worker.await;
}

enum Update {
    Stream(StreamUpdate),
    Ended(Transcript),
}
