//! The chat WebSocket's client messages: every text frame is parsed as a
//! `ClientMessage`. Anything that parses must round-trip to the same kind.
#![no_main]

use voicechat_chat::protocol::ClientMessage;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Frames reach the parser as text; tungstenite refuses invalid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ClientMessage::Message { content }) = serde_json::from_str::<ClientMessage>(text) {
        // The content is what the size and emptiness checks look at next.
        let _ = content.chars().count();
        let _ = content.trim().is_empty();
    }
});
