//! Which engines hear a request, in which order: a pure function of what
//! each engine can do, the request and the profile, so every rule is
//! unit-tested. `SttChain::plan` asks the engines and calls it.
//!
//! - an explicit engine wins, and only that engine is used;
//! - a grammar needs an engine that takes one (Vosk);
//! - GPU profile: the lightweight engine last (Whisper is fast and
//!   accurate there);
//! - CPU profile: short audio in a language the lightweight engine (Vosk)
//!   has → it first (it is much cheaper); long audio, or a language only
//!   Whisper has → Whisper;
//! - then every other engine that supports the language, as fallbacks.

use voicechat_common::stt_profile::SttProfile;

use crate::engine_name::{EngineName, SttEngine};

/// What routing knows of an installed engine.
#[derive(Debug, Clone)]
pub struct EngineFacts {
    pub engine: SttEngine,
    /// Whether its model loaded; an engine that did not supports nothing.
    pub healthy: bool,
    pub supports_language: bool,
    pub supports_grammar: bool,
    pub supports_translation: bool,
    pub lightweight: bool,
    /// Languages it has models for (`*`: any), for error messages.
    pub languages: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RouteRequest<'a> {
    /// The engine asked for by name, as the client wrote it.
    pub engine: Option<&'a str>,
    pub duration_secs: f64,
    pub has_grammar: bool,
    /// The language asked for (`None`: any, detected).
    pub language: Option<&'a str>,
    /// The answer is to be in English.
    pub translate: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("unknown or unavailable engine {0:?}")]
    UnknownEngine(String),
    #[error("{0} cannot recognize this language")]
    EngineLacksLanguage(SttEngine),
    #[error("no installed engine recognizes language {language:?} (installed: {installed})")]
    NoEngineForLanguage { language: String, installed: String },
    #[error("translation needs a multilingual Whisper model (installed: {0})")]
    TranslationNeedsMultilingualWhisper(String),
    #[error("a grammar needs the vosk engine with a model for this language")]
    GrammarNeedsVosk,
    /// The request may be fine: the engines that could take it did not load.
    #[error("{} not loaded (see /health) and no other engine can recognize this language", names(.0))]
    EnginesUnavailable(Vec<SttEngine>),
}

