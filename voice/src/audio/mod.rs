//! Audio in and out: decoding (WAV here, any PCM/float format and channel
//! count; the other containers in `decode`),
//! conversion to the 16 kHz mono the recognizers take, an energy-based
//! voice-activity check, and WAV encoding of synthesized speech (the other
//! formats are `crate::encode`'s).

pub mod decode;
pub mod vad;

pub use decode::decode;

use std::io::Cursor;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Sample rate of every speech-to-text engine here.
pub const STT_SAMPLE_RATE: u32 = 16_000;

/// Mono samples in [-1, 1].
#[derive(Debug, Clone)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("audio is empty")]
    Empty,
    #[error("not a WAV file: {0}")]
    NotWav(String),
    #[error("not audio this service reads: {0}")]
    NotAudio(String),
    #[error("the audio is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("audio is {secs:.1} s long; the limit is {max} s")]
    TooLong { secs: f64, max: u32 },
    #[error("cannot resample: {0}")]
    Resample(String),
}

/// Decodes a WAV file to mono f32, refusing audio longer than `max_secs`
/// before decoding the samples (the header says how long it is).
pub fn decode_wav(bytes: &[u8], max_secs: u32) -> Result<Audio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let mut reader =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| AudioError::NotWav(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate < 1000 || spec.sample_rate > 384_000 {
        return Err(AudioError::Unsupported(format!(
            "{} channels at {} Hz",
            spec.channels, spec.sample_rate
        )));
    }
    let frames = reader.duration();
    let secs = f64::from(frames) / f64::from(spec.sample_rate);
    if secs > f64::from(max_secs) {
        return Err(AudioError::TooLong {
            secs,
            max: max_secs,
        });
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            let samples = reader.samples::<f32>().collect::<Result<Vec<f32>, _>>();
            // NaN or infinity poisons the resampler's FFT (found by fuzzing:
            // rubato panicked); out-of-range values are clipping, kept as such.
            if let Ok(samples) = &samples
                && samples.iter().any(|s| !s.is_finite())
            {
                return Err(AudioError::Unsupported(
                    "float samples that are NaN or infinite".into(),
                ));
            }
            samples.map(|v| v.into_iter().map(|s| s.clamp(-1.0, 1.0)).collect())
        }
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
        }
        (format, bits) => {
            return Err(AudioError::Unsupported(format!(
                "{bits}-bit {format:?} samples"
            )));
        }
    }
    .map_err(|e| AudioError::NotWav(format!("truncated or corrupt sample data: {e}")))?;
    if interleaved.is_empty() {
        return Err(AudioError::Empty);
    }
    let channels = usize::from(spec.channels);
    let samples = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Resamples to `rate` (FFT resampler: fixed ratio, good quality, fast).
pub fn resample(audio: &Audio, rate: u32) -> Result<Vec<f32>, AudioError> {
    if audio.sample_rate == rate {
        return Ok(audio.samples.clone());
    }
    let mut resampler = Fft::<f32>::new(
        audio.sample_rate as usize,
        rate as usize,
        1024,
        1,
        FixedSync::Both,
    )
    .map_err(|e| AudioError::Resample(e.to_string()))?;
    let frames = audio.samples.len();
    let input = InterleavedSlice::new(&audio.samples, 1, frames)
        .map_err(|e| AudioError::Resample(e.to_string()))?;
    let output = resampler
        .process_all(&input, frames, None)
        .map_err(|e| AudioError::Resample(e.to_string()))?;
    Ok(output.take_data())
}

/// 16-bit PCM WAV bytes.
pub fn encode_wav(audio: &Audio) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + audio.samples.len() * 2));
    // Writing to memory cannot fail; the only error hound reports here
    // would be a sample count overflowing the header, past 2 GiB.
    if let Ok(mut writer) = hound::WavWriter::new(&mut out, spec) {
        for s in &audio.samples {
            let _ = writer.write_sample(to_i16(*s));
        }
        let _ = writer.finalize();
    }
    out.into_inner()
}

/// Raw little-endian 16-bit PCM (OpenAI's `pcm` format).
pub fn encode_pcm16(audio: &Audio) -> Vec<u8> {
    audio
        .samples
        .iter()
        .flat_map(|s| to_i16(*s).to_le_bytes())
        .collect()
}

pub(crate) fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, secs: f32) -> Audio {
        let n = (rate as f32 * secs) as usize;
        Audio {
            samples: (0..n)
                .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5)
                .collect(),
            sample_rate: rate,
        }
    }

    #[test]
    fn wav_round_trip_and_resample_keep_duration() {
        let audio = tone(22_050, 1.0);
        let bytes = encode_wav(&audio);
        let decoded = decode_wav(&bytes, 60).unwrap();
        assert_eq!(decoded.sample_rate, 22_050);
        assert_eq!(decoded.samples.len(), audio.samples.len());
        let at16k = resample(&decoded, STT_SAMPLE_RATE).unwrap();
        assert!((at16k.len() as i64 - 16_000).abs() < 50, "{}", at16k.len());
    }

    #[test]
    fn stereo_is_downmixed() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let interleaved: Vec<i16> = (0..100).flat_map(|_| [16384i16, 0]).collect();
        let audio = decode_wav(&wav_of(spec, &interleaved), 60).unwrap();
        assert_eq!(audio.samples.len(), 100);
        assert!((audio.samples[0] - 0.25).abs() < 1e-3);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(decode_wav(b"", 60), Err(AudioError::Empty)));
        assert!(matches!(
            decode_wav(b"ID3\x03 not a wav at all", 60),
            Err(AudioError::NotWav(_))
        ));
        let bytes = encode_wav(&tone(16_000, 2.0));
        assert!(matches!(
            decode_wav(&bytes, 1),
            Err(AudioError::TooLong { .. })
        ));
        let truncated = &bytes[..bytes.len() / 2];
        assert!(
            decode_wav(truncated, 60).is_err(),
            "truncated data is refused"
        );
    }

    /// A WAV file of these (interleaved) samples, written by hound.
    fn wav_of<S: hound::Sample + Copy>(spec: hound::WavSpec, samples: &[S]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
        for s in samples {
            writer.write_sample(*s).unwrap();
        }
        writer.finalize().unwrap();
        out.into_inner()
    }

    fn float_wav(samples: &[f32]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 44_100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        wav_of(spec, samples)
    }

    /// Found by `scripts/fuzz.sh` (wav_decode): a NaN sample made the
    /// resampler panic instead of the request getting a 400.
    #[test]
    fn non_finite_float_samples_are_refused_and_loud_ones_clipped() {
        let mut samples = vec![0.25f32; 4410];
        samples[100] = f32::NAN;
        let err = decode_wav(&float_wav(&samples), 60).unwrap_err();
        assert!(err.to_string().contains("NaN or infinite"), "{err}");
        samples[100] = f32::INFINITY;
        assert!(decode_wav(&float_wav(&samples), 60).is_err());

        samples[100] = 3.0e38;
        let audio = decode_wav(&float_wav(&samples), 60).unwrap();
        assert_eq!(audio.samples[100], 1.0);
        let resampled = resample(&audio, STT_SAMPLE_RATE).unwrap();
        assert!(resampled.iter().all(|s| s.is_finite()));
    }
}
