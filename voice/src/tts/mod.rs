//! Text-to-speech engines behind one trait, and the fallback chain over them.
//! Engine calls block (model inference, a child process): callers run them
//! on the blocking pool.

pub mod espeak;
mod onnx_runtime;
pub mod piper;
pub use voicechat_common::sentences;

use serde::Serialize;

use crate::audio::Audio;

#[derive(Debug, Clone, Serialize)]
pub struct VoiceInfo {
    /// The name clients pass as `voice`.
    pub name: String,
    pub engine: &'static str,
    pub language: String,
    pub sample_rate: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("{engine} has no voice {voice:?}")]
    UnknownVoice { engine: &'static str, voice: String },
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

pub trait TextToSpeech: Send + Sync {
    fn name(&self) -> &'static str;
    fn voices(&self) -> Vec<VoiceInfo>;
    /// The voice used when the request names none.
    fn default_voice(&self) -> Option<String>;
    /// Synthesizes `text`; `speed` 1.0 is the voice's natural rate.
    fn synthesize(&self, text: &str, voice: &str, speed: f32) -> Result<Audio, TtsError>;
    /// `Ok` when the engine can synthesize, else why not.
    fn health(&self) -> Result<(), String>;
}

/// What the chain produced, and with which engine and voice.
pub struct Synthesis {
    pub audio: Audio,
    pub engine: &'static str,
    pub voice: String,
    /// Engines tried before this one, with their errors.
    pub fallbacks: Vec<(&'static str, String)>,
}

/// One sentence of a streamed synthesis, and who made it.
pub struct SentenceAudio<'a> {
    pub engine: &'static str,
    pub voice: &'a str,
    /// The sentence, after the pause before it.
    pub audio: Audio,
}

/// How a streamed synthesis went.
#[derive(Debug)]
pub struct StreamedSynthesis {
    pub engine: &'static str,
    /// Engines tried before this one, with their errors.
    pub fallbacks: Vec<(&'static str, String)>,
    /// Sentences synthesized, of how many.
    pub sentences: usize,
    pub of: usize,
    /// The receiver went away: synthesis stopped early.
    pub client_left: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("no engine has the voice {0:?}")]
    UnknownVoice(String),
    #[error("no text-to-speech engine could synthesize: {0}")]
    AllFailed(String),
}

/// Engines in order of preference (Piper, then espeak-ng).
pub struct TtsChain {
    pub engines: Vec<Box<dyn TextToSpeech>>,
    /// Silence put between sentences (`TTS_SENTENCE_SILENCE_SECS`, as
    /// Piper's `--sentence-silence`).
    pub sentence_silence_secs: f32,
}

impl TtsChain {
    /// Which engines to try, with which voice: the engine owning the named
    /// voice first, then the others with their default voice. With no
    /// voice named, every engine in order with its default voice.
    pub fn plan(&self, voice: Option<&str>) -> Result<Vec<(usize, String)>, ChainError> {
        let mut plan = Vec::new();
        if let Some(v) = voice {
            let owner = self
                .engines
                .iter()
                .position(|e| e.voices().iter().any(|i| i.name == v))
                .ok_or_else(|| ChainError::UnknownVoice(v.to_owned()))?;
            plan.push((owner, v.to_owned()));
        }
        for (i, engine) in self.engines.iter().enumerate() {
            if plan.iter().any(|(p, _)| *p == i) {
                continue;
            }
            if let Some(default) = engine.default_voice() {
                plan.push((i, default));
            }
        }
        Ok(plan)
    }

    /// Tries the plan in order until one engine succeeds.
    pub fn synthesize(
        &self,
        text: &str,
        voice: Option<&str>,
        speed: f32,
    ) -> Result<Synthesis, ChainError> {
        let mut fallbacks = Vec::new();
        for (index, voice) in self.plan(voice)? {
            let engine = &self.engines[index];
            match synthesize_sentences(
                engine.as_ref(),
                text,
                &voice,
                speed,
                self.sentence_silence_secs,
            ) {
                Ok(audio) if !audio.samples.is_empty() => {
                    return Ok(Synthesis {
                        audio,
                        engine: engine.name(),
                        voice,
                        fallbacks,
                    });
                }
                Ok(_) => fallbacks.push((engine.name(), "produced no audio".to_owned())),
                Err(e) => {
                    tracing::warn!(engine = engine.name(), error = %e, "text-to-speech engine failed, trying the next");
                    fallbacks.push((engine.name(), e.to_string()));
                }
            }
        }
        let reasons: Vec<String> = fallbacks.iter().map(|(e, r)| format!("{e}: {r}")).collect();
        Err(ChainError::AllFailed(if reasons.is_empty() {
            "no engine is installed".to_owned()
        } else {
            reasons.join("; ")
        }))
    }

    /// The text sentence by sentence, each handed to `emit` as soon as it
    /// is synthesized (with the pause before it), so that a client hears
    /// the first sentence while the rest are made. The engine is chosen on
    /// the first sentence (falling back as `synthesize` does); once audio
    /// has gone out, a later failure ends the stream with that error, in
    /// the same voice or not at all. `emit` returns false when the client
    /// went away: synthesis stops there.
    pub fn synthesize_streaming(
        &self,
        text: &str,
        voice: Option<&str>,
        speed: f32,
        mut emit: impl FnMut(SentenceAudio<'_>) -> bool,
    ) -> Result<StreamedSynthesis, ChainError> {
        let sentences = sentences::split(text, MAX_SENTENCE_CHARS);
        let Some((first, rest)) = sentences.split_first() else {
            return Err(ChainError::AllFailed("no text to speak".into()));
        };
        let mut fallbacks = Vec::new();
        for (index, voice) in self.plan(voice)? {
            let engine = &self.engines[index];
            let audio = match engine.synthesize(first, &voice, speed) {
                Ok(audio) if !audio.samples.is_empty() => audio,
                Ok(_) => {
                    fallbacks.push((engine.name(), "produced no audio".to_owned()));
                    continue;
                }
                Err(e) => {
                    tracing::warn!(engine = engine.name(), error = %e, "text-to-speech engine failed, trying the next");
                    fallbacks.push((engine.name(), e.to_string()));
                    continue;
                }
            };
            let rate = audio.sample_rate;
            let mut done = StreamedSynthesis {
                engine: engine.name(),
                fallbacks,
                sentences: 1,
                of: sentences.len(),
                client_left: false,
            };
            let first = SentenceAudio {
                engine: engine.name(),
                voice: &voice,
                audio,
            };
            if !emit(first) {
                done.client_left = true;
                return Ok(done);
            }
            let pause = (rate as f32 * self.sentence_silence_secs) as usize;
            for sentence in rest {
                let audio = engine.synthesize(sentence, &voice, speed).map_err(|e| {
                    ChainError::AllFailed(format!(
                        "{}: {e} (after {} sentences)",
                        engine.name(),
                        done.sentences
                    ))
                })?;
                if audio.sample_rate != rate {
                    return Err(ChainError::AllFailed(format!(
                        "{}: sentences came back at different sample rates",
                        engine.name()
                    )));
                }
                let mut samples = vec![0.0; pause];
                samples.extend(audio.samples);
                done.sentences += 1;
                let next = SentenceAudio {
                    engine: engine.name(),
                    voice: &voice,
                    audio: Audio {
                        samples,
                        sample_rate: rate,
                    },
                };
                if !emit(next) {
                    done.client_left = true;
                    return Ok(done);
                }
            }
            return Ok(done);
        }
        let reasons: Vec<String> = fallbacks.iter().map(|(e, r)| format!("{e}: {r}")).collect();
        Err(ChainError::AllFailed(if reasons.is_empty() {
            "no engine is installed".to_owned()
        } else {
            reasons.join("; ")
        }))
    }

    pub fn voices(&self) -> Vec<VoiceInfo> {
        self.engines.iter().flat_map(|e| e.voices()).collect()
    }
}

/// Longest piece of text given to an engine at once.
const MAX_SENTENCE_CHARS: usize = 400;

/// One engine, one voice, the text sentence by sentence, joined with a
/// `silence_secs` of silence; the first failure fails the whole text (the chain then
/// tries the next engine with all of it, so one answer has one voice).
fn synthesize_sentences(
    engine: &dyn TextToSpeech,
    text: &str,
    voice: &str,
    speed: f32,
    silence_secs: f32,
) -> Result<Audio, TtsError> {
    let mut joined: Option<Audio> = None;
    for sentence in sentences::split(text, MAX_SENTENCE_CHARS) {
        let audio = engine.synthesize(&sentence, voice, speed)?;
        match &mut joined {
            None => joined = Some(audio),
            Some(all) => {
                if audio.sample_rate != all.sample_rate {
                    return Err(TtsError::Failed {
                        engine: engine.name(),
                        reason: "sentences came back at different sample rates".into(),
                    });
                }
                let pause = (all.sample_rate as f32 * silence_secs) as usize;
                all.samples.extend(std::iter::repeat_n(0.0, pause));
                all.samples.extend(audio.samples);
            }
        }
    }
    joined.ok_or_else(|| TtsError::Failed {
        engine: engine.name(),
        reason: "no text to speak".into(),
    })
}

/// Voice and model names come from clients and become file names or
/// process arguments: letters, digits and `._+-` only, no leading dot.
pub fn safe_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        name: &'static str,
        voices: Vec<&'static str>,
        fails: bool,
    }

    impl TextToSpeech for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn voices(&self) -> Vec<VoiceInfo> {
            self.voices
                .iter()
                .map(|v| VoiceInfo {
                    name: (*v).into(),
                    engine: self.name,
                    language: "en".into(),
                    sample_rate: 16_000,
                })
                .collect()
        }
        fn default_voice(&self) -> Option<String> {
            self.voices.first().map(|v| (*v).to_owned())
        }
        fn synthesize(&self, _: &str, _: &str, _: f32) -> Result<Audio, TtsError> {
            if self.fails {
                Err(TtsError::Failed {
                    engine: self.name,
                    reason: "boom".into(),
                })
            } else {
                Ok(Audio {
                    samples: vec![0.1; 10],
                    sample_rate: 16_000,
                })
            }
        }
        fn health(&self) -> Result<(), String> {
            Ok(())
        }
    }

    fn chain(first_fails: bool) -> TtsChain {
        TtsChain {
            sentence_silence_secs: 0.2,
            engines: vec![
                Box::new(Fake {
                    name: "a",
                    voices: vec!["a1", "a2"],
                    fails: first_fails,
                }),
                Box::new(Fake {
                    name: "b",
                    voices: vec!["b1"],
                    fails: false,
                }),
            ],
        }
    }

    #[test]
    fn plans_the_owner_first_then_defaults() {
        let c = chain(false);
        assert_eq!(
            c.plan(Some("b1")).unwrap(),
            vec![(1, "b1".into()), (0, "a1".into())]
        );
        assert_eq!(
            c.plan(None).unwrap(),
            vec![(0, "a1".into()), (1, "b1".into())]
        );
        assert!(matches!(
            c.plan(Some("zz")),
            Err(ChainError::UnknownVoice(_))
        ));
    }

    #[test]
    fn falls_back_and_reports_it() {
        let s = chain(true).synthesize("hi", Some("a2"), 1.0).unwrap();
        assert_eq!(s.engine, "b");
        assert_eq!(s.fallbacks.len(), 1);
    }

    #[test]
    fn names_are_restricted() {
        assert!(safe_name("en_US-joe-medium"));
        assert!(safe_name("en-us"));
        assert!(!safe_name("../etc/passwd"));
        assert!(!safe_name("-v"));
        assert!(!safe_name("a/b"));
    }
}
