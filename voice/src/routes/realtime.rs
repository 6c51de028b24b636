//! `GET /v1/realtime?intent=transcription`: OpenAI's realtime
//! transcription sessions, the streaming speech-to-text of the Realtime
//! API. Audio comes in as `input_audio_buffer.append`; server VAD (or the
//! client's `commit`) cuts it into turns; each turn is transcribed through
//! the same checks, routing and cache as `POST /api/v1/stt`, in order, and
//! answered with `conversation.item.input_audio_transcription.delta` and
//! `.completed` (or `.failed`). No responses: conversations are the chat
//! service's `/v1/realtime`.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use voicechat_common::realtime::protocol::{MAX_EVENT_BYTES, SOCKET_BUFFER_BYTES};
use voicechat_common::realtime::{
    AudioFormat, ClientEvent, EventError, Incoming, InputBuffer, Turn, VadEvent, VadSettings,
    new_id, server_event,
};
use voicechat_common::ws::{self, code};

use crate::speech::{self, TranscribeRequest};
use crate::state::AppState;
use crate::stt::request::DecodingRequest;

/// The most audio the input buffer holds before a commit.
const MAX_BUFFER_SECS: u32 = 120;
/// A socket silent this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Deserialize)]
pub struct RealtimeQuery {
    token: Option<String>,
    intent: Option<String>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<RealtimeQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ws = ws
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(MAX_EVENT_BYTES)
        .max_frame_size(MAX_EVENT_BYTES);
    let (ws, auth) =
        ws::authenticate_upgrade(ws, query.token.as_deref(), &headers, &state.verifier).await;
    ws.on_upgrade(move |socket| async move {
        match auth {
            Err(e) => ws::refuse(socket, &e).await,
            Ok(_) if query.intent.as_deref() != Some("transcription") => {
                ws::close(
                    socket,
                    code::BAD_REQUEST,
                    "the voice service holds transcription sessions (?intent=transcription); conversations are the chat service's",
                )
                .await;
            }
            Ok(_) => run(socket, state).await,
        }
    })
}

/// What a transcription session's `session.update` may set.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    format: AudioFormat,
    vad: Option<VadSettings>,
    language: Option<String>,
    prompt: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            format: AudioFormat::Pcm,
            vad: Some(VadSettings::default()),
            language: None,
            prompt: None,
        }
    }
}

impl Settings {
    fn updated(&self, update: &Map<String, Value>) -> Result<Self, EventError> {
        let mut next = self.clone();
        match update.get("type").and_then(Value::as_str) {
            None | Some("transcription") => {}
            Some(other) => {
                return Err(EventError::invalid(
                    "invalid_session_type",
                    format!(
                        "session.type {other:?}: this is a transcription session (conversations are the chat service's /v1/realtime)"
                    ),
                    "session.type",
                ));
            }
        }
        let Some(input) = update
            .get("audio")
            .and_then(|a| a.get("input"))
            .and_then(Value::as_object)
        else {
            return Ok(next);
        };
        if let Some(format) = input.get("format") {
            next.format = AudioFormat::parse(format, "session.audio.input.format")?;
        }
        match input.get("turn_detection") {
            None => {}
            Some(Value::Null) => next.vad = None,
            Some(td) => next.vad = Some(vad(td, next.vad.unwrap_or_default())?),
        }
        if let Some(t) = input.get("transcription").and_then(Value::as_object) {
            next.language = match t.get("language") {
                None | Some(Value::Null) => None,
                Some(Value::String(l)) => Some(l.clone()),
                Some(_) => {
                    return Err(EventError::invalid(
                        "invalid_language",
                        "transcription.language must be a language code",
                        "session.audio.input.transcription.language",
                    ));
                }
            };
            next.prompt = t.get("prompt").and_then(Value::as_str).map(str::to_owned);
        }
        Ok(next)
    }

    fn to_json(&self, id: &str) -> Value {
        let turn_detection = match &self.vad {
            None => Value::Null,
            Some(v) => json!({"type": "server_vad", "threshold": v.threshold,
                "prefix_padding_ms": v.prefix_padding_ms, "silence_duration_ms": v.silence_duration_ms}),
        };
        json!({
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": id,
            "audio": {"input": {
                "format": self.format.to_json(),
                "transcription": {"model": "whisper-1", "language": self.language, "prompt": self.prompt},
                "turn_detection": turn_detection,
                "noise_reduction": null,
            }},
            "include": [],
        })
    }
}

