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

/// The subprotocols a WebSocket handshake offers.
fn ws_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// OpenAI's browser form for the Realtime API: the subprotocols
/// `realtime` and `openai-insecure-api-key.<token>`.
pub fn openai_key_from_ws_protocols(headers: &HeaderMap) -> Option<&str> {
    ws_protocols(headers)
        .find_map(|p| p.strip_prefix("openai-insecure-api-key."))
        .filter(|t| !t.is_empty())
}

/// The token of a WebSocket handshake: `?token=` (the original system's
/// form), `Authorization: Bearer`, the subprotocol offer `bearer, <token>`,
/// or OpenAI's `realtime, openai-insecure-api-key.<token>`. The second
/// value is the subprotocol the server must then select (browsers fail a
/// handshake that offered protocols and got none back); the key itself is
/// never echoed.
pub fn websocket_token<'a>(
    query: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Option<(&'a str, Option<&'static str>)> {
    query
        .map(|t| (t, None))
        .or_else(|| bearer_from_headers(headers).map(|t| (t, None)))
        .or_else(|| bearer_from_ws_protocols(headers).map(|t| (t, Some("bearer"))))
        .or_else(|| {
            let offered_realtime = ws_protocols(headers).any(|p| p == "realtime");
            openai_key_from_ws_protocols(headers)
                .map(|t| (t, offered_realtime.then_some("realtime")))
        })
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

    #[test]
    fn websocket_tokens_say_which_protocol_to_select() {
        let mut h = HeaderMap::new();
        assert_eq!(websocket_token(Some("q"), &h), Some(("q", None)));
        h.insert(
            "sec-websocket-protocol",
            "realtime, openai-insecure-api-key.k3y".parse().unwrap(),
        );
        assert_eq!(websocket_token(None, &h), Some(("k3y", Some("realtime"))));
        h.insert("sec-websocket-protocol", "bearer, t0k".parse().unwrap());
        assert_eq!(websocket_token(None, &h), Some(("t0k", Some("bearer"))));
        h.insert("authorization", "Bearer hdr".parse().unwrap());
        assert_eq!(websocket_token(None, &h), Some(("hdr", None)));
        assert_eq!(websocket_token(None, &HeaderMap::new()), None);
    }
}
