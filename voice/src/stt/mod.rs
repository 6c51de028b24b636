//! Speech-to-text engines behind one trait, and the routing that picks the
//! engine for a request.

pub mod router;
pub mod vosk;
pub mod whisper;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub text: String,
    /// The language recognized (or asked for).
    pub language: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("{engine} has no model for language {language:?}")]
    NoModel {
        engine: &'static str,
        language: String,
    },
    #[error("{engine} is not available: {reason}")]
    Unavailable {
        engine: &'static str,
        reason: String,
    },
    #[error("{engine} failed: {reason}")]
    Failed {
        engine: &'static str,
        reason: String,
    },
}

/// Options of one recognition.
#[derive(Debug, Clone, Default)]
pub struct SttOptions {
    /// ISO 639-1 code; `None` lets the engine decide (Whisper detects it).
    pub language: Option<String>,
    /// Restrict recognition to these phrases (Vosk only).
    pub grammar: Option<Vec<String>>,
}

pub trait SpeechToText: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the engine can recognize `language` (`None`: its default).
    fn supports(&self, language: Option<&str>) -> bool;
    /// Languages with a model, for `/api/v1/engines` (`*` for multilingual Whisper).
    fn languages(&self) -> Vec<String>;
    /// Recognizes 16 kHz mono samples.
    fn transcribe(&self, samples: &[f32], options: &SttOptions) -> Result<Transcript, SttError>;
    fn health(&self) -> Result<(), String>;
}
