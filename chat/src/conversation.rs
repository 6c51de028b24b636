//! One conversation: a session's recent messages and the turn logic (store
//! the user message, stream the answer from the LLM, store the answer),
//! independent of the transport (WebSocket or server-sent events).

mod admission;
mod answer;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::admission::{InputError, admit};
pub(crate) use self::answer::{Answer, AnswerEnd, stream_answer};
use crate::history::{Claim, HistoryError, StoredMessage, valid_session_id};
use crate::llm::{PromptMessage, Role};
use crate::protocol::ServerEvent;
use crate::state::AppState;

/// Why a conversation could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("session_id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")]
    InvalidSessionId,
    #[error("session belongs to another user")]
    Forbidden,
}

impl OpenError {
    /// Stable code: metric label and the client-facing error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidSessionId => "invalid_session_id",
            Self::Forbidden => "forbidden",
        }
    }
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
    /// Whether the session exists in the history store as this user's.
    claimed: bool,
    /// Whether the session existed before this conversation.
    pub existed: bool,
    /// The context sent to the LLM; kept here so a Redis outage does not
    /// make the model forget the conversation.
    recent: VecDeque<Remembered>,
    /// Whether the client was told that history is not being saved.
    warned_unsaved: bool,
}

/// A message kept as context. Its text is shared with every prompt built
/// from it: copying the context into each prompt was a tenth of the
/// allocations of a chat turn.
struct Remembered {
    id: String,
    role: Role,
    content: Arc<str>,
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
        self.recent.push_back(Remembered {
            content: Arc::from(message.content),
            id: message.id,
            role: message.role,
        });
        while self.recent.len() > state.config.llm.context_messages {
            self.recent.pop_front();
        }
    }

    fn note_history_error(&self, state: &AppState, e: &HistoryError) {
        state.metrics.error(e.code());
        tracing::warn!(session_id = %self.session_id, error = %e, "history unavailable");
    }

    /// The warning sent once per outage when messages cannot be saved.
    pub fn unsaved_warning() -> ServerEvent {
        ServerEvent::Warning {
            code: HistoryError::UNAVAILABLE_CODE.into(),
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

    /// Stores a message and keeps it as context (a realtime session's
    /// turns, which arrive piece by piece); returns whether it was stored.
    /// `Err` only when another user took the session id meanwhile.
    pub async fn add(
        &mut self,
        state: &AppState,
        message: StoredMessage,
    ) -> Result<bool, HistoryError> {
        let saved = self.persist(state, &message).await?;
        self.remember(message, state);
        Ok(saved)
    }

    /// Replaces a stored message (an answer cut to what was heard), in
    /// the context too; returns whether the store took it.
    pub async fn replace(&mut self, state: &AppState, message: StoredMessage) -> bool {
        if let Some(kept) = self.recent.iter_mut().find(|m| m.id == message.id) {
            kept.content = Arc::from(message.content.as_str());
        }
        match state.history.replace(&self.session_id, &message).await {
            Ok(found) => found,
            Err(e) => {
                self.note_history_error(state, &e);
                false
            }
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
        let reply_to = match self.accept(state, text, out).await {
            Ok(user_message_id) => user_message_id,
            Err(outcome) => return outcome,
        };
        let answer = answer::stream_answer(state, self.prompt(state), out, cancel, started).await;
        let saved = self.store_answer(state, &answer).await;
        let outcome = match answer.end {
            AnswerEnd::Complete => TurnOutcome::Answered,
            AnswerEnd::Cancelled => TurnOutcome::Cancelled,
            AnswerEnd::Failed(_) => TurnOutcome::Failed,
        };
        self.report_end(state, answer, reply_to, saved, out).await;
        outcome
    }

    /// Stores the user's message and acknowledges it; returns its id, or
    /// how the turn ended when it ends here.
    async fn accept(
        &mut self,
        state: &AppState,
        text: String,
        out: &mpsc::Sender<ServerEvent>,
    ) -> Result<String, TurnOutcome> {
        let user_message = StoredMessage::new(Role::User, text);
        let saved = match self.persist(state, &user_message).await {
            Ok(saved) => saved,
            Err(e) => {
                Self::emit(out, ServerEvent::error(e.code(), e.to_string())).await;
                return Err(TurnOutcome::Refused);
            }
        };
        self.report_saved(saved, out).await;
        let id = user_message.id.clone();
        state.metrics.messages.with_label_values(&["in"]).inc();
        let ack = ServerEvent::Ack {
            message_id: id.clone(),
            persisted: saved,
        };
        if !Self::emit(out, ack).await {
            return Err(TurnOutcome::Cancelled);
        }
        self.remember(user_message, state);
        Ok(id)
    }

    /// Stores the answer and keeps it as context; returns whether it was
    /// stored. A failed answer with nothing streamed leaves no assistant
    /// message: the history then shows an unanswered user message, which
    /// is true.
    async fn store_answer(&mut self, state: &AppState, answer: &Answer) -> bool {
        if !answer.is_complete() && answer.streamed.text.is_empty() {
            return false;
        }
        let message = answer.message();
        let saved = self.persist(state, &message).await.unwrap_or(false);
        self.remember(message, state);
        saved
    }

    /// Tells the client how the answer ended.
    async fn report_end(
        &mut self,
        state: &AppState,
        answer: Answer,
        reply_to: String,
        saved: bool,
        out: &mpsc::Sender<ServerEvent>,
    ) {
        let timing = answer.timing();
        let failure = match answer.end {
            AnswerEnd::Complete => None,
            AnswerEnd::Cancelled => Some(("cancelled", "the answer was cancelled".to_owned())),
            AnswerEnd::Failed(e) => {
                tracing::warn!(session_id = %self.session_id, backend = state.llm.name(), error = %e, "answer failed");
                Some((e.code(), e.to_string()))
            }
        };
        let event = match failure {
            None => {
                state.metrics.messages.with_label_values(&["out"]).inc();
                state
                    .metrics
                    .llm_duration
                    .observe(answer.total.as_secs_f64());
                self.report_saved(saved, out).await;
                ServerEvent::Done {
                    message_id: answer.id,
                    reply_to,
                    content: answer.streamed.text,
                    persisted: saved,
                    tokens: answer.streamed.tokens,
                    timing,
                }
            }
            Some((code, message)) => {
                state.metrics.error(code);
                ServerEvent::Error {
                    code: code.into(),
                    message,
                    reply_to: Some(reply_to),
                }
            }
        };
        Self::emit(out, event).await;
    }

    fn prompt(&self, state: &AppState) -> Vec<PromptMessage> {
        self.prompt_with(state, None)
    }

    /// The context for the next answer, with `instructions` in place of
    /// the service's system prompt when given.
    pub fn prompt_with(&self, state: &AppState, instructions: Option<&str>) -> Vec<PromptMessage> {
        let system = instructions
            .or(state.config.llm.system_prompt.as_deref())
            .into_iter()
            .map(|p| PromptMessage {
                role: Role::System,
                content: Arc::from(p),
            });
        let past = self
            .recent
            .iter()
            .filter(|m| !m.content.is_empty())
            .map(|m| PromptMessage {
                role: m.role,
                content: Arc::clone(&m.content),
            });
        system.chain(past).collect()
    }
}
