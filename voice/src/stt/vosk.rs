//! Vosk (Kaldi) recognizers, one model per language directory:
//! `VOSK_MODELS_DIR/<language>/` (e.g. `en`, `ko`).

use std::collections::BTreeMap;
use std::path::Path;

use vosk::{Model, Recognizer};

use super::{
    Segment, SpeechToText, StreamUpdate, SttEngine, SttError, SttOptions, SttStream, Transcript,
};
use crate::audio::STT_SAMPLE_RATE;

const ENGINE: SttEngine = SttEngine::Vosk;

pub struct VoskStt {
    models: BTreeMap<String, Model>,
    default_language: String,
    problem: Option<String>,
}

impl VoskStt {
    pub fn load(dir: &Path, default_language: String) -> Self {
        vosk::set_log_level(vosk::LogLevel::Error);
        let mut models = BTreeMap::new();
        let mut problem = None;
        match std::fs::read_dir(dir) {
            Err(e) => problem = Some(format!("cannot read {}: {e}", dir.display())),
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Some(language) =
                        path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
                    else {
                        continue;
                    };
                    if !path.is_dir() || !crate::tts::safe_name(&language) {
                        continue;
                    }
                    match Model::new(path.to_string_lossy()) {
                        Some(model) => {
                            tracing::info!(%language, "vosk model loaded");
                            models.insert(language, model);
                        }
                        None => tracing::warn!(path = %path.display(), "not a vosk model"),
                    }
                }
                if models.is_empty() {
                    problem = Some(format!("no vosk models in {}", dir.display()));
                }
            }
        }
        Self {
            models,
            default_language,
            problem,
        }
    }

    fn model(&self, language: Option<&str>) -> Option<(&String, &Model)> {
        self.models
            .get_key_value(language.unwrap_or(&self.default_language))
    }
}

impl VoskStt {
    fn recognizer(&self, options: &SttOptions) -> Result<(&String, Recognizer), SttError> {
        let (language, model) =
            self.model(options.language.as_deref())
                .ok_or_else(|| SttError::NoModel {
                    engine: ENGINE,
                    language: options
                        .language
                        .clone()
                        .unwrap_or_else(|| self.default_language.clone()),
                })?;
        let rate = STT_SAMPLE_RATE as f32;
        let recognizer = match &options.grammar {
            Some(phrases) => Recognizer::new_with_grammar(model, rate, phrases),
            None => Recognizer::new(model, rate),
        };
        let mut recognizer = recognizer.ok_or_else(|| SttError::Failed {
            engine: ENGINE,
            reason: "cannot create a recognizer".into(),
        })?;
        recognizer.set_words(true);
        Ok((language, recognizer))
    }
}

struct VoskStream {
    recognizer: Recognizer,
    language: String,
    last_partial: String,
}

fn settled(language: &str, result: &vosk::CompleteResult) -> Transcript {
    let mut segments = Vec::new();
    collect(&mut segments, result);
    // Vosk's segments are words.
    let words = segments.iter().map(Segment::as_word).collect();
    Transcript {
        words,
        ..Transcript::from_segments(segments, language.to_owned())
    }
}

impl SttStream for VoskStream {
    fn accept(&mut self, samples: &[i16]) -> Result<StreamUpdate, SttError> {
        let state = self
            .recognizer
            .accept_waveform(samples)
            .map_err(decoding_failed)?;
        if state == vosk::DecodingState::Finalized {
            self.last_partial.clear();
            return Ok(StreamUpdate::Final(settled(
                &self.language,
                &self.recognizer.result(),
            )));
        }
        let partial = self.recognizer.partial_result().partial.to_owned();
        if partial == self.last_partial {
            return Ok(StreamUpdate::Nothing);
        }
        self.last_partial.clone_from(&partial);
        Ok(StreamUpdate::Partial(partial))
    }

    fn finish(&mut self) -> Result<Transcript, SttError> {
        self.last_partial.clear();
        Ok(settled(&self.language, &self.recognizer.final_result()))
    }
}

impl SpeechToText for VoskStt {
    fn engine(&self) -> SttEngine {
        ENGINE
    }

    fn supports(&self, language: Option<&str>) -> bool {
        self.model(language).is_some()
    }

    fn supports_grammar(&self) -> bool {
        true
    }

    /// A Kaldi model decodes many times faster than Whisper on CPU.
    fn is_lightweight(&self) -> bool {
        true
    }

    fn languages(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    fn transcribe(&self, samples: &[f32], options: &SttOptions) -> Result<Transcript, SttError> {
        let (language, mut recognizer) = self.recognizer(options)?;
        let pcm: Vec<i16> = samples
            .iter()
            .map(|s| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)
            .collect();
        let mut words = Vec::new();
        // Feed in chunks; Vosk finalizes utterances at pauses, and each
        // finished utterance's words must be collected before the next.
        for chunk in pcm.chunks(8000) {
            let state = recognizer.accept_waveform(chunk).map_err(decoding_failed)?;
            if state == vosk::DecodingState::Finalized {
                collect(&mut words, &recognizer.result());
            }
        }
        collect(&mut words, &recognizer.final_result());
        Ok(Transcript::from_segments(words, language.clone()))
    }

    fn start_stream(&self, options: &SttOptions) -> Result<Box<dyn SttStream + '_>, SttError> {
        let (language, recognizer) = self.recognizer(options)?;
        Ok(Box::new(VoskStream {
            recognizer,
            language: language.clone(),
            last_partial: String::new(),
        }))
    }

    fn health(&self) -> Result<(), String> {
        match &self.problem {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }
}

fn decoding_failed(e: vosk::AcceptWaveformError) -> SttError {
    SttError::Failed {
        engine: ENGINE,
        reason: format!("{e:?}"),
    }
}

/// Appends a finished utterance's words.
fn collect(words: &mut Vec<Segment>, result: &vosk::CompleteResult) {
    let timed: Vec<(f32, f32, &str)> = match result {
        vosk::CompleteResult::Single(single) => single
            .result
            .iter()
            .map(|w| (w.start, w.end, w.word))
            .collect(),
        vosk::CompleteResult::Multiple(multi) => multi
            .alternatives
            .first()
            .map(|best| {
                best.result
                    .iter()
                    .map(|w| (w.start, w.end, w.word))
                    .collect()
            })
            .unwrap_or_default(),
    };
    words.extend(
        timed
            .into_iter()
            .filter(|(_, _, word)| !word.is_empty() && *word != "[unk]")
            .map(|(start, end, word)| {
                Segment::new(f64::from(start), f64::from(end), word.to_owned())
            }),
    );
}
