//! `GET /ws/stt`: streaming speech-to-text. The client sends binary frames
//! of 16 kHz mono 16-bit little-endian PCM and `{"type":"end"}` when an
//! utterance is over; the server sends `ready` once, then `partial`
//! results as they change and a `final` result at each pause the engine
//! detects (`"reason":"pause"`) and in answer to `end` (`"reason":"end"`);
//! the connection then takes the next utterance.
//! Query: `token`, `language`, `engine`, `grammar` (JSON array, Vosk),
//! checked and routed as for `POST /api/v1/stt`.
//! Close codes: 4001 unauthorized, 4400 bad parameters (the reason is the
//! message `POST /api/v1/stt` gives), 1013 models still loading, 1009
//! frame or stream too large, 1007 invalid UTF-8 in a text frame.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use voicechat_common::ws::{self, close, code};

use crate::audio::STT_SAMPLE_RATE;
use crate::engine_name::EngineName;
use crate::speech::{self, PlannedStream, VoiceError};
use crate::state::AppState;
use crate::stt::request::parse_grammar;
use crate::stt::{StreamUpdate, SttRequest};

mod protocol;
mod recognizer;

use protocol::{ClientMessage, ErrorCode, FinalReason, ServerEvent};
use recognizer::{Recognizer, Update};

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

async fn send(socket: &mut WebSocket, event: &ServerEvent) -> bool {
    let Ok(text) = serde_json::to_string(event) else {
        return false;
    };
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// Checks and routes the request as `POST /api/v1/stt` does.
fn open(state: &AppState, query: StreamQuery) -> Result<PlannedStream, VoiceError> {
    let grammar = parse_grammar(query.grammar.as_deref())?;
    let request = SttRequest::new(query.language, query.engine, grammar)?;
    speech::plan_stream(state, request)
}

/// The close frame that refuses a stream: the batch route's message, with
/// 1013 (try again later) while loading and 4400 for anything else.
fn refusal(error: &VoiceError) -> (u16, String) {
    let code = match error {
        VoiceError::Loading => code::TRY_AGAIN_LATER,
        _ => code::BAD_REQUEST,
    };
    (code, error.to_string())
}

/// 16-bit little-endian PCM → samples; `None` for an odd byte count.
fn pcm_samples(bytes: &[u8]) -> Option<Vec<i16>> {
    bytes.len().is_multiple_of(2).then(|| {
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    })
}

/// What the connection does after a client frame.
enum Flow {
    Go,
    Stop,
    Close(u16, &'static str),
}

/// The stream's audio so far against `VOICE_MAX_AUDIO_SECS`.
struct AudioBudget {
    received: usize,
    max_samples: usize,
}

async fn run(mut socket: WebSocket, state: AppState, query: StreamQuery) {
    let planned = match open(&state, query) {
        Ok(p) => p,
        Err(e) => {
            let (code, reason) = refusal(&e);
            return close(socket, code, &reason).await;
        }
    };
    let engine = planned.engines.stt.first(&planned.plan).as_str();
    let ready = ServerEvent::Ready {
        engine,
        language: planned.request.options.language.clone(),
        sample_rate: STT_SAMPLE_RATE,
    };
    let mut budget = AudioBudget {
        received: 0,
        max_samples: state.config.max_audio_secs as usize * STT_SAMPLE_RATE as usize,
    };
    let mut recognizer = Recognizer::start(planned);
    if !send(&mut socket, &ready).await {
        return;
    }
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
                match on_frame(&mut socket, &recognizer, &mut budget, frame).await {
                    Flow::Go => {}
                    Flow::Stop => break,
                    Flow::Close(code, reason) => return close(socket, code, reason).await,
                }
            }
            update = recognizer.next() => {
                let Some(update) = update else { break };
                if let Some(event) = event_for(update, engine)
                    && !send(&mut socket, &event).await
                {
                    break;
                }
            }
        }
    }
    recognizer.stop().await;
}

/// Audio goes to the recognizer, `end` ends the utterance; anything else
/// is answered with an error event and the connection goes on.
async fn on_frame(
    socket: &mut WebSocket,
    recognizer: &Recognizer,
    budget: &mut AudioBudget,
    frame: Message,
) -> Flow {
    let going = |sent: bool| if sent { Flow::Go } else { Flow::Stop };
    match frame {
        Message::Binary(bytes) => {
            let Some(samples) = pcm_samples(&bytes) else {
                let error = ServerEvent::error(
                    ErrorCode::InvalidAudio,
                    "frames must hold whole 16-bit samples",
                );
                let _ = send(socket, &error).await;
                return Flow::Go;
            };
            budget.received += samples.len();
            if budget.received > budget.max_samples {
                return Flow::Close(code::TOO_BIG, "stream longer than the audio limit");
            }
            going(recognizer.accept(samples))
        }
        Message::Text(text) => match serde_json::from_str::<ClientMessage>(text.as_str()) {
            Ok(ClientMessage::End) => going(recognizer.end_utterance()),
            Err(_) => {
                let error = ServerEvent::error(
                    ErrorCode::InvalidMessage,
                    "send binary PCM frames, or {\"type\":\"end\"}",
                );
                let _ = send(socket, &error).await;
                Flow::Go
            }
        },
        Message::Close(_) => Flow::Stop,
        Message::Ping(_) | Message::Pong(_) => Flow::Go,
    }
}

/// The event that tells the client of an update; `None` when there is nothing new.
fn event_for(update: Result<Update, String>, engine: &'static str) -> Option<ServerEvent> {
    Some(match update {
        Err(e) => ServerEvent::error(ErrorCode::EngineFailed, e),
        Ok(Update::Stream(StreamUpdate::Nothing)) => return None,
        Ok(Update::Stream(StreamUpdate::Partial(text))) => ServerEvent::Partial { text },
        Ok(Update::Stream(StreamUpdate::Final(t))) => {
            ServerEvent::settled(t, engine, FinalReason::Pause)
        }
        Ok(Update::Ended(t)) => ServerEvent::settled(t, engine, FinalReason::End),
    })
}
