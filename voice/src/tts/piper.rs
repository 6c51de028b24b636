//! Piper voices (VITS models in ONNX) through piper-rs, one loaded model
//! per `*.onnx` file with its `*.onnx.json` beside it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use piper_rs::Piper;

use super::{TextToSpeech, TtsError, VoiceInfo};
use crate::audio::Audio;

const ENGINE: &str = "piper";

struct LoadedVoice {
    // Inference needs `&mut`; a voice serves one request at a time.
    model: Mutex<Piper>,
    language: String,
    sample_rate: u32,
}

pub struct PiperTts {
    voices: BTreeMap<String, LoadedVoice>,
    /// Why nothing loaded, for `/health` and `/api/v1/engines`.
    problem: Option<String>,
}

#[derive(serde::Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    #[serde(default)]
    language: Option<Language>,
    #[serde(default)]
    espeak: Option<Espeak>,
}

#[derive(serde::Deserialize)]
struct AudioConfig {
    sample_rate: u32,
}

#[derive(serde::Deserialize)]
struct Language {
    code: String,
}

#[derive(serde::Deserialize)]
struct Espeak {
    voice: String,
}

impl PiperTts {
    /// Loads every voice in `dir`; a voice that fails to load is logged and skipped.
    pub fn load(dir: &Path) -> Self {
        let mut voices = BTreeMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                return Self {
                    voices,
                    problem: Some(format!("cannot read {}: {e}", dir.display())),
                };
            }
        };
        let mut failures = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            let config_path = path.with_extension("onnx.json");
            match Self::load_voice(&path, &config_path) {
                Ok(voice) => {
                    tracing::info!(voice = %name, "piper voice loaded");
                    voices.insert(name, voice);
                }
                Err(e) => {
                    tracing::warn!(voice = %name, error = %e, "piper voice not loaded");
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
        let problem = voices.is_empty().then(|| {
            if failures.is_empty() {
                format!("no voices (*.onnx + *.onnx.json) in {}", dir.display())
            } else {
                failures.join("; ")
            }
        });
        Self { voices, problem }
    }

    fn load_voice(model: &Path, config_path: &Path) -> Result<LoadedVoice, String> {
        super::onnx_runtime::ensure_loaded()?;
        let raw = std::fs::read_to_string(config_path)
            .map_err(|e| format!("{}: {e}", config_path.display()))?;
        let config: VoiceConfig =
            serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", config_path.display()))?;
        let piper = Piper::new(model, config_path).map_err(|e| e.to_string())?;
        let language = config
            .language
            .map(|l| l.code)
            .or(config.espeak.map(|e| e.voice))
            .unwrap_or_default();
        Ok(LoadedVoice {
            model: Mutex::new(piper),
            language,
            sample_rate: config.audio.sample_rate,
        })
    }
}

impl TextToSpeech for PiperTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn voices(&self) -> Vec<VoiceInfo> {
        self.voices
            .iter()
            .map(|(name, v)| VoiceInfo {
                name: name.clone(),
                engine: ENGINE,
                language: v.language.clone(),
                sample_rate: v.sample_rate,
            })
            .collect()
    }

    fn default_voice(&self) -> Option<String> {
        self.voices.keys().next().cloned()
    }

    fn synthesize(&self, text: &str, voice: &str, speed: f32) -> Result<Audio, TtsError> {
        let loaded = self
            .voices
            .get(voice)
            .ok_or_else(|| TtsError::UnknownVoice {
                engine: ENGINE,
                voice: voice.to_owned(),
            })?;
        let mut model = loaded.model.lock().map_err(|_| TtsError::Failed {
            engine: ENGINE,
            reason: "voice model poisoned by an earlier failure".into(),
        })?;
        // Piper's length scale is a duration multiplier: faster speech is shorter.
        let length_scale = 1.0 / speed.clamp(0.25, 4.0);
        let (samples, sample_rate) = model
            .create(text, false, None, Some(length_scale), None, None)
            .map_err(|e| TtsError::Failed {
                engine: ENGINE,
                reason: e.to_string(),
            })?;
        Ok(Audio {
            samples,
            sample_rate,
        })
    }

    fn health(&self) -> Result<(), String> {
        match &self.problem {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }
}
