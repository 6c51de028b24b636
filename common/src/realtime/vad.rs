//! Voice activity detection on the incoming audio, as OpenAI's
//! `server_vad` is configured: a `threshold` (0-1), `prefix_padding_ms`
//! kept before the speech, and `silence_duration_ms` of quiet that ends
//! it. Speech is frame energy above a level: the threshold maps linearly
//! onto -70 dBFS (0) to -20 dBFS (1), so the default 0.5 is -45 dBFS, the
//! voice service's own silence level.

/// Frames are this long.
pub const FRAME_MS: u32 = 20;
/// Consecutive loud frames before speech counts as started (a click or a
/// breath is not speech).
const START_FRAMES: u32 = 2;
/// Quiet within speech this long is a pause: the turn may be over, and
/// work on it can start before the silence window confirms it.
pub const PAUSE_MS: u32 = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadSettings {
    pub threshold: f32,
    pub prefix_padding_ms: u32,
    pub silence_duration_ms: u32,
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
        }
    }
}

impl VadSettings {
    /// The frame level (dBFS) above which a frame is speech.
    pub fn level_dbfs(&self) -> f32 {
        -70.0 + 50.0 * self.threshold.clamp(0.0, 1.0)
    }
}

/// What the detector noticed, in milliseconds of all the audio it was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at `at_ms` (the first loud frame).
    SpeechStarted { at_ms: u64 },
    /// Speech paused for `PAUSE_MS` (shorter than the silence window): the
    /// last loud frame ended at `at_ms`. Speech that goes on makes it moot.
    Paused { at_ms: u64, detected_ms: u64 },
    /// Speech ended: the last loud frame ended at `at_ms`; the silence that
    /// ended it lasted until `detected_ms`.
    SpeechStopped { at_ms: u64, detected_ms: u64 },
}

/// A streaming detector: feed it samples as they come.
#[derive(Debug)]
pub struct Vad {
    settings: VadSettings,
    samples_per_frame: usize,
    /// Samples of an unfinished frame.
    pending: Vec<i16>,
    /// Frames seen so far.
    frames: u64,
    loud_run: u32,
    quiet_run: u32,
    in_speech: bool,
    /// End (ms) of the last loud frame.
    last_loud_end_ms: u64,
}

impl Vad {
    pub fn new(settings: VadSettings, sample_rate: u32) -> Self {
        Self {
            settings,
            samples_per_frame: (sample_rate * FRAME_MS / 1000).max(1) as usize,
            pending: Vec::new(),
            frames: 0,
            loud_run: 0,
            quiet_run: 0,
            in_speech: false,
            last_loud_end_ms: 0,
        }
    }

    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Forgets the speech under way (the buffer was committed or cleared);
    /// the time keeps counting.
    pub fn reset(&mut self) {
        self.loud_run = 0;
        self.quiet_run = 0;
        self.in_speech = false;
    }

    /// Feeds samples; returns what happened in them, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        self.pending.extend_from_slice(samples);
        let frame_len = self.samples_per_frame;
        let frames = self.pending.len() / frame_len;
        for i in 0..frames {
            let frame = &self.pending[i * frame_len..(i + 1) * frame_len];
            let loud = level_dbfs(frame) > self.settings.level_dbfs();
            let start_ms = self.frames * u64::from(FRAME_MS);
            self.frames += 1;
            let end_ms = self.frames * u64::from(FRAME_MS);
            if loud {
                self.loud_run += 1;
                self.quiet_run = 0;
                self.last_loud_end_ms = end_ms;
                if !self.in_speech && self.loud_run >= START_FRAMES {
                    self.in_speech = true;
                    let first_loud = start_ms - u64::from((START_FRAMES - 1) * FRAME_MS);
                    events.push(VadEvent::SpeechStarted { at_ms: first_loud });
                }
            } else {
                self.loud_run = 0;
                self.quiet_run += 1;
                let quiet_ms = self.quiet_run * FRAME_MS;
                if self.in_speech
                    && quiet_ms == PAUSE_MS
                    && PAUSE_MS < self.settings.silence_duration_ms
                {
                    events.push(VadEvent::Paused {
                        at_ms: self.last_loud_end_ms,
                        detected_ms: end_ms,
                    });
                }
                if self.in_speech && quiet_ms >= self.settings.silence_duration_ms {
                    self.in_speech = false;
                    events.push(VadEvent::SpeechStopped {
                        at_ms: self.last_loud_end_ms,
                        detected_ms: end_ms,
                    });
                }
            }
        }
        self.pending.drain(..frames * frame_len);
        events
    }
}

/// RMS level of 16-bit samples in dBFS (-100 for digital silence).
pub fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return -100.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt() / 32768.0;
    if rms <= 0.0 {
        -100.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 24_000;

    fn tone(ms: u32, amplitude: f32) -> Vec<i16> {
        let n = (RATE * ms / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                (amplitude * 32767.0 * (t * 220.0 * std::f32::consts::TAU).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn speech_between_silences_starts_and_stops() {
        let mut vad = Vad::new(VadSettings::default(), RATE);
        assert!(vad.push(&tone(400, 0.0)).is_empty());
        let started = vad.push(&tone(1000, 0.3));
        assert_eq!(started, [VadEvent::SpeechStarted { at_ms: 400 }]);
        assert!(vad.in_speech());
        // 300 ms of quiet is a pause, not the end (500 ms is).
        assert_eq!(
            vad.push(&tone(300, 0.0)),
            [VadEvent::Paused {
                at_ms: 1400,
                detected_ms: 1600
            }]
        );
        assert!(vad.push(&tone(200, 0.3)).is_empty());
        let stopped = vad.push(&tone(600, 0.0));
        assert_eq!(
            stopped,
            [
                VadEvent::Paused {
                    at_ms: 1900,
                    detected_ms: 2100
                },
                VadEvent::SpeechStopped {
                    at_ms: 1900,
                    detected_ms: 2400
                }
            ]
        );
        assert!(!vad.in_speech());
    }

    #[test]
    fn odd_sized_pushes_give_the_same_answer() {
        let mut audio = tone(300, 0.0);
        audio.extend(tone(600, 0.3));
        audio.extend(tone(700, 0.0));
        let mut whole = Vad::new(VadSettings::default(), RATE);
        let expected = whole.push(&audio);
        let mut pieces = Vad::new(VadSettings::default(), RATE);
        let got: Vec<VadEvent> = audio.chunks(333).flat_map(|c| pieces.push(c)).collect();
        assert_eq!(got, expected);
        assert_eq!(expected.len(), 3, "start, pause, stop: {expected:?}");
    }

    #[test]
    fn a_single_click_and_quiet_noise_are_not_speech() {
        let mut vad = Vad::new(VadSettings::default(), RATE);
        let mut audio = tone(500, 0.001); // about -63 dBFS
        audio.extend(tone(20, 0.5));
        audio.extend(tone(500, 0.0));
        assert!(vad.push(&audio).is_empty());
    }

    #[test]
    fn the_threshold_moves_the_level() {
        let quiet = VadSettings {
            threshold: 0.9,
            ..VadSettings::default()
        };
        assert_eq!(quiet.level_dbfs(), -25.0);
        let mut vad = Vad::new(quiet, RATE);
        assert!(
            vad.push(&tone(500, 0.03)).is_empty(),
            "-33 dBFS is below -25"
        );
        let mut vad = Vad::new(VadSettings::default(), RATE);
        assert_eq!(vad.push(&tone(500, 0.03)).len(), 1);
        assert_eq!(level_dbfs(&[0; 10]), -100.0);
    }
}
