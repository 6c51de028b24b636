//! The events of OpenAI's Realtime API (GA names), as both services speak
//! them: client events parsed into [`ClientEvent`] with errors that name
//! the field at fault, server events built with their `event_id`.

use serde_json::{Map, Value, json};

/// A refusal, sent as an `error` event: `type` (`invalid_request_error` or
/// `server_error`), a stable `code`, a `message`, the `param` at fault and
/// the `event_id` of the client event (set by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct EventError {
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub event_id: Option<String>,
}

impl EventError {
    pub fn invalid(code: &'static str, message: impl Into<String>, param: &str) -> Self {
        Self {
            kind: "invalid_request_error",
            code,
            message: message.into(),
            param: (!param.is_empty()).then(|| param.to_owned()),
            event_id: None,
        }
    }

    pub fn server(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: "server_error",
            code,
            message: message.into(),
            param: None,
            event_id: None,
        }
    }

    pub fn for_event(mut self, event_id: Option<&str>) -> Self {
        self.event_id = event_id.map(str::to_owned);
        self
    }

    /// The `error` server event.
    pub fn to_event(&self) -> Value {
        server_event(
            "error",
            json!({"error": {
                "type": self.kind,
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "event_id": self.event_id,
            }}),
        )
    }
}

/// A client event with the `event_id` the client gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub event_id: Option<String>,
    pub event: ClientEvent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `session.update`: the session object, applied by the session.
    SessionUpdate(Map<String, Value>),
    /// `input_audio_buffer.append`: base64 audio, not yet decoded.
    Append(String),
    Commit,
    Clear,
    /// `conversation.item.create`: the item, checked by the session.
    ItemCreate(Map<String, Value>),
    /// `response.create`, with its optional overrides.
    ResponseCreate(Map<String, Value>),
    ResponseCancel {
        response_id: Option<String>,
    },
    ItemTruncate {
        item_id: String,
        content_index: u64,
        audio_end_ms: u64,
    },
    ItemDelete {
        item_id: String,
    },
    ItemRetrieve {
        item_id: String,
    },
}

/// Read and write buffer of a Realtime socket: about one 100 ms append of
/// 24 kHz PCM in base64. Larger messages still go through; tungstenite's
/// default (128 KiB each) was most of an idle session's memory.
pub const SOCKET_BUFFER_BYTES: usize = 8 * 1024;
/// The longest client event (text) read: a 15 MiB audio append in base64,
/// as OpenAI's limit, and a little more.
pub const MAX_EVENT_BYTES: usize = 21 * 1024 * 1024;
/// The largest audio one append may carry, in base64 characters (OpenAI's
/// 15 MiB).
pub const MAX_APPEND_BASE64: usize = 15 * 1024 * 1024;

/// Parses one client event. The error carries the event's `event_id` when
/// it had one.
pub fn parse(text: &str) -> Result<Incoming, EventError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        EventError::invalid("invalid_json", format!("the event is not JSON: {e}"), "")
    })?;
    let Value::Object(mut event) = value else {
        return Err(EventError::invalid(
            "invalid_event",
            "an event is a JSON object",
            "",
        ));
    };
    let event_id = match event.remove("event_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.len() <= 512 => Some(id),
        Some(_) => {
            return Err(EventError::invalid(
                "invalid_event",
                "event_id must be a string of at most 512 bytes",
                "event_id",
            ));
        }
    };
    let fail = |e: EventError| e.for_event(event_id.as_deref());
    let kind = match event.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            return Err(fail(EventError::invalid(
                "invalid_event",
                "the event has no string \"type\"",
                "type",
            )));
        }
    };
    let parsed = match kind.as_str() {
        "session.update" => object(&mut event, "session").map(ClientEvent::SessionUpdate),
        "input_audio_buffer.append" => string(&mut event, "audio").and_then(|audio| {
            if audio.len() > MAX_APPEND_BASE64 {
                Err(EventError::invalid(
                    "audio_too_large",
                    format!(
                        "audio is {} bytes of base64; one append takes at most {MAX_APPEND_BASE64}",
                        audio.len()
                    ),
                    "audio",
                ))
            } else {
                Ok(ClientEvent::Append(audio))
            }
        }),
        "input_audio_buffer.commit" => Ok(ClientEvent::Commit),
        "input_audio_buffer.clear" => Ok(ClientEvent::Clear),
        "conversation.item.create" => object(&mut event, "item").map(ClientEvent::ItemCreate),
        "response.create" => match event.remove("response") {
            None | Some(Value::Null) => Ok(ClientEvent::ResponseCreate(Map::new())),
            Some(Value::Object(r)) => Ok(ClientEvent::ResponseCreate(r)),
            Some(_) => Err(EventError::invalid(
                "invalid_event",
                "response must be an object",
                "response",
            )),
        },
        "response.cancel" => optional_string(&mut event, "response_id")
            .map(|response_id| ClientEvent::ResponseCancel { response_id }),
        "conversation.item.truncate" => (|| {
            Ok(ClientEvent::ItemTruncate {
                item_id: string(&mut event, "item_id")?,
                content_index: count(&event, "content_index")?,
                audio_end_ms: count(&event, "audio_end_ms")?,
            })
        })(),
        "conversation.item.delete" => {
            string(&mut event, "item_id").map(|item_id| ClientEvent::ItemDelete { item_id })
        }
        "conversation.item.retrieve" => {
            string(&mut event, "item_id").map(|item_id| ClientEvent::ItemRetrieve { item_id })
        }
        other => Err(EventError::invalid(
            "unknown_event",
            format!("unknown event type {:?}", truncated(other, 64)),
            "type",
        )),
    };
    parsed
        .map_err(fail)
        .map(|event| Incoming { event_id, event })
}

