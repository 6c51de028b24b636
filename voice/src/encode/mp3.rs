//! MP3 through LAME (the `mp3lame-encoder` crate, LAME built from source
//! into the binary): mono, constant 64 kb/s, which speech needs no more of.
//! One encoder per stream, fed chunk by chunk, so that a streamed answer
//! is one MP3 stream without gaps between its sentences.

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushNoGap, Mode, MonoPcm, Quality};

use super::{EncodeError, to_i16};

/// The rates MPEG-1, 2 and 2.5 layer III have.
pub fn takes_rate(rate: u32) -> bool {
    [
        8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
    ]
    .contains(&rate)
}

fn fail(reason: String) -> EncodeError {
    EncodeError::Encoder {
        format: "mp3",
        reason,
    }
}

pub struct Mp3Stream {
    encoder: Encoder,
}

impl Mp3Stream {
    /// `rate` must be one [`takes_rate`] accepts.
    pub fn new(rate: u32) -> Result<Self, EncodeError> {
        let encoder = Builder::new()
            .ok_or_else(|| fail("LAME could not allocate an encoder".into()))?
            .with_num_channels(1)
            .and_then(|b| b.with_sample_rate(rate))
            .and_then(|b| b.with_mode(Mode::Mono))
            .and_then(|b| b.with_brate(Bitrate::Kbps64))
            .and_then(|b| b.with_quality(Quality::Good))
            .map_err(|e| fail(format!("{e:?}")))?
            .build()
            .map_err(|e| fail(format!("{e:?}")))?;
        Ok(Self { encoder })
    }

    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
        let pcm = to_i16(samples);
        let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()));
        self.encoder
            .encode_to_vec(MonoPcm(&pcm), &mut out)
            .map_err(|e| fail(format!("{e:?}")))?;
        Ok(out)
    }

    pub fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        // LAME's flush needs up to 7,200 bytes.
        let mut out = Vec::with_capacity(7200);
        self.encoder
            .flush_to_vec::<FlushNoGap>(&mut out)
            .map_err(|e| fail(format!("{e:?}")))?;
        Ok(out)
    }
}
