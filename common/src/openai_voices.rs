//! OpenAI's voice names and the installed voices they stand for
//! (`OPENAI_VOICE_MAP`, docs/voice.md): code written for OpenAI speaks
//! unchanged, and an admin chooses which local voice each name gets. The
//! voice service reads the table; the operator writes it from the CRD.

use std::collections::BTreeMap;

use crate::config::ConfigError;

/// OpenAI's built-in voices.
pub const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
    "shimmer", "verse",
];

pub const VARIABLE: &str = "OPENAI_VOICE_MAP";

/// What a voice name in the table may be: no separators of the variable.
pub const VOICE_NAME_PATTERN: &str = r"^[A-Za-z0-9_.+-]{1,200}$";

/// OpenAI voice name → installed voice name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenAiVoices(BTreeMap<String, String>);

impl OpenAiVoices {
    /// `alloy=en_US-joe-medium,nova=en_US-amy-medium`; names left out
    /// get the default voice.
    pub fn parse(raw: Option<&str>) -> Result<Self, ConfigError> {
        let mut table = BTreeMap::new();
        let invalid = |message: String| ConfigError::Invalid {
            name: VARIABLE.into(),
            message,
        };
        for entry in raw.unwrap_or("").split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let (name, voice) = entry
                .split_once('=')
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
                .ok_or_else(|| invalid(format!("{entry:?} is not name=voice")))?;
            if !OPENAI_VOICES.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "{name:?} is not one of OpenAI's voices ({})",
                    OPENAI_VOICES.join(", ")
                )));
            }
            if voice.is_empty() {
                return Err(invalid(format!("{name:?} names no voice")));
            }
            if voice.len() > 200 || voice.contains(char::is_whitespace) {
                return Err(invalid(format!("{voice:?} is not a voice name")));
            }
            table.insert(name, voice.to_owned());
        }
        Ok(Self(table))
    }

    /// The variable's value for a table (the operator writes it).
    pub fn to_env(table: &BTreeMap<String, String>) -> String {
        table
            .iter()
            .map(|(name, voice)| format!("{name}={voice}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The voice to use for `requested`: the table's choice for an OpenAI
    /// name, `None` (the default voice) for one it leaves out, and any
    /// other name as it is.
    pub fn resolve(&self, requested: &str) -> Option<String> {
        let lower = requested.to_ascii_lowercase();
        if OPENAI_VOICES.contains(&lower.as_str()) {
            return self.0.get(&lower).cloned();
        }
        Some(requested.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_names_map_through_the_table_others_pass_through() {
        let table =
            OpenAiVoices::parse(Some("alloy=en_US-joe-medium, Nova = en_GB-alan-low")).unwrap();
        assert_eq!(table.resolve("alloy").as_deref(), Some("en_US-joe-medium"));
        assert_eq!(table.resolve("NOVA").as_deref(), Some("en_GB-alan-low"));
        assert_eq!(table.resolve("marin"), None, "left out: the default voice");
        assert_eq!(table.resolve("en-us").as_deref(), Some("en-us"));
        assert_eq!(OpenAiVoices::parse(None).unwrap().resolve("cedar"), None);
        let written = BTreeMap::from([
            ("alloy".to_owned(), "en_US-joe-medium".to_owned()),
            ("echo".to_owned(), "es".to_owned()),
        ]);
        let env = OpenAiVoices::to_env(&written);
        assert_eq!(env, "alloy=en_US-joe-medium,echo=es");
        assert_eq!(OpenAiVoices::parse(Some(&env)).unwrap().0, written);
    }

    #[test]
    fn a_bad_table_is_refused_at_start_naming_the_entry() {
        for (raw, needle) in [
            ("alloy", "\"alloy\" is not name=voice"),
            ("robot=x", "\"robot\" is not one of OpenAI's voices"),
            ("echo=", "\"echo\" names no voice"),
        ] {
            let err = OpenAiVoices::parse(Some(raw)).unwrap_err().to_string();
            assert!(err.contains(VARIABLE) && err.contains(needle), "{err}");
        }
    }
}
