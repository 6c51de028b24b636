//! Server-Sent Events as OpenAI streams them: one `data:` line of JSON
//! per event, no event names.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};

pub fn event(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// `text/event-stream`, not to be cached.
pub fn headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}
