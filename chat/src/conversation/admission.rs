//! Whether a user message is answered at all: the checks made before
//! anything is stored, the same on the WebSocket and over REST.

use crate::state::AppState;

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
    /// Stable code: metric label and the client-facing error code.
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
