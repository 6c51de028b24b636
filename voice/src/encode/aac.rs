//! AAC-LC in ADTS frames through `rusty_aac` (pure Rust, Apache-2.0): the
//! one maintained AAC encoder that is free to build in (fdk-aac is
//! non-free; ffmpeg's would mean linking libavcodec). Mono, 64 kb/s, at the
//! voice's rate when AAC has it (22.05 kHz does), else 24 kHz.

use rusty_aac::{AacEncoder, AacEncoderConfig, AdtsHeader, write_adts_header};

use super::EncodeError;
use crate::audio::{Audio, resample};

const BITRATE: u32 = 64_000;
/// MPEG-4's sampling frequency table.
const RATES: [u32; 12] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
];

fn fail(reason: String) -> EncodeError {
    EncodeError::Encoder {
        format: "aac",
        reason,
    }
}

/// The rate the stream will be at.
pub fn rate_for(rate: u32) -> u32 {
    if RATES.contains(&rate) {
        rate
    } else {
        super::PCM_SAMPLE_RATE
    }
}

pub fn encode(audio: &Audio) -> Result<Vec<u8>, EncodeError> {
    let rate = rate_for(audio.sample_rate);
    let samples = if rate == audio.sample_rate {
        audio.samples.clone()
    } else {
        resample(audio, rate)?
    };
    let mut encoder = AacEncoder::new(AacEncoderConfig {
        bitrate_bps: BITRATE,
        ..AacEncoderConfig::default()
    });
    encoder
        .push_pcm(&samples, 1, rate)
        .map_err(|e| fail(e.to_string()))?;
    encoder.finish();
    let mut out = Vec::new();
    loop {
        match encoder.next_packet() {
            Ok(packet) => {
                out.extend(write_adts_header(&AdtsHeader {
                    object_type: 2, // AAC-LC
                    sample_rate: rate,
                    channels: 1,
                    frame_length: 7 + packet.data.len(),
                    header_len: 7,
                }));
                out.extend(packet.data);
            }
            Err(rusty_aac::Error::Eof) => return Ok(out),
            Err(e) => return Err(fail(e.to_string())),
        }
    }
}
