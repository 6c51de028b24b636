//! Where a request carries its token.

use axum::http::HeaderMap;

/// `Authorization: Bearer <token>`.
pub fn bearer_from_headers(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `Sec-WebSocket-Protocol: bearer, <token>`: browsers cannot set headers on
/// a WebSocket, but they can offer subprotocols.
pub fn bearer_from_ws_protocols(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?;
    let mut parts = value.split(',').map(str::trim);
    let first = parts.next()?;
    if !first.eq_ignore_ascii_case("bearer") {
        return None;
    }
    parts.next().filter(|t| !t.is_empty())
}

/// The token of a WebSocket handshake: `?token=` (the original system's
/// form), `Authorization: Bearer`, or the subprotocol offer
/// `bearer, <token>`. The flag says it came as a subprotocol, in which case
/// the server must select `bearer` or browsers fail the handshake.
pub fn websocket_token<'a>(
    query: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Option<(&'a str, bool)> {
    query
        .map(|t| (t, false))
        .or_else(|| bearer_from_headers(headers).map(|t| (t, false)))
        .or_else(|| bearer_from_ws_protocols(headers).map(|t| (t, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_tokens_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("sec-websocket-protocol", "bearer, xyz".parse().unwrap());
        assert_eq!(bearer_from_headers(&h), Some("abc"));
        assert_eq!(bearer_from_ws_protocols(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        h.insert("sec-websocket-protocol", "chat, xyz".parse().unwrap());
        assert_eq!(bearer_from_headers(&h), None);
        assert_eq!(bearer_from_ws_protocols(&h), None);
    }
}
