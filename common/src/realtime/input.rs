//! The input audio buffer: what the client appended since the last
//! commit, the voice activity detector that watches it (server VAD), and
//! the cut of a turn's audio with its prefix padding.

use super::{AudioFormat, EventError, Vad, VadEvent, VadSettings};

pub struct InputBuffer {
    format: AudioFormat,
    samples: Vec<i16>,
    /// Milliseconds of the session's audio before `samples[0]`.
    offset_ms: u64,
    /// The session's audio clock: milliseconds before the current format,
    /// and samples appended in it since.
    clock_base_ms: u64,
    samples_in_format: u64,
    vad: Option<(Vad, u64)>,
    max_samples: usize,
}

/// A turn's audio, cut from the buffer.
pub struct Turn {
    pub samples: Vec<i16>,
    pub sample_rate: u32,
}

impl InputBuffer {
    pub fn new(format: AudioFormat, vad: Option<VadSettings>, max_secs: u32) -> Self {
        let mut buffer = Self {
            format,
            samples: Vec::new(),
            offset_ms: 0,
            clock_base_ms: 0,
            samples_in_format: 0,
            vad: None,
            max_samples: 0,
        };
        buffer.configure(format, vad, max_secs);
        buffer
    }

    /// New settings: a new format empties the buffer (its samples would be
    /// read at the wrong rate); the detector starts afresh.
    pub fn configure(&mut self, format: AudioFormat, vad: Option<VadSettings>, max_secs: u32) {
        if format != self.format {
            self.clock_base_ms = self.now_ms();
            self.samples_in_format = 0;
            self.offset_ms = self.clock_base_ms;
            self.samples.clear();
            self.format = format;
        }
        let now = self.now_ms();
        self.vad = vad.map(|v| (Vad::new(v, format.sample_rate()), now));
        self.max_samples = max_secs as usize * format.sample_rate() as usize;
    }

    /// Milliseconds of audio appended in the session so far.
    pub fn now_ms(&self) -> u64 {
        self.clock_base_ms + self.samples_in_format * 1000 / u64::from(self.format.sample_rate())
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Decodes and appends audio; returns what the detector saw in it,
    /// its times on the session's audio clock. Refused audio changes
    /// nothing.
    pub fn append(&mut self, bytes: &[u8]) -> Result<Vec<VadEvent>, EventError> {
        let samples = self.format.decode(bytes)?;
        if self.samples.len() + samples.len() > self.max_samples {
            return Err(EventError::invalid(
                "input_audio_buffer_full",
                format!(
                    "the input audio buffer holds at most {} s: commit or clear it",
                    self.max_samples / self.format.sample_rate() as usize
                ),
                "audio",
            ));
        }
        self.samples.extend_from_slice(&samples);
        self.samples_in_format += samples.len() as u64;
        Ok(match &mut self.vad {
            None => Vec::new(),
            Some((vad, base)) => vad
                .push(&samples)
                .into_iter()
                .map(|e| match e {
                    VadEvent::SpeechStarted { at_ms } => VadEvent::SpeechStarted {
                        at_ms: at_ms + *base,
                    },
                    VadEvent::Paused { at_ms, detected_ms } => VadEvent::Paused {
                        at_ms: at_ms + *base,
                        detected_ms: detected_ms + *base,
                    },
                    VadEvent::SpeechStopped { at_ms, detected_ms } => VadEvent::SpeechStopped {
                        at_ms: at_ms + *base,
                        detected_ms: detected_ms + *base,
                    },
                })
                .collect(),
        })
    }

    /// The whole buffer as a turn (an explicit commit).
    pub fn take_all(&mut self) -> Turn {
        self.offset_ms = self.now_ms();
        if let Some((vad, _)) = &mut self.vad {
            vad.reset();
        }
        Turn {
            samples: std::mem::take(&mut self.samples),
            sample_rate: self.format.sample_rate(),
        }
    }

    fn index(&self, ms: u64) -> usize {
        let rate = u64::from(self.format.sample_rate());
        let i = ms.saturating_sub(self.offset_ms) * rate / 1000;
        (i as usize).min(self.samples.len())
    }

    /// A copy of the audio from `from_ms` to `to_ms` (session clock); the
    /// buffer keeps it (work that may turn out not to be needed).
    pub fn copy_span(&self, from_ms: u64, to_ms: u64) -> Turn {
        Turn {
            samples: self.samples[self.index(from_ms)..self.index(to_ms)].to_vec(),
            sample_rate: self.format.sample_rate(),
        }
    }

    /// The audio from `from_ms` to `to_ms` (session clock) as a turn;
    /// what came before is dropped, what came after stays.
    pub fn take_span(&mut self, from_ms: u64, to_ms: u64) -> Turn {
        let (from, to) = (self.index(from_ms), self.index(to_ms));
        let samples = self.samples[from..to].to_vec();
        self.samples.drain(..to);
        self.offset_ms = self.offset_ms.max(to_ms.min(self.now_ms()));
        Turn {
            samples,
            sample_rate: self.format.sample_rate(),
        }
    }

    pub fn clear(&mut self) {
        self.offset_ms = self.now_ms();
        self.samples.clear();
        if let Some((vad, _)) = &mut self.vad {
            vad.reset();
        }
    }
}

impl Turn {
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }

