//! Energy-based voice-activity check: Whisper invents text ("Thank you.")
//! for silence, so audio without speech-level energy is answered with an
//! empty transcript instead of being sent to a model.

/// Frame length for the energy measure (30 ms at 16 kHz).
const FRAME: usize = 480;

/// Whether the audio has at least `min_speech_ms` of frames louder than
/// `threshold_dbfs` (RMS, dB relative to full scale).
pub fn has_speech(
    samples: &[f32],
    sample_rate: u32,
    threshold_dbfs: f32,
    min_speech_ms: u32,
) -> bool {
    let frame = (FRAME as u64 * u64::from(sample_rate) / 16_000).max(1) as usize;
    let needed =
        (u64::from(min_speech_ms) * u64::from(sample_rate) / 1000 / frame as u64).max(1) as usize;
    let threshold = 10f32.powf(threshold_dbfs / 20.0);
    samples
        .chunks(frame)
        .filter(|f| {
            let energy = f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32;
            energy.sqrt() > threshold
        })
        .count()
        >= needed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_hiss_are_not_speech_but_a_tone_is() {
        let silence = vec![0.0f32; 16_000];
        assert!(!has_speech(&silence, 16_000, -40.0, 100));
        let hiss: Vec<f32> = (0..16_000)
            .map(|i| if i % 2 == 0 { 0.002 } else { -0.002 })
            .collect();
        assert!(!has_speech(&hiss, 16_000, -40.0, 100));
        let tone: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        assert!(has_speech(&tone, 16_000, -40.0, 100));
    }
}
