//! `Conversation` over the in-memory history store and a scripted model:
//! what `open`, `admit` and `turn` promise, in milliseconds.

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
    prompt
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect()
}

fn user(text: &str) -> (Role, String, bool) {
    (Role::User, text.into(), false)
}

#[tokio::test]
async fn an_answer_is_streamed_then_stored_after_the_users_message() {
    let h = harness([Reply::Tokens(vec!["Hel", "lo"])]);
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "hi").await;

    assert_eq!(outcome, TurnOutcome::Answered);
    assert_eq!(kinds(&events), ["ack", "token", "token", "done"]);
    assert!(matches!(
        events[0],
        ServerEvent::Ack {
            persisted: true,
            ..
        }
    ));
    let ServerEvent::Done {
        message_id,
        reply_to,
        content,
        persisted,
        tokens,
        ..
    } = &events[3]
    else {
        panic!("{events:?}");
    };
    assert_eq!(content, "Hello");
    assert_eq!(*reply_to, ack_id(&events));
    assert_eq!((*tokens, *persisted), (2, true));

    let stored = h
        .history
        .messages(&conversation.session_id, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[0].role, stored[0].id.as_str()),
        (Role::User, reply_to.as_str())
    );
    assert_eq!(stored[0].content, "hi");
    assert_eq!(
        (stored[1].role, stored[1].id.as_str()),
        (Role::Assistant, message_id.as_str())
    );
    assert_eq!(
        (stored[1].content.as_str(), stored[1].interrupted),
        ("Hello", false)
    );
    assert_eq!(
        prompt_text(&h.llm.prompts()[0]),
        [(Role::System, "be brief"), (Role::User, "hi")]
    );
    assert_eq!(h.state.metrics.llm_tokens.get(), 2);
}

#[tokio::test]
async fn the_prompt_carries_the_conversation_up_to_the_context_limit() {
    let h = harness_with(
        [Reply::Tokens(vec!["a1"]), Reply::Tokens(vec!["a2"])],
        |c| c.llm.context_messages = 3,
    );
    let mut conversation = h.new_conversation().await;
    for text in ["u1", "u2", "u3"] {
        assert_eq!(
            h.turn(&mut conversation, text).await.0,
            TurnOutcome::Answered
        );
    }
    let prompts = h.llm.prompts();
    assert_eq!(
        prompt_text(&prompts[1]),
        [
            (Role::System, "be brief"),
            (Role::User, "u1"),
            (Role::Assistant, "a1"),
            (Role::User, "u2")
        ]
    );
    assert_eq!(
        prompt_text(&prompts[2]),
        [
            (Role::System, "be brief"),
            (Role::User, "u2"),
            (Role::Assistant, "a2"),
            (Role::User, "u3")
        ],
        "only the last 3 messages"
    );
}

#[tokio::test]
async fn a_refused_request_stores_no_answer_and_reports_its_code() {
    let h = harness([Reply::Refuse(LlmError::Unreachable(
        "connection refused".into(),
    ))]);
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "hello?").await;

    assert_eq!(outcome, TurnOutcome::Failed);
    assert_eq!(kinds(&events), ["ack", "error"]);
    assert_eq!(
        final_error(&events),
        ("llm_unavailable".to_owned(), Some(ack_id(&events)))
    );
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("hello?")],
        "the question is kept, unanswered"
    );
    assert_eq!(h.errors("llm_unavailable"), 1);
}

#[tokio::test]
async fn a_broken_stream_keeps_the_partial_answer_marked_interrupted() {
    let h = harness([Reply::BreakAfter(
        vec!["Par", "tial"],
        LlmError::Stream("model runner stopped".into()),
    )]);
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "q").await;

    assert_eq!(outcome, TurnOutcome::Failed);
    assert_eq!(kinds(&events), ["ack", "token", "token", "error"]);
    assert_eq!(final_error(&events).0, "llm_stream_error");
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "Partial".into(), true)]
    );
    assert_eq!(h.errors("llm_stream_error"), 1);
}

#[tokio::test]
async fn a_stalled_answer_ends_at_the_total_timeout() {
    let h = harness_with([Reply::Stall(vec!["slow"])], |c| {
        c.llm.total_timeout = Duration::from_millis(50);
    });
    let mut conversation = h.new_conversation().await;
    let (outcome, events) = h.turn(&mut conversation, "q").await;

    assert_eq!(outcome, TurnOutcome::Failed);
    assert_eq!(final_error(&events).0, "llm_timeout");
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "slow".into(), true)]
    );
}

#[tokio::test]
async fn cancelling_stops_the_answer_and_keeps_what_streamed() {
    let h = harness([Reply::Stall(vec!["so far"])]);
    let mut conversation = h.new_conversation().await;
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let turn = conversation.turn(&h.state, "q".into(), &tx, &cancel);
    let read = async {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            if matches!(event, ServerEvent::Token { .. }) {
                cancel.cancel();
            }
            let last = matches!(event, ServerEvent::Error { .. });
            events.push(event);
            if last {
                return events;
            }
        }
        events
    };
    let (outcome, events) = tokio::join!(turn, read);

    assert_eq!(outcome, TurnOutcome::Cancelled);
    assert_eq!(kinds(&events), ["ack", "token", "error"]);
    assert_eq!(final_error(&events).0, "cancelled");
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "so far".into(), true)]
    );
    assert_eq!(h.errors("cancelled"), 1);
}

