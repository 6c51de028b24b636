//! The audio formats of OpenAI's Realtime API: `audio/pcm` (16-bit
//! little-endian mono at 24 kHz), `audio/pcmu` and `audio/pcma` (G.711 at
//! 8 kHz), in both directions.

use serde_json::{Value, json};

use super::g711;
use super::protocol::EventError;

/// The rate of `audio/pcm`.
pub const PCM_RATE: u32 = 24_000;
/// The rate of the G.711 formats.
pub const G711_RATE: u32 = 8_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioFormat {
    #[default]
    Pcm,
    Pcmu,
    Pcma,
}

impl AudioFormat {
    /// A `format` object: `{"type": "audio/pcm", "rate": 24000}`,
    /// `{"type": "audio/pcmu"}` or `{"type": "audio/pcma"}`.
    pub fn parse(value: &Value, param: &str) -> Result<Self, EventError> {
        let kind = value.get("type").and_then(Value::as_str);
        let format = match kind {
            Some("audio/pcm") => Self::Pcm,
            Some("audio/pcmu") => Self::Pcmu,
            Some("audio/pcma") => Self::Pcma,
            _ => {
                return Err(EventError::invalid(
                    "invalid_audio_format",
                    format!("{param}.type must be audio/pcm, audio/pcmu or audio/pcma"),
                    param,
                ));
            }
        };
        match value.get("rate") {
            None | Some(Value::Null) => Ok(format),
            Some(rate) if rate.as_u64() == Some(u64::from(format.sample_rate())) => Ok(format),
            Some(rate) => Err(EventError::invalid(
                "invalid_audio_format",
                format!(
                    "{param}.rate {rate} is not supported: {} is {} Hz",
                    format.name(),
                    format.sample_rate()
                ),
                param,
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pcm => "audio/pcm",
            Self::Pcmu => "audio/pcmu",
            Self::Pcma => "audio/pcma",
        }
    }

    pub fn to_json(self) -> Value {
        match self {
            Self::Pcm => json!({"type": "audio/pcm", "rate": PCM_RATE}),
            other => json!({"type": other.name()}),
        }
    }

    pub fn sample_rate(self) -> u32 {
        match self {
            Self::Pcm => PCM_RATE,
            Self::Pcmu | Self::Pcma => G711_RATE,
        }
    }

    /// The samples of a client's audio bytes.
    pub fn decode(self, bytes: &[u8]) -> Result<Vec<i16>, EventError> {
        match self {
            Self::Pcm => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(EventError::invalid(
                        "invalid_audio",
                        format!(
                            "audio/pcm is 16-bit samples: {} bytes is not a whole number of them",
                            bytes.len()
                        ),
                        "audio",
                    ));
                }
                Ok(bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect())
            }
            Self::Pcmu => Ok(bytes.iter().map(|&b| g711::ulaw_decode(b)).collect()),
            Self::Pcma => Ok(bytes.iter().map(|&b| g711::alaw_decode(b)).collect()),
        }
    }
}

/// Speech at 24 kHz (what the voice service's `pcm` gives) into the
/// client's output format, piece by piece: G.711 takes every third sample
/// after a 3-tap average (a low-pass for the 8 kHz rate), carrying over a
/// piece's last samples that do not fill a group.
#[derive(Debug, Default)]
pub struct OutputEncoder {
    format: AudioFormat,
    carry: Vec<i16>,
}

impl OutputEncoder {
    pub fn new(format: AudioFormat) -> Self {
        Self {
            format,
            carry: Vec::new(),
        }
    }

    /// Bytes for `pcm` (16-bit little-endian at 24 kHz).
    pub fn push(&mut self, pcm: &[u8]) -> Vec<u8> {
        let samples = pcm
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]));
        let encode: fn(i16) -> u8 = match self.format {
            AudioFormat::Pcm => return pcm[..pcm.len() / 2 * 2].to_vec(),
            AudioFormat::Pcmu => g711::ulaw_encode,
            AudioFormat::Pcma => g711::alaw_encode,
        };
        self.carry.extend(samples);
        let groups = self.carry.len() / 3;
        let out = self
            .carry
            .chunks_exact(3)
            .map(|g| {
                let mean = (i32::from(g[0]) + i32::from(g[1]) + i32::from(g[2])) / 3;
                encode(mean as i16)
            })
            .collect();
        self.carry.drain(..groups * 3);
        out
    }

    /// Milliseconds of audio in `bytes` of this format.
    pub fn millis(&self, bytes: usize) -> u64 {
        let samples = match self.format {
            AudioFormat::Pcm => bytes / 2,
            _ => bytes,
        };
        samples as u64 * 1000 / u64::from(self.format.sample_rate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_with_their_rates() {
        assert_eq!(
            AudioFormat::parse(&json!({"type": "audio/pcm", "rate": 24000}), "f").unwrap(),
            AudioFormat::Pcm
        );
        assert_eq!(
            AudioFormat::parse(&json!({"type": "audio/pcmu"}), "f").unwrap(),
            AudioFormat::Pcmu
        );
        let e = AudioFormat::parse(
            &json!({"type": "audio/pcm", "rate": 16000}),
            "session.audio.input.format",
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_audio_format");
        assert!(e.message.contains("16000"), "{}", e.message);
        assert!(AudioFormat::parse(&json!({"type": "audio/opus"}), "f").is_err());
        assert_eq!(
            AudioFormat::Pcm.to_json(),
            json!({"type": "audio/pcm", "rate": 24000})
        );
    }

    #[test]
    fn input_decodes_and_odd_pcm_is_refused() {
        assert_eq!(
            AudioFormat::Pcm.decode(&[1, 0, 0xff, 0xff]).unwrap(),
            [1, -1]
        );
        assert_eq!(
            AudioFormat::Pcm.decode(&[1, 0, 2]).unwrap_err().code,
            "invalid_audio"
        );
        assert_eq!(AudioFormat::Pcmu.decode(&[0xff, 0x7f]).unwrap(), [0, 0]);
    }

    #[test]
    fn output_keeps_pcm_and_thirds_the_rate_for_g711() {
        let pcm: Vec<u8> = (0..300i16).flat_map(|s| (s * 50).to_le_bytes()).collect();
        assert_eq!(OutputEncoder::new(AudioFormat::Pcm).push(&pcm), pcm);
        let mut ulaw = OutputEncoder::new(AudioFormat::Pcmu);
        // 100 samples now, 200 later: 33 bytes, then 67 (the carried one).
        let first = ulaw.push(&pcm[..200]);
        let second = ulaw.push(&pcm[200..]);
        assert_eq!((first.len(), second.len()), (33, 67));
        assert_eq!(ulaw.millis(8000), 1000);
        assert_eq!(OutputEncoder::new(AudioFormat::Pcm).millis(48_000), 1000);
    }
}
