//! Shared harness for the chat integration tests: a real `redis-server`,
//! a scripted LLM server speaking Ollama's and OpenAI's streaming
//! protocols, the chat service in-process, and a WebSocket client.
#![allow(dead_code)]

pub mod ws_client;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use voicechat_chat::config::{ChatConfig, HistorySettings, LimitSettings, LlmBackend, LlmSettings};
use voicechat_chat::state::AppState;
use voicechat_common::auth::{AuthSettings, JwtSettings};

#[allow(unused_imports)]
pub use voicechat_testkit::{LlmDouble, RedisServer, Script, have_or_skip};
pub use ws_client::WsClient;

/// Skips the test (returns) when `redis-server` is not installed.
#[allow(unused_macros)]
macro_rules! require_redis {
    ($name:expr) => {
        if !have_or_skip(RedisServer::available(), $name, "redis", "redis-server") {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require_redis;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

pub fn jwt_settings() -> JwtSettings {
    JwtSettings::hs256(SECRET.as_bytes().to_vec()).expect("test secret is long enough")
}

pub fn token(user: &str) -> String {
    jwt_settings()
        .mint(user, Duration::from_secs(600))
        .expect("mint")
}

pub fn config(redis_url: &str, llm_url: &str) -> ChatConfig {
    ChatConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        auth: AuthSettings::Local(jwt_settings()),
        llm: LlmSettings {
            backend: LlmBackend::Ollama,
            base_url: llm_url.to_owned(),
            model: "test-model".into(),
            api_key: None,
            system_prompt: Some("be brief".into()),
            context_messages: 20,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_concurrent_requests: 64,
        },
        history: HistorySettings {
            redis_url: redis_url.to_owned(),
            max_messages: 50,
            ttl: Duration::from_secs(3600),
            // Generous: the test Redis fsyncs every write, and a loaded
            // 2-core CI machine can stall an fsync for hundreds of ms.
            op_timeout: Duration::from_millis(2000),
        },
        limits: LimitSettings {
            max_message_chars: 1000,
            max_frame_bytes: 16 * 1024,
            messages_per_minute: 1000,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            shutdown_drain: Duration::from_secs(2),
        },
        web_dir: None,
        cors: Default::default(),
        deadlines: voicechat_common::serve::RequestDeadlines {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        },
        realtime: voicechat_chat::config::RealtimeSettings {
            voice_url: None,
            voice_timeout: Duration::from_secs(30),
            max_buffer_secs: 60,
            default_voice: "alloy".into(),
        },
    }
}

/// A Redis, an LLM double with its first script, and the chat service
/// over them: what most tests start with.
pub async fn start_stack(script: Script) -> (RedisServer, LlmDouble, ChatServer) {
    start_stack_with(script, |_| {}).await
}

/// [`start_stack`] with `tune` applied to the test configuration.
pub async fn start_stack_with(
    script: Script,
    tune: impl FnOnce(&mut ChatConfig),
) -> (RedisServer, LlmDouble, ChatServer) {
    let redis = RedisServer::start();
    let llm = LlmDouble::start(script).await;
    let mut cfg = config(&redis.url(), &llm.url());
    tune(&mut cfg);
    let server = ChatServer::start(cfg).await;
    (redis, llm, server)
}

/// The chat service running in this process.
pub struct ChatServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl ChatServer {
    pub async fn start(config: ChatConfig) -> Self {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = AppState::from_config(config).expect("state");
        let (tx, rx) = oneshot::channel();
        let s = state.clone();
        let handle = tokio::spawn(async move {
            voicechat_chat::app::serve(listener, s, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            addr,
            state,
            stop: Some(tx),
            handle,
        }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws(&self, query: &str) -> String {
        format!("ws://{}/ws/chat?{query}", self.addr)
    }

    /// A WebSocket of `user`'s, on a new session.
    pub async fn connect_as(&self, user: &str) -> WsClient {
        WsClient::connect(&self.ws(&format!("token={}", token(user)))).await
    }

    /// A WebSocket of `user`'s, asking for `session_id`.
    pub async fn connect_to(&self, user: &str, session_id: &str) -> WsClient {
        WsClient::connect(&self.ws(&format!("token={}&session_id={session_id}", token(user)))).await
    }

    /// `GET path` with `user`'s token.
    pub async fn get_as(&self, user: &str, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.http(path))
            .bearer_auth(token(user))
            .send()
            .await
            .expect("GET request")
    }

    /// `GET path` with `user`'s token, answered 200 with JSON.
    pub async fn get_json_as(&self, user: &str, path: &str) -> serde_json::Value {
        let r = self.get_as(user, path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("JSON body")
    }

    /// Triggers a graceful shutdown and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.handle).await;
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// `/health` as JSON.
pub async fn health(server: &ChatServer) -> serde_json::Value {
    reqwest::get(server.http("/health"))
        .await
        .expect("health request")
        .json()
        .await
        .expect("health json")
}

/// A connection to the test Redis, to look at what the service stored.
pub async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// The session's stored messages as Redis holds them (JSON), oldest first.
pub async fn stored_history(redis: &RedisServer, session_id: &str) -> Vec<String> {
    let mut conn = redis_connection(redis).await;
    redis::AsyncCommands::lrange(&mut conn, format!("chat_history:{session_id}"), 0, -1)
        .await
        .expect("LRANGE")
}

/// How many keys Redis holds.
pub async fn stored_keys(redis: &RedisServer) -> usize {
    let mut conn = redis_connection(redis).await;
    redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE")
}

/// Polls `condition` for up to 5 seconds.
pub async fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}
