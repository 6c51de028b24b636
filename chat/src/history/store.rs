//! What every history store promises, whatever keeps the messages.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{HistoryError, SessionSummary, StoredMessage};

/// Who owns a session after a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The session did not exist and now belongs to the caller.
    Created,
    /// It already belonged to the caller.
    Owned,
}

/// Where conversations are kept. The owner of a session is set once, by
/// the first [`claim`](Self::claim); every other call that names a user
/// keeps to that user's sessions.
pub trait HistoryStore: Send + Sync {
    /// Round-trip time of a cheap request (for `/health`).
    fn ping(&self) -> BoxFuture<'_, Result<Duration, HistoryError>>;

    /// The owner of a session, if it exists.
    fn owner<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, HistoryError>>;

    /// Makes the session the user's if it has no owner yet; refuses
    /// (`Forbidden`) if it is someone else's.
    fn claim<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Claim, HistoryError>>;

    /// Appends a message, keeping the last `max_messages`; resolves once
    /// the message is stored (the acknowledgement the client gets is sent
    /// only after this).
    fn append<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
        message: &'a StoredMessage,
    ) -> BoxFuture<'a, Result<(), HistoryError>>;

    /// Replaces the stored message with `message.id` (an answer cut to what
    /// the listener heard); `Ok(false)` when it is no longer stored.
    fn replace<'a>(
        &'a self,
        session_id: &'a str,
        message: &'a StoredMessage,
    ) -> BoxFuture<'a, Result<bool, HistoryError>>;

    /// The last `limit` messages, oldest first.
    fn messages<'a>(
        &'a self,
        session_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredMessage>, HistoryError>>;

    /// The user's sessions that hold messages, most recent first.
    fn sessions<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionSummary>, HistoryError>>;

    /// Deletes a session of the user's (`NotFound`, `Forbidden` otherwise).
    fn delete<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HistoryError>>;
}

/// Whether `user_id` may read or delete a session owned by `owner`.
pub fn check_owner(owner: Option<&str>, user_id: &str) -> Result<(), HistoryError> {
    match owner {
        None => Err(HistoryError::NotFound),
        Some(owner) if owner != user_id => Err(HistoryError::Forbidden),
        Some(_) => Ok(()),
    }
}
