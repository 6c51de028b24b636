//! The LLM side of an answer: errors before and during the stream, an
//! outage, cancellation and disconnects, the request-slot limit and the
//! OpenAI-compatible backend.

mod support;

use std::time::Duration;

use serde_json::json;
use support::ws_client::streamed_text;
use support::*;

#[tokio::test]
async fn mid_stream_llm_error_keeps_the_socket_open() {
    require_redis!("mid_stream_llm_error_keeps_the_socket_open");
    let (redis, llm, server) = start_stack(Script::ErrorAfter {
        tokens: vec!["Par".into(), "tial".into()],
        error: "model runner has unexpectedly stopped".into(),
    })
    .await;
    let mut ws = server.connect_as("alice").await;
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
    let stored = stored_history(&redis, &session_id).await;
    assert_eq!(stored.len(), 4);
    let partial: serde_json::Value = serde_json::from_str(&stored[1]).unwrap();
    assert_eq!(partial["content"], "Partial");
    assert_eq!(partial["interrupted"], true);
}

#[tokio::test]
async fn llm_http_errors_and_outage_become_error_messages() {
    require_redis!("llm_http_errors_and_outage_become_error_messages");
    let (_redis, mut llm, server) =
        start_stack(Script::Status(404, "model \"test-model\" not found".into())).await;
    let mut ws = server.connect_as("alice").await;
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
    let many: Vec<String> = (0..100).map(|i| format!("t{i} ")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (redis, llm, server) = start_stack(Script::slow(&many, Duration::from_millis(50))).await;

    let mut ws = server.connect_as("alice").await;
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

    let stored = stored_history(&redis, &session_id).await;
    let interrupted = stored
        .iter()
        .filter(|m| m.contains("\"interrupted\":true"))
        .count();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(interrupted, 2);
}

#[tokio::test]
async fn answers_beyond_the_llm_slot_limit_wait_their_turn() {
    require_redis!("answers_beyond_the_llm_slot_limit_wait_their_turn");
    let (_redis, llm, server) = start_stack_with(
        Script::slow(&["a ", "b ", "c "], Duration::from_millis(200)),
        |cfg| {
            cfg.llm.max_concurrent_requests = 1;
        },
    )
    .await;
    let waiting = || server.state.metrics.llm_waiting.get();

    let mut first = server.connect_as("alice").await;
    let mut second = server.connect_as("bob").await;
    let mut third = server.connect_as("carol").await;
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

#[tokio::test]
async fn openai_compatible_backend_streams_sse() {
    require_redis!("openai_compatible_backend_streams_sse");
    let (_redis, llm, server) = start_stack_with(Script::tokens(&["Open", "AI"]), |cfg| {
        cfg.llm.base_url = format!("{}/v1", cfg.llm.base_url);
        cfg.llm.backend = voicechat_chat::config::LlmBackend::OpenAi;
    })
    .await;
    let mut ws = server.connect_as("alice").await;
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
async fn the_idle_timeout_ends_a_silent_answer_but_not_a_long_one() {
    require_redis!("the_idle_timeout_ends_a_silent_answer_but_not_a_long_one");
    let idle = Duration::from_millis(300);
    // Six tokens 150 ms apart: the answer lasts 2.5 idle periods, but no
    // gap reaches one.
    let steady = ["a ", "b ", "c ", "d ", "e ", "f "];
    let (redis, llm, server) =
        start_stack_with(Script::slow(&steady, Duration::from_millis(150)), |cfg| {
            cfg.llm.idle_timeout = idle
        })
        .await;
    let mut ws = server.connect_as("alice").await;
    let (session_id, _) = ws.opening().await;
    ws.say("a long answer").await;
    let events = ws.until("done").await;
    assert_eq!(events.last().unwrap()["content"], "a b c d e f ");

    // One token, then two seconds of silence: cut at the idle timeout.
    llm.set(Script::slow(&["so far ", "never"], Duration::from_secs(2)));
    let asked = std::time::Instant::now();
    ws.say("a stalled answer").await;
    let events = ws.until("error").await;
    let waited = asked.elapsed();
    assert_eq!(streamed_text(&events), "so far ");
    let error = events.last().unwrap();
    assert_eq!(error["code"], "llm_timeout", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("stream"),
        "{error}"
    );
    assert!(
        waited >= idle && waited < Duration::from_millis(1500),
        "ended after {waited:?} (idle timeout {idle:?})"
    );
    let stored = stored_history(&redis, &session_id).await;
    assert!(
        stored.last().unwrap().contains("\"interrupted\":true"),
        "{stored:?}"
    );
}
