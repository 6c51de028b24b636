//! The WebSocket chat against a real Redis and a scripted LLM server.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use redis::AsyncCommands;
use serde_json::json;
use support::ws_client::streamed_text;
use support::*;

macro_rules! require_redis {
    ($name:expr) => {
        if !have_or_skip(RedisServer::available(), $name, "redis", "redis-server") {
            return;
        }
    };
}

#[tokio::test]
async fn streams_tokens_stores_history_and_replays_it_on_reconnect() {
    require_redis!("streams_tokens_stores_history_and_replays_it_on_reconnect");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["Hello", ", ", "world", "!"])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;

    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (session_id, history) = ws.opening().await;
    assert_eq!(history["messages"], json!([]));

    ws.say("hi there").await;
    let events = ws.until("done").await;
    let ack = &events[0];
    assert_eq!(ack["type"], "ack", "{events:?}");
    assert_eq!(ack["persisted"], true);
    let tokens: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "token")
        .map(|e| e["content"].clone())
        .collect();
    assert_eq!(
        tokens,
        [json!("Hello"), json!(", "), json!("world"), json!("!")]
    );
    let done = events.last().unwrap();
    assert_eq!(done["content"], "Hello, world!");
    assert_eq!(done["reply_to"], ack["message_id"]);
    assert_eq!(done["tokens"], 4);
    assert_eq!(done["persisted"], true);
    assert!(done["timing"]["total_ms"].is_u64());

    // The model got the system prompt and the user's message.
    let request = &llm.requests()[0];
    assert_eq!(request["model"], "test-model");
    assert_eq!(request["stream"], true);
    assert_eq!(
        request["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        request["messages"][1],
        json!({"role": "user", "content": "hi there"})
    );

    // Stored under the original system's key.
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> = conn
        .lrange(format!("chat_history:{session_id}"), 0, -1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    let ttl: i64 = conn
        .ttl(format!("chat_history:{session_id}"))
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 3600, "ttl {ttl}");
    drop(ws);

    let mut again =
        WsClient::connect(&server.ws(&format!("token={}&session_id={session_id}", token("alice"))))
            .await;
    let session = again.event().await;
    assert_eq!(session["session_id"], session_id.as_str());
    assert_eq!(session["created"], false);
    let history = again.event().await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "hi there");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Hello, world!");

    // The next answer is asked with the whole conversation as context.
    again.say("and again").await;
    again.until("done").await;
    let request = &llm.requests()[1];
    let roles: Vec<_> = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].clone())
        .collect();
    assert_eq!(
        roles,
        [
            json!("system"),
            json!("user"),
            json!("assistant"),
            json!("user")
        ]
    );
}

#[tokio::test]
async fn history_is_bounded() {
    require_redis!("history_is_bounded");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["ok"])).await;
    let mut cfg = config(&redis.url(), &llm.url());
    cfg.history.max_messages = 4;
    let server = ChatServer::start(cfg).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (session_id, _) = ws.opening().await;
    for i in 0..5 {
        ws.say(&format!("message {i}")).await;
        ws.until("done").await;
    }
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> = conn
        .lrange(format!("chat_history:{session_id}"), 0, -1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    assert!(
        stored[0].contains("message 3"),
        "oldest kept is the 4th user message: {}",
        stored[0]
    );
}

