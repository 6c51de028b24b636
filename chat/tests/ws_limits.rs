//! How a WebSocket is bounded and ends: input limits, the idle timeout and
//! a graceful shutdown.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use support::*;

#[tokio::test]
async fn limits_refuse_bad_input_and_keep_the_socket() {
    require_redis!("limits_refuse_bad_input_and_keep_the_socket");
    let (redis, _llm, server) = start_stack_with(Script::tokens(&["ok"]), |cfg| {
        cfg.limits.messages_per_minute = 3;
    })
    .await;
    let mut ws = server.connect_as("alice").await;
    let (session_id, _) = ws.opening().await;

    ws.say(&"x".repeat(1001)).await;
    assert_eq!(ws.event().await["code"], "message_too_large");
    ws.say("   ").await;
    assert_eq!(ws.event().await["code"], "empty_message");
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            "{not json".into(),
        ))
        .await
        .unwrap();
    assert_eq!(ws.event().await["code"], "invalid_message");
    ws.send_json(json!({"type": "ping"})).await;
    assert_eq!(ws.event().await["type"], "pong");

    // Stored messages are exactly the acknowledged-as-persisted ones.
    let mut persisted = 0;
    for _ in 0..3 {
        ws.say("hello").await;
        for e in ws.until("done").await {
            if (e["type"] == "ack" || e["type"] == "done") && e["persisted"] == true {
                persisted += 1;
            }
        }
    }
    ws.say("one too many").await;
    assert_eq!(ws.event().await["code"], "rate_limited");

    let stored = stored_history(&redis, &session_id).await.len();
    assert!(persisted > 0, "nothing was persisted");
    assert_eq!(stored, persisted, "refused messages are not stored");

    // A frame over the size limit ends the connection (RFC 6455 1009).
    ws.say(&"y".repeat(20 * 1024)).await;
    let closed = ws.closed().await;
    assert_eq!(closed.code, 1009, "{closed:?}");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    require_redis!("idle_connections_are_closed");
    let (_redis, _llm, server) = start_stack_with(Script::tokens(&["ok"]), |cfg| {
        cfg.limits.ping_interval = Duration::from_millis(200);
        cfg.limits.idle_timeout = Duration::from_millis(600);
    })
    .await;
    let mut ws = server.connect_as("alice").await;
    ws.opening().await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let closed = ws.closed().await;
    assert_eq!(closed.code, 4408, "{closed:?}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_answer_then_closes_with_1001() {
    require_redis!("graceful_shutdown_finishes_the_answer_then_closes_with_1001");
    let (_redis, _llm, server) = start_stack(Script::slow(
        &["a", "b", "c", "d"],
        Duration::from_millis(100),
    ))
    .await;
    let mut ws = server.connect_as("alice").await;
    ws.opening().await;
    ws.say("q").await;
    assert_eq!(ws.event().await["type"], "ack");
    let stopping = tokio::spawn(server.shutdown());
    let events = ws.until("done").await;
    assert_eq!(events.last().unwrap()["content"], "abcd");
    let closed = ws.closed().await;
    assert_eq!(closed.code, 1001, "{closed:?}");
    stopping.await.unwrap();
}
