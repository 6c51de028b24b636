//! REST endpoints and server-sent-event chat, health and metrics, the
//! OpenAI-compatible backend and remote token verification.

mod support;

use std::collections::HashMap;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;

macro_rules! require_redis {
    ($name:expr) => {
        if !have_or_skip(RedisServer::available(), $name, "redis", "redis-server") {
            return;
        }
    };
}

/// Reads a whole SSE response into (event, data) pairs.
async fn sse_events(response: reqwest::Response) -> Vec<(String, Value)> {
    let mut body = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(v.trim()).unwrap());
                }
            }
            Some((event?, data?))
        })
        .collect()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn sse_chat_then_list_read_and_delete_sessions() {
    require_redis!("sse_chat_then_list_read_and_delete_sessions");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["Sure", "."])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    let http = reqwest::Client::new();
    let alice = format!("Bearer {}", token("alice"));

    let response = http
        .post(server.http("/api/v1/chat"))
        .header("authorization", &alice)
        .json(&json!({"message": "can you help?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(response).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["session", "ack", "token", "token", "done"]);
    let session_id = events[0].1["session_id"].as_str().unwrap().to_owned();
    assert_eq!(events[4].1["content"], "Sure.");

    // Continue the same session over SSE.
    let response = http
        .post(server.http("/api/v1/chat"))
        .header("authorization", &alice)
        .json(&json!({"message": "thanks", "session_id": session_id}))
        .send()
        .await
        .unwrap();
    let events = sse_events(response).await;
    assert_eq!(events[0].1["created"], false);

    let list = server.get_json_as("alice", "/api/v1/sessions").await;
    assert_eq!(list["sessions"][0]["session_id"], session_id.as_str());
    assert_eq!(list["sessions"][0]["message_count"], 4);

    let messages = server
        .get_json_as(
            "alice",
            &format!("/api/v1/sessions/{session_id}/messages?limit=2"),
        )
        .await;
    let contents: Vec<&Value> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["content"])
        .collect();
    assert_eq!(contents, [&json!("thanks"), &json!("Sure.")]);

    // Another user sees nothing and can touch nothing.
    let bob = format!("Bearer {}", token("bob"));
    let list = server.get_json_as("bob", "/api/v1/sessions").await;
    assert_eq!(list["sessions"], json!([]));
    let r = server
        .get_as("bob", &format!("/api/v1/sessions/{session_id}/messages"))
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r.json().await.unwrap()), "forbidden");
    let r = http
        .delete(server.http(&format!("/api/v1/sessions/{session_id}")))
        .header("authorization", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(server.http("/api/v1/chat"))
        .header("authorization", &bob)
        .json(&json!({"message": "hijack", "session_id": session_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = http
        .delete(server.http(&format!("/api/v1/sessions/{session_id}")))
        .header("authorization", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = server
        .get_as("alice", &format!("/api/v1/sessions/{session_id}/messages"))
        .await;
    assert_eq!(r.status(), 404);
    let list = server.get_json_as("alice", "/api/v1/sessions").await;
    assert_eq!(list["sessions"], json!([]));
}

#[tokio::test]
async fn rest_refuses_bad_requests_with_clear_errors() {
    require_redis!("rest_refuses_bad_requests_with_clear_errors");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    let http = reqwest::Client::new();
    let alice = format!("Bearer {}", token("alice"));

    let r = http
        .get(server.http("/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r.json().await.unwrap()), "unauthorized");
    let r = http
        .get(server.http("/api/v1/sessions"))
        .header("authorization", "Bearer nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let cases: [(Value, u16, &str); 4] = [
        (
            json!({"message": "x".repeat(1001)}),
            413,
            "message_too_large",
        ),
        (json!({"message": ""}), 400, "empty_message"),
        (
            json!({"message": "hi", "session_id": "a:b"}),
            400,
            "invalid_session_id",
        ),
        (json!({"text": "wrong field"}), 422, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let r = http
            .post(server.http("/api/v1/chat"))
            .header("authorization", &alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(error_code(&r.json().await.unwrap()), code, "{body}");
    }
    let r = http
        .post(server.http("/api/v1/chat"))
        .header("authorization", &alice)
        .header("content-type", "application/json")
        .body(vec![b'{'; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "body over the REST limit");

    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(keys, 0, "refused requests store nothing");
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn health_probes_and_metrics() {
    require_redis!("health_probes_and_metrics");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    assert_eq!(
        reqwest::get(server.http("/livez")).await.unwrap().status(),
        200
    );
    assert_eq!(
        reqwest::get(server.http("/readyz")).await.unwrap().status(),
        200
    );

    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    ws.opening().await;
    ws.say("hi").await;
    ws.until("done").await;

    let report = health(&server).await;
    assert_eq!(report["status"], "healthy");
    assert_eq!(report["service"], "chat");
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["active_connections"], 1);
    assert_eq!(report["dependencies"]["redis"]["status"], "connected");
    assert!(report["dependencies"]["redis"]["latency_ms"].is_f64());
    assert_eq!(report["dependencies"]["llm"]["status"], "connected");
    assert!(report["timestamp"].as_str().unwrap().contains('T'));

    let text = reqwest::get(server.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from metrics:\n{text}"))
    };
    assert_eq!(value("chat_ws_connections_active"), 1.0);
    assert_eq!(value("chat_messages_total{direction=\"in\"}"), 1.0);
    assert_eq!(value("chat_llm_tokens_total"), 1.0);
    assert_eq!(value("chat_llm_answer_seconds_count"), 1.0);
    assert!(
        text.contains("chat_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn redis_outage_degrades_then_recovers_without_losing_acknowledged_messages() {
    require_redis!("redis_outage_degrades_then_recovers_without_losing_acknowledged_messages");
    let mut redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["ok"])).await;
    let server = ChatServer::start(config(&redis.url(), &llm.url())).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (session_id, _) = ws.opening().await;
    let mut acknowledged = Vec::new();

    ws.say("before the outage").await;
    let events = ws.until("done").await;
    assert_eq!(events[0]["persisted"], true);
    acknowledged.push("before the outage");

    redis.kill();
    ws.say("during the outage").await;
    let events = ws.until("done").await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["warning", "ack", "token", "done"], "{events:?}");
    assert_eq!(events[0]["code"], "history_unavailable");
    assert_eq!(events[1]["persisted"], false, "not acknowledged as stored");
    assert_eq!(events[3]["content"], "ok", "chat goes on without history");
    let report = health(&server).await;
    assert_eq!(report["status"], "degraded");
    assert_eq!(report["dependencies"]["redis"]["status"], "disconnected");
    assert_eq!(
        reqwest::get(server.http("/readyz")).await.unwrap().status(),
        200,
        "outage does not fail readiness"
    );
    let r = server.get_as("alice", "/api/v1/sessions").await;
    assert_eq!(r.status(), 503);

    // The model still sees the conversation while Redis is away.
    let last = llm.requests().pop().unwrap();
    assert_eq!(
        last["messages"].as_array().unwrap().len(),
        4,
        "system + 3 messages: {last}"
    );

    redis.restart();
    let mut persisted = false;
    for attempt in 0..40 {
        ws.say(&format!("after the outage {attempt}")).await;
        let events = ws.until("done").await;
        let ack = events.iter().find(|e| e["type"] == "ack").unwrap();
        if ack["persisted"] == true {
            acknowledged.push("after the outage");
            persisted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(persisted, "history recovers without a restart");
    assert_eq!(health(&server).await["status"], "healthy");

    // Every acknowledged message survived the crash (AOF, fsync always).
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> =
        redis::AsyncCommands::lrange(&mut conn, format!("chat_history:{session_id}"), 0, -1)
            .await
            .unwrap();
    for text in acknowledged {
        assert!(
            stored.iter().any(|m| m.contains(text)),
            "{text:?} lost: {stored:?}"
        );
    }
}

#[tokio::test]
async fn starts_with_redis_down_and_connects_when_it_appears() {
    require_redis!("starts_with_redis_down_and_connects_when_it_appears");
    let port = voicechat_testkit::free_port();
    let llm = LlmDouble::start(Script::tokens(&["ok"])).await;
    let server = ChatServer::start(config(&format!("redis://127.0.0.1:{port}"), &llm.url())).await;
    assert_eq!(
        health(&server).await["dependencies"]["redis"]["status"],
        "disconnected"
    );
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (_, history) = ws.opening().await;
    assert_eq!(
        history["persisted"], true,
        "a new session has nothing to read"
    );
    ws.say("hello").await;
    let events = ws.until("done").await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "ack" && e["persisted"] == false)
    );
    drop(ws);
    drop(server);
}

#[tokio::test]
async fn openai_compatible_backend_streams_sse() {
    require_redis!("openai_compatible_backend_streams_sse");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["Open", "AI"])).await;
    let mut cfg = config(&redis.url(), &format!("{}/v1", llm.url()));
    cfg.llm.backend = voicechat_chat::config::LlmBackend::OpenAi;
    let server = ChatServer::start(cfg).await;
    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    ws.opening().await;
    ws.say("hi").await;
    assert_eq!(ws.until("done").await.pop().unwrap()["content"], "OpenAI");
    assert_eq!(
        health(&server).await["dependencies"]["llm"]["status"],
        "connected"
    );

    llm.set(Script::ErrorAfter {
        tokens: vec!["x".into()],
        error: "overloaded".into(),
    });
    ws.say("again").await;
    let error = ws.until("error").await.pop().unwrap();
    assert_eq!(error["code"], "llm_stream_error");
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

    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let mut cfg = config(&redis.url(), &llm.url());
    cfg.auth = voicechat_common::auth::AuthSettings::Remote {
        url: verify_url,
        cache_ttl: std::time::Duration::from_secs(30),
    };
    let server = ChatServer::start(cfg).await;

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
