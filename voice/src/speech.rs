//! The two operations of the service, shared by the native and the
//! OpenAI-compatible routes: synthesize text, transcribe audio. Both check
//! their input, consult the cache, run the engines on the blocking pool
//! (bounded), fall back along the engine order, and record metrics.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::audio::{self, Audio, AudioError, STT_SAMPLE_RATE};
use crate::cache;
use crate::engines::Engines;
use crate::state::AppState;
use crate::stt::router::{self, RouteError, RouteRequest};
use crate::stt::{SttOptions, Transcript};
use crate::tts::{ChainError, safe_name};

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("models are still loading")]
    Loading,
    #[error("{0}")]
    BadInput(String),
    #[error("text is {chars} characters; the limit is {limit}")]
    TextTooLong { chars: usize, limit: usize },
    #[error("audio is {bytes} bytes; the limit is {limit}")]
    AudioTooLarge { bytes: usize, limit: usize },
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("unknown voice {0:?}")]
    UnknownVoice(String),
    #[error("unsupported format {0:?}: use wav or pcm")]
    UnsupportedFormat(String),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("all engines failed: {0}")]
    EnginesFailed(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl VoiceError {
    /// Stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Loading => "models_loading",
            Self::BadInput(_) => "invalid_request",
            Self::TextTooLong { .. } => "text_too_long",
            Self::AudioTooLarge { .. } => "audio_too_large",
            Self::Audio(AudioError::TooLong { .. }) => "audio_too_long",
            Self::Audio(AudioError::Empty) => "empty_audio",
            Self::Audio(_) => "invalid_audio",
            Self::UnknownVoice(_) => "unknown_voice",
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::Route(RouteError::UnknownEngine(_)) => "unknown_engine",
            Self::Route(RouteError::EnginesUnavailable(_)) => "engine_unavailable",
            Self::Route(_) => "unsupported_language",
            Self::EnginesFailed(_) => "engines_failed",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::Loading
            | Self::EnginesFailed(_)
            | Self::Route(RouteError::EnginesUnavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TextTooLong { .. }
            | Self::AudioTooLarge { .. }
            | Self::Audio(AudioError::TooLong { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Audio(AudioError::Resample(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<VoiceError> for voicechat_common::api_error::ApiError {
    fn from(e: VoiceError) -> Self {
        Self::new(e.status(), e.code(), e.to_string())
    }
}

fn engines(state: &AppState) -> Result<Arc<Engines>, VoiceError> {
    state.engines.get().cloned().ok_or(VoiceError::Loading)
}

/// Runs blocking engine work on the blocking pool, `VOICE_INFERENCE_CONCURRENCY` at a time.
async fn run_blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, VoiceError> {
    let _permit = state
        .inference
        .acquire()
        .await
        .map_err(|_| VoiceError::Internal("inference pool closed".into()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| VoiceError::Internal(format!("engine task failed: {e}")))
}

/// Output audio formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    Wav,
    /// Raw 16-bit little-endian mono PCM at the voice's rate.
    Pcm,
}

impl AudioFormat {
    pub fn parse(name: Option<&str>) -> Result<Self, VoiceError> {
        match name.unwrap_or("wav") {
            "wav" => Ok(Self::Wav),
            "pcm" => Ok(Self::Pcm),
            other => Err(VoiceError::UnsupportedFormat(other.to_owned())),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
        }
    }
}

pub struct SpeechRequest {
    pub text: String,
    pub voice: Option<String>,
    pub speed: f32,
    pub format: AudioFormat,
}

pub struct Speech {
    pub bytes: Vec<u8>,
    pub sample_rate: u32,
    pub engine: String,
    pub voice: String,
    pub cached: bool,
}

/// What the TTS cache stores next to the audio.
#[derive(Serialize, Deserialize)]
struct CachedSpeech {
    engine: String,
    voice: String,
    sample_rate: u32,
}

pub async fn synthesize(state: &AppState, request: SpeechRequest) -> Result<Speech, VoiceError> {
    let text = request.text.trim().to_owned();
    if text.is_empty() {
        return Err(VoiceError::BadInput("text is empty".into()));
    }
    let chars = text.chars().count();
    let limit = state.config.max_text_chars;
    if chars > limit {
        return Err(VoiceError::TextTooLong { chars, limit });
    }
    if !(0.25..=4.0).contains(&request.speed) || !request.speed.is_finite() {
        return Err(VoiceError::BadInput(format!(
            "speed {} is outside 0.25-4.0",
            request.speed
        )));
    }
    if let Some(v) = &request.voice
        && !safe_name(v)
    {
        return Err(VoiceError::UnknownVoice(v.clone()));
    }
    let engines = engines(state)?;
    let key = cache::key(
        "tts",
        &[
            text.as_bytes(),
            request.voice.as_deref().unwrap_or("").as_bytes(),
            &request.speed.to_le_bytes(),
            format!("{:?}", request.format).as_bytes(),
        ],
    );
    if let Some(hit) = cached_speech(state, &key).await {
        return Ok(hit);
    }

    let voice = request.voice.clone();
    let speed = request.speed;
    let worker_engines = engines.clone();
    let started = Instant::now();
    let synthesis = run_blocking(state, move || {
        worker_engines
            .tts
            .synthesize(&text, voice.as_deref(), speed)
    })
    .await?
    .map_err(|e| match e {
        ChainError::UnknownVoice(v) => VoiceError::UnknownVoice(v),
        ChainError::AllFailed(reasons) => VoiceError::EnginesFailed(reasons),
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let m = &state.metrics;
    for (engine, _) in &synthesis.fallbacks {
        m.fallbacks.with_label_values(&["tts", engine]).inc();
    }
    m.engine_seconds
        .with_label_values(&[synthesis.engine, "tts"])
        .observe(elapsed);
    let audio_secs = synthesis.audio.duration_secs();
    if audio_secs > 0.0 {
        m.realtime_factor
            .with_label_values(&[synthesis.engine, "tts"])
            .observe(elapsed / audio_secs);
    }
    let bytes = match request.format {
        AudioFormat::Wav => audio::encode_wav(&synthesis.audio),
        AudioFormat::Pcm => audio::encode_pcm16(&synthesis.audio),
    };
    let speech = Speech {
        bytes,
        sample_rate: synthesis.audio.sample_rate,
        engine: synthesis.engine.to_owned(),
        voice: synthesis.voice,
        cached: false,
    };
    store_speech(state, &key, &speech).await;
    Ok(speech)
}

async fn cached_speech(state: &AppState, key: &str) -> Option<Speech> {
    if !state.cache.enabled() {
        return None;
    }
    let meta_key = format!("{key}:meta");
    let (audio, meta) = match tokio::try_join!(state.cache.get(key), state.cache.get(&meta_key)) {
        Ok(pair) => pair,
        Err(e) => {
            state
                .metrics
                .cache
                .with_label_values(&["tts", "error"])
                .inc();
            tracing::debug!(error = %e, "tts cache lookup failed");
            return None;
        }
    };
    let hit = audio.zip(meta.and_then(|m| serde_json::from_slice::<CachedSpeech>(&m).ok()));
    state
        .metrics
        .cache
        .with_label_values(&["tts", if hit.is_some() { "hit" } else { "miss" }])
        .inc();
    hit.map(|(bytes, meta)| Speech {
        bytes,
        sample_rate: meta.sample_rate,
        engine: meta.engine,
        voice: meta.voice,
        cached: true,
    })
}

async fn store_speech(state: &AppState, key: &str, speech: &Speech) {
    let meta = CachedSpeech {
        engine: speech.engine.clone(),
        voice: speech.voice.clone(),
        sample_rate: speech.sample_rate,
    };
    let Ok(meta) = serde_json::to_vec(&meta) else {
        return;
    };
    // Meta last: a lookup needs both, so a half-written entry is a miss.
    let stored = async {
        state.cache.put(key, &speech.bytes).await?;
        state.cache.put(&format!("{key}:meta"), &meta).await
    };
    if let Err(e) = stored.await {
        state
            .metrics
            .cache
            .with_label_values(&["tts", "error"])
            .inc();
        tracing::debug!(error = %e, "tts cache store failed");
    }
}

pub struct TranscribeRequest {
    pub audio: bytes::Bytes,
    pub language: Option<String>,
    pub engine: Option<String>,
    pub grammar: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcription {
    pub text: String,
    pub language: String,
    pub engine: String,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<crate::stt::Segment>,
    #[serde(default)]
    pub cached: bool,
}

pub async fn transcribe(
    state: &AppState,
    request: TranscribeRequest,
) -> Result<Transcription, VoiceError> {
    let limit = state.config.max_audio_bytes;
    if request.audio.len() > limit {
        return Err(VoiceError::AudioTooLarge {
            bytes: request.audio.len(),
            limit,
        });
    }
    if let Some(l) = &request.language
        && (l.len() > 8 || !l.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
    {
        return Err(VoiceError::BadInput(format!(
            "language {l:?} is not a language code"
        )));
    }
    if let Some(g) = &request.grammar
        && (g.is_empty() || g.len() > 1000 || g.iter().any(|p| p.len() > 200))
    {
        return Err(VoiceError::BadInput(
            "grammar must be 1-1000 phrases of at most 200 bytes".into(),
        ));
    }
    let language = request.language.map(|l| l.to_ascii_lowercase());
    let decoded = audio::decode_wav(&request.audio, state.config.max_audio_secs)?;
    let duration = decoded.duration_secs();
    let engines = engines(state)?;
    let facts = engines.stt_facts(language.as_deref());
    let order = router::plan(
        &facts,
        &RouteRequest {
            engine: request.engine.as_deref(),
            duration_secs: duration,
            has_grammar: request.grammar.is_some(),
        },
        engines.profile,
        state.config.vosk_max_secs,
    )?;

    let grammar_key = request
        .grammar
        .as_ref()
        .map(|g| g.join("\u{1f}"))
        .unwrap_or_default();
    let key = cache::key(
        "stt",
        &[
            &request.audio,
            request.engine.as_deref().unwrap_or("").as_bytes(),
            language.as_deref().unwrap_or("").as_bytes(),
            grammar_key.as_bytes(),
        ],
    );
    if let Some(hit) = cached_transcription(state, &key).await {
        return Ok(hit);
    }

    let threshold = state.config.vad_threshold_dbfs;
    let options = SttOptions {
        language: language.clone(),
        grammar: request.grammar,
    };
    let worker_engines = engines.clone();
    let started = Instant::now();
    let (result, failures) = run_blocking(state, move || {
        recognize(&worker_engines, &order, decoded, &options, threshold)
    })
    .await?;
    let m = &state.metrics;
    for engine in &failures {
        m.fallbacks.with_label_values(&["stt", engine]).inc();
    }
    let (engine, transcript) = result?;
    let elapsed = started.elapsed().as_secs_f64();
    m.engine_seconds
        .with_label_values(&[engine, "stt"])
        .observe(elapsed);
    if duration > 0.0 {
        m.realtime_factor
            .with_label_values(&[engine, "stt"])
            .observe(elapsed / duration);
    }
    let transcription = Transcription {
        text: transcript.text,
        language: transcript.language,
        engine: engine.to_owned(),
        duration,
        segments: transcript.segments,
        cached: false,
    };
    if let Ok(json) = serde_json::to_vec(&transcription)
        && let Err(e) = state.cache.put(&key, &json).await
    {
        m.cache.with_label_values(&["stt", "error"]).inc();
        tracing::debug!(error = %e, "stt cache store failed");
    }
    Ok(transcription)
}

type Recognized = (
    Result<(&'static str, Transcript), VoiceError>,
    Vec<&'static str>,
);

/// Resamples, checks for speech, then tries the planned engines in order.
fn recognize(
    engines: &Engines,
    order: &[usize],
    decoded: Audio,
    options: &SttOptions,
    threshold_dbfs: f32,
) -> Recognized {
    let samples = match audio::resample(&decoded, STT_SAMPLE_RATE) {
        Ok(s) => s,
        Err(e) => return (Err(e.into()), Vec::new()),
    };
    let first = engines.stt[order[0]].name();
    if !audio::vad::has_speech(&samples, STT_SAMPLE_RATE, threshold_dbfs, 150) {
        let language = options.language.clone().unwrap_or_default();
        return (
            Ok((
                first,
                Transcript {
                    text: String::new(),
                    language,
                    segments: Vec::new(),
                },
            )),
            Vec::new(),
        );
    }
    let mut failures = Vec::new();
    let mut reasons = Vec::new();
    for &i in order {
        let engine = &engines.stt[i];
        match engine.transcribe(&samples, options) {
            Ok(t) => return (Ok((engine.name(), t)), failures),
            Err(e) => {
                tracing::warn!(engine = engine.name(), error = %e, "speech-to-text engine failed, trying the next");
                failures.push(engine.name());
                reasons.push(e.to_string());
            }
        }
    }
    (Err(VoiceError::EnginesFailed(reasons.join("; "))), failures)
}

async fn cached_transcription(state: &AppState, key: &str) -> Option<Transcription> {
    if !state.cache.enabled() {
        return None;
    }
    let found = match state.cache.get(key).await {
        Ok(v) => v.and_then(|raw| serde_json::from_slice::<Transcription>(&raw).ok()),
        Err(e) => {
            state
                .metrics
                .cache
                .with_label_values(&["stt", "error"])
                .inc();
            tracing::debug!(error = %e, "stt cache lookup failed");
            return None;
        }
    };
    state
        .metrics
        .cache
        .with_label_values(&["stt", if found.is_some() { "hit" } else { "miss" }])
        .inc();
    found.map(|mut t| {
        t.cached = true;
        t
    })
}
