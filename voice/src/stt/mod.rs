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
    /// How the decoder got there, where the engine says (Whisper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding: Option<SegmentDecoding>,
}

impl Segment {
    pub fn new(start: f64, end: f64, text: String) -> Self {
        Self {
            start,
            end,
            text,
            decoding: None,
        }
    }

    /// The segment as a word, for engines whose segments are words.
    pub fn as_word(&self) -> Word {
        Word {
            word: self.text.clone(),
            start: self.start,
            end: self.end,
        }
    }
}

/// What OpenAI's `verbose_json` says of a segment's decoding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentDecoding {
    /// The text's token ids.
    pub tokens: Vec<i32>,
    /// Mean log probability of the text's tokens.
    pub avg_logprob: f64,
    /// The model's probability that the segment holds no speech.
    pub no_speech_prob: f64,
    /// The sampling temperature the segment was decoded at.
    pub temperature: f64,
}

/// One word and when it was said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Word {
    pub word: String,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub text: String,
    /// The language recognized (or asked for).
    pub language: String,
    pub segments: Vec<Segment>,
    /// Word timings, where they were asked for and the engine has them.
    pub words: Vec<Word>,
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
            words: Vec::new(),
        }
    }

    /// Nothing heard.
    pub fn empty(language: String) -> Self {
        Self::from_segments(Vec::new(), language)
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
    /// The listener went away (`SegmentSink::gone`) and the engine stopped.
    #[error("{engine} stopped: the client went away")]
    Cancelled { engine: SttEngine },
}

/// Options of one recognition.
#[derive(Debug, Clone, Default)]
pub struct SttOptions {
    /// ISO 639-1 code; `None` lets the engine decide (Whisper detects it).
    pub language: Option<String>,
    /// Restrict recognition to these phrases (engines with
    /// `supports_grammar`).
    pub grammar: Option<Vec<String>>,
    /// Text that comes before the audio: names and spellings to expect
    /// (Whisper's initial prompt; engines without one ignore it).
    pub prompt: Option<String>,
    /// Sampling temperature, 0 to 1 (`None`: the engine's default).
    pub temperature: Option<f32>,
    /// Answer in English whatever was spoken (engines with
    /// `supports_translation`).
    pub translate: bool,
    /// Time each word (`Transcript::words`).
    pub word_timestamps: bool,
    /// Told of each segment as soon as it is decoded, for streamed answers.
    pub on_segment: Option<SegmentSink>,
}

/// Where an engine reports segments as it decodes them; it also says when
/// nobody listens any more, so the engine may stop.
#[derive(Clone)]
pub struct SegmentSink(std::sync::Arc<dyn SegmentListener>);

pub trait SegmentListener: Send + Sync {
    fn segment(&self, segment: &Segment);
    /// Whether the listener has gone (the client left).
    fn gone(&self) -> bool;
}

impl SegmentSink {
    pub fn new(listener: std::sync::Arc<dyn SegmentListener>) -> Self {
        Self(listener)
    }
    pub fn segment(&self, segment: &Segment) {
        self.0.segment(segment);
    }
    pub fn gone(&self) -> bool {
        self.0.gone()
    }
}

impl std::fmt::Debug for SegmentSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentSink")
    }
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
    /// Whether it can answer in English what was said in another language.
    fn supports_translation(&self) -> bool {
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
