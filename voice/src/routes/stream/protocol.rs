//! The JSON messages of `/ws/stt`: what the client sends besides audio,
//! and every event the server sends.

use serde::{Deserialize, Serialize};

use crate::stt::{Segment, Transcript};

/// Client → server (text frames; audio comes in binary frames).
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The utterance is over: answer with its final text.
    End,
}

/// Why a `final` event was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalReason {
    /// The engine settled an utterance mid-stream.
    Pause,
    /// The answer to the client's `end`.
    End,
}

/// Stable codes of `error` events; the connection stays open after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A binary frame that does not hold whole 16-bit samples.
    InvalidAudio,
    /// A text frame that is not `{"type":"end"}`.
    InvalidMessage,
    /// The recognizer failed.
    EngineFailed,
}

/// Server → client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First message of a connection: who listens, for what audio.
    Ready {
        engine: &'static str,
        /// The language asked for; `null` lets the engine decide.
        language: Option<String>,
        sample_rate: u32,
    },
    /// The current utterance's text so far; it may still change.
    Partial {
        text: String,
    },
    /// An utterance's settled text.
    Final {
        reason: FinalReason,
        text: String,
        language: String,
        engine: &'static str,
        segments: Vec<Segment>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl ServerEvent {
    pub fn settled(transcript: Transcript, engine: &'static str, reason: FinalReason) -> Self {
        Self::Final {
            reason,
            text: transcript.text,
            language: transcript.language,
            engine,
            segments: transcript.segments,
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wire(event: ServerEvent) -> serde_json::Value {
        serde_json::to_value(event).unwrap()
    }

    #[test]
    fn end_is_the_only_client_message() {
        let parse = serde_json::from_str::<ClientMessage>;
        assert_eq!(parse(r#"{"type":"end"}"#).unwrap(), ClientMessage::End);
        // Extra fields were always ignored.
        assert_eq!(
            parse(r#"{"type":"end","at":3}"#).unwrap(),
            ClientMessage::End
        );
        for other in [r#"{"type":"stop"}"#, r#"{"kind":"end"}"#, r#""end""#, "end"] {
            assert!(parse(other).is_err(), "{other}");
        }
    }

    /// The events as the route wrote them with `json!` before they were typed.
    #[test]
    fn events_keep_their_wire_form() {
        assert_eq!(
            wire(ServerEvent::Ready {
                engine: "vosk",
                language: None,
                sample_rate: 16_000
            }),
            json!({"type": "ready", "engine": "vosk", "language": null, "sample_rate": 16000})
        );
        assert_eq!(
            wire(ServerEvent::Partial { text: "hel".into() }),
            json!({"type": "partial", "text": "hel"})
        );
        let transcript = Transcript {
            text: "hello".into(),
            language: "en".into(),
            segments: vec![Segment::new(0.0, 0.5, "hello".into())],
            words: Vec::new(),
        };
        assert_eq!(
            wire(ServerEvent::settled(
                transcript.clone(),
                "whisper",
                FinalReason::End
            )),
            json!({"type": "final", "reason": "end", "text": "hello", "language": "en",
                "engine": "whisper", "segments": transcript.segments})
        );
        assert_eq!(
            wire(ServerEvent::settled(transcript, "vosk", FinalReason::Pause))["reason"],
            "pause"
        );
        assert_eq!(
            wire(ServerEvent::error(ErrorCode::InvalidAudio, "odd")),
            json!({"type": "error", "code": "invalid_audio", "message": "odd"})
        );
        assert_eq!(
            wire(ServerEvent::error(ErrorCode::InvalidMessage, ""))["code"],
            "invalid_message"
        );
        assert_eq!(
            wire(ServerEvent::error(ErrorCode::EngineFailed, ""))["code"],
            "engine_failed"
        );
    }
}
