//! The Redis history store against a real redis-server: what an append
//! and a replace write (the seed's JSON, byte for byte), and a script that
//! Redis has forgotten (a restart, a `SCRIPT FLUSH`) loaded again.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use support::*;
use voicechat_chat::config::HistorySettings;
use voicechat_chat::history::{Claim, HistoryStore, RedisHistory, StoredMessage, history_key};
use voicechat_chat::llm::Role;
use voicechat_testkit::RedisServer;

async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn appends_and_replaces_write_the_messages_json_and_survive_a_script_flush() {
    require_redis!("redis history store");
    let redis = RedisServer::start();
    let store = RedisHistory::new(HistorySettings {
        redis_url: redis.url(),
        max_messages: 3,
        ttl: Duration::from_secs(600),
        op_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let mut r = raw(&redis).await;

    assert!(matches!(
        store.claim("s1", "alice").await.unwrap(),
        Claim::Created
    ));
    let tricky = StoredMessage {
        id: "m-1".into(),
        role: Role::User,
        content: "\"quotes\", back\\slash,\nnew line, ünïcode 🎙".into(),
        timestamp: "2026-12-05T12:00:00Z".into(),
        interrupted: false,
    };
    store.append("s1", "alice", &tricky).await.unwrap();
    let stored: Vec<String> = r.lrange(history_key("s1"), 0, -1).await.unwrap();
    // The seed's format, byte for byte.
    assert_eq!(
        stored,
        [
            r#"{"id":"m-1","role":"user","content":"\"quotes\", back\\slash,\nnew line, ünïcode 🎙","timestamp":"2026-12-05T12:00:00Z"}"#
        ]
    );

    // Redis forgets its scripts: the next append loads it again, once.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut r)
        .await
        .unwrap();
    let answer = StoredMessage::new(Role::Assistant, "first".into());
    store.append("s1", "alice", &answer).await.unwrap();
    let stored: Vec<String> = r.lrange(history_key("s1"), 0, -1).await.unwrap();
    assert_eq!(stored.len(), 2, "one write, not none or two: {stored:?}");
    assert_eq!(stored[1], serde_json::to_string(&answer).unwrap());
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut r)
        .await
        .unwrap();
    let mut cut = answer.clone();
    cut.content = "fir".into();
    cut.interrupted = true;
    assert!(store.replace("s1", &cut).await.unwrap());
    assert!(
        !store
            .replace("s1", &StoredMessage::new(Role::User, "x".into()))
            .await
            .unwrap()
    );

    // Bounded to max_messages, oldest dropped; keys carry the TTL.
    for i in 0..3 {
        let m = StoredMessage::new(Role::User, format!("m{i}"));
        store.append("s1", "alice", &m).await.unwrap();
    }
    let kept = store.messages("s1", 10).await.unwrap();
    let contents: Vec<&str> = kept.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m0", "m1", "m2"]);
    for key in [
        history_key("s1"),
        "chat_session:s1".into(),
        "chat_user_sessions:alice".into(),
    ] {
        let ttl: i64 = r.ttl(&key).await.unwrap();
        assert!((1..=600).contains(&ttl), "{key}: ttl {ttl}");
    }
    let sessions = store.sessions("alice").await.unwrap();
    assert_eq!(sessions.len(), 1);

    // The replaced entry, before it was trimmed away, as the list held it.
    let store2 = RedisHistory::new(HistorySettings {
        redis_url: redis.url(),
        max_messages: 10,
        ttl: Duration::from_secs(600),
        op_timeout: Duration::from_secs(2),
    })
    .unwrap();
    assert!(matches!(
        store2.claim("s2", "bob").await.unwrap(),
        Claim::Created
    ));
    store2.append("s2", "bob", &answer).await.unwrap();
    assert!(store2.replace("s2", &cut).await.unwrap());
    let stored: Vec<String> = r.lrange(history_key("s2"), 0, -1).await.unwrap();
    assert_eq!(stored, [serde_json::to_string(&cut).unwrap()]);
}
