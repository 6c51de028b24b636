//! `GET /v1/realtime`: OpenAI's Realtime API (GA event names) on the chat
//! service, so that the official clients and the agent frameworks built on
//! them hold a spoken conversation with this stack unchanged. Chat owns
//! the conversation (the same sessions and history as `/ws/chat`); the
//! voice service (`VOICE_URL`) hears and speaks.
//!
//! Auth as for `/ws/chat`, plus OpenAI's forms: `Authorization: Bearer`
//! (the official clients send the API key so) and the browser's
//! subprotocols `realtime, openai-insecure-api-key.<token>`. A refused
//! token closes the socket with 4001 before any session starts.

mod items;
mod response;
mod session;
pub mod settings;

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voicechat_common::auth::{Principal, websocket_token};
use voicechat_common::realtime::{
    EventError,
    protocol::{MAX_EVENT_BYTES, SOCKET_BUFFER_BYTES},
};
use voicechat_common::ws::{self, code};

use self::session::{Internal, Session, SessionParts, TranscriptionJob};
use crate::conversation::{Conversation, OpenError};
use crate::metrics::GaugeGuard;
use crate::state::AppState;
use crate::voice_client::VoiceClient;

#[derive(Debug, Deserialize)]
pub struct RealtimeQuery {
    token: Option<String>,
    model: Option<String>,
    intent: Option<String>,
    /// Continue this chat session (its history is the conversation).
    session_id: Option<String>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<RealtimeQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A 15 MiB audio append in base64 must be readable, to be refused by
    // its size with an error event instead of a closed socket.
    let ws = ws
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(MAX_EVENT_BYTES)
        .max_frame_size(MAX_EVENT_BYTES);
    let token = websocket_token(query.token.as_deref(), &headers).map(|(t, _)| t.to_owned());
    let (ws, auth) =
        ws::authenticate_upgrade(ws, query.token.as_deref(), &headers, &state.verifier).await;
    let tracker = state.tasks.clone();
    ws.on_upgrade(move |socket| {
        tracker.track_future(async move {
            match (auth, token) {
                (Ok(principal), Some(token)) => run(socket, state, principal, token, query).await,
                (Err(e), _) => {
                    state.metrics.error("unauthorized");
                    ws::refuse(socket, &e).await;
                }
                (Ok(_), None) => {
                    ws::close(socket, code::UNAUTHORIZED, "missing bearer token").await
                }
            }
        })
    })
}

async fn run(
    socket: WebSocket,
    state: AppState,
    principal: Principal,
    token: String,
    query: RealtimeQuery,
) {
    if query.intent.as_deref().is_some_and(|i| i != "conversation") {
        ws::close(
            socket,
            code::BAD_REQUEST,
            "transcription sessions are the voice service's /v1/realtime",
        )
        .await;
        return;
    }
    let opened = match Conversation::open(&state, &principal.user_id, query.session_id).await {
        Ok(opened) => opened,
        Err(e) => {
            let close = match e {
                OpenError::InvalidSessionId => code::BAD_REQUEST,
                OpenError::Forbidden => code::FORBIDDEN,
            };
            state.metrics.error(e.code());
            ws::close(socket, close, &e.to_string()).await;
            return;
        }
    };
    let voice = state.voice.clone();
    let _active = GaugeGuard::inc(&state.metrics.realtime_sessions);
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::channel::<Value>(256);
    let (close_tx, close_rx) = mpsc::channel::<(u16, &'static str)>(1);
    let writer = tokio::spawn(voicechat_common::realtime::socket::write_events(
        sink, out_rx, close_rx,
    ));
    let (internal, mut reports) = mpsc::channel::<Internal>(16);
    let (transcriber, jobs) = mpsc::channel::<TranscriptionJob>(16);
    let transcribing = tokio::spawn(transcribe_in_order(
        voice.clone(),
        token.clone(),
        jobs,
        internal.clone(),
    ));
    let mut session = Session::new(SessionParts {
        state: state.clone(),
        voice,
        token,
        user_id: principal.user_id.clone(),
        out: out.clone(),
        internal,
        transcriber,
        model: query.model.unwrap_or_else(|| "voicechat-realtime".into()),
        conversation: opened.conversation,
    });
    tracing::info!(session_id = %session.session_id(), "realtime session opened");
    session.created().await;

    let limits = state.config.limits.clone();
    let mut last_heard = Instant::now();
    let mut ping =
        tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
    let mut shutting_down = false;
    let close_with = loop {
        if shutting_down && !session.is_responding() {
            break Some((code::GOING_AWAY, "server shutting down"));
        }
        tokio::select! {
            frame = stream.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => break ws::for_read_error(e),
                    None => break None,
                };
                last_heard = Instant::now();
                match frame {
                    Message::Text(text) => match voicechat_common::realtime::parse(text.as_str()) {
                        Ok(incoming) => session.handle(incoming).await,
                        Err(e) => {
                            state.metrics.error(e.code);
                            let _ = out.send(e.to_event()).await;
                        }
                    },
                    Message::Binary(_) => {
                        let e = EventError::invalid("unsupported_frame", "binary frames are not accepted: send JSON events as text", "");
                        let _ = out.send(e.to_event()).await;
                    }
                    Message::Close(_) => break None,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            Some(report) = reports.recv() => session.internal(report).await,
            _ = ping.tick() => {
                if !session.is_responding() && last_heard.elapsed() > limits.idle_timeout {
                    break Some((code::IDLE_TIMEOUT, "idle timeout"));
                }
            }
            () = state.shutdown.cancelled(), if !shutting_down => shutting_down = true,
        }
    };

    // The client is gone or the socket closes: stop the answer, and let it
    // report (its partial text is stored) for a little while.
    session.close();
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.is_responding() {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(report)) => session.internal(report).await,
            _ => break,
        }
    }
    transcribing.abort();
    let we_close = close_with.is_some();
    if let Some(reason) = close_with {
        let _ = close_tx.send(reason).await;
    }
    drop(session);
    drop(out);
    drop(close_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    if we_close {
        ws::await_close_reply(&mut stream).await;
    }
}

/// Transcribes committed turns one at a time, in order, so that their
/// messages are stored in the order they were spoken.
async fn transcribe_in_order(
    voice: VoiceClient,
    token: String,
    mut jobs: mpsc::Receiver<TranscriptionJob>,
    reports: mpsc::Sender<Internal>,
) {
    while let Some(job) = jobs.recv().await {
        let started = std::time::Instant::now();
        let audio_secs = job.turn.duration_secs();
        let result = voice
            .transcribe(&token, job.turn.to_wav(), job.language.as_deref())
            .await;
        let report = Internal::Transcribed {
            job: job.job,
            item_id: job.item_id,
            audio_secs,
            started,
            result,
        };
        if reports.send(report).await.is_err() {
            return;
        }
    }
}
