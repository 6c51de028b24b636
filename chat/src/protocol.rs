//! The JSON messages of the chat protocol, shared by the WebSocket and the
//! server-sent-events endpoint (where `type` becomes the SSE event name).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::history::{SessionSummary, StoredMessage};

/// Client → server (WebSocket text frames).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// A user message to answer.
    Message { content: String },
    /// Stop the answer being streamed.
    Cancel,
    /// Application-level keep-alive for clients that cannot send WebSocket pings.
    Ping,
}

/// Timing of one answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    /// From the user message to the first answer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<u64>,
    pub total_ms: u64,
}

/// Server → client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First message of a connection: the session in use.
    Session {
        session_id: String,
        created: bool,
    },
    /// The session's stored messages, oldest first.
    History {
        session_id: String,
        messages: Vec<StoredMessage>,
        persisted: bool,
    },
    /// The user message was received; `persisted` says whether it is stored.
    Ack {
        message_id: String,
        persisted: bool,
    },
    /// One streamed piece of the answer.
    Token {
        /// Shared by the answer's tokens: one id, not a copy per token.
        message_id: Arc<str>,
        content: String,
    },
    /// The answer is complete.
    Done {
        message_id: String,
        reply_to: String,
        content: String,
        persisted: bool,
        tokens: u64,
        timing: Timing,
    },
    /// Something failed; the connection stays usable.
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// The service works, but with less than it promises (e.g. no history).
    Warning {
        code: String,
        message: String,
    },
    Pong,
}

impl ServerEvent {
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Error {
            code: code.into(),
            message: message.into(),
            reply_to: None,
        }
    }

    /// The `type` tag, used as the SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Session { .. } => "session",
            Self::History { .. } => "history",
            Self::Ack { .. } => "ack",
            Self::Token { .. } => "token",
            Self::Done { .. } => "done",
            Self::Error { .. } => "error",
            Self::Warning { .. } => "warning",
            Self::Pong => "pong",
        }
    }
}

/// `GET /api/v1/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
}

/// `GET /api/v1/sessions/{id}/messages`.
#[derive(Debug, Serialize)]
pub struct SessionMessages {
    pub session_id: String,
    pub messages: Vec<StoredMessage>,
}

/// `POST /api/v1/chat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub message: String,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_strictly() {
        assert!(matches!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"message","content":"hi"}"#),
            Ok(ClientMessage::Message { content }) if content == "hi"
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"cancel"}"#).is_ok());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"content":"hi"}"#).is_err());
    }

    #[test]
    fn events_are_tagged() {
        let v = serde_json::to_value(ServerEvent::Ack {
            message_id: "m".into(),
            persisted: true,
        })
        .unwrap();
        assert_eq!(v["type"], "ack");
        assert_eq!(ServerEvent::Pong.kind(), "pong");
    }
}
