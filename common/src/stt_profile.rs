//! The hardware a voice service runs speech-to-text on, and the Whisper
//! models each kind prefers. One definition for both sides: the operator
//! resolves a stack's profile and passes it on (`STT_PROFILE`,
//! `WHISPER_MODEL`), and the voice service picks a model from the same list
//! when none is named.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SttProfile {
    Cpu,
    Gpu,
}

/// Whisper models in order of preference on CPU: the small ones first
/// (speed), each 8-bit quantized before f16 (faster on CPU, the same
/// transcripts: docs/benchmarks.md).
const CPU_WHISPER_MODELS: &[&str] = &[
    "ggml-base.en-q8_0.bin",
    "ggml-base.en.bin",
    "ggml-base-q8_0.bin",
    "ggml-base.bin",
    "ggml-tiny.en-q8_0.bin",
    "ggml-tiny.en.bin",
    "ggml-tiny-q8_0.bin",
    "ggml-tiny.bin",
    "ggml-small-q8_0.bin",
    "ggml-small.bin",
];

/// On GPU the large ones first (accuracy at real-time speed).
const GPU_WHISPER_MODELS: &[&str] = &[
    "ggml-large-v3-turbo.bin",
    "ggml-medium.bin",
    "ggml-small.bin",
    "ggml-base.bin",
    "ggml-base.en.bin",
    "ggml-tiny.en.bin",
];

impl SttProfile {
    /// The value of `STT_PROFILE`: `cpu` or `gpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }

    /// How people write it in prose and in a stack's status: `CPU`, `GPU`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Cpu => "CPU",
            Self::Gpu => "GPU",
        }
    }

    /// `cpu` or `gpu`, in any case.
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "cpu" => Some(Self::Cpu),
            "gpu" => Some(Self::Gpu),
            _ => None,
        }
    }

    /// Whisper model files (under the models' `whisper/` folder) in order
    /// of preference.
    pub fn whisper_models(self) -> &'static [&'static str] {
        match self {
            Self::Cpu => CPU_WHISPER_MODELS,
            Self::Gpu => GPU_WHISPER_MODELS,
        }
    }

    /// The model a profile asks for when nothing else is said.
    pub fn default_whisper_model(self) -> &'static str {
        self.whisper_models()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints() {
        for p in [SttProfile::Cpu, SttProfile::Gpu] {
            assert_eq!(SttProfile::parse(p.as_str()), Some(p));
            assert_eq!(SttProfile::parse(p.label()), Some(p));
        }
        assert_eq!(SttProfile::parse("tpu"), None);
    }

    #[test]
    fn each_profile_prefers_its_own_first_model() {
        assert_eq!(
            SttProfile::Cpu.default_whisper_model(),
            "ggml-base.en-q8_0.bin"
        );
        assert_eq!(
            SttProfile::Gpu.default_whisper_model(),
            "ggml-large-v3-turbo.bin"
        );
    }
}
