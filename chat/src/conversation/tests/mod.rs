//! `Conversation` over the in-memory history store and a scripted model:
//! what `open`, `admit` and `turn` promise, in milliseconds. This file is
//! the harness; the tests are in its submodules.

mod admission;
mod answers;
mod stopping;
mod storage;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voicechat_common::auth::{AuthSettings, JwtSettings};

use super::*;
use crate::config::{ChatConfig, HistorySettings, LimitSettings, LlmBackend, LlmSettings};
use crate::history::HistoryStore;
use crate::history::memory::MemoryHistory;
use crate::llm::LlmError;
use crate::llm::scripted::{Reply, ScriptedModel};
use crate::metrics::ChatMetrics;
use crate::rate_limit::RateLimiter;
use crate::voice_client::VoiceClient;

fn config() -> ChatConfig {
    let secret = b"conversation-unit-test-secret-0123456789".to_vec();
    ChatConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        auth: AuthSettings::Local(JwtSettings::hs256(secret).expect("secret")),
        llm: LlmSettings {
            backend: LlmBackend::Ollama,
            base_url: "http://127.0.0.1:9".into(),
            model: "test-model".into(),
            api_key: None,
            system_prompt: Some("be brief".into()),
            context_messages: 20,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(5),
            max_concurrent_requests: 4,
        },
        history: HistorySettings {
            redis_url: "redis://127.0.0.1:9".into(),
            max_messages: 50,
            ttl: Duration::from_secs(3600),
            op_timeout: Duration::from_secs(1),
        },
        limits: LimitSettings {
            max_message_chars: 100,
            max_frame_bytes: 16 * 1024,
            messages_per_minute: 1000,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            shutdown_drain: Duration::from_secs(1),
        },
        web_dir: None,
        cors: Default::default(),
        deadlines: voicechat_common::serve::RequestDeadlines {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
        },
        realtime: crate::config::RealtimeSettings {
            voice_url: None,
            voice_timeout: Duration::from_secs(30),
            max_buffer_secs: 60,
            default_voice: "alloy".into(),
        },
    }
}

/// A service state over memory and a script, and handles on both.
struct Harness {
    state: AppState,
    history: Arc<MemoryHistory>,
    llm: Arc<ScriptedModel>,
}

fn harness(replies: impl IntoIterator<Item = Reply>) -> Harness {
    harness_with(replies, |_| {})
}

fn harness_with(
    replies: impl IntoIterator<Item = Reply>,
    tune: impl FnOnce(&mut ChatConfig),
) -> Harness {
    let mut config = config();
    tune(&mut config);
    let history = Arc::new(MemoryHistory::new(config.history.max_messages));
    let llm = Arc::new(ScriptedModel::new(replies));
    let state = AppState {
        verifier: Arc::new(config.auth.verifier().expect("verifier")),
        history: history.clone(),
        llm: llm.clone(),
        llm_slots: Arc::new(Semaphore::new(config.llm.max_concurrent_requests)),
        metrics: ChatMetrics::new().expect("metrics"),
        limiter: Arc::new(RateLimiter::new(config.limits.messages_per_minute)),
        voice: VoiceClient::new(None, Duration::from_secs(1)).expect("voice client"),
        config: Arc::new(config),
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    };
    Harness {
        state,
        history,
        llm,
    }
}

impl Harness {
    async fn open(&self, user: &str, session: Option<&str>) -> Result<Opened, OpenError> {
        Conversation::open(&self.state, user, session.map(str::to_owned)).await
    }

    async fn new_conversation(&self) -> Conversation {
        self.open("alice", None).await.expect("open").conversation
    }

    /// One turn, read to its end.
    async fn turn(
        &self,
        conversation: &mut Conversation,
        text: &str,
    ) -> (TurnOutcome, Vec<ServerEvent>) {
        let (tx, mut rx) = mpsc::channel(64);
        let outcome = conversation
            .turn(&self.state, text.into(), &tx, &CancellationToken::new())
            .await;
        drop(tx);
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        (outcome, events)
    }

    /// What the store holds for the session: (role, content, interrupted).
    async fn stored(&self, session_id: &str) -> Vec<(Role, String, bool)> {
        self.history
            .messages(session_id, 100)
            .await
            .expect("messages")
            .into_iter()
            .map(|m| (m.role, m.content, m.interrupted))
            .collect()
    }

    fn errors(&self, code: &str) -> u64 {
        self.state.metrics.errors.with_label_values(&[code]).get()
    }
}

fn kinds(events: &[ServerEvent]) -> Vec<&'static str> {
    events.iter().map(ServerEvent::kind).collect()
}

fn ack_id(events: &[ServerEvent]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Ack { message_id, .. } => Some(message_id.clone()),
            _ => None,
        })
        .expect("an ack")
}

/// The code and `reply_to` of the last event, which must be an error.
fn final_error(events: &[ServerEvent]) -> (String, Option<String>) {
    match events.last() {
        Some(ServerEvent::Error { code, reply_to, .. }) => (code.clone(), reply_to.clone()),
        other => panic!("expected an error last, got {other:?}"),
    }
}

fn prompt_text(prompt: &[PromptMessage]) -> Vec<(Role, &str)> {
    prompt.iter().map(|m| (m.role, &*m.content)).collect()
}

fn user(text: &str) -> (Role, String, bool) {
    (Role::User, text.into(), false)
}
