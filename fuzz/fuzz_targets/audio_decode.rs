//! Uploads in every container the voice service reads (WAV, FLAC, MP3,
//! Ogg and WebM with Opus or Vorbis, MP4/ADTS with AAC): container sniffing,
//! Symphonia's demuxers and decoders, libopus, the duration limit, then
//! resampling. Any panic, overflow or runaway allocation is a finding.
#![no_main]

// By path, as wav_decode: the native speech engines stay out of the build.
#[path = "../../voice/src/audio/mod.rs"]
#[allow(dead_code)]
mod audio;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = audio::decode(data, 30) {
        // A decoder may overshoot the limit by one packet, never more.
        assert!(decoded.duration_secs() <= 30.2, "{} s", decoded.duration_secs());
        assert!(decoded.samples.iter().all(|s| s.is_finite()));
        if let Ok(samples) = audio::resample(&decoded, audio::STT_SAMPLE_RATE) {
            assert!(samples.iter().all(|s| s.is_finite()));
        }
    }
});