    /// 16-bit mono WAV, what the voice service takes.
    pub fn to_wav(&self) -> Vec<u8> {
        let data_len = (self.samples.len() * 2) as u32;
        let mut wav = Vec::with_capacity(44 + self.samples.len() * 2);
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + data_len).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&self.sample_rate.to_le_bytes());
        wav.extend_from_slice(&(self.sample_rate * 2).to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&data_len.to_le_bytes());
        for s in &self.samples {
            wav.extend_from_slice(&s.to_le_bytes());
        }
        wav
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(ms: u32, amplitude: i16) -> Vec<u8> {
        (0..24 * ms)
            .flat_map(|i| {
                let s = if i % 2 == 0 { amplitude } else { -amplitude };
                s.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn server_vad_finds_the_turn_and_the_cut_keeps_the_padding() {
        let mut b = InputBuffer::new(AudioFormat::Pcm, Some(VadSettings::default()), 60);
        assert!(b.append(&pcm(1000, 0)).unwrap().is_empty());
        let started = b.append(&pcm(800, 8000)).unwrap();
        assert_eq!(started, [VadEvent::SpeechStarted { at_ms: 1000 }]);
        let stopped = b.append(&pcm(700, 0)).unwrap();
        assert_eq!(
            stopped,
            [
                VadEvent::Paused {
                    at_ms: 1800,
                    detected_ms: 2000
                },
                VadEvent::SpeechStopped {
                    at_ms: 1800,
                    detected_ms: 2300
                }
            ]
        );
        // A copy for work started at the pause leaves the buffer as it is.
        let early = b.copy_span(1000 - 300, 2000);
        assert_eq!(early.samples.len(), 24 * 1300);
        // 300 ms of padding before the speech, to the detection.
        let turn = b.take_span(1000 - 300, 2300);
        assert_eq!(turn.samples.len(), 24 * 1600);
        assert!((turn.duration_secs() - 1.6).abs() < 1e-9);
        // What followed the detection stays for the next turn.
        assert_eq!(b.samples.len(), 24 * 200);
        let wav = turn.to_wav();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(wav.len(), 44 + 24 * 1600 * 2);
    }

    #[test]
    fn a_full_buffer_and_odd_audio_are_refused_and_change_nothing() {
        let mut b = InputBuffer::new(AudioFormat::Pcm, None, 1);
        b.append(&pcm(900, 1)).unwrap();
        let e = b.append(&pcm(200, 1)).unwrap_err();
        assert_eq!(e.code, "input_audio_buffer_full");
        assert_eq!(b.append(&[1, 2, 3]).unwrap_err().code, "invalid_audio");
        assert_eq!(b.take_all().samples.len(), 24 * 900);
        assert!(b.is_empty());
    }

    #[test]
    fn g711_input_is_eight_kilohertz() {
        let mut b = InputBuffer::new(AudioFormat::Pcmu, None, 10);
        b.append(&[0xff; 8000]).unwrap();
        assert_eq!(b.now_ms(), 1000);
        let turn = b.take_all();
        assert_eq!(turn.sample_rate, 8000);
    }
}
