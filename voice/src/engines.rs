//! The installed engines, loaded once (at start-up, on the blocking pool).

use serde::Serialize;
use voicechat_common::stt_profile::SttProfile;

use crate::config::VoiceConfig;
use crate::engine_name::{SttEngine, TtsEngine};
use crate::google::stt::GoogleStt;
use crate::google::tts::GoogleTts;
use crate::stt::vosk::VoskStt;
use crate::stt::whisper::{WhisperSettings, WhisperStt};
use crate::stt::{SpeechToText, SttChain};
use crate::tts::espeak::EspeakTts;
use crate::tts::piper::PiperTts;
use crate::tts::{TextToSpeech, TtsChain};

pub struct Engines {
    pub tts: TtsChain,
    pub stt: SttChain,
}

/// One row of `GET /api/v1/engines`.
#[derive(Debug, Serialize)]
pub struct EngineStatus {
    pub name: &'static str,
    pub kind: &'static str,
    pub healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Voices (TTS) or languages (STT).
    pub provides: Vec<String>,
}

impl Engines {
    pub fn load(config: &VoiceConfig) -> Self {
        let tts_wanted = |e: TtsEngine| config.tts_engines.contains(&e);
        let stt_wanted = |e: SttEngine| config.stt_engines.contains(&e);
        let mut tts: Vec<Box<dyn TextToSpeech>> = Vec::new();
        if tts_wanted(TtsEngine::Piper) {
            tts.push(Box::new(PiperTts::load(&config.piper_dir)));
        }
        if tts_wanted(TtsEngine::EspeakNg) {
            tts.push(Box::new(EspeakTts::new(
                config.espeak_program.clone(),
                config.espeak_default_voice.clone(),
            )));
        }
        // Whisper first, then Vosk: the order used when routing has no preference.
        let mut stt: Vec<Box<dyn SpeechToText>> = Vec::new();
        if stt_wanted(SttEngine::Whisper) {
            stt.push(Box::new(WhisperStt::load(
                &config.whisper_model,
                WhisperSettings {
                    use_gpu: config.profile == SttProfile::Gpu,
                    ..config.whisper.clone()
                },
            )));
        }
        if stt_wanted(SttEngine::Vosk) {
            stt.push(Box::new(VoskStt::load(
                &config.vosk_dir,
                config.vosk_default_language.clone(),
            )));
        }
        // Google last: a remote fallback, used when the local engines cannot.
        if let Some(google) = &config.google {
            match reqwest::Client::builder().timeout(google.timeout).build() {
                Ok(http) => {
                    if google.tts_enabled && tts_wanted(TtsEngine::Google) {
                        tts.push(Box::new(GoogleTts::new(google, http.clone())));
                    }
                    if google.stt_enabled && stt_wanted(SttEngine::Google) {
                        stt.push(Box::new(GoogleStt::new(google, http)));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Google engines not loaded"),
            }
        }
        Self {
            tts: TtsChain {
                engines: tts,
                sentence_silence_secs: config.sentence_silence_secs,
            },
            stt: SttChain::new(
                stt,
                config.profile,
                config.vosk_max_secs,
                config.vad_threshold_dbfs,
            ),
        }
    }

    pub fn status(&self) -> Vec<EngineStatus> {
        let tts = self.tts.engines.iter().map(|e| {
            let health = e.health();
            EngineStatus {
                name: e.name(),
                kind: "tts",
                healthy: health.is_ok(),
                error: health.err(),
                provides: e.voices().into_iter().map(|v| v.name).collect(),
            }
        });
        let stt = self.stt.engines().iter().map(|e| {
            let health = e.health();
            EngineStatus {
                name: e.name(),
                kind: "stt",
                healthy: health.is_ok(),
                error: health.err(),
                provides: e.languages(),
            }
        });
        tts.chain(stt).collect()
    }

    /// Why the service cannot take traffic: a kind of engine that was
    /// asked for (`VOICE_TTS_ENGINES`, `VOICE_STT_ENGINES`) of which none
    /// loaded, e.g. every model file missing. `None` when each kind that
    /// was asked for has at least one healthy engine; a degraded set (Piper
    /// gone, espeak-ng left) is still ready and says so in `/health`.
    pub fn not_ready_reason(&self) -> Option<String> {
        let statuses = self.status();
        let mut reasons = Vec::new();
        for (kind, label) in [("tts", "text-to-speech"), ("stt", "speech-to-text")] {
            let of_kind: Vec<&EngineStatus> = statuses.iter().filter(|s| s.kind == kind).collect();
            if !of_kind.is_empty() && !of_kind.iter().any(|s| s.healthy) {
                let why: Vec<String> = of_kind
                    .iter()
                    .map(|s| format!("{}: {}", s.name, s.error.as_deref().unwrap_or("not loaded")))
                    .collect();
                reasons.push(format!("no {label} engine loaded ({})", why.join("; ")));
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}
