//! The Realtime API's client events (chat's `/v1/realtime`, voice's
//! transcription sessions): every text frame is parsed, a session update
//! is applied to the settings, and appended audio is decoded and fed to
//! the voice activity detector, as a session does. Nothing may panic, and
//! a refused update must leave the settings as they were.
#![no_main]

use base64::Engine as _;
use voicechat_chat::realtime::settings::SessionSettings;
use voicechat_common::realtime::{AudioFormat, ClientEvent, Vad, VadSettings, parse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(incoming) = parse(text) else {
        return;
    };
    match incoming.event {
        ClientEvent::SessionUpdate(update) => {
            let settings = SessionSettings::new("alloy".into(), true);
            let before = settings.clone();
            if let Ok(next) = settings.updated(&update, data.len() % 2 == 0) {
                let _ = next.to_json("s", "m");
            }
            assert_eq!(settings, before);
        }
        ClientEvent::Append(audio) => {
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(audio) else {
                return;
            };
            for format in [AudioFormat::Pcm, AudioFormat::Pcmu, AudioFormat::Pcma] {
                if let Ok(samples) = format.decode(&bytes) {
                    let mut vad = Vad::new(VadSettings::default(), format.sample_rate());
                    let _ = vad.push(&samples);
                }
            }
        }
        _ => {}
    }
});
