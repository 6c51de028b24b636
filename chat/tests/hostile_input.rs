//! Hostile input to the chat service: invalid UTF-8, deeply nested JSON,
//! 10,000-character messages, binary frames, frames that break the framing
//! rules, path tricks in session ids and a body that trickles in. Each is
//! refused with a clear error, nothing is stored, nothing reaches the LLM,
//! and the service keeps serving. (Frames over the size limit, empty
//! messages and the rate limit are in `ws_limits.rs`; REST size limits in
//! `rest_api.rs`.)

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The service with the default message limit (4,000 characters).
async fn start(redis: &RedisServer, llm: &LlmDouble) -> ChatServer {
    let mut cfg = config(&redis.url(), &llm.url());
    cfg.limits.max_message_chars = 4000;
    cfg.deadlines.body_timeout = Duration::from_secs(1);
    ChatServer::start(cfg).await
}

#[tokio::test]
async fn hostile_websocket_messages_are_refused_and_the_socket_kept() {
    require_redis!("hostile_websocket_messages_are_refused_and_the_socket_kept");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["ok"])).await;
    let server = start(&redis, &llm).await;
    let mut ws = server.connect_as("alice").await;
    ws.opening().await;

    ws.say(&"x".repeat(10_000)).await;
    let e = ws.event().await;
    assert_eq!(e["code"], "message_too_large", "{e}");
    assert!(
        e["message"].as_str().unwrap_or_default().contains("10000"),
        "{e}"
    );
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    ws.socket.send(Message::Text(deep.into())).await.unwrap();
    assert_eq!(ws.event().await["code"], "invalid_message");
    ws.socket
        .send(Message::Binary(vec![0xff, 0xfe, 0x00].into()))
        .await
        .unwrap();
    assert_eq!(ws.event().await["code"], "unsupported_frame");
    ws.send_json(json!({"type": "message", "content": "a\u{0}b\u{202e}c"}))
        .await;
    // Control and bidi characters are text like any other: stored as sent.
    let events = ws.until("done").await;
    assert_eq!(events[0]["type"], "ack", "{events:?}");

    // Invalid UTF-8 in a text frame breaks the protocol: close 1007.
    let bad = Frame::message(vec![b'{', 0xc3, 0x28, b'}'], OpCode::Data(Data::Text), true);
    ws.socket.send(Message::Frame(bad)).await.unwrap();
    let closed = ws.closed().await;
    assert_eq!(closed.code, 1007, "{closed:?}");

    assert_eq!(
        llm.requests().len(),
        1,
        "only the valid message reached the LLM"
    );
    // The session, its owner and the one exchange: nothing of the refused.
    assert_eq!(stored_keys(&redis).await, 3);
    // A frame that breaks the framing rules (a reserved bit set, no
    // extension negotiated): close 1002.
    let mut again = server.connect_as("alice").await;
    again.opening().await;
    let mut reserved = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    reserved.header_mut().rsv1 = true;
    again.socket.send(Message::Frame(reserved)).await.unwrap();
    let closed = again.closed().await;
    assert_eq!(closed.code, 1002, "{closed:?}");
}

#[tokio::test]
async fn hostile_rest_requests_are_refused() {
    require_redis!("hostile_rest_requests_are_refused");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["ok"])).await;
    let server = start(&redis, &llm).await;
    let http = reqwest::Client::new();
    let alice = format!("Bearer {}", token("alice"));

    let r = http
        .post(server.http("/api/v1/chat"))
        .header("authorization", &alice)
        .header("content-type", "application/json")
        .body(b"{\"message\": \"caf\xc3\x28\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "invalid UTF-8");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_request", "{e}");

    let r = http
        .post(server.http("/api/v1/chat"))
        .header("authorization", &alice)
        .json(&json!({"message": "x".repeat(10_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    for (method, path) in [
        ("GET", "/api/v1/sessions/..%2F..%2Fetc%2Fpasswd/messages"),
        ("GET", "/api/v1/sessions/chat_history:other/messages"),
        ("DELETE", "/api/v1/sessions/%2A"),
    ] {
        let r = http
            .request(method.parse().unwrap(), server.http(path))
            .header("authorization", &alice)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "invalid_session_id", "{path}: {e}");
    }

    // A body that trickles in is cut off at REQUEST_BODY_TIMEOUT_SECS.
    let (response, after) = voicechat_testkit::slow_client::trickle_body(
        server.addr,
        &format!(
            "POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: {alice}\r\nContent-Type: application/json\r\nContent-Length: 5000"
        ),
        Duration::from_secs(4),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("request_timeout"), "{response}");
    assert!(after < Duration::from_secs(3), "answered after {after:?}");

    assert_eq!(
        stored_keys(&redis).await,
        0,
        "refused requests store nothing"
    );
    assert!(llm.requests().is_empty());
    server.get_json_as("alice", "/api/v1/sessions").await;
}
