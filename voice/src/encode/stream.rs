//! Speech encoded as it is synthesized: each sentence's audio becomes the
//! next bytes of one valid stream of the format asked for, sent at once.
//! MP3, Opus, WAV and PCM stream; FLAC and AAC need the whole audio (FLAC's
//! header holds the length and digest; the AAC encoder works on the whole
//! signal), so they come whole at the end of a streamed answer.

use super::{AudioFormat, EncodeError, PCM_SAMPLE_RATE, aac, flac, mp3, opus};
use crate::audio::{Audio, encode_pcm16, resample};

pub struct StreamEncoder {
    format: AudioFormat,
    state: State,
}

enum State {
    /// Nothing pushed yet: the rate is not known.
    Start,
    /// 16-bit PCM at the voice's own rate (Wyoming's audio chunks).
    NativePcm,
    Pcm,
    Wav,
    Mp3 {
        stream: mp3::Mp3Stream,
        rate: u32,
    },
    Opus(opus::OpusStream),
    Whole(Audio),
}

impl StreamEncoder {
    pub fn new(format: AudioFormat) -> Self {
        Self {
            format,
            state: State::Start,
        }
    }

    /// Raw 16-bit little-endian mono PCM at the rate the voice speaks at,
    /// no container, no resampling: what Wyoming's `audio-chunk` carries.
    pub fn native_pcm() -> Self {
        Self {
            format: AudioFormat::Pcm,
            state: State::NativePcm,
        }
    }

    /// The rate of the bytes this encoder makes from audio at `rate`.
    pub fn output_rate(&self, rate: u32) -> u32 {
        match self.state {
            State::NativePcm => rate,
            _ => super::output_rate(self.format, rate),
        }
    }

    /// The bytes for the next piece of audio (all at one sample rate).
    pub fn push(&mut self, audio: &Audio) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        if matches!(self.state, State::Start) {
            self.state = match self.format {
                AudioFormat::Pcm => State::Pcm,
                AudioFormat::Wav => {
                    out.extend(streaming_wav_header(audio.sample_rate));
                    State::Wav
                }
                AudioFormat::Mp3 => {
                    let rate = if mp3::takes_rate(audio.sample_rate) {
                        audio.sample_rate
                    } else {
                        PCM_SAMPLE_RATE
                    };
                    State::Mp3 {
                        stream: mp3::Mp3Stream::new(rate)?,
                        rate,
                    }
                }
                AudioFormat::Opus => State::Opus(opus::OpusStream::new(audio.sample_rate)?),
                AudioFormat::Flac | AudioFormat::Aac => State::Whole(Audio {
                    samples: Vec::new(),
                    sample_rate: audio.sample_rate,
                }),
            };
        }
        match &mut self.state {
            State::Start => {}
            State::NativePcm => out.extend(encode_pcm16(audio)),
            State::Pcm => {
                let at = resampled(audio, PCM_SAMPLE_RATE)?;
                out.extend(encode_pcm16(&at));
            }
            State::Wav => out.extend(encode_pcm16(audio)),
            State::Mp3 { stream, rate } => {
                let at = resampled(audio, *rate)?;
                out.extend(stream.push(&at.samples)?);
            }
            State::Opus(stream) => {
                let at = resampled(audio, opus::SAMPLE_RATE)?;
                out.extend(stream.push(&at.samples)?);
            }
            State::Whole(all) => all.samples.extend_from_slice(&audio.samples),
        }
        Ok(out)
    }

    /// What is left: the end of the stream (or, for FLAC and AAC, all of it).
    pub fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        match &mut self.state {
            State::Start | State::NativePcm | State::Pcm | State::Wav => Ok(Vec::new()),
            State::Mp3 { stream, .. } => stream.finish(),
            State::Opus(stream) => stream.finish(),
            State::Whole(all) => match self.format {
                AudioFormat::Aac => aac::encode(all),
                _ => flac::encode(all),
            },
        }
    }
}

fn resampled(audio: &Audio, rate: u32) -> Result<Audio, EncodeError> {
    Ok(Audio {
        samples: resample(audio, rate)?,
        sample_rate: rate,
    })
}

/// A 16-bit mono WAV header whose sizes say "unknown" (all ones), as
/// streamed WAV is sent (ffmpeg's and OpenAI's too): readers take the data
/// to the end of the stream.
fn streaming_wav_header(rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h
}