fn vad(value: &Value, current: VadSettings) -> Result<VadSettings, EventError> {
    let param = "session.audio.input.turn_detection";
    if value.get("type").and_then(Value::as_str) != Some("server_vad") {
        return Err(EventError::invalid(
            "invalid_turn_detection",
            "turn_detection.type must be server_vad (or turn_detection null)",
            &format!("{param}.type"),
        ));
    }
    let mut out = current;
    if let Some(t) = value.get("threshold").filter(|v| !v.is_null()) {
        out.threshold = t
            .as_f64()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| {
                EventError::invalid(
                    "invalid_turn_detection",
                    "threshold must be 0-1",
                    &format!("{param}.threshold"),
                )
            })? as f32;
    }
    for (field, slot, range) in [
        (
            "prefix_padding_ms",
            &mut out.prefix_padding_ms,
            0..=5_000u64,
        ),
        (
            "silence_duration_ms",
            &mut out.silence_duration_ms,
            100..=10_000,
        ),
    ] {
        if let Some(v) = value.get(field).filter(|v| !v.is_null()) {
            *slot = v.as_u64().filter(|ms| range.contains(ms)).ok_or_else(|| {
                EventError::invalid(
                    "invalid_turn_detection",
                    format!("{field} must be {}-{}", range.start(), range.end()),
                    &format!("{param}.{field}"),
                )
            })? as u32;
        }
    }
    Ok(out)
}

struct Job {
    item_id: String,
    turn: Turn,
    settings: Settings,
}

enum Report {
    Done {
        item_id: String,
        audio_secs: f64,
        result: Result<String, speech::VoiceError>,
    },
}

async fn run(socket: WebSocket, state: AppState) {
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::channel::<Value>(256);
    let (close_tx, close_rx) = mpsc::channel(1);
    let writer = tokio::spawn(voicechat_common::realtime::socket::write_events(
        sink, out_rx, close_rx,
    ));
    let (jobs, jobs_rx) = mpsc::channel::<Job>(16);
    let (reports_tx, mut reports) = mpsc::channel::<Report>(16);
    let worker = tokio::spawn(transcribe_in_order(state.clone(), jobs_rx, reports_tx));
    let id = new_id("sess_");
    let mut settings = Settings::default();
    let mut input = InputBuffer::new(settings.format, settings.vad, MAX_BUFFER_SECS);
    let mut speaking: Option<(String, u64)> = None;
    let mut last_item: Option<String> = None;
    let _ = out
        .send(server_event(
            "session.created",
            json!({"session": settings.to_json(&id)}),
        ))
        .await;
    let close = loop {
        let frame = tokio::select! {
            frame = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => frame,
            Some(Report::Done { item_id, audio_secs, result }) = reports.recv() => {
                for event in transcribed(&item_id, audio_secs, result) {
                    let _ = out.send(event).await;
                }
                continue;
            }
        };
        let text = match frame {
            Err(_) => break Some((code::IDLE_TIMEOUT, "idle timeout")),
            Ok(None) => break None,
            Ok(Some(Err(e))) => break ws::for_read_error(e),
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(_)))) => break None,
            Ok(Some(Ok(Message::Binary(_)))) => {
                let e = EventError::invalid(
                    "unsupported_frame",
                    "binary frames are not accepted: send JSON events as text",
                    "",
                );
                let _ = out.send(e.to_event()).await;
                continue;
            }
            Ok(Some(Ok(_))) => continue,
        };
        let Incoming { event_id, event } = match voicechat_common::realtime::parse(text.as_str()) {
            Ok(incoming) => incoming,
            Err(e) => {
                let _ = out.send(e.to_event()).await;
                continue;
            }
        };
        let mut turns = Vec::new();
        let result: Result<Vec<Value>, EventError> = match event {
            ClientEvent::SessionUpdate(update) => settings.updated(&update).map(|next| {
                if next.format != settings.format || next.vad != settings.vad {
                    input.configure(next.format, next.vad, MAX_BUFFER_SECS);
                    speaking = None;
                }
                settings = next;
                vec![server_event(
                    "session.updated",
                    json!({"session": settings.to_json(&id)}),
                )]
            }),
            ClientEvent::Append(audio) => {
                append(&mut input, &audio, &settings, &mut speaking, &mut turns)
            }
            ClientEvent::Commit if input.is_empty() => Err(EventError::invalid(
                "input_audio_buffer_commit_empty",
                "the input audio buffer is empty: append audio first",
                "",
            )),
            ClientEvent::Commit => {
                let item_id = speaking
                    .take()
                    .map_or_else(|| new_id("item_"), |(id, _)| id);
                turns.push((item_id, input.take_all()));
                Ok(Vec::new())
            }
            ClientEvent::Clear => {
                input.clear();
                speaking = None;
                Ok(vec![server_event("input_audio_buffer.cleared", json!({}))])
            }
            _ => Err(EventError::invalid(
                "unsupported_event",
                "a transcription session takes session.update and input_audio_buffer events only",
                "type",
            )),
        };
        match result {
            Ok(events) => {
                for event in events {
                    let _ = out.send(event).await;
                }
            }
            Err(e) => {
                let _ = out.send(e.for_event(event_id.as_deref()).to_event()).await;
            }
        }
        for (item_id, turn) in turns {
            let item = json!({"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed", "content": [{"type": "input_audio", "transcript": null}]});
            for event in [
                server_event(
                    "input_audio_buffer.committed",
                    json!({"previous_item_id": last_item, "item_id": item_id}),
                ),
                server_event(
                    "conversation.item.added",
                    json!({"previous_item_id": last_item, "item": item}),
                ),
                server_event(
                    "conversation.item.done",
                    json!({"previous_item_id": last_item, "item": item}),
                ),
            ] {
                let _ = out.send(event).await;
            }
            last_item = Some(item_id.clone());
            let job = Job {
                item_id,
                turn,
                settings: settings.clone(),
            };
            if jobs.send(job).await.is_err() {
                break;
            }
        }
    };
    worker.abort();
    let we_close = close.is_some();
    if let Some(reason) = close {
        let _ = close_tx.send(reason).await;
    }
    drop(out);
    drop(close_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    if we_close {
        ws::await_close_reply(&mut stream).await;
    }
}

