//! The engines the service knows, each declared once with the name that
//! configuration (`VOICE_TTS_ENGINES`, `VOICE_STT_ENGINES`), requests
//! (`engine=`), responses, logs and metrics use for it.

use std::fmt;

/// The closed set of engines of one kind.
pub trait EngineName: Copy + Eq + fmt::Debug + 'static {
    /// Every engine of the kind, in the fixed order of preference.
    const ALL: &'static [Self];

    fn as_str(self) -> &'static str;

    /// The engine called exactly `name`.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    /// Every name of the kind, for error messages: `whisper, vosk, google`.
    fn known() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|e| e.as_str()).collect();
        names.join(", ")
    }
}

/// Speech-to-text engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SttEngine {
    Whisper,
    Vosk,
    /// Google Cloud Speech-to-Text, the remote fallback.
    Google,
}

impl EngineName for SttEngine {
    const ALL: &'static [Self] = &[Self::Whisper, Self::Vosk, Self::Google];

    fn as_str(self) -> &'static str {
        match self {
            Self::Whisper => "whisper",
            Self::Vosk => "vosk",
            Self::Google => "google",
        }
    }
}

impl SttEngine {
    /// Whether it runs in this process (the remote fallback does not).
    pub fn is_local(self) -> bool {
        !matches!(self, Self::Google)
    }
}

/// Text-to-speech engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtsEngine {
    Piper,
    EspeakNg,
    /// Google Cloud Text-to-Speech, the remote fallback.
    Google,
}

impl EngineName for TtsEngine {
    const ALL: &'static [Self] = &[Self::Piper, Self::EspeakNg, Self::Google];

    fn as_str(self) -> &'static str {
        match self {
            Self::Piper => "piper",
            Self::EspeakNg => "espeak-ng",
            Self::Google => "google",
        }
    }
}

/// As `as_str`, for error messages (`whisper failed: ...`).
impl fmt::Display for SttEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_parses_from_its_own_name_only() {
        for e in SttEngine::ALL {
            assert_eq!(SttEngine::parse(e.as_str()), Some(*e));
        }
        for e in TtsEngine::ALL {
            assert_eq!(TtsEngine::parse(e.as_str()), Some(*e));
        }
        assert_eq!(SttEngine::parse("Whisper"), None);
        assert_eq!(SttEngine::parse("piper"), None);
        assert_eq!(TtsEngine::known(), "piper, espeak-ng, google");
    }
}
