//! espeak-ng, the local fallback voice: formant synthesis, robotic but real
//! and available for ~100 languages. Runs the `espeak-ng` program with the
//! text on standard input (never as an argument, so text cannot become an option).

use std::io::Write;
use std::process::{Command, Stdio};

use super::{TextToSpeech, TtsError, VoiceInfo, safe_name};
use crate::audio::{Audio, decode_wav};

const ENGINE: &str = "espeak-ng";
/// espeak-ng's normal rate, words per minute.
const BASE_WPM: f32 = 175.0;

pub struct EspeakTts {
    program: String,
    default_voice: String,
    voices: Vec<VoiceInfo>,
    problem: Option<String>,
}

impl EspeakTts {
    pub fn new(program: String, default_voice: String) -> Self {
        let (voices, problem) = match list_voices(&program) {
            Ok(v) if v.is_empty() => (v, Some("espeak-ng lists no voices".to_owned())),
            Ok(v) => (v, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Self {
            program,
            default_voice,
            voices,
            problem,
        }
    }
}

/// `espeak-ng --voices` columns: Pty Language Age/Gender VoiceName File Other.
fn list_voices(program: &str) -> Result<Vec<VoiceInfo>, String> {
    let out = Command::new(program)
        .arg("--voices")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} --voices failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let language = line.split_whitespace().nth(1)?;
            safe_name(language).then(|| VoiceInfo {
                name: language.to_owned(),
                engine: ENGINE,
                language: language.to_owned(),
                sample_rate: 22_050,
            })
        })
        .collect())
}

impl TextToSpeech for EspeakTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn voices(&self) -> Vec<VoiceInfo> {
        self.voices.clone()
    }

    fn default_voice(&self) -> Option<String> {
        self.problem.is_none().then(|| self.default_voice.clone())
    }

    fn synthesize(&self, text: &str, voice: &str, speed: f32) -> Result<Audio, TtsError> {
        if !safe_name(voice) || !self.voices.iter().any(|v| v.name == voice) {
            return Err(TtsError::UnknownVoice {
                engine: ENGINE,
                voice: voice.to_owned(),
            });
        }
        let wpm = (BASE_WPM * speed.clamp(0.25, 4.0)).round() as u32;
        let failed = |reason: String| TtsError::Failed {
            engine: ENGINE,
            reason,
        };
        let mut child = Command::new(&self.program)
            .args(["--stdout", "-v", voice, "-s", &wpm.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TtsError::Unavailable {
                engine: ENGINE,
                reason: e.to_string(),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| failed(format!("writing text: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(format!(
                "exit {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // espeak-ng writes a streaming WAV header with unknown lengths;
        // patch the sizes so the WAV reader takes the whole body.
        let mut wav = out.stdout;
        fix_streamed_wav_header(&mut wav);
        decode_wav(&wav, u32::MAX).map_err(|e| failed(format!("unreadable output: {e}")))
    }

    fn health(&self) -> Result<(), String> {
        match &self.problem {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }
}

/// Sets the RIFF and `data` chunk sizes of a canonical 44-byte-header WAV
/// from the actual length (streamed WAVs carry 0 or 0xFFFFFFFF there).
fn fix_streamed_wav_header(wav: &mut [u8]) {
    if wav.len() < 44 || &wav[0..4] != b"RIFF" || &wav[36..40] != b"data" {
        return;
    }
    let total = u32::try_from(wav.len() - 8).unwrap_or(u32::MAX);
    let data = u32::try_from(wav.len() - 44).unwrap_or(u32::MAX);
    wav[4..8].copy_from_slice(&total.to_le_bytes());
    wav[40..44].copy_from_slice(&data.to_le_bytes());
}
