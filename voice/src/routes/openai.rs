//! OpenAI-compatible `/v1/audio/*` and `/v1/models`, so the official
//! clients work unchanged: same request fields, response formats and error
//! shape (`{"error": {"message", "type", "param", "code"}}`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Caller;
use super::native::audio_response;
use super::speech_stream::{StreamFormat, streamed_speech};
use crate::speech::{self, SpeechRequest, VoiceError};
use crate::state::AppState;

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
    let voice = body
        .voice
        .and_then(|v| state.config.openai_voices.resolve(&v));
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

/// `GET /v1/models`, in OpenAI's shape: OpenAI's speech model names
/// (which route to the local engines), each healthy engine, and each
/// installed voice, so clients that pick from the list find them.
pub async fn models(State(state): State<AppState>, _caller: Caller) -> Response {
    let model = |id: &str, owned_by: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": owned_by});
    let mut data: Vec<_> = ["whisper-1", "tts-1", "tts-1-hd"]
        .iter()
        .map(|id| model(id, "voicechat"))
        .collect();
    if let Some(engines) = state.engines.get() {
        data.extend(
            engines
                .status()
                .into_iter()
                .filter(|e| e.healthy)
                .map(|e| model(e.name, "voicechat")),
        );
        data.extend(
            engines
                .tts
                .voices()
                .iter()
                .map(|v| model(&v.name, v.engine)),
        );
    }
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/audio/voices`: the installed voices, and what OpenAI's voice
/// names stand for here.
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
    let table = &state.config.openai_voices;
    let openai: serde_json::Map<String, serde_json::Value> =
        voicechat_common::openai_voices::OPENAI_VOICES
            .iter()
            .map(|name| {
                let voice = table.resolve(name).map_or(json!(null), |v| json!(v));
                ((*name).to_owned(), voice)
            })
            .collect();
    Ok(Json(json!({ "voices": voices, "openai_voices": openai })).into_response())
}