#[tokio::test]
async fn a_client_gone_mid_answer_stops_it_and_keeps_what_streamed() {
    let h = harness([Reply::Stall(vec!["so far"])]);
    let mut conversation = h.new_conversation().await;
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let turn = conversation.turn(&h.state, "q".into(), &tx, &cancel);
    let read = async move {
        while let Some(event) = rx.recv().await {
            if matches!(event, ServerEvent::Token { .. }) {
                return; // drops the receiver, as a closed socket does
            }
        }
    };
    let (outcome, ()) = tokio::join!(turn, read);

    assert_eq!(outcome, TurnOutcome::Cancelled);
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("q"), (Role::Assistant, "so far".into(), true)]
    );
}

#[tokio::test]
async fn a_history_outage_is_reported_once_and_the_chat_goes_on() {
    let h = harness([]);
    let mut conversation = h.new_conversation().await;
    h.history.set_reachable(false);

    let (outcome, events) = h.turn(&mut conversation, "during 1").await;
    assert_eq!(outcome, TurnOutcome::Answered);
    assert_eq!(kinds(&events), ["warning", "ack", "token", "done"]);
    assert!(
        matches!(&events[0], ServerEvent::Warning { code, .. } if code == "history_unavailable")
    );
    assert!(matches!(
        events[1],
        ServerEvent::Ack {
            persisted: false,
            ..
        }
    ));
    assert!(matches!(
        events[3],
        ServerEvent::Done {
            persisted: false,
            ..
        }
    ));
    let (_, events) = h.turn(&mut conversation, "during 2").await;
    assert_eq!(
        kinds(&events),
        ["ack", "token", "done"],
        "warned once per outage"
    );
    assert_eq!(
        prompt_text(&h.llm.prompts()[1]),
        [
            (Role::System, "be brief"),
            (Role::User, "during 1"),
            (Role::Assistant, "ok"),
            (Role::User, "during 2")
        ],
        "the model still sees the conversation"
    );

    h.history.set_reachable(true);
    let (_, events) = h.turn(&mut conversation, "after").await;
    assert!(matches!(
        events[0],
        ServerEvent::Ack {
            persisted: true,
            ..
        }
    ));
    assert!(matches!(
        events[2],
        ServerEvent::Done {
            persisted: true,
            ..
        }
    ));
    assert_eq!(
        h.stored(&conversation.session_id).await,
        [user("after"), (Role::Assistant, "ok".into(), false)]
    );
    h.history.set_reachable(false);
    let (_, events) = h.turn(&mut conversation, "again down").await;
    assert_eq!(
        kinds(&events)[0],
        "warning",
        "a new outage is reported again"
    );
}

#[tokio::test]
async fn a_session_taken_by_another_user_meanwhile_is_refused() {
    let h = harness([]);
    let mut conversation = h.new_conversation().await;
    h.history
        .claim(&conversation.session_id, "mallory")
        .await
        .unwrap();
    let (outcome, events) = h.turn(&mut conversation, "secret").await;

    assert_eq!(outcome, TurnOutcome::Refused);
    assert_eq!(kinds(&events), ["error"]);
    assert_eq!(final_error(&events), ("forbidden".to_owned(), None));
    assert!(h.stored(&conversation.session_id).await.is_empty());
    assert!(h.llm.prompts().is_empty(), "the model is not asked");
}

#[tokio::test]
async fn open_checks_the_id_and_the_owner_and_loads_the_history() {
    let h = harness([]);
    let mut first = h.open("alice", Some("s-1")).await.unwrap().conversation;
    assert!(!first.existed);
    h.turn(&mut first, "earlier").await;

    let refused = h.open("alice", Some("a:b")).await.err().unwrap();
    assert_eq!(refused.code(), "invalid_session_id");
    let refused = h.open("bob", Some("s-1")).await.err().unwrap();
    assert_eq!(refused.code(), "forbidden");

    let opened = h.open("alice", Some("s-1")).await.unwrap();
    assert!(opened.history_available);
    assert!(opened.conversation.existed);
    let contents: Vec<&str> = opened.history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["earlier", "ok"]);
    let mut again = opened.conversation;
    h.turn(&mut again, "now").await;
    assert_eq!(
        prompt_text(&h.llm.prompts()[1])[1..],
        [
            (Role::User, "earlier"),
            (Role::Assistant, "ok"),
            (Role::User, "now")
        ],
        "the stored history is the context"
    );
}

#[tokio::test]
async fn open_during_an_outage_gives_a_conversation_without_history() {
    let h = harness([]);
    h.history.set_reachable(false);
    let opened = h.open("alice", Some("s-1")).await.unwrap();
    assert!(!opened.history_available);
    assert!(opened.history.is_empty());
    assert_eq!(h.errors("history_unavailable"), 1);
}

#[test]
fn admit_refuses_empty_and_long_messages_without_using_the_allowance() {
    let h = harness_with([], |c| {
        c.limits.max_message_chars = 5;
        c.limits.messages_per_minute = 2;
    });
    let code = |text: &str| admit(&h.state, "alice", text).err().map(|e| e.code());
    assert_eq!(code(" \n\t"), Some("empty_message"));
    assert_eq!(
        code("ééééé"),
        None,
        "the limit counts characters, not bytes"
    );
    assert_eq!(code("toolong"), Some("message_too_large"));
    assert_eq!(code("ok"), None, "refused messages used no allowance");
    assert_eq!(code("more"), Some("rate_limited"));
    assert_eq!(
        admit(&h.state, "bob", "hi").err().map(|e| e.code()),
        None,
        "the allowance is per user"
    );
}
