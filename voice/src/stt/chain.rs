//! The speech-to-text chain: the installed engines in their fixed order
//! (Whisper, Vosk, Google), and the one way requests reach them. `plan`
//! asks each engine what it can do and orders them (`router`);
//! `transcribe` goes down the plan until an engine succeeds; `start_stream`
//! opens the plan's first engine. The batch and the streaming routes both
//! go through it, so both are checked and routed alike.

use voicechat_common::stt_profile::SttProfile;

use super::router::{self, EngineFacts, RouteError, RouteRequest};
use super::{SpeechToText, SttEngine, SttError, SttOptions, SttRequest, SttStream, Transcript};
use crate::audio::{STT_SAMPLE_RATE, vad};

/// Shortest sound that counts as speech.
const MIN_SPEECH_MS: u32 = 150;

pub struct SttChain {
    engines: Vec<Box<dyn SpeechToText>>,
    profile: SttProfile,
    /// Audio up to this long is short (`VOSK_MAX_SECS`): on CPU it goes
    /// to the lightweight engine first.
    short_audio_secs: f64,
    /// Audio that never gets louder than this is silence and reaches no
    /// engine (Whisper makes up words for silence).
    vad_threshold_dbfs: f32,
}

/// The engines to try for one request, best first; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttPlan(Vec<usize>);

/// What the chain heard, and which engine heard it.
#[derive(Debug)]
pub struct Recognition {
    pub engine: SttEngine,
    pub transcript: Transcript,
    /// Engines of the plan that failed before this one.
    pub failed: Vec<SttEngine>,
}

/// Every engine of the plan failed.
#[derive(Debug, thiserror::Error)]
#[error("{reasons}")]
pub struct AllFailed {
    pub failed: Vec<SttEngine>,
    /// Each engine's error, `; `-separated.
    pub reasons: String,
}

impl SttChain {
    pub fn new(
        engines: Vec<Box<dyn SpeechToText>>,
        profile: SttProfile,
        short_audio_secs: f64,
        vad_threshold_dbfs: f32,
    ) -> Self {
        Self {
            engines,
            profile,
            short_audio_secs,
            vad_threshold_dbfs,
        }
    }

    pub fn engines(&self) -> &[Box<dyn SpeechToText>] {
        &self.engines
    }

    /// The installed engine `engine`, if it was loaded.
    pub fn get(&self, engine: SttEngine) -> Option<&dyn SpeechToText> {
        self.engines
            .iter()
            .find(|e| e.engine() == engine)
            .map(AsRef::as_ref)
    }

    pub fn profile(&self) -> SttProfile {
        self.profile
    }

    /// What routing needs of each engine for `language`.
    fn facts(&self, language: Option<&str>) -> Vec<EngineFacts> {
        self.engines
            .iter()
            .map(|e| {
                let healthy = e.health().is_ok();
                EngineFacts {
                    engine: e.engine(),
                    healthy,
                    supports_language: healthy && e.supports(language),
                    supports_grammar: e.supports_grammar(),
                    supports_translation: healthy && e.supports_translation(),
                    lightweight: e.is_lightweight(),
                    languages: e.languages(),
                }
            })
            .collect()
    }

    /// Which engines hear `request` for audio of `duration_secs` (a stream
    /// counts as short), in the order to try them.
    pub fn plan(&self, request: &SttRequest, duration_secs: f64) -> Result<SttPlan, RouteError> {
        let facts = self.facts(request.options.language.as_deref());
        let route = RouteRequest {
            engine: request.engine.as_deref(),
            duration_secs,
            has_grammar: request.options.grammar.is_some(),
            language: request.options.language.as_deref(),
            translate: request.options.translate,
        };
        router::plan(&facts, &route, self.profile, self.short_audio_secs).map(SttPlan)
    }

    /// The engine a plan tries first: the one a stream uses.
    pub fn first(&self, plan: &SttPlan) -> SttEngine {
        self.engines[plan.0[0]].engine()
    }

    /// Recognizes 16 kHz mono samples with the first engine of the plan
    /// that succeeds. Silence reaches no engine: it is an empty transcript,
    /// credited to the plan's first engine.
    pub fn transcribe(
        &self,
        plan: &SttPlan,
        samples: &[f32],
        options: &SttOptions,
    ) -> Result<Recognition, AllFailed> {
        if !vad::has_speech(
            samples,
            STT_SAMPLE_RATE,
            self.vad_threshold_dbfs,
            MIN_SPEECH_MS,
        ) {
            return Ok(Recognition {
                engine: self.first(plan),
                transcript: Transcript::empty(options.language.clone().unwrap_or_default()),
                failed: Vec::new(),
            });
        }
        let mut failed = Vec::new();
        let mut reasons = Vec::new();
        for &i in &plan.0 {
            let engine = &self.engines[i];
            match engine.transcribe(samples, options) {
                Ok(transcript) => {
                    return Ok(Recognition {
                        engine: engine.engine(),
                        transcript,
                        failed,
                    });
                }
                // Nobody to answer: the next engine would work for no one.
                Err(e @ SttError::Cancelled { .. }) => {
                    return Err(AllFailed {
                        failed,
                        reasons: e.to_string(),
                    });
                }
                Err(e) => {
                    tracing::warn!(engine = engine.name(), error = %e, "speech-to-text engine failed, trying the next");
                    failed.push(engine.engine());
                    reasons.push(e.to_string());
                }
            }
        }
        Err(AllFailed {
            failed,
            reasons: reasons.join("; "),
        })
    }

