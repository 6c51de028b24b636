//! Running the service: health, probes and metrics, and a Redis that goes
//! away or is not there at start.

mod support;

use support::*;

#[tokio::test]
async fn health_probes_and_metrics() {
    require_redis!("health_probes_and_metrics");
    let (_redis, _llm, server) = start_stack(Script::tokens(&["x"])).await;
    assert_eq!(
        reqwest::get(server.http("/livez")).await.unwrap().status(),
        200
    );
    assert_eq!(
        reqwest::get(server.http("/readyz")).await.unwrap().status(),
        200
    );

    let mut ws = server.connect_as("alice").await;
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
    let (mut redis, llm, server) = start_stack(Script::tokens(&["ok"])).await;
    let mut ws = server.connect_as("alice").await;
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
    let stored = stored_history(&redis, &session_id).await;
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
    let mut ws = server.connect_as("alice").await;
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
