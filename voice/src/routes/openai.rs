//! OpenAI-compatible `/v1/audio/*` and `/v1/models`, so the official
//! clients work unchanged: same request fields, response formats and error
//! shape (`{"error": {"message", "type", "param", "code"}}`).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Caller;
use super::native::{audio_response, read_upload};
use super::speech_stream::{StreamFormat, streamed_speech};
use crate::engine_name::{EngineName, SttEngine};
use crate::speech::{self, SpeechRequest, TranscribeRequest, Transcription, VoiceError};
use crate::state::AppState;

/// OpenAI's built-in voice names; they map to the default voice, so that
/// code written for OpenAI speaks without changes.
const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
];

pub struct OpenAiError(VoiceError);

impl From<VoiceError> for OpenAiError {
    fn from(e: VoiceError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let body = json!({"error": {"message": self.0.to_string(), "type": kind, "param": null, "code": self.0.code()}});
        (status, Json(body)).into_response()
    }
}

#[derive(Debug, Deserialize)]
pub struct SpeechBody {
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
    input: String,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
    /// `audio` or `sse`: streamed sentence by sentence.
    #[serde(default)]
    stream_format: Option<String>,
    /// Accepted; no engine here takes instructions, which the answer's
    /// `X-Instructions: ignored` says.
    #[serde(default)]
    instructions: Option<String>,
}

/// `POST /v1/audio/speech`. Formats: `mp3` (the default), `opus`, `aac`,
/// `flac`, `wav`, `pcm` (24 kHz); others get a 400 naming them.
/// `stream_format` `audio` or `sse` streams it sentence by sentence.
pub async fn speech(
    State(state): State<AppState>,
    _caller: Caller,
    body: Result<Json<SpeechBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, OpenAiError> {
    let Json(body) = body.map_err(|e| VoiceError::BadInput(e.body_text()))?;
    // mp3 by default, as OpenAI's.
    let format = speech::parse_format(body.response_format.as_deref().unwrap_or("mp3"))?;
    let stream = StreamFormat::parse(body.stream_format.as_deref())?;
    let voice = body.voice.filter(|v| !OPENAI_VOICES.contains(&v.as_str()));
    let request = SpeechRequest {
        text: body.input,
        voice,
        speed: body.speed.unwrap_or(1.0),
        format,
    };
    let mut extra = HeaderMap::new();
    if body.instructions.is_some_and(|i| !i.trim().is_empty()) {
        extra.insert("x-instructions", HeaderValue::from_static("ignored"));
    }
    if let Some(stream) = stream {
        return Ok(streamed_speech(&state, request, stream, extra).await?);
    }
    let speech = speech::synthesize(&state, request).await?;
    let mut response = audio_response(speech, format);
    response.headers_mut().extend(extra);
    Ok(response)
}

/// `POST /v1/audio/transcriptions` (multipart: `file`, `model`, `language`,
/// `response_format` json/text/srt/vtt/verbose_json). `model` names an
/// local engine (`whisper`, `vosk`); `whisper-1` and others let routing pick.
pub async fn transcriptions(
    State(state): State<AppState>,
    _caller: Caller,
    request: Request,
) -> Result<Response, OpenAiError> {
    let upload = read_upload(&state, request).await?;
    let field = |name: &str| upload.fields.get(name).cloned().filter(|v| !v.is_empty());
    let format = field("response_format").unwrap_or_else(|| "json".into());
    if !["json", "text", "srt", "vtt", "verbose_json"].contains(&format.as_str()) {
        return Err(VoiceError::BadInput(format!(
            "response_format {format:?} is not json, text, srt, vtt or verbose_json"
        ))
        .into());
    }
    let engine = field("model").filter(|m| SttEngine::parse(m).is_some_and(SttEngine::is_local));
    let t = speech::transcribe(
        &state,
        TranscribeRequest {
            audio: upload.audio,
            language: field("language"),
            engine,
            grammar: None,
        },
    )
    .await?;
    Ok(render(&t, &format))
}

fn render(t: &Transcription, format: &str) -> Response {
    match format {
        "text" => text(format!("{}\n", t.text), "text/plain; charset=utf-8"),
        "srt" => text(subtitles(t, false), "application/x-subrip"),
        "vtt" => text(subtitles(t, true), "text/vtt"),
        "verbose_json" => Json(json!({
            "task": "transcribe",
            "language": t.language,
            "duration": t.duration,
            "text": t.text,
            "segments": t.segments.iter().enumerate().map(|(i, s)| json!({
                "id": i, "start": s.start, "end": s.end, "text": s.text,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        _ => Json(json!({ "text": t.text })).into_response(),
    }
}

fn text(body: String, content_type: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// SRT or WebVTT cues, one per segment.
pub fn subtitles(t: &Transcription, vtt: bool) -> String {
    let stamp = |secs: f64| {
        let ms = (secs.max(0.0) * 1000.0).round() as u64;
        let sep = if vtt { '.' } else { ',' };
        format!(
            "{:02}:{:02}:{:02}{sep}{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, s) in t.segments.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(s.start),
            stamp(s.end),
            s.text
        ));
    }
    out
}

pub async fn models(State(state): State<AppState>, _caller: Caller) -> Response {
    let mut ids = vec!["whisper-1".to_owned(), "tts-1".to_owned()];
    if let Some(engines) = state.engines.get() {
        ids.extend(
            engines
                .status()
                .into_iter()
                .filter(|e| e.healthy)
                .map(|e| e.name.to_owned()),
        );
    }
    let data: Vec<_> = ids
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "voicechat"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn voices(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, OpenAiError> {
    let engines = state.engines.get().ok_or(VoiceError::Loading)?;
    let voices: Vec<_> = engines
        .tts
        .voices()
        .into_iter()
        .map(|v| json!({"voice_id": v.name, "name": v.name, "engine": v.engine, "language": v.language}))
        .collect();
    Ok(Json(json!({ "voices": voices })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stt::Segment;

    #[test]
    fn srt_and_vtt_timestamps() {
        let t = Transcription {
            text: "hi there".into(),
            language: "en".into(),
            engine: "whisper".into(),
            duration: 3.5,
            segments: vec![Segment {
                start: 0.0,
                end: 3661.5,
                text: "hi there".into(),
            }],
            cached: false,
        };
        assert_eq!(
            subtitles(&t, false),
            "1\n00:00:00,000 --> 01:01:01,500\nhi there\n\n"
        );
        assert_eq!(
            subtitles(&t, true),
            "WEBVTT\n\n00:00:00.000 --> 01:01:01.500\nhi there\n\n"
        );
    }
}