    /// Starts recognizing audio that arrives in pieces, with the plan's
    /// first engine (a stream cannot fall back midway).
    pub fn start_stream(
        &self,
        plan: &SttPlan,
        options: &SttOptions,
    ) -> Result<Box<dyn SttStream + '_>, SttError> {
        self.engines[plan.0[0]].start_stream(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine that hears every language and says what it is told to.
    struct Fake {
        engine: SttEngine,
        grammar: bool,
        lightweight: bool,
        fails: bool,
    }

    impl SpeechToText for Fake {
        fn engine(&self) -> SttEngine {
            self.engine
        }
        fn supports(&self, _: Option<&str>) -> bool {
            true
        }
        fn supports_grammar(&self) -> bool {
            self.grammar
        }
        fn is_lightweight(&self) -> bool {
            self.lightweight
        }
        fn languages(&self) -> Vec<String> {
            vec!["*".into()]
        }
        fn transcribe(&self, _: &[f32], options: &SttOptions) -> Result<Transcript, SttError> {
            if self.fails {
                return Err(SttError::Failed {
                    engine: self.engine,
                    reason: "boom".into(),
                });
            }
            Ok(Transcript {
                text: self.name().into(),
                ..Transcript::empty(options.language.clone().unwrap_or_default())
            })
        }
        fn start_stream(&self, _: &SttOptions) -> Result<Box<dyn SttStream + '_>, SttError> {
            Err(SttError::Unavailable {
                engine: self.engine,
                reason: "no streams here".into(),
            })
        }
        fn health(&self) -> Result<(), String> {
            Ok(())
        }
    }

    fn fake(engine: SttEngine, fails: bool) -> Box<dyn SpeechToText> {
        Box::new(Fake {
            engine,
            grammar: false,
            lightweight: false,
            fails,
        })
    }

    fn chain(engines: Vec<Box<dyn SpeechToText>>) -> SttChain {
        SttChain::new(engines, SttProfile::Cpu, 10.0, -45.0)
    }

    /// One second of a loud tone: speech as far as the VAD can tell.
    fn tone() -> Vec<f32> {
        (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect()
    }

    fn request(grammar: Option<Vec<String>>) -> SttRequest {
        SttRequest::new(None, None, grammar).unwrap()
    }

    #[test]
    fn falls_back_down_the_plan_and_reports_who_failed() {
        let c = chain(vec![
            fake(SttEngine::Whisper, true),
            fake(SttEngine::Google, false),
        ]);
        let plan = c.plan(&request(None), 1.0).unwrap();
        let r = c
            .transcribe(&plan, &tone(), &SttOptions::default())
            .unwrap();
        assert_eq!(r.engine, SttEngine::Google);
        assert_eq!(r.transcript.text, "google");
        assert_eq!(r.failed, [SttEngine::Whisper]);

        let c = chain(vec![
            fake(SttEngine::Whisper, true),
            fake(SttEngine::Google, true),
        ]);
        let plan = c.plan(&request(None), 1.0).unwrap();
        let e = c
            .transcribe(&plan, &tone(), &SttOptions::default())
            .unwrap_err();
        assert_eq!(e.failed, [SttEngine::Whisper, SttEngine::Google]);
        assert_eq!(e.reasons, "whisper failed: boom; google failed: boom");
    }

    #[test]
    fn silence_reaches_no_engine() {
        let c = chain(vec![fake(SttEngine::Whisper, true)]);
        let plan = c.plan(&request(None), 1.0).unwrap();
        let r = c
            .transcribe(&plan, &vec![0.0; 16_000], &SttOptions::default())
            .unwrap();
        assert_eq!(r.engine, SttEngine::Whisper);
        assert!(r.transcript.text.is_empty() && r.failed.is_empty());
    }

    #[test]
    fn routing_asks_the_engines_not_their_names() {
        // Google declared as taking grammars and lightweight: routing
        // follows what the engine says of itself.
        let c = chain(vec![
            fake(SttEngine::Whisper, false),
            Box::new(Fake {
                engine: SttEngine::Google,
                grammar: true,
                lightweight: true,
                fails: false,
            }),
        ]);
        let short = c.plan(&request(None), 1.0).unwrap();
        assert_eq!(c.first(&short), SttEngine::Google);
        let long = c.plan(&request(None), 60.0).unwrap();
        assert_eq!(c.first(&long), SttEngine::Whisper);
        let grammar = c.plan(&request(Some(vec!["yes".into()])), 60.0).unwrap();
        assert_eq!(grammar, SttPlan(vec![1]));
        assert!(c.get(SttEngine::Vosk).is_none());
        assert!(c.start_stream(&grammar, &SttOptions::default()).is_err());
    }
}
