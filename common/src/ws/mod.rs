//! What both services' WebSocket endpoints share: the close codes by name,
//! authentication at the upgrade, and the closing handshake.
//!
//! A browser cannot read an HTTP 401 on a WebSocket handshake, so a refused
//! token gets an upgraded socket closed with `UNAUTHORIZED` and a reason.

mod close;

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use futures_util::{Stream, StreamExt};

use crate::auth::{AuthError, Principal, TokenVerifier, websocket_token};

pub use close::for_read_error;

/// Close codes (RFC 6455 section 7.4; 4000-4999 are the application's,
/// modelled on HTTP statuses).
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A frame or a whole stream over its size limit.
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    /// Try again later (the service is not ready).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const UNAUTHORIZED: u16 = 4001;
    pub const FORBIDDEN: u16 = 4003;
    pub const BAD_REQUEST: u16 = 4400;
    pub const IDLE_TIMEOUT: u16 = 4408;
}

/// How long a closed socket waits for the client's Close.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(2);

/// Checks the handshake's token (`?token=`, `Authorization: Bearer`, the
/// subprotocol offer `bearer, <token>`, or OpenAI's `realtime,
/// openai-insecure-api-key.<token>`) and selects the subprotocol the token
/// came with (browsers fail the handshake otherwise).
/// The verdict is for the upgraded socket: refused callers are closed with
/// [`refuse`], not answered 401.
pub async fn authenticate_upgrade(
    ws: WebSocketUpgrade,
    query_token: Option<&str>,
    headers: &HeaderMap,
    verifier: &TokenVerifier,
) -> (WebSocketUpgrade, Result<Principal, AuthError>) {
    let token = websocket_token(query_token, headers);
    let ws = match token.and_then(|(_, protocol)| protocol) {
        Some(protocol) => ws.protocols([protocol]),
        None => ws,
    };
    let verdict = match token {
        Some((t, _)) => verifier.verify(t).await,
        None => Err(AuthError::Missing),
    };
    (ws, verdict)
}

/// Closes a socket whose caller was refused.
pub async fn refuse(socket: WebSocket, error: &AuthError) {
    close(socket, code::UNAUTHORIZED, &error.to_string()).await;
}

/// A close frame's reason is at most 123 bytes (RFC 6455 section 5.5).
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// Sends Close with `code` and `reason` (cut to what a frame can hold, at
/// a character boundary), then waits briefly for the reply.
pub async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(MAX_CLOSE_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    await_close_reply(&mut socket).await;
}

/// RFC 6455 closing handshake: after our Close, read until the client's
/// Close (briefly). Dropping the TCP connection at once would make clients
/// that are still writing (pongs, messages) see a broken pipe instead of
/// our close code.
pub async fn await_close_reply<S>(stream: &mut S)
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
