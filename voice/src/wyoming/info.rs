//! `describe` → `info`: the speech-to-text models and text-to-speech voices
//! that are installed and healthy, in the shape of the `wyoming` package's
//! `Info` (`wyoming/info.py`), so Home Assistant lists them.

use serde_json::{Value, json};

use crate::engines::Engines;
use crate::stt::whisper::all_languages;

/// What the info says about the service itself.
pub struct ServiceFacts<'a> {
    pub version: &'a str,
    /// The Whisper model's file name, for its description.
    pub whisper_file: Option<&'a str>,
}

fn attribution(engine: &str) -> Value {
    let (name, url) = match engine {
        "piper" => ("rhasspy", "https://github.com/rhasspy/piper"),
        "espeak-ng" => ("espeak-ng", "https://github.com/espeak-ng/espeak-ng"),
        "whisper" => ("ggerganov", "https://github.com/ggerganov/whisper.cpp"),
        "vosk" => ("alphacephei", "https://alphacephei.com/vosk"),
        "google" => ("Google", "https://cloud.google.com/speech-to-text"),
        _ => ("VoiceChatStack", "https://voicechat.dev"),
    };
    json!({"name": name, "url": url})
}

/// An artifact's common fields (`wyoming.info.Artifact`).
fn artifact(name: &str, engine: &str, description: String, version: Option<&str>) -> Value {
    json!({
        "name": name,
        "attribution": attribution(engine),
        "installed": true,
        "description": description,
        "version": version,
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    base
}

/// The `info` event's data. While the models load (`engines` is `None`)
/// the programs are listed with nothing installed in them.
pub fn info(engines: Option<&Engines>, facts: &ServiceFacts<'_>) -> Value {
    let mut models = Vec::new();
    let mut voices = Vec::new();
    if let Some(engines) = engines {
        for engine in engines.stt.engines() {
            if engine.health().is_err() {
                continue;
            }
            let name = engine.name();
            let languages: Vec<String> = if engine.languages().iter().any(|l| l == "*") {
                all_languages()
            } else {
                engine.languages()
            };
            let description = match (name, facts.whisper_file) {
                ("whisper", Some(file)) => format!("Whisper ({file}, whisper.cpp)"),
                ("whisper", None) => "Whisper (whisper.cpp)".to_owned(),
                ("vosk", _) => "Vosk (Kaldi)".to_owned(),
                (other, _) => other.to_owned(),
            };
            models.push(with(
                artifact(name, name, description, None),
                json!({"languages": languages}),
            ));
        }
        for engine in &engines.tts.engines {
            if engine.health().is_err() {
                continue;
            }
            for voice in engine.voices() {
                let description =
                    format!("{} {} ({} Hz)", voice.engine, voice.name, voice.sample_rate);
                voices.push(with(
                    artifact(&voice.name, voice.engine, description, None),
                    json!({"languages": [voice.language], "speakers": null}),
                ));
            }
        }
    }
    let program = |description: &str| {
        artifact(
            "voicechat-voice",
            "voicechat",
            description.to_owned(),
            Some(facts.version),
        )
    };
    json!({
        "asr": [with(program("VoiceChatStack speech-to-text (Whisper, Vosk)"), json!({
            "models": models,
            "supports_transcript_streaming": false,
            "requires_external_vad": true,
        }))],
        "tts": [with(program("VoiceChatStack text-to-speech (Piper, espeak-ng)"), json!({
            "voices": voices,
            "supports_synthesize_streaming": true,
        }))],
        "handle": [],
        "intent": [],
        "wake": [],
        "mic": [],
        "snd": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_engines_the_programs_are_listed_empty() {
        let info = info(
            None,
            &ServiceFacts {
                version: "1.2.3",
                whisper_file: None,
            },
        );
        assert_eq!(info["asr"][0]["name"], "voicechat-voice");
        assert_eq!(info["asr"][0]["version"], "1.2.3");
        assert_eq!(info["asr"][0]["models"], json!([]));
        assert_eq!(info["tts"][0]["voices"], json!([]));
        assert_eq!(info["tts"][0]["supports_synthesize_streaming"], true);
        assert_eq!(info["tts"][0]["attribution"]["name"], "VoiceChatStack");
    }
}
