//! The WebSocket chat against a real Redis and a scripted LLM server:
//! streamed answers, stored and replayed history, answers in order.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use support::*;

#[tokio::test]
async fn streams_tokens_stores_history_and_replays_it_on_reconnect() {
    require_redis!("streams_tokens_stores_history_and_replays_it_on_reconnect");
    let (redis, llm, server) = start_stack(Script::tokens(&["Hello", ", ", "world", "!"])).await;

    let mut ws = server.connect_as("alice").await;
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
    let stored = stored_history(&redis, &session_id).await;
    assert_eq!(stored.len(), 2);
    let mut conn = redis_connection(&redis).await;
    let ttl: i64 = conn
        .ttl(format!("chat_history:{session_id}"))
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 3600, "ttl {ttl}");
    drop(ws);

    let mut again = server.connect_to("alice", &session_id).await;
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
    let (redis, _llm, server) = start_stack_with(Script::tokens(&["ok"]), |cfg| {
        cfg.history.max_messages = 4;
    })
    .await;
    let mut ws = server.connect_as("alice").await;
    let (session_id, _) = ws.opening().await;
    for i in 0..5 {
        ws.say(&format!("message {i}")).await;
        ws.until("done").await;
    }
    let stored = stored_history(&redis, &session_id).await;
    assert_eq!(stored.len(), 4);
    assert!(
        stored[0].contains("message 3"),
        "oldest kept is the 4th user message: {}",
        stored[0]
    );
}

#[tokio::test]
async fn messages_sent_ahead_are_answered_in_order() {
    require_redis!("messages_sent_ahead_are_answered_in_order");
    let (_redis, llm, server) =
        start_stack(Script::slow(&["a", "b"], Duration::from_millis(30))).await;
    let mut ws = server.connect_as("alice").await;
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
