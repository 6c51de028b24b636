//! Which voice a `synthesize` or `synthesize-start` asks for: Wyoming's
//! `voice` object names a voice (`name`, optionally a `speaker`) or only a
//! `language`.

use serde_json::Value;

use crate::tts::VoiceInfo;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VoiceRefusal {
    #[error("unknown voice {0:?}: describe lists the voices")]
    UnknownVoice(String),
    #[error("voice {voice:?} has one speaker; speaker {speaker:?} is not one of its")]
    UnknownSpeaker { voice: String, speaker: String },
    #[error("no voice speaks {language:?} (installed: {installed})")]
    NoVoiceForLanguage { language: String, installed: String },
    #[error("text_format {0:?} is not supported: send plain text")]
    TextFormat(String),
    #[error("voice must be an object with name, language or speaker")]
    Malformed,
}

impl VoiceRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownVoice(_)
            | Self::UnknownSpeaker { .. }
            | Self::NoVoiceForLanguage { .. } => "unknown_voice",
            Self::TextFormat(_) => "unsupported_format",
            Self::Malformed => "invalid_request",
        }
    }
}

/// The voice name to synthesize with (`None`: the service's default), from
/// an event's `voice` and `text_format` fields and the installed voices.
pub fn choose_voice(
    voice: Option<&Value>,
    text_format: Option<&str>,
    installed: &[VoiceInfo],
) -> Result<Option<String>, VoiceRefusal> {
    if let Some(format) = text_format
        && format != "text"
    {
        return Err(VoiceRefusal::TextFormat(format.to_owned()));
    }
    let voice = match voice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(v)) => v,
        Some(_) => return Err(VoiceRefusal::Malformed),
    };
    let field = |name| match voice.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(VoiceRefusal::Malformed),
    };
    let (name, language, speaker) = (field("name")?, field("language")?, field("speaker")?);
    if let Some(name) = name {
        if !installed.iter().any(|v| v.name == name) {
            return Err(VoiceRefusal::UnknownVoice(name.to_owned()));
        }
        if let Some(speaker) = speaker {
            return Err(VoiceRefusal::UnknownSpeaker {
                voice: name.to_owned(),
                speaker: speaker.to_owned(),
            });
        }
        return Ok(Some(name.to_owned()));
    }
    let Some(language) = language else {
        return Ok(None);
    };
    // `en_US` and `en-us` are one language tag; a voice of the same
    // language in another region is better than none.
    let tag = |l: &str| l.to_ascii_lowercase().replace('_', "-");
    let wanted = tag(language);
    let primary = |l: &str| l.split('-').next().unwrap_or_default().to_owned();
    installed
        .iter()
        .find(|v| tag(&v.language) == wanted)
        .or_else(|| {
            installed
                .iter()
                .find(|v| primary(&tag(&v.language)) == primary(&wanted))
        })
        .map(|v| Some(v.name.clone()))
        .ok_or_else(|| {
            let mut languages: Vec<&str> = installed.iter().map(|v| v.language.as_str()).collect();
            languages.sort_unstable();
            languages.dedup();
            VoiceRefusal::NoVoiceForLanguage {
                language: language.to_owned(),
                installed: languages.join(", "),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn voices() -> Vec<VoiceInfo> {
        let v = |name: &str, engine, language: &str| VoiceInfo {
            name: name.into(),
            engine,
            language: language.into(),
            sample_rate: 22050,
        };
        vec![
            v("en_US-joe-medium", "piper", "en_US"),
            v("en-us", "espeak-ng", "en-us"),
            v("de", "espeak-ng", "de"),
        ]
    }

    fn choose(voice: serde_json::Value) -> Result<Option<String>, VoiceRefusal> {
        choose_voice(Some(&voice), None, &voices())
    }

    #[test]
    fn a_name_wins_and_must_be_installed() {
        assert_eq!(
            choose(json!({"name": "de", "language": "en"})),
            Ok(Some("de".into()))
        );
        assert_eq!(
            choose(json!({"name": "nl"})),
            Err(VoiceRefusal::UnknownVoice("nl".into()))
        );
        assert!(matches!(
            choose(json!({"name": "de", "speaker": "2"})),
            Err(VoiceRefusal::UnknownSpeaker { .. })
        ));
    }

    #[test]
    fn a_language_finds_the_first_voice_of_it_then_of_its_primary_tag() {
        assert_eq!(
            choose(json!({"language": "en-US"})),
            Ok(Some("en_US-joe-medium".into()))
        );
        assert_eq!(choose(json!({"language": "de_AT"})), Ok(Some("de".into())));
        assert_eq!(
            choose(json!({"language": "fr"})),
            Err(VoiceRefusal::NoVoiceForLanguage {
                language: "fr".into(),
                installed: "de, en-us, en_US".into()
            })
        );
    }

    #[test]
    fn no_voice_is_the_default_and_other_shapes_are_refused() {
        assert_eq!(choose_voice(None, None, &voices()), Ok(None));
        assert_eq!(choose(json!({})), Ok(None));
        assert_eq!(choose(json!("de")), Err(VoiceRefusal::Malformed));
        assert_eq!(choose(json!({"name": 5})), Err(VoiceRefusal::Malformed));
        assert_eq!(
            choose_voice(None, Some("ssml"), &voices()),
            Err(VoiceRefusal::TextFormat("ssml".into()))
        );
        assert_eq!(choose_voice(None, Some("text"), &voices()), Ok(None));
    }
}
