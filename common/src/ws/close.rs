//! The close code for a WebSocket frame that could not be read (RFC 6455
//! section 7.4.1), so the client learns why its connection ends instead of
//! seeing it dropped.

use super::code;

/// Close code and reason for a failed read; `None` when the connection is
/// gone and nothing can be sent.
pub fn for_read_error(error: axum::Error) -> Option<(u16, &'static str)> {
    // axum's WebSocket is tungstenite 0.29 underneath; the services' tests
    // send each of these and check the code, so a version drift shows.
    let error = error.into_inner().downcast::<tungstenite::Error>().ok()?;
    match *error {
        tungstenite::Error::Utf8(_) => Some((code::INVALID_DATA, "text frame is not valid UTF-8")),
        tungstenite::Error::Capacity(_) => Some((code::TOO_BIG, "frame over the size limit")),
        tungstenite::Error::Protocol(_) => Some((code::PROTOCOL_ERROR, "WebSocket protocol error")),
        _ => None,
    }
}
