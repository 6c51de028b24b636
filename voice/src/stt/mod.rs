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

/// What a streaming recognizer reports after a chunk of audio.
#[derive(Debug, Clone)]
pub enum StreamUpdate {
    /// Nothing new to say.
    Nothing,
    /// The current utterance's text so far; it may still change.
    Partial(String),
    /// An utterance ended (a pause): this text is settled.
    Final(Transcript),
}

/// An utterance being recognized as its audio arrives.
pub trait SttStream: Send {
    /// Takes 16 kHz mono 16-bit samples.
    fn accept(&mut self, samples: &[i16]) -> Result<StreamUpdate, SttError>;
    /// Ends the audio: the settled text of what was not yet final.
    fn finish(&mut self) -> Result<Transcript, SttError>;
}

pub trait SpeechToText: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the engine can recognize `language` (`None`: its default).
    fn supports(&self, language: Option<&str>) -> bool;
    /// Languages with a model, for `/api/v1/engines` (`*` for multilingual Whisper).
    fn languages(&self) -> Vec<String>;
    /// Recognizes 16 kHz mono samples.
    fn transcribe(&self, samples: &[f32], options: &SttOptions) -> Result<Transcript, SttError>;
    /// Starts recognizing audio that arrives in pieces.
    fn start_stream(&self, options: &SttOptions) -> Result<Box<dyn SttStream + '_>, SttError>;
    fn health(&self) -> Result<(), String>;
}