/// Appends audio; a turn the detector ended goes into `turns`.
fn append(
    input: &mut InputBuffer,
    audio: &str,
    settings: &Settings,
    speaking: &mut Option<(String, u64)>,
    turns: &mut Vec<(String, Turn)>,
) -> Result<Vec<Value>, EventError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(audio)
        .map_err(|e| {
            EventError::invalid(
                "invalid_base64",
                format!("audio is not base64: {e}"),
                "audio",
            )
        })?;
    let mut events = Vec::new();
    for detected in input.append(&bytes)? {
        match detected {
            VadEvent::SpeechStarted { at_ms } => {
                let item_id = new_id("item_");
                events.push(server_event(
                    "input_audio_buffer.speech_started",
                    json!({"audio_start_ms": at_ms, "item_id": item_id}),
                ));
                *speaking = Some((item_id, at_ms));
            }
            VadEvent::Paused { .. } => {}
            VadEvent::SpeechStopped { at_ms, detected_ms } => {
                let (item_id, started) =
                    speaking.take().unwrap_or_else(|| (new_id("item_"), at_ms));
                events.push(server_event(
                    "input_audio_buffer.speech_stopped",
                    json!({"audio_end_ms": at_ms, "item_id": item_id}),
                ));
                let padding = settings.vad.map_or(0, |v| v.prefix_padding_ms);
                let turn = input.take_span(started.saturating_sub(u64::from(padding)), detected_ms);
                turns.push((item_id, turn));
            }
        }
    }
    Ok(events)
}

async fn transcribe_in_order(
    state: AppState,
    mut jobs: mpsc::Receiver<Job>,
    reports: mpsc::Sender<Report>,
) {
    while let Some(job) = jobs.recv().await {
        let audio_secs = job.turn.duration_secs();
        let request = TranscribeRequest {
            language: job.settings.language.clone(),
            decoding: DecodingRequest {
                prompt: job.settings.prompt.clone(),
                ..DecodingRequest::default()
            },
            ..TranscribeRequest::audio(job.turn.to_wav().into())
        };
        let result = speech::transcribe(&state, request).await.map(|t| t.text);
        if reports
            .send(Report::Done {
                item_id: job.item_id,
                audio_secs,
                result,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

fn transcribed(
    item_id: &str,
    audio_secs: f64,
    result: Result<String, speech::VoiceError>,
) -> Vec<Value> {
    match result {
        Ok(text) => {
            let text = text.trim().to_owned();
            vec![
                server_event(
                    "conversation.item.input_audio_transcription.delta",
                    json!({"item_id": item_id, "content_index": 0, "delta": text}),
                ),
                server_event(
                    "conversation.item.input_audio_transcription.completed",
                    json!({"item_id": item_id, "content_index": 0, "transcript": text,
                           "usage": {"type": "duration", "seconds": audio_secs}}),
                ),
            ]
        }
        Err(e) => vec![server_event(
            "conversation.item.input_audio_transcription.failed",
            json!({"item_id": item_id, "content_index": 0, "error": {
                "type": "invalid_request_error", "code": e.code(), "message": e.to_string(), "param": null}}),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcription_settings_update_and_refuse_conversations() {
        let s = Settings::default();
        let update = json!({"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcma"},
            "turn_detection": null,
            "transcription": {"model": "gpt-4o-transcribe", "language": "ko", "prompt": "names"},
        }}});
        let next = s.updated(update.as_object().unwrap()).unwrap();
        assert_eq!(next.format, AudioFormat::Pcma);
        assert_eq!(next.vad, None);
        assert_eq!(next.language.as_deref(), Some("ko"));
        assert_eq!(next.prompt.as_deref(), Some("names"));
        let json = next.to_json("s1");
        assert_eq!(json["type"], "transcription");
        assert_eq!(json["audio"]["input"]["format"]["type"], "audio/pcma");
        let e = s
            .updated(json!({"type": "realtime"}).as_object().unwrap())
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("session.type"));
        let e = s
            .updated(json!({"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 5}}}}).as_object().unwrap())
            .unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("session.audio.input.turn_detection.silence_duration_ms")
        );
    }
}
