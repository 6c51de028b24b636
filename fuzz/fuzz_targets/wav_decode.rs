//! The voice service's audio input path on arbitrary bytes: WAV decoding
//! (header checks, any sample format and channel count, the duration
//! limit), then resampling to the recognizers' rate and the speech check.
//! Any panic, overflow or runaway allocation is a finding.
#![no_main]

// The audio module has no dependency on the rest of the voice crate; taking
// it by path keeps the native speech engines (whisper.cpp, onnxruntime,
// libvosk) out of the sanitizer build.
#[path = "../../voice/src/audio/mod.rs"]
#[allow(dead_code)]
mod audio;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // 30 s: the service's default limit.
    if let Ok(decoded) = audio::decode_wav(data, 30) {
        assert!(decoded.duration_secs() <= 30.0 + 1e-6);
        if let Ok(samples) = audio::resample(&decoded, audio::STT_SAMPLE_RATE) {
            assert!(samples.iter().all(|s| s.is_finite()));
        }
    }
});
