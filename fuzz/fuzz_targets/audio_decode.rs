//! Uploads in every container the voice service reads (WAV, FLAC, MP3,
//! Ogg and WebM with Opus or Vorbis, MP4/ADTS with AAC): container sniffing,
//! Symphonia's demuxers and decoders, libopus, the duration limit, then
//! resampling. Any panic, overflow or runaway allocation is a finding.
#![no_main]

// By path, as wav_decode: the native speech engines stay out of the build.
#[path = "../../voice/src/audio/mod.rs"]
#[allow(dead_code)]
mod audio;

static DEFAULT_PANIC_HOOK: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Symphonia's Matroska reader panics on some damaged files (found here
    // at once); `decode` catches that and refuses the file. libFuzzer's
    // panic hook would abort even on a caught panic, so the default hook
    // goes back in: a panic that escapes `decode` still aborts the run (the
    // fuzzer catches it), a caught one is a refused file, as in the service.
    DEFAULT_PANIC_HOOK.call_once(|| drop(std::panic::take_hook()));
    if let Ok(decoded) = audio::decode(data, 30) {
        // A decoder may overshoot the limit by one packet, never more.
        assert!(decoded.duration_secs() <= 30.2, "{} s", decoded.duration_secs());
        assert!(decoded.samples.iter().all(|s| s.is_finite()));
        if let Ok(samples) = audio::resample(&decoded, audio::STT_SAMPLE_RATE) {
            assert!(samples.iter().all(|s| s.is_finite()));
        }
    }
});
