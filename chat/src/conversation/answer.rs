//! One answer from the model: a request slot, the token stream under its
//! idle and total deadlines, and cancellation. What streamed is kept
//! however the answer ends, so a cut-short answer can be stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::history::StoredMessage;
use crate::llm::{LlmError, PromptMessage, Role};
use crate::metrics::GaugeGuard;
use crate::protocol::{ServerEvent, Timing};
use crate::state::AppState;

/// How an answer ended.
pub(crate) enum AnswerEnd {
    Complete,
    /// The client asked to stop or went away.
    Cancelled,
    Failed(LlmError),
}

/// The answer as far as it streamed.
#[derive(Default)]
pub(crate) struct Streamed {
    pub text: String,
    pub tokens: u64,
    /// From the user's message to the first token.
    pub first_token: Option<Duration>,
}

/// An answer, however it ended.
pub(crate) struct Answer {
    pub id: String,
    pub streamed: Streamed,
    pub end: AnswerEnd,
    /// From the user's message to the end of the answer.
    pub total: Duration,
}

impl Answer {
    /// The assistant message to store, marked `interrupted` unless complete.
    pub fn message(&self) -> StoredMessage {
        StoredMessage {
            id: self.id.clone(),
            role: Role::Assistant,
            content: self.streamed.text.clone(),
            timestamp: voicechat_common::health::now_rfc3339(),
            interrupted: !self.is_complete(),
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.end, AnswerEnd::Complete)
    }

    pub fn timing(&self) -> Timing {
        Timing {
            first_token_ms: self.streamed.first_token.map(millis),
            total_ms: millis(self.total),
        }
    }
}

/// Streams the answer to `prompt`, each token to `out`, until it is
/// complete or fails, the total timeout passes, `cancel` fires or `out`
/// closes. `started` is when the user's message came in.
pub(crate) async fn stream_answer(
    state: &AppState,
    prompt: Vec<PromptMessage>,
    out: &mpsc::Sender<ServerEvent>,
    cancel: &CancellationToken,
    started: Instant,
) -> Answer {
    let id = uuid::Uuid::new_v4().to_string();
    let mut streamed = Streamed::default();
    let receiving = receive(state, prompt, out, &id, started, &mut streamed);
    let end = tokio::select! {
        r = tokio::time::timeout(state.config.llm.total_timeout, receiving) => match r {
            Ok(Ok(())) => AnswerEnd::Complete,
            Ok(Err(e)) => AnswerEnd::Failed(e),
            Err(_) => AnswerEnd::Failed(LlmError::Timeout("answer")),
        },
        () = cancel.cancelled() => AnswerEnd::Cancelled,
        () = out.closed() => AnswerEnd::Cancelled,
    };
    Answer {
        id,
        streamed,
        end,
        total: started.elapsed(),
    }
}

/// Waits for a request slot, then reads tokens into `streamed` and `out`;
/// dropped by [`stream_answer`] when the answer is stopped.
async fn receive(
    state: &AppState,
    prompt: Vec<PromptMessage>,
    out: &mpsc::Sender<ServerEvent>,
    answer_id: &str,
    started: Instant,
    streamed: &mut Streamed,
) -> Result<(), LlmError> {
    let token_id: Arc<str> = Arc::from(answer_id);
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
    let mut stream = tokio::time::timeout(idle, state.llm.stream_chat(prompt))
        .await
        .map_err(|_| LlmError::Timeout("request"))??;
    // One timer for the whole answer, moved on only when it fires: a
    // timeout per token re-armed the timer wheel for every token.
    let mut last_token = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        let next = tokio::select! {
            biased;
            next = stream.next() => next,
            () = &mut idle_timer => {
                let deadline = last_token + idle;
                if deadline <= tokio::time::Instant::now() {
                    return Err(LlmError::Timeout("stream"));
                }
                idle_timer.as_mut().reset(deadline);
                continue;
            }
        };
        last_token = tokio::time::Instant::now();
        let Some(token) = next.transpose()? else {
            return Ok(());
        };
        if streamed.first_token.is_none() {
            let elapsed = started.elapsed();
            state.metrics.llm_first_token.observe(elapsed.as_secs_f64());
            streamed.first_token = Some(elapsed);
        }
        streamed.tokens += 1;
        state.metrics.llm_tokens.inc();
        streamed.text.push_str(&token);
        let event = ServerEvent::Token {
            message_id: Arc::clone(&token_id),
            content: token,
        };
        if out.send(event).await.is_err() {
            // The client is gone; `stream_answer` sees `out.closed()` and stops.
            std::future::pending::<()>().await;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
