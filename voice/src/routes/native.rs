//! `/api/v1/*`: the service's own API.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use voicechat_common::api_error::ApiError;

use super::Caller;
use crate::speech::{self, AudioFormat, SpeechRequest, TranscribeRequest, VoiceError};
use crate::state::AppState;
use crate::stt::request::{DecodingRequest, parse_grammar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsBody {
    text: String,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
    #[serde(default)]
    format: Option<String>,
}

/// `POST /api/v1/tts` → audio, with `X-Voice-Engine`, `X-Voice-Name`,
/// `X-Sample-Rate` and `X-Cache` headers.
pub async fn tts(
    State(state): State<AppState>,
    _caller: Caller,
    body: Result<Json<TtsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) =
        body.map_err(|e| ApiError::new(e.status(), "invalid_request", e.body_text()))?;
    let format = speech::parse_format(body.format.as_deref().unwrap_or("wav"))?;
    let speech = speech::synthesize(
        &state,
        SpeechRequest {
            text: body.text,
            voice: body.voice,
            speed: body.speed.unwrap_or(1.0),
            format,
        },
    )
    .await?;
    Ok(audio_response(speech, format))
}

pub fn audio_response(speech: speech::Speech, format: AudioFormat) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("x-voice-engine", &speech.engine);
    set("x-voice-name", &speech.voice);
    set("x-sample-rate", &speech.sample_rate.to_string());
    set("x-cache", if speech.cached { "hit" } else { "miss" });
    (headers, speech.bytes).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct SttQuery {
    language: Option<String>,
    engine: Option<String>,
    /// JSON array of phrases.
    grammar: Option<String>,
    prompt: Option<String>,
    temperature: Option<String>,
}

/// An uploaded audio file and the form fields beside it.
pub struct Upload {
    pub audio: Bytes,
    pub fields: FormFields,
}

/// Form fields in the order sent; a name may come more than once
/// (`timestamp_granularities[]`).
#[derive(Debug, Default)]
pub struct FormFields(Vec<(String, String)>);

/// More fields than any client of these routes sends.
const MAX_FORM_FIELDS: usize = 32;
const MAX_FIELD_BYTES: usize = 64 * 1024;

impl FromIterator<(String, String)> for FormFields {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Self(pairs.into_iter().collect())
    }
}

impl FormFields {
    /// The last non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `multipart/form-data` (audio in `file`) or a raw WAV body.
pub async fn read_upload(state: &AppState, request: Request) -> Result<Upload, VoiceError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| VoiceError::BadInput(e.body_text()))?;
        let mut audio = None;
        let mut fields = Vec::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| VoiceError::BadInput(format!("bad multipart body: {e}")))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let data = field
                .bytes()
                .await
                .map_err(|e| VoiceError::BadInput(format!("bad multipart field {name:?}: {e}")))?;
            if name == "file" {
                audio = Some(data);
                continue;
            }
            if data.len() > MAX_FIELD_BYTES {
                return Err(VoiceError::BadInput(format!(
                    "form field {name:?} is {} bytes; the limit is {MAX_FIELD_BYTES}",
                    data.len()
                )));
            }
            if fields.len() == MAX_FORM_FIELDS {
                return Err(VoiceError::BadInput(format!(
                    "more than {MAX_FORM_FIELDS} form fields"
                )));
            }
            fields.push((name, String::from_utf8_lossy(&data).into_owned()));
        }
        let audio = audio
            .ok_or_else(|| VoiceError::BadInput("multipart body has no \"file\" field".into()))?;
        return Ok(Upload {
            audio,
            fields: FormFields(fields),
        });
    }
    // Any audio type: the container is found from the bytes, not from the
    // label (browsers label WebM as video/webm, some clients send octets).
    let accepted = [
        "audio/",
        "video/webm",
        "video/mp4",
        "video/ogg",
        "application/octet-stream",
    ];
    if !accepted.iter().any(|t| content_type.starts_with(t)) {
        // Read the body before refusing it: answering while the client is
        // still sending makes it see a broken connection, not this error.
        let _ = read_limited(request.into_body(), state.config.max_audio_bytes).await;
        return Err(VoiceError::BadInput(format!(
            "content type {content_type:?} is not accepted: send audio/* or multipart/form-data"
        )));
    }
    let audio = read_limited(request.into_body(), state.config.max_audio_bytes).await?;
    Ok(Upload {
        audio,
        fields: FormFields::default(),
    })
}

/// Reads a body of at most `limit` bytes. A larger one is read on (and
/// dropped) up to `DRAIN_FACTOR` times the limit before the 413 is sent:
/// answering while the client still sends makes most clients report a
/// broken connection instead of the error.
async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Bytes, VoiceError> {
    use futures_util::StreamExt;
    const DRAIN_FACTOR: usize = 4;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| VoiceError::BadInput(format!("cannot read the body: {e}")))?;
        total += chunk.len();
        if total <= limit {
            buf.extend_from_slice(&chunk);
        } else if total > limit * DRAIN_FACTOR {
            break;
        }
    }
    if total > limit {
        return Err(VoiceError::AudioTooLarge {
            bytes: total,
            limit,
        });
    }
    Ok(buf.freeze())
}

/// `POST /api/v1/stt` → `{text, language, engine, duration, segments, cached}`.
pub async fn stt(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<SttQuery>,
    request: Request,
) -> Result<Json<speech::Transcription>, ApiError> {
    let upload = read_upload(&state, request).await?;
    let field = |name: &str| upload.fields.get(name);
    let grammar = parse_grammar(query.grammar.or_else(|| field("grammar")).as_deref())
        .map_err(VoiceError::from)?;
    let transcription = speech::transcribe(
        &state,
        TranscribeRequest {
            audio: upload.audio,
            language: query.language.or_else(|| field("language")),
            engine: query.engine.or_else(|| field("engine")),
            grammar,
            decoding: DecodingRequest {
                prompt: query.prompt.or_else(|| field("prompt")),
                temperature: query.temperature.or_else(|| field("temperature")),
                ..DecodingRequest::default()
            },
        },
    )
    .await?;
    Ok(Json(transcription))
}

pub async fn voices(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let engines = state.engines.get().ok_or(VoiceError::Loading)?;
    Ok(Json(json!({ "voices": engines.tts.voices() })))
}

pub async fn engines(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let engines = state.engines.get().ok_or(VoiceError::Loading)?;
    Ok(Json(
        json!({ "profile": engines.stt.profile(), "engines": engines.status() }),
    ))
}
