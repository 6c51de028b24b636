//! Token handling on arbitrary input: the `Authorization` and
//! `Sec-WebSocket-Protocol` header parsers, and JWT verification with the
//! algorithm pinned to HS256. Nothing unsigned by the secret may verify.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use voicechat_common::auth::{
    JwtSettings, JwtVerifier, bearer_from_headers, bearer_from_ws_protocols, websocket_token,
};

const SECRET: &[u8] = b"fuzzing-secret-that-is-at-least-32-bytes-long";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(data) {
        headers.insert(header::AUTHORIZATION, value.clone());
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let _ = bearer_from_headers(&headers);
    let _ = bearer_from_ws_protocols(&headers);
    let text = String::from_utf8_lossy(data);
    let _ = websocket_token(Some(&text), &headers);

    let settings = JwtSettings::hs256(SECRET).expect("a long enough secret");
    let verifier = JwtVerifier::new(&settings).expect("verifier");
    // A random input that verifies would mean a forged token.
    if let Ok(principal) = verifier.verify(&text) {
        panic!("an unsigned input verified as {principal:?}");
    }
});