/// Every refused token closes the socket with 4001, and nothing is stored.
#[tokio::test]
async fn bad_tokens_close_with_4001_and_store_nothing() {
    require_redis!("bad_tokens_close_with_4001_and_store_nothing");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;

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
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(keys, 0, "nothing stored for refused connections");
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn accepts_header_and_subprotocol_tokens() {
    require_redis!("accepts_header_and_subprotocol_tokens");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;

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
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;

    let mut alice = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (session_id, _) = alice.opening().await;
    alice.say("secret plans").await;
    alice.until("done").await;

    let mut mallory = WsClient::connect(&server.ws(&format!(
        "token={}&session_id={session_id}",
        token("mallory")
    )))
    .await;
    let closed = mallory.closed().await;
    assert_eq!(closed.code, 4003, "{closed:?}");

    let mut bad =
        WsClient::connect(&server.ws(&format!("token={}&session_id=..%2Fx", token("alice")))).await;
    assert_eq!(bad.closed().await.code, 4400);
}

#[tokio::test]
async fn mid_stream_llm_error_keeps_the_socket_open() {
    require_redis!("mid_stream_llm_error_keeps_the_socket_open");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::ErrorAfter {
        tokens: vec!["Par".into(), "tial".into()],
        error: "model runner has unexpectedly stopped".into(),
    })
    .await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (session_id, _) = ws.opening().await;

    ws.say("question").await;
    let events = ws.until("error").await;
    assert_eq!(streamed_text(&events), "Partial");
    let error = events.last().unwrap();
    assert_eq!(error["code"], "llm_stream_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unexpectedly stopped"),
        "{error}"
    );

    llm.set(Script::tokens(&["Fine", " now"]));
    ws.say("again").await;
    let events = ws.until("done").await;
    assert_eq!(events.last().unwrap()["content"], "Fine now");

    // The partial answer is kept, marked interrupted.
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> = conn
        .lrange(format!("chat_history:{session_id}"), 0, -1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    let partial: serde_json::Value = serde_json::from_str(&stored[1]).unwrap();
    assert_eq!(partial["content"], "Partial");
    assert_eq!(partial["interrupted"], true);
}

#[tokio::test]
async fn llm_http_errors_and_outage_become_error_messages() {
    require_redis!("llm_http_errors_and_outage_become_error_messages");
    let redis = RedisServer::start();
    let mut llm =
        LlmDouble::start(Script::Status(404, "model \"test-model\" not found".into())).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    ws.opening().await;

    ws.say("q1").await;
    let error = ws.until("error").await.pop().unwrap();
    assert_eq!(error["code"], "llm_http_error");
    assert!(
        error["message"].as_str().unwrap().contains("not found"),
        "{error}"
    );

    llm.stop();
    ws.say("q2").await;
    let error = ws.until("error").await.pop().unwrap();
    assert_eq!(error["code"], "llm_unavailable", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("refused"),
        "the cause is named: {error}"
    );
    let report = health(&server).await;
    assert_eq!(report["status"], "degraded");
    assert_eq!(report["dependencies"]["llm"]["status"], "disconnected");
    assert_eq!(report["dependencies"]["redis"]["status"], "connected");

    llm.restart().await;
    llm.set(Script::tokens(&["back"]));
    ws.say("q3").await;
    assert_eq!(ws.until("done").await.pop().unwrap()["content"], "back");
    assert_eq!(health(&server).await["status"], "healthy");
}

