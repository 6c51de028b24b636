//! REST endpoints and server-sent-event chat: sessions listed, read and
//! deleted, and bad requests refused.

mod support;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;

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
    let (_redis, _llm, server) = start_stack(Script::tokens(&["Sure", "."])).await;
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
    let (redis, llm, server) = start_stack(Script::tokens(&["x"])).await;
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

    assert_eq!(
        stored_keys(&redis).await,
        0,
        "refused requests store nothing"
    );
    assert!(llm.requests().is_empty());
}
