//! MP3 through LAME (the `mp3lame-encoder` crate, LAME built from source
//! into the binary): mono, constant 64 kb/s, which speech needs no more of.

use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, Mode, MonoPcm, Quality};

use super::{EncodeError, to_i16};
use crate::audio::Audio;

/// The rates MPEG-1, 2 and 2.5 layer III have.
pub fn takes_rate(rate: u32) -> bool {
    [
        8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
    ]
    .contains(&rate)
}

pub fn encode(audio: &Audio) -> Result<Vec<u8>, EncodeError> {
    let fail = |reason: String| EncodeError::Encoder {
        format: "mp3",
        reason,
    };
    let mut encoder = Builder::new()
        .ok_or_else(|| fail("LAME could not allocate an encoder".into()))?
        .with_num_channels(1)
        .and_then(|b| b.with_sample_rate(audio.sample_rate))
        .and_then(|b| b.with_mode(Mode::Mono))
        .and_then(|b| b.with_brate(Bitrate::Kbps64))
        .and_then(|b| b.with_quality(Quality::Good))
        .map_err(|e| fail(format!("{e:?}")))?
        .build()
        .map_err(|e| fail(format!("{e:?}")))?;
    let pcm = to_i16(&audio.samples);
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()) + 7200);
    encoder
        .encode_to_vec(MonoPcm(&pcm), &mut out)
        .map_err(|e| fail(format!("{e:?}")))?;
    encoder
        .flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(|e| fail(format!("{e:?}")))?;
    Ok(out)
}