#[tokio::test]
async fn cancel_and_disconnect_stop_the_llm_request() {
    require_redis!("cancel_and_disconnect_stop_the_llm_request");
    let redis = RedisServer::start();
    let many: Vec<String> = (0..100).map(|i| format!("t{i} ")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let llm = LlmDouble::start(Script::slow(&many, Duration::from_millis(50))).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;

    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (session_id, _) = ws.opening().await;
    ws.say("long answer please").await;
    assert_eq!(ws.event().await["type"], "ack");
    assert_eq!(ws.event().await["type"], "token");
    ws.send_json(json!({"type": "cancel"})).await;
    let error = ws.until("error").await.pop().unwrap();
    assert_eq!(error["code"], "cancelled");
    wait_for(|| llm.aborted() == 1, "the LLM stream to be dropped").await;

    // Disconnecting mid-answer also stops the request.
    ws.say("another long one").await;
    assert_eq!(ws.event().await["type"], "ack");
    assert_eq!(ws.event().await["type"], "token");
    drop(ws);
    wait_for(
        || llm.aborted() == 2,
        "the LLM stream to be dropped on disconnect",
    )
    .await;

    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> = conn
        .lrange(format!("chat_history:{session_id}"), 0, -1)
        .await
        .unwrap();
    let interrupted = stored
        .iter()
        .filter(|m| m.contains("\"interrupted\":true"))
        .count();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(interrupted, 2);
}

#[tokio::test]
async fn limits_refuse_bad_input_and_keep_the_socket() {
    require_redis!("limits_refuse_bad_input_and_keep_the_socket");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["ok"])).await;
    let mut cfg = config(&redis.url(), &llm.url());
    cfg.limits.messages_per_minute = 3;
    let server = ChatServer::start(cfg).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
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

    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: usize = conn
        .llen(format!("chat_history:{session_id}"))
        .await
        .unwrap();
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
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["ok"])).await;
    let mut cfg = config(&redis.url(), &llm.url());
    cfg.limits.ping_interval = Duration::from_millis(200);
    cfg.limits.idle_timeout = Duration::from_millis(600);
    let server = ChatServer::start(cfg).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    ws.opening().await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let closed = ws.closed().await;
    assert_eq!(closed.code, 4408, "{closed:?}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_answer_then_closes_with_1001() {
    require_redis!("graceful_shutdown_finishes_the_answer_then_closes_with_1001");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::slow(
        &["a", "b", "c", "d"],
        Duration::from_millis(100),
    ))
    .await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
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

async fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn messages_sent_ahead_are_answered_in_order() {
    require_redis!("messages_sent_ahead_are_answered_in_order");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::slow(&["a", "b"], Duration::from_millis(30))).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    ws.opening().await;
    ws.say("first").await;
    ws.say("second").await;
    ws.say("third").await;
    let mut done = 0;
    while done < 3 {
        let e = ws.event().await;
        assert_ne!(e["type"], "error", "{e}");
        if e["type"] == "done" {
            done += 1;
        }
    }
    let asked: Vec<String> = llm
        .requests()
        .iter()
        .map(|r| {
            r["messages"].as_array().unwrap().last().unwrap()["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(asked, ["first", "second", "third"]);
}

#[tokio::test]
async fn answers_beyond_the_llm_slot_limit_wait_their_turn() {
    require_redis!("answers_beyond_the_llm_slot_limit_wait_their_turn");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::slow(
        &["a ", "b ", "c "],
        Duration::from_millis(200),
    ))
    .await;
    let mut cfg = config(&redis.url(), &llm.url());
    cfg.llm.max_concurrent_requests = 1;
    let server = ChatServer::start(cfg).await;
    let waiting = || server.state.metrics.llm_waiting.get();

    let mut first = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let mut second = WsClient::connect(&server.ws(&format!("token={}", token("bob")))).await;
    let mut third = WsClient::connect(&server.ws(&format!("token={}", token("carol")))).await;
    for ws in [&mut first, &mut second, &mut third] {
        ws.opening().await;
    }
    first.say("one").await;
    assert_eq!(first.event().await["type"], "ack");
    assert_eq!(first.event().await["type"], "token");
    second.say("two").await;
    assert_eq!(second.event().await["type"], "ack");
    third.say("three").await;
    assert_eq!(third.event().await["type"], "ack");
    wait_for(
        || waiting() == 2,
        "two answers waiting for the one LLM slot",
    )
    .await;
    assert_eq!(llm.requests().len(), 1, "only one request reached the LLM");

    // A waiting answer can be cancelled; it never reaches the LLM.
    third.send_json(json!({"type": "cancel"})).await;
    let error = third.until("error").await.pop().unwrap();
    assert_eq!(error["code"], "cancelled");
    wait_for(|| waiting() == 1, "the cancelled answer to stop waiting").await;

    // The second answer starts only once the first is done.
    first.until("done").await;
    let second_events = second.until("done").await;
    assert_eq!(streamed_text(&second_events), "a b c ");
    assert_eq!(
        llm.requests().len(),
        2,
        "the cancelled answer never reached the LLM"
    );
    assert_eq!(waiting(), 0);
}
