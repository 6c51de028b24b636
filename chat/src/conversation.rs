//! One conversation: a session's recent messages and the turn logic (store
//! the user message, stream the answer from the LLM, store the answer),
//! independent of the transport (WebSocket or server-sent events).

use std::collections::VecDeque;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::history::{Claim, HistoryError, StoredMessage, valid_session_id};
use crate::llm::{LlmError, PromptMessage, Role};
use crate::protocol::{ServerEvent, Timing};
use crate::state::AppState;

/// Why a conversation could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("session_id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")]
    InvalidSessionId,
    #[error("session belongs to another user")]
    Forbidden,
}

/// Why a user message was refused before anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("message is empty")]
    Empty,
    #[error("message is {chars} characters; the limit is {limit}")]
    TooLong { chars: usize, limit: usize },
    #[error("too many messages: the limit is {0} per minute")]
    RateLimited(u32),
}

impl InputError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_message",
            Self::TooLong { .. } => "message_too_large",
            Self::RateLimited(_) => "rate_limited",
        }
    }
}

/// Checks a user message; consumes rate-limit allowance only when it is otherwise valid.
pub fn admit(state: &AppState, user_id: &str, text: &str) -> Result<(), InputError> {
    if text.trim().is_empty() {
        return Err(InputError::Empty);
    }
    let limit = state.config.limits.max_message_chars;
    let chars = text.chars().count();
    if chars > limit {
        return Err(InputError::TooLong { chars, limit });
    }
    if !state.limiter.allow(user_id) {
        return Err(InputError::RateLimited(
            state.config.limits.messages_per_minute,
        ));
    }
    Ok(())
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnOutcome {
    Answered,
    Failed,
    /// The client went away or asked to stop.
    Cancelled,
    Refused,
}

pub struct Conversation {
    pub session_id: String,
    pub user_id: String,
    /// Whether the session exists in Redis as this user's.
    claimed: bool,
    /// Whether the session existed before this conversation.
    pub existed: bool,
    /// The context sent to the LLM; kept here so a Redis outage does not
    /// make the model forget the conversation.
    recent: VecDeque<StoredMessage>,
    /// Whether the client was told that history is not being saved.
    warned_unsaved: bool,
}

/// What `open` found, for the client's first messages.
pub struct Opened {
    pub conversation: Conversation,
    pub history: Vec<StoredMessage>,
    /// False when Redis could not be read.
    pub history_available: bool,
}

impl Conversation {
    /// Opens the requested session (checking ownership), or a new one.
    pub async fn open(
        state: &AppState,
        user_id: &str,
        requested: Option<String>,
    ) -> Result<Opened, OpenError> {
        let (session_id, check_existing) = match requested {
            Some(id) if !valid_session_id(&id) => return Err(OpenError::InvalidSessionId),
            Some(id) => (id, true),
            None => (uuid::Uuid::new_v4().to_string(), false),
        };
        let mut conversation = Self {
            session_id,
            user_id: user_id.to_owned(),
            claimed: false,
            existed: false,
            recent: VecDeque::new(),
            warned_unsaved: false,
        };
        let mut history = Vec::new();
        let mut history_available = true;
        if check_existing {
            match state.history.owner(&conversation.session_id).await {
                Ok(Some(owner)) if owner == user_id => {
                    conversation.claimed = true;
                    conversation.existed = true;
                    match state
                        .history
                        .messages(&conversation.session_id, state.config.history.max_messages)
                        .await
                    {
                        Ok(messages) => history = messages,
                        Err(e) => {
                            history_available = false;
                            conversation.note_history_error(state, &e);
                        }
                    }
                }
                Ok(Some(_)) => return Err(OpenError::Forbidden),
                Ok(None) => {}
                Err(e) => {
                    history_available = false;
                    conversation.note_history_error(state, &e);
                }
            }
        }
        for m in &history {
            conversation.remember(m.clone(), state);
        }
        Ok(Opened {
            conversation,
            history,
            history_available,
        })
    }

    fn remember(&mut self, message: StoredMessage, state: &AppState) {
        self.recent.push_back(message);
        while self.recent.len() > state.config.llm.context_messages {
            self.recent.pop_front();
        }
    }

    fn note_history_error(&self, state: &AppState, e: &HistoryError) {
        state.metrics.error(e.category());
        tracing::warn!(session_id = %self.session_id, error = %e, "history unavailable");
    }

    /// The warning sent once per outage when messages cannot be saved.
    pub fn unsaved_warning() -> ServerEvent {
        ServerEvent::Warning {
            code: "history_unavailable".into(),
            message: "chat history is unavailable: this conversation works but is not being saved"
                .into(),
        }
    }

    /// Stores a message if possible. `Err(Forbidden)` only when another user
    /// took the session id in the meantime.
    async fn persist(
        &mut self,
        state: &AppState,
        message: &StoredMessage,
    ) -> Result<bool, HistoryError> {
        if !self.claimed {
            match state.history.claim(&self.session_id, &self.user_id).await {
                Ok(Claim::Created | Claim::Owned) => self.claimed = true,
                Err(HistoryError::Forbidden) => return Err(HistoryError::Forbidden),
                Err(e) => {
                    self.note_history_error(state, &e);
                    return Ok(false);
                }
            }
        }
        match state
            .history
            .append(&self.session_id, &self.user_id, message)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) => {
                self.note_history_error(state, &e);
                Ok(false)
            }
        }
    }

    async fn emit(out: &mpsc::Sender<ServerEvent>, event: ServerEvent) -> bool {
        out.send(event).await.is_ok()
    }

    /// Tells the client, once per outage, that nothing is being saved.
    async fn report_saved(&mut self, saved: bool, out: &mpsc::Sender<ServerEvent>) {
        if saved {
            self.warned_unsaved = false;
        } else if !self.warned_unsaved {
            self.warned_unsaved = true;
            Self::emit(out, Self::unsaved_warning()).await;
        }
    }

    /// Answers one user message. The message must have passed [`admit`].
    /// Events go to `out`; when `out` closes or `cancel` fires, the answer
    /// stops and what was streamed so far is stored marked `interrupted`.
    pub async fn turn(
        &mut self,
        state: &AppState,
        text: String,
        out: &mpsc::Sender<ServerEvent>,
        cancel: &CancellationToken,
    ) -> TurnOutcome {
        let started = Instant::now();
        let user_message = StoredMessage::new(Role::User, text);
        let saved = match self.persist(state, &user_message).await {
            Ok(saved) => saved,
            Err(_) => {
                Self::emit(
                    out,
                    ServerEvent::error("forbidden", "session belongs to another user"),
                )
                .await;
                return TurnOutcome::Refused;
            }
        };
        self.report_saved(saved, out).await;
        let reply_to = user_message.id.clone();
        state.metrics.messages.with_label_values(&["in"]).inc();
        if !Self::emit(
            out,
            ServerEvent::Ack {
                message_id: reply_to.clone(),
                persisted: saved,
            },
        )
        .await
        {
            return TurnOutcome::Cancelled;
        }
        self.remember(user_message, state);

        let answer_id = uuid::Uuid::new_v4().to_string();
        let mut answer = String::new();
        let mut tokens = 0u64;
        let mut first_token = None;
        let streamed = self.stream_answer(
            state,
            out,
            &answer_id,
            &mut answer,
            &mut tokens,
            &mut first_token,
            started,
        );
        let result = tokio::select! {
            r = tokio::time::timeout(state.config.llm.total_timeout, streamed) => match r {
                Ok(r) => r.map(|()| true),
                Err(_) => Err(LlmError::Timeout("answer")),
            },
            () = cancel.cancelled() => Ok(false),
            () = out.closed() => Ok(false),
        };

        let total = started.elapsed();
        let mut assistant = StoredMessage::new(Role::Assistant, answer);
        assistant.id = answer_id.clone();
        let outcome = match &result {
            Ok(true) => TurnOutcome::Answered,
            Ok(false) => TurnOutcome::Cancelled,
            Err(_) => TurnOutcome::Failed,
        };
        assistant.interrupted = outcome != TurnOutcome::Answered;
        // A failed answer with nothing streamed leaves no assistant message:
        // the history then shows an unanswered user message, which is true.
        let store_answer = outcome == TurnOutcome::Answered || !assistant.content.is_empty();
        let answer_saved = if store_answer {
            let saved = self.persist(state, &assistant).await.unwrap_or(false);
            self.remember(assistant.clone(), state);
            saved
        } else {
            false
        };

        match result {
            Ok(true) => {
                state.metrics.messages.with_label_values(&["out"]).inc();
                state.metrics.llm_duration.observe(total.as_secs_f64());
                self.report_saved(answer_saved, out).await;
                Self::emit(
                    out,
                    ServerEvent::Done {
                        message_id: answer_id,
                        reply_to,
                        content: assistant.content,
                        persisted: answer_saved,
                        tokens,
                        timing: Timing {
                            first_token_ms: first_token.map(|d: std::time::Duration| millis(d)),
                            total_ms: millis(total),
                        },
                    },
                )
                .await;
            }
            Ok(false) => {
                state.metrics.error("cancelled");
                Self::emit(
                    out,
                    ServerEvent::Error {
                        code: "cancelled".into(),
                        message: "the answer was cancelled".into(),
                        reply_to: Some(reply_to),
                    },
                )
                .await;
            }
            Err(e) => {
                state.metrics.error(e.category());
                tracing::warn!(session_id = %self.session_id, backend = state.llm.name(), error = %e, "answer failed");
                Self::emit(
                    out,
                    ServerEvent::Error {
                        code: e.category().into(),
                        message: e.to_string(),
                        reply_to: Some(reply_to),
                    },
                )
                .await;
            }
        }
        outcome
    }

    fn prompt(&self, state: &AppState) -> Vec<PromptMessage> {
        let system = state
            .config
            .llm
            .system_prompt
            .iter()
            .map(|p| PromptMessage {
                role: Role::System,
                content: p.clone(),
            });
        let past = self
            .recent
            .iter()
            .filter(|m| !m.content.is_empty())
            .map(|m| PromptMessage {
                role: m.role,
                content: m.content.clone(),
            });
        system.chain(past).collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn stream_answer(
        &self,
        state: &AppState,
        out: &mpsc::Sender<ServerEvent>,
        answer_id: &str,
        answer: &mut String,
        tokens: &mut u64,
        first_token: &mut Option<std::time::Duration>,
        started: Instant,
    ) -> Result<(), LlmError> {
        let idle = state.config.llm.idle_timeout;
        // Held until the answer ends; the wait counts against the answer's
        // total timeout and ends on cancel like the rest of the turn.
        let _slot = {
            let _waiting = GaugeGuard::inc(&state.metrics.llm_waiting);
            state
                .llm_slots
                .acquire()
                .await
                .map_err(|_| LlmError::Unreachable("LLM request slots are closed".into()))?
        };
        let mut stream = tokio::time::timeout(idle, state.llm.stream_chat(self.prompt(state)))
            .await
            .map_err(|_| LlmError::Timeout("request"))??;
        loop {
            let next = tokio::time::timeout(idle, stream.next())
                .await
                .map_err(|_| LlmError::Timeout("stream"))?;
            let Some(token) = next.transpose()? else {
                return Ok(());
            };
            if first_token.is_none() {
                let elapsed = started.elapsed();
                state.metrics.llm_first_token.observe(elapsed.as_secs_f64());
                *first_token = Some(elapsed);
            }
            *tokens += 1;
            state.metrics.llm_tokens.inc();
            answer.push_str(&token);
            let event = ServerEvent::Token {
                message_id: answer_id.to_owned(),
                content: token,
            };
            if out.send(event).await.is_err() {
                // The client is gone; `turn` sees `out.closed()` and stops.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Counts something in a gauge for as long as it lives, so a dropped
/// (cancelled) future is uncounted too.
struct GaugeGuard<'a>(&'a prometheus::IntGauge);

impl<'a> GaugeGuard<'a> {
    fn inc(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
