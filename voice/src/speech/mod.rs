//! The two operations of the service, shared by the native and the
//! OpenAI-compatible routes: synthesize text, transcribe audio. Both check
//! their input, consult the cache, run the engines on the blocking pool
//! (bounded), fall back along the engine order, and record metrics. The
//! streaming route plans its recognition here too, with the same checks.

mod streaming;
mod synthesis;
mod transcription;

use std::sync::Arc;

pub use streaming::{SpeechPiece, synthesize_streaming, synthesize_streaming_with};
pub use synthesis::{AudioFormat, Speech, SpeechRequest, parse_format, synthesize};
pub use transcription::{
    PlannedStream, PreparedTranscription, TranscribeRequest, Transcription, plan_stream, prepare,
    transcribe,
};

use crate::audio::AudioError;
use crate::engines::Engines;
use crate::state::AppState;
use crate::stt::request::InvalidRequest;
use crate::stt::router::RouteError;

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
    #[error("unsupported format {0}")]
    UnsupportedFormat(String),
    #[error(transparent)]
    Request(#[from] InvalidRequest),
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
            Self::BadInput(_) | Self::Request(_) => "invalid_request",
            Self::TextTooLong { .. } => "text_too_long",
            Self::AudioTooLarge { .. } => "audio_too_large",
            Self::Audio(AudioError::TooLong { .. }) => "audio_too_long",
            Self::Audio(AudioError::Empty) => "empty_audio",
            Self::Audio(_) => "invalid_audio",
            Self::UnknownVoice(_) => "unknown_voice",
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::Route(RouteError::UnknownEngine(_)) => "unknown_engine",
            Self::Route(RouteError::EnginesUnavailable(_)) => "engine_unavailable",
            Self::Route(RouteError::TranslationNeedsMultilingualWhisper(_)) => {
                "translation_unavailable"
            }
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
    let _slot = state
        .inference
        .slot()
        .await
        .ok_or_else(|| VoiceError::Internal("inference pool closed".into()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| VoiceError::Internal(format!("engine task failed: {e}")))
}
