//! FLAC through `flacenc` (pure Rust): 16-bit mono at the voice's rate,
//! lossless. One thread: requests already run in parallel.

use flacenc::component::BitRepr;
use flacenc::error::Verify;

use super::{EncodeError, to_i16};
use crate::audio::Audio;

const BLOCK_SIZE: usize = 4096;

pub fn encode(audio: &Audio) -> Result<Vec<u8>, EncodeError> {
    let fail = |reason: String| EncodeError::Encoder {
        format: "flac",
        reason,
    };
    let samples: Vec<i32> = to_i16(&audio.samples).into_iter().map(i32::from).collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| fail(format!("{e:?}")))?;
    let source =
        flacenc::source::MemSource::from_samples(&samples, 1, 16, audio.sample_rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, BLOCK_SIZE)
        .map_err(|e| fail(format!("{e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| fail(format!("{e:?}")))?;
    Ok(sink.as_slice().to_vec())
}
