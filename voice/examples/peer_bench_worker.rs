//! This project's side of `scripts/bench-peers.sh`: the engines in-process,
//! driven one request per line on standard input, one JSON answer per line
//! on standard output, so that the script can interleave them with the
//! peers' runs (faster-whisper, piper-tts) in one process each.
//!
//! {"op":"stt","model":"…/ggml-tiny.en.bin","audio":"jfk.wav","threads":2,
//!  "fit_audio_ctx":true,"flash_attn":false,"beam_size":1,"language":"en"}
//!     → {"seconds":…,"text":"…"}
//! {"op":"tts","voices":"…/piper","text":"…","silence":0.2}
//!     → {"seconds":…,"first_audio":…,"audio_seconds":…,"wav":"…"}
//! {"op":"phonemes","voices":"…/piper","voice":"en_US-joe-medium","text":"…"}
//!     → {"sentences":["…"]}

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};
use voicechat_voice::audio::{self, STT_SAMPLE_RATE};
use voicechat_voice::stt::whisper::{WhisperSettings, WhisperStt};
use voicechat_voice::stt::{SpeechToText, SttOptions};
use voicechat_voice::tts::TtsChain;
use voicechat_voice::tts::piper::PiperTts;

#[derive(Default)]
struct Engines {
    whisper: HashMap<String, WhisperStt>,
    piper: HashMap<PathBuf, TtsChain>,
}

fn main() {
    // As the service runs (`openmp.rs`).
    voicechat_voice::openmp::reexec_with_passive_waiting("peer_bench_worker");
    let mut engines = Engines::default();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) => engines
                .answer(&request)
                .unwrap_or_else(|e| json!({"error": e})),
            Err(e) => json!({"error": format!("not JSON: {e}")}),
        };
        let mut out = stdout.lock();
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

impl Engines {
    fn answer(&mut self, request: &Value) -> Result<Value, String> {
        let text = |name: &str| {
            request[name]
                .as_str()
                .ok_or_else(|| format!("{name} is missing"))
                .map(str::to_owned)
        };
        match request["op"].as_str() {
            Some("stt") => self.stt(request, &text("model")?, Path::new(&text("audio")?)),
            Some("tts") => {
                let silence = request["silence"].as_f64().unwrap_or(0.2) as f32;
                self.tts(Path::new(&text("voices")?), &text("text")?, silence)
            }
            Some("phonemes") => {
                let voices = PathBuf::from(text("voices")?);
                let config = voices.join(format!("{}.onnx.json", text("voice")?));
                phonemes(&config, &text("text")?)
            }
            other => Err(format!("unknown op {other:?}")),
        }
    }

    fn stt(&mut self, request: &Value, model: &str, audio_path: &Path) -> Result<Value, String> {
        // What the request leaves out is the service's default.
        let defaults = WhisperSettings::new(request["threads"].as_u64().unwrap_or(2) as usize);
        let settings = WhisperSettings {
            flash_attn: request["flash_attn"]
                .as_bool()
                .unwrap_or(defaults.flash_attn),
            fit_audio_ctx: request["fit_audio_ctx"]
                .as_bool()
                .unwrap_or(defaults.fit_audio_ctx),
            beam_size: request["beam_size"]
                .as_u64()
                .map_or(defaults.beam_size, |b| b as u32),
            ..defaults
        };
        let key = format!("{model} {settings:?}");
        let engine = self
            .whisper
            .entry(key)
            .or_insert_with(|| WhisperStt::load(Path::new(model), settings));
        engine.health()?;
        let bytes =
            std::fs::read(audio_path).map_err(|e| format!("{}: {e}", audio_path.display()))?;
        let decoded = audio::decode_wav(&bytes, 600).map_err(|e| e.to_string())?;
        let samples = audio::resample(&decoded, STT_SAMPLE_RATE).map_err(|e| e.to_string())?;
        let options = SttOptions {
            // "auto" asks a multilingual model to detect the language.
            language: Some(request["language"].as_str().unwrap_or("en").to_owned()),
            ..SttOptions::default()
        };
        let started = Instant::now();
        let transcript = engine
            .transcribe(&samples, &options)
            .map_err(|e| e.to_string())?;
        Ok(
            json!({"seconds": started.elapsed().as_secs_f64(), "text": transcript.text, "language": transcript.language}),
        )
    }

    fn tts(&mut self, voices: &Path, text: &str, silence: f32) -> Result<Value, String> {
        let chain = self
            .piper
            .entry(voices.to_path_buf())
            .or_insert_with(|| TtsChain {
                engines: vec![Box::new(PiperTts::load(voices))],
                sentence_silence_secs: silence,
            });
        chain.sentence_silence_secs = silence;
        let started = Instant::now();
        let synthesis = chain
            .synthesize(text, None, 1.0)
            .map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        let wav = std::env::temp_dir().join(format!("peer-bench-ours-{}.wav", std::process::id()));
        std::fs::write(&wav, audio::encode_wav(&synthesis.audio)).map_err(|e| e.to_string())?;
        Ok(json!({
            "seconds": seconds,
            // The service answers with the whole text's audio at once.
            "first_audio": seconds,
            "audio_seconds": synthesis.audio.duration_secs(),
            "wav": wav,
        }))
    }
}

fn phonemes(config_path: &Path, text: &str) -> Result<Value, String> {
    use voicechat_voice::tts::piper::phonemes::{self, PhonemeType};
    let raw = std::fs::read_to_string(config_path).map_err(|e| e.to_string())?;
    let config: Value = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
    let voice = config["espeak"]["voice"].as_str().unwrap_or("en-us");
    let sentences =
        phonemes::sentences(text, &PhonemeType::Espeak, voice).map_err(|e| e.to_string())?;
    let sentences: Vec<String> = sentences
        .into_iter()
        .map(|s| s.into_iter().collect())
        .collect();
    Ok(json!({ "sentences": sentences }))
}