/// `whisper en, vosk ko`: what is installed, for error messages.
fn installed(engines: &[EngineFacts]) -> String {
    let list: Vec<String> = engines
        .iter()
        .filter(|e| e.healthy)
        .map(|e| {
            let languages = if e.languages.iter().any(|l| l == "*") {
                "multilingual".to_owned()
            } else {
                e.languages.join("/")
            };
            format!("{} {languages}", e.engine.as_str())
        })
        .collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

fn names(engines: &[SttEngine]) -> String {
    let names: Vec<&str> = engines.iter().map(|e| e.as_str()).collect();
    names.join(", ")
}

/// Indices into `engines`, in the order to try them.
pub fn plan(
    engines: &[EngineFacts],
    request: &RouteRequest<'_>,
    profile: SttProfile,
    short_audio_secs: f64,
) -> Result<Vec<usize>, RouteError> {
    if let Some(wanted) = request.engine {
        let unknown = || RouteError::UnknownEngine(wanted.to_owned());
        let engine = SttEngine::parse(wanted).ok_or_else(unknown)?;
        let index = engines
            .iter()
            .position(|e| e.engine == engine)
            .ok_or_else(unknown)?;
        if !engines[index].healthy {
            return Err(RouteError::EnginesUnavailable(vec![engine]));
        }
        if !engines[index].supports_language {
            return Err(RouteError::EngineLacksLanguage(engine));
        }
        if request.translate && !engines[index].supports_translation {
            return Err(RouteError::TranslationNeedsMultilingualWhisper(installed(
                engines,
            )));
        }
        if request.has_grammar && !engines[index].supports_grammar {
            return Err(RouteError::GrammarNeedsVosk);
        }
        return Ok(vec![index]);
    }
    let capable: Vec<usize> = (0..engines.len())
        .filter(|&i| engines[i].supports_language)
        .filter(|&i| !request.has_grammar || engines[i].supports_grammar)
        .filter(|&i| !request.translate || engines[i].supports_translation)
        .collect();
    if capable.is_empty() {
        let unavailable: Vec<SttEngine> = engines
            .iter()
            .filter(|e| !e.healthy)
            .map(|e| e.engine)
            .collect();
        return Err(if !unavailable.is_empty() {
            RouteError::EnginesUnavailable(unavailable)
        } else if request.has_grammar {
            RouteError::GrammarNeedsVosk
        } else if request.translate && engines.iter().any(|e| e.supports_language) {
            RouteError::TranslationNeedsMultilingualWhisper(installed(engines))
        } else {
            RouteError::NoEngineForLanguage {
                language: request.language.unwrap_or("(detected)").to_owned(),
                installed: installed(engines),
            }
        });
    }
    let prefer_lightweight =
        profile == SttProfile::Cpu && request.duration_secs <= short_audio_secs;
    let rank = |i: &usize| {
        // Lower is tried first.
        u8::from(engines[*i].lightweight != prefer_lightweight)
    };
    let mut ordered = capable;
    ordered.sort_by_key(rank);
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engines(vosk_has_language: bool) -> Vec<EngineFacts> {
        vec![
            EngineFacts {
                engine: SttEngine::Whisper,
                healthy: true,
                supports_language: true,
                supports_grammar: false,
                supports_translation: false,
                lightweight: false,
                languages: vec!["en".into()],
            },
            EngineFacts {
                engine: SttEngine::Vosk,
                healthy: true,
                supports_language: vosk_has_language,
                supports_grammar: true,
                supports_translation: false,
                lightweight: true,
                languages: vec!["ko".into()],
            },
        ]
    }

    fn req(engine: Option<&str>, secs: f64, grammar: bool) -> RouteRequest<'_> {
        RouteRequest {
            engine,
            duration_secs: secs,
            has_grammar: grammar,
            language: None,
            translate: false,
        }
    }

    #[test]
    fn a_language_nobody_has_is_refused_naming_what_is_installed() {
        let mut facts = engines(false);
        facts[0].supports_language = false;
        let request = RouteRequest {
            language: Some("es"),
            ..req(None, 3.0, false)
        };
        let err = plan(&facts, &request, SttProfile::Cpu, 10.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no installed engine recognizes language \"es\" (installed: whisper en, vosk ko)"
        );
    }

    #[test]
    fn translation_goes_to_an_engine_that_translates_or_is_refused() {
        let translate = RouteRequest {
            translate: true,
            ..req(None, 3.0, false)
        };
        let err = plan(&engines(true), &translate, SttProfile::Cpu, 10.0).unwrap_err();
        assert_eq!(
            err,
            RouteError::TranslationNeedsMultilingualWhisper("whisper en, vosk ko".into())
        );
        let explicit = RouteRequest {
            engine: Some("vosk"),
            ..translate.clone()
        };
        assert!(matches!(
            plan(&engines(true), &explicit, SttProfile::Cpu, 10.0),
            Err(RouteError::TranslationNeedsMultilingualWhisper(_))
        ));
        let mut multilingual = engines(true);
        multilingual[0].supports_translation = true;
        multilingual[0].languages = vec!["*".into()];
        // Short audio on CPU would go to Vosk first; Vosk cannot translate.
        assert_eq!(
            plan(&multilingual, &translate, SttProfile::Cpu, 10.0).unwrap(),
            [0]
        );
    }

    #[test]
    fn cpu_short_audio_goes_to_vosk_first_long_to_whisper() {
        assert_eq!(
            plan(
                &engines(true),
                &req(None, 3.0, false),
                SttProfile::Cpu,
                10.0
            )
            .unwrap(),
            [1, 0]
        );
        assert_eq!(
            plan(
                &engines(true),
                &req(None, 30.0, false),
                SttProfile::Cpu,
                10.0
            )
            .unwrap(),
            [0, 1]
        );
    }

    #[test]
    fn gpu_prefers_whisper_and_language_decides_capability() {
        assert_eq!(
            plan(
                &engines(true),
                &req(None, 3.0, false),
                SttProfile::Gpu,
                10.0
            )
            .unwrap(),
            [0, 1]
        );
        assert_eq!(
            plan(
                &engines(false),
                &req(None, 3.0, false),
                SttProfile::Cpu,
                10.0
            )
            .unwrap(),
            [0]
        );
    }

    #[test]
    fn explicit_engine_wins_alone() {
        assert_eq!(
            plan(
                &engines(true),
                &req(Some("whisper"), 3.0, false),
                SttProfile::Cpu,
                10.0
            )
            .unwrap(),
            [0]
        );
        assert_eq!(
            plan(
                &engines(false),
                &req(Some("vosk"), 3.0, false),
                SttProfile::Cpu,
                10.0
            ),
            Err(RouteError::EngineLacksLanguage(SttEngine::Vosk))
        );
        assert!(matches!(
            plan(
                &engines(true),
                &req(Some("google"), 3.0, false),
                SttProfile::Cpu,
                10.0
            ),
            Err(RouteError::UnknownEngine(_))
        ));
    }

    #[test]
    fn grammar_needs_vosk() {
        assert_eq!(
            plan(
                &engines(true),
                &req(None, 30.0, true),
                SttProfile::Gpu,
                10.0
            )
            .unwrap(),
            [1]
        );
        assert_eq!(
            plan(
                &engines(false),
                &req(None, 3.0, true),
                SttProfile::Cpu,
                10.0
            ),
            Err(RouteError::GrammarNeedsVosk)
        );
        assert_eq!(
            plan(
                &engines(true),
                &req(Some("whisper"), 3.0, true),
                SttProfile::Cpu,
                10.0
            ),
            Err(RouteError::GrammarNeedsVosk)
        );
    }

    #[test]
    fn an_engine_that_did_not_load_is_unavailable_not_unsupported() {
        let mut facts = engines(false);
        facts[0].healthy = false;
        facts[0].supports_language = false;
        let unavailable = Err(RouteError::EnginesUnavailable(vec![SttEngine::Whisper]));
        assert_eq!(
            plan(&facts, &req(None, 3.0, false), SttProfile::Cpu, 10.0),
            unavailable
        );
        assert_eq!(
            plan(
                &facts,
                &req(Some("whisper"), 3.0, false),
                SttProfile::Cpu,
                10.0
            ),
            unavailable
        );
        // A healthy engine that can take the request still does.
        facts[1].supports_language = true;
        assert_eq!(
            plan(&facts, &req(None, 3.0, false), SttProfile::Cpu, 10.0).unwrap(),
            [1]
        );
    }
}
