//! Synthesized speech in the formats clients ask for, as OpenAI's speech
//! API has them: `mp3` (LAME), `opus` (libopus in Ogg, RFC 7845), `aac`
//! (ADTS, a pure-Rust encoder), `flac` (a pure-Rust encoder), `wav`, and
//! `pcm` (raw 16-bit little-endian at 24 kHz, OpenAI's rate, whatever the
//! voice's). Whole here, sentence by sentence in `stream`; the libraries
//! are built into the binary (no runtime packages).

mod aac;
mod flac;
mod mp3;
mod opus;
mod stream;

pub use stream::StreamEncoder;

use serde::{Deserialize, Serialize};

use crate::audio::{Audio, AudioError, encode_wav};

/// The rate of OpenAI's `pcm` format.
pub const PCM_SAMPLE_RATE: u32 = 24_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    Mp3,
    Opus,
    Aac,
    Flac,
    Wav,
    /// Raw 16-bit little-endian mono PCM at 24 kHz.
    Pcm,
}

/// The names `response_format` takes, for error messages.
pub const FORMAT_NAMES: &str = "mp3, opus, aac, flac, wav or pcm";

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the {format} encoder failed: {reason}")]
    Encoder {
        format: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Resample(#[from] AudioError),
}

impl AudioFormat {
    /// `None` for a name that is no format here.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "mp3" => Self::Mp3,
            "opus" => Self::Opus,
            "aac" => Self::Aac,
            "flac" => Self::Flac,
            "wav" => Self::Wav,
            "pcm" => Self::Pcm,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
            Self::Aac => "aac",
            Self::Flac => "flac",
            Self::Wav => "wav",
            Self::Pcm => "pcm",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Opus => "audio/ogg; codecs=opus",
            Self::Aac => "audio/aac",
            Self::Flac => "audio/flac",
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
        }
    }
}

/// Encoded speech and the rate it is at.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub sample_rate: u32,
}

pub fn encode(audio: &Audio, format: AudioFormat) -> Result<Encoded, EncodeError> {
    // A whole WAV says its length (a streamed one cannot).
    let bytes = if format == AudioFormat::Wav {
        encode_wav(audio)
    } else {
        let mut stream = StreamEncoder::new(format);
        let mut bytes = stream.push(audio)?;
        bytes.extend(stream.finish()?);
        bytes
    };
    Ok(Encoded {
        bytes,
        sample_rate: output_rate(format, audio.sample_rate),
    })
}

/// The rate `format` sends audio made at `rate` at.
pub fn output_rate(format: AudioFormat, rate: u32) -> u32 {
    match format {
        AudioFormat::Wav | AudioFormat::Flac => rate,
        AudioFormat::Pcm => PCM_SAMPLE_RATE,
        AudioFormat::Opus => opus::SAMPLE_RATE,
        AudioFormat::Mp3 if mp3::takes_rate(rate) => rate,
        AudioFormat::Mp3 => PCM_SAMPLE_RATE,
        AudioFormat::Aac => aac::rate_for(rate),
    }
}

fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples.iter().map(|s| crate::audio::to_i16(*s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [AudioFormat; 6] = [
        AudioFormat::Mp3,
        AudioFormat::Opus,
        AudioFormat::Aac,
        AudioFormat::Flac,
        AudioFormat::Wav,
        AudioFormat::Pcm,
    ];

    fn speechlike(rate: u32, secs: f32) -> Audio {
        let n = (rate as f32 * secs) as usize;
        Audio {
            samples: (0..n)
                .map(|i| {
                    let t = i as f32 / rate as f32;
                    0.3 * (t * 440.0 * std::f32::consts::TAU).sin() * (t * 3.0).sin().abs()
                })
                .collect(),
            sample_rate: rate,
        }
    }

    #[test]
    fn every_format_has_its_container_signature_and_rate() {
        let audio = speechlike(22_050, 1.0);
        let mp3 = encode(&audio, AudioFormat::Mp3).unwrap();
        assert!(
            mp3.bytes.starts_with(b"ID3") || mp3.bytes[0] == 0xff && mp3.bytes[1] & 0xe0 == 0xe0,
            "no MP3 frame sync"
        );
        assert_eq!(mp3.sample_rate, 22_050);
        let opus = encode(&audio, AudioFormat::Opus).unwrap();
        assert!(opus.bytes.starts_with(b"OggS"));
        assert!(opus.bytes.windows(8).any(|w| w == b"OpusHead"));
        assert_eq!(opus.sample_rate, 48_000);
        let aac = encode(&audio, AudioFormat::Aac).unwrap();
        assert!(
            aac.bytes[0] == 0xff && aac.bytes[1] & 0xf6 == 0xf0,
            "no ADTS sync"
        );
        assert_eq!(aac.sample_rate, 22_050);
        let flac = encode(&audio, AudioFormat::Flac).unwrap();
        assert!(flac.bytes.starts_with(b"fLaC"));
        let pcm = encode(&audio, AudioFormat::Pcm).unwrap();
        assert_eq!(pcm.sample_rate, 24_000);
        let frames = pcm.bytes.len() / 2;
        assert!(
            (23_000..=25_000).contains(&frames),
            "{frames} frames for 1 s at 24 kHz"
        );
        let wav = encode(&audio, AudioFormat::Wav).unwrap();
        assert!(wav.bytes.starts_with(b"RIFF"));
        // Compressed formats are smaller than the PCM they come from.
        assert!(
            mp3.bytes.len() < wav.bytes.len() / 4,
            "{} bytes of MP3",
            mp3.bytes.len()
        );
        assert!(
            opus.bytes.len() < wav.bytes.len() / 4,
            "{} bytes of Opus",
            opus.bytes.len()
        );
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_none() {
        for f in ALL {
            assert_eq!(AudioFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(AudioFormat::from_name("ogg"), None);
        assert_eq!(AudioFormat::from_name("MP3"), None);
    }

    #[test]
    fn silence_and_a_single_sample_encode() {
        for samples in [vec![], vec![0.5]] {
            let audio = Audio {
                samples,
                sample_rate: 22_050,
            };
            for f in ALL {
                encode(&audio, f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            }
        }
    }
}
