//! Audio as Wyoming carries it: raw PCM chunks whose format `audio-start`
//! announces. Speech-to-text gathers them into a WAV, so that the audio
//! takes the same path (checks, decoding, resampling, cache) as an upload.

use super::frame::Event;

/// `audio-start`'s format: Hz, bytes per sample, channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    pub rate: u32,
    pub width: u16,
    pub channels: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("{0} needs rate, width and channels as numbers")]
    Missing(&'static str),
    #[error("rate {0} Hz is outside 1000-384000")]
    Rate(u64),
    #[error("width {0} is not 1, 2, 3 or 4 bytes")]
    Width(u64),
    #[error("channels {0} is not 1-8")]
    Channels(u64),
}

impl PcmFormat {
    /// The format an `audio-start` or `audio-chunk` event states.
    pub fn of(event: &Event) -> Result<Self, FormatError> {
        let field = |name| {
            event
                .u64(name)
                .ok_or(FormatError::Missing(if event.kind == "audio-start" {
                    "audio-start"
                } else {
                    "audio-chunk"
                }))
        };
        let (rate, width, channels) = (field("rate")?, field("width")?, field("channels")?);
        if !(1000..=384_000).contains(&rate) {
            return Err(FormatError::Rate(rate));
        }
        if !(1..=4).contains(&width) {
            return Err(FormatError::Width(width));
        }
        if !(1..=8).contains(&channels) {
            return Err(FormatError::Channels(channels));
        }
        Ok(Self {
            rate: rate as u32,
            width: width as u16,
            channels: channels as u16,
        })
    }

    pub fn bytes_per_second(&self) -> u64 {
        u64::from(self.rate) * u64::from(self.width) * u64::from(self.channels)
    }

    /// The format of the speech this service sends: 16-bit mono.
    pub fn speech(rate: u32) -> Self {
        Self {
            rate,
            width: 2,
            channels: 1,
        }
    }

    pub fn fields(&self) -> serde_json::Value {
        serde_json::json!({"rate": self.rate, "width": self.width, "channels": self.channels})
    }
}

/// `pcm` in a WAV container (integer PCM; 8-bit unsigned as in WAV and
/// in Wyoming).
pub fn to_wav(format: PcmFormat, pcm: &[u8]) -> Vec<u8> {
    // Whole frames only: a cut last frame would make the WAV invalid.
    let frame = usize::from(format.width) * usize::from(format.channels);
    let pcm = &pcm[..pcm.len() / frame * frame];
    let data_len = u32::try_from(pcm.len()).unwrap_or(u32::MAX);
    let block_align = format.width * format.channels;
    let mut wav = Vec::with_capacity(44 + pcm.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&format.channels.to_le_bytes());
    wav.extend_from_slice(&format.rate.to_le_bytes());
    wav.extend_from_slice(&(format.rate * u32::from(block_align)).to_le_bytes());
    wav.extend_from_slice(&block_align.to_le_bytes());
    wav.extend_from_slice(&(format.width * 8).to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.extend_from_slice(pcm);
    wav
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_are_read_from_events_and_bounded() {
        let start = |data| Event::new("audio-start", data);
        assert_eq!(
            PcmFormat::of(&start(json!({"rate": 16000, "width": 2, "channels": 1}))),
            Ok(PcmFormat::speech(16000))
        );
        assert_eq!(
            PcmFormat::of(&start(json!({"rate": 16000, "width": 2}))),
            Err(FormatError::Missing("audio-start"))
        );
        assert_eq!(
            PcmFormat::of(&start(json!({"rate": 100, "width": 2, "channels": 1}))),
            Err(FormatError::Rate(100))
        );
        assert_eq!(
            PcmFormat::of(&start(json!({"rate": 16000, "width": 8, "channels": 1}))),
            Err(FormatError::Width(8))
        );
        assert_eq!(
            PcmFormat::of(&start(json!({"rate": 16000, "width": 2, "channels": 0}))),
            Err(FormatError::Channels(0))
        );
    }

    #[test]
    fn pcm_becomes_a_wav_the_service_decodes() {
        let samples: Vec<i16> = (0..1600)
            .map(|i| ((i % 100) * 300 - 15000) as i16)
            .collect();
        let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        for (channels, extra) in [(1u16, 0usize), (2, 1)] {
            let format = PcmFormat {
                rate: 16000,
                width: 2,
                channels,
            };
            let mut bytes = pcm.clone();
            bytes.extend(std::iter::repeat_n(0, extra));
            let audio = crate::audio::decode_wav(&to_wav(format, &bytes), 60).expect("decodes");
            assert_eq!(audio.sample_rate, 16000);
            assert_eq!(audio.samples.len(), 1600 / usize::from(channels));
        }
        let eight_bit = to_wav(
            PcmFormat {
                rate: 8000,
                width: 1,
                channels: 1,
            },
            &[128, 255, 0, 128],
        );
        let audio = crate::audio::decode_wav(&eight_bit, 60).expect("8-bit decodes");
        assert_eq!(audio.samples.len(), 4);
        assert!(audio.samples[0].abs() < 0.01 && audio.samples[1] > 0.9 && audio.samples[2] < -0.9);
    }
}
