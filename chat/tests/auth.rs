//! Who may chat: tokens refused at the WebSocket upgrade, the ways a token
//! may be sent, sessions of other users, remote token verification.

mod support;

use std::collections::HashMap;

use serde_json::json;
use support::*;

/// Every refused token closes the socket with 4001, and nothing is stored.
#[tokio::test]
async fn bad_tokens_close_with_4001_and_store_nothing() {
    require_redis!("bad_tokens_close_with_4001_and_store_nothing");
    let (redis, llm, server) = start_stack(Script::tokens(&["x"])).await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sign = |claims: serde_json::Value, alg: jsonwebtoken::Algorithm, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let cases = [
        ("missing", String::new()),
        ("garbage", "token=garbage".to_owned()),
        (
            "expired",
            format!(
                "token={}",
                sign(
                    json!({"sub": "a", "exp": now - 120}),
                    jsonwebtoken::Algorithm::HS256,
                    SECRET
                )
            ),
        ),
        (
            "not yet valid",
            format!(
                "token={}",
                sign(
                    json!({"sub": "a", "exp": now + 600, "nbf": now + 300}),
                    jsonwebtoken::Algorithm::HS256,
                    SECRET
                )
            ),
        ),
        (
            "alg swap",
            format!(
                "token={}",
                sign(
                    json!({"sub": "a", "exp": now + 600}),
                    jsonwebtoken::Algorithm::HS512,
                    SECRET
                )
            ),
        ),
        (
            "bad signature",
            format!(
                "token={}",
                sign(
                    json!({"sub": "a", "exp": now + 600}),
                    jsonwebtoken::Algorithm::HS256,
                    "some-other-secret-that-is-long-enough!!"
                )
            ),
        ),
        (
            "alg none",
            format!(
                "token={}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&json!({"sub": "a", "exp": now + 600}).to_string())
            ),
        ),
    ];
    for (name, query) in cases {
        let mut ws = WsClient::connect(&server.ws(&query)).await;
        let closed = ws.closed().await;
        assert_eq!(closed.code, 4001, "{name}: {closed:?}");
        assert!(
            !closed.reason.is_empty(),
            "{name}: close reason names the problem"
        );
    }
    assert_eq!(
        stored_keys(&redis).await,
        0,
        "nothing stored for refused connections"
    );
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn accepts_header_and_subprotocol_tokens() {
    require_redis!("accepts_header_and_subprotocol_tokens");
    let (_redis, _llm, server) = start_stack(Script::tokens(&["x"])).await;

    let bearer = format!("Bearer {}", token("alice"));
    let mut ws = WsClient::connect_with(&server.ws(""), &[("authorization", &bearer)]).await;
    ws.opening().await;

    let offer = format!("bearer, {}", token("alice"));
    let mut ws =
        WsClient::connect_with(&server.ws(""), &[("sec-websocket-protocol", &offer)]).await;
    assert_eq!(
        ws.protocol.as_deref(),
        Some("bearer"),
        "server selects the bearer subprotocol"
    );
    ws.opening().await;
}

#[tokio::test]
async fn another_users_session_is_refused() {
    require_redis!("another_users_session_is_refused");
    let (_redis, _llm, server) = start_stack(Script::tokens(&["x"])).await;

    let mut alice = server.connect_as("alice").await;
    let (session_id, _) = alice.opening().await;
    alice.say("secret plans").await;
    alice.until("done").await;

    let mut mallory = server.connect_to("mallory", &session_id).await;
    let closed = mallory.closed().await;
    assert_eq!(closed.code, 4003, "{closed:?}");

    let mut bad =
        WsClient::connect(&server.ws(&format!("token={}&session_id=..%2Fx", token("alice")))).await;
    assert_eq!(bad.closed().await.code, 4400);
}

#[tokio::test]
async fn remote_token_verification_is_used_and_cached() {
    require_redis!("remote_token_verification_is_used_and_cached");
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let verify = axum::Router::new().route(
        "/verify",
        axum::routing::post(
            move |axum::Json(body): axum::Json<HashMap<String, String>>| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if body.get("token").map(String::as_str) == Some("opaque-good") {
                        (
                            axum::http::StatusCode::OK,
                            axum::Json(json!({"valid": true, "user_id": "remote-user"})),
                        )
                    } else {
                        (
                            axum::http::StatusCode::UNAUTHORIZED,
                            axum::Json(json!({"valid": false})),
                        )
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let verify_url = format!("http://{}/verify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, verify).await.unwrap() });

    let (_redis, _llm, server) = start_stack_with(Script::tokens(&["x"]), |cfg| {
        cfg.auth = voicechat_common::auth::AuthSettings::Remote {
            url: verify_url,
            cache_ttl: std::time::Duration::from_secs(30),
        };
    })
    .await;

    for _ in 0..3 {
        let mut ws = WsClient::connect(&server.ws("token=opaque-good")).await;
        ws.opening().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "verdict cached");
    let list = reqwest::Client::new()
        .get(server.http("/api/v1/sessions"))
        .bearer_auth("opaque-good")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);

    let mut ws = WsClient::connect(&server.ws("token=opaque-bad")).await;
    assert_eq!(ws.closed().await.code, 4001);
}
