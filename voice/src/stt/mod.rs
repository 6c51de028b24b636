//! Speech-to-text engines behind one trait, and the chain that every
//! request goes through: which engines hear it, in which order, with
//! fallback.

pub mod chain;
pub mod request;
pub mod router;
pub mod vosk;
pub mod whisper;

use serde::{Deserialize, Serialize};

pub use crate::engine_name::SttEngine;
pub use chain::{SttChain, SttPlan};
pub use request::SttRequest;

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

impl Transcript {
    /// The transcript whose text is its segments' texts, space-separated.
    pub fn from_segments(segments: Vec<Segment>, language: String) -> Self {
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            text,
            language,
            segments,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("{engine} has no model for language {language:?}")]
    NoModel { engine: SttEngine, language: String },
    #[error("{engine} is not available: {reason}")]
    Unavailable { engine: SttEngine, reason: String },
    #[error("{engine} failed: {reason}")]
    Failed { engine: SttEngine, reason: String },
}

/// Options of one recognition.
#[derive(Debug, Clone, Default)]
pub struct SttOptions {
    /// ISO 639-1 code; `None` lets the engine decide (Whisper detects it).
    pub language: Option<String>,
    /// Restrict recognition to these phrases (engines with
    /// `supports_grammar`).
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

/// One engine. Routing asks it what it can do and never goes by its name.
pub trait SpeechToText: Send + Sync {
    fn engine(&self) -> SttEngine;
    /// The engine's name in requests, responses, logs and metrics.
    fn name(&self) -> &'static str {
        use crate::engine_name::EngineName;
        self.engine().as_str()
    }
    /// Whether the engine can recognize `language` (`None`: its default).
    fn supports(&self, language: Option<&str>) -> bool;
    /// Whether it can restrict recognition to a list of phrases.
    fn supports_grammar(&self) -> bool {
        false
    }
    /// Whether it is much cheaper than the others, so that on CPU short
    /// audio goes to it first (and everything else to it last).
    fn is_lightweight(&self) -> bool {
        false
    }
    /// Languages with a model, for `/api/v1/engines` (`*` for multilingual Whisper).
    fn languages(&self) -> Vec<String>;
    /// Recognizes 16 kHz mono samples.
    fn transcribe(&self, samples: &[f32], options: &SttOptions) -> Result<Transcript, SttError>;
    /// Starts recognizing audio that arrives in pieces.
    fn start_stream(&self, options: &SttOptions) -> Result<Box<dyn SttStream + '_>, SttError>;
    fn health(&self) -> Result<(), String>;
}