fn truncated(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn missing(field: &str, what: &str) -> EventError {
    EventError::invalid(
        "missing_or_invalid_field",
        format!("{field} must be {what}"),
        field,
    )
}

fn object(event: &mut Map<String, Value>, field: &str) -> Result<Map<String, Value>, EventError> {
    match event.remove(field) {
        Some(Value::Object(o)) => Ok(o),
        _ => Err(missing(field, "an object")),
    }
}

fn string(event: &mut Map<String, Value>, field: &str) -> Result<String, EventError> {
    match event.remove(field) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(missing(field, "a string")),
    }
}

fn optional_string(
    event: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<String>, EventError> {
    match event.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(missing(field, "a string")),
    }
}

fn count(event: &Map<String, Value>, field: &str) -> Result<u64, EventError> {
    event
        .get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| missing(field, "a non-negative integer"))
}

/// A fresh id with OpenAI's kind of prefix (`event_`, `item_`, `resp_`).
pub fn new_id(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..20])
}

/// A server event of `kind` with `fields` and a fresh `event_id`.
pub fn server_event(kind: &str, fields: Value) -> Value {
    let mut event = Map::new();
    event.insert("type".into(), Value::String(kind.to_owned()));
    event.insert("event_id".into(), Value::String(new_id("event_")));
    if let Value::Object(fields) = fields {
        event.extend(fields);
    }
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_with_their_ids() {
        let e = parse(r#"{"type":"input_audio_buffer.append","audio":"AAA=","event_id":"c1"}"#)
            .unwrap();
        assert_eq!(e.event_id.as_deref(), Some("c1"));
        assert_eq!(e.event, ClientEvent::Append("AAA=".into()));
        assert_eq!(
            parse(r#"{"type":"response.create"}"#).unwrap().event,
            ClientEvent::ResponseCreate(Map::new())
        );
        assert_eq!(
            parse(r#"{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":1500}"#)
                .unwrap()
                .event,
            ClientEvent::ItemTruncate {
                item_id: "i".into(),
                content_index: 0,
                audio_end_ms: 1500
            }
        );
    }

    #[test]
    fn bad_events_are_refused_naming_the_field_and_the_event() {
        let e = parse(r#"{"type":"conversation.item.truncate","item_id":"i","event_id":"c9"}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("content_index"));
        assert_eq!(e.event_id.as_deref(), Some("c9"));
        let e = parse(r#"{"type":"nonsense.event","event_id":"c2"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.event_id.as_deref()),
            ("unknown_event", Some("c2"))
        );
        assert_eq!(parse("not json").unwrap_err().code, "invalid_json");
        assert_eq!(parse("[1]").unwrap_err().code, "invalid_event");
        assert_eq!(
            parse(r#"{"type":5}"#).unwrap_err().param.as_deref(),
            Some("type")
        );
        let e = parse(r#"{"type":"session.update","session":[]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("session"));
        let huge = format!(
            r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#,
            "A".repeat(MAX_APPEND_BASE64 + 4)
        );
        assert_eq!(parse(&huge).unwrap_err().code, "audio_too_large");
    }

    #[test]
    fn server_events_carry_type_and_a_fresh_id() {
        let a = server_event("session.created", json!({"session": {}}));
        let b = server_event("session.created", json!({"session": {}}));
        assert_eq!(a["type"], "session.created");
        assert!(a["event_id"].as_str().unwrap().starts_with("event_"));
        assert_ne!(a["event_id"], b["event_id"]);
        let err = EventError::invalid("x", "bad", "audio")
            .for_event(Some("c3"))
            .to_event();
        assert_eq!(err["error"]["event_id"], "c3");
        assert_eq!(err["error"]["param"], "audio");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
}
