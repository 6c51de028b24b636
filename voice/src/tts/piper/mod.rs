//! Piper voices (VITS models in ONNX), one loaded model per `*.onnx` file
//! with its `*.onnx.json` beside it, spoken as piper-tts speaks them: the
//! same phonemes (`phonemes`), one model run per sentence, each sentence
//! scaled to full range.

mod espeak_bridge;
mod inference;
pub mod phonemes;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use inference::{Scales, VoiceModel};
use phonemes::PhonemeType;

use super::{TextToSpeech, TtsError, VoiceInfo};
use crate::audio::Audio;

const ENGINE: &str = "piper";

struct LoadedVoice {
    // Inference needs `&mut`; a voice serves one request at a time.
    model: Mutex<VoiceModel>,
    config: VoiceConfig,
    /// `config.phoneme_id_map` keyed by character, built once.
    id_map: HashMap<char, Vec<i64>>,
}

pub struct PiperTts {
    voices: BTreeMap<String, LoadedVoice>,
    /// Why nothing loaded, for `/health` and `/api/v1/engines`.
    problem: Option<String>,
}

/// The parts of a voice's `.onnx.json` that synthesis reads.
#[derive(serde::Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    #[serde(default)]
    language: Option<Language>,
    #[serde(default)]
    espeak: Option<Espeak>,
    inference: Scales,
    #[serde(default = "espeak_phonemes")]
    phoneme_type: PhonemeType,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: u32,
}

fn espeak_phonemes() -> PhonemeType {
    PhonemeType::Espeak
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

impl VoiceConfig {
    fn espeak_voice(&self) -> &str {
        self.espeak.as_ref().map_or("en-us", |e| e.voice.as_str())
    }

    /// Phoneme → ids; keys are single code points in every Piper voice.
    fn id_map(&self) -> HashMap<char, Vec<i64>> {
        self.phoneme_id_map
            .iter()
            .filter_map(|(key, ids)| {
                let mut chars = key.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, ids.clone())),
                    _ => None,
                }
            })
            .collect()
    }
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
        let model = VoiceModel::load(model, config.num_speakers > 1)?;
        Ok(LoadedVoice {
            model: Mutex::new(model),
            id_map: config.id_map(),
            config,
        })
    }
}

impl LoadedVoice {
    fn language(&self) -> String {
        match (&self.config.language, &self.config.espeak) {
            (Some(l), _) => l.code.clone(),
            (None, Some(e)) => e.voice.clone(),
            (None, None) => String::new(),
        }
    }

    /// The phoneme ids of each sentence of `text`.
    fn sentence_ids(&self, text: &str) -> Result<Vec<Vec<i64>>, TtsError> {
        let sentences =
            phonemes::sentences(text, &self.config.phoneme_type, self.config.espeak_voice())
                .map_err(|e| TtsError::Failed {
                    engine: ENGINE,
                    reason: e.to_string(),
                })?;
        Ok(sentences
            .iter()
            .map(|s| phonemes::ids(s, &self.id_map))
            .collect())
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
                language: v.language(),
                sample_rate: v.config.audio.sample_rate,
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
        let scales = Scales {
            length_scale: loaded.config.inference.length_scale / speed.clamp(0.25, 4.0),
            ..loaded.config.inference
        };
        let mut samples = Vec::new();
        for ids in loaded.sentence_ids(text)? {
            let mut sentence = model
                .infer(ids, scales, 0)
                .map_err(|reason| TtsError::Failed {
                    engine: ENGINE,
                    reason,
                })?;
            normalize_peak(&mut sentence);
            samples.append(&mut sentence);
        }
        Ok(Audio {
            samples,
            sample_rate: loaded.config.audio.sample_rate,
        })
    }

    fn health(&self) -> Result<(), String> {
        match &self.problem {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }
}

/// Scales a sentence so its loudest sample is at full range, as piper-tts
/// does by default (the models' raw output level varies by sentence).
fn normalize_peak(samples: &mut [f32]) {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak < 1e-8 {
        samples.fill(0.0);
        return;
    }
    for s in samples {
        *s = (*s / peak).clamp(-1.0, 1.0);
    }
}
