//! A history store in process memory: what unit tests run on (no Redis, no
//! expiry), with a switch that makes it unreachable to test outages.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{Claim, HistoryError, HistoryStore, SessionSummary, StoredMessage, check_owner};

pub struct MemoryHistory {
    max_messages: usize,
    sessions: Mutex<HashMap<String, Session>>,
    reachable: AtomicBool,
}

struct Session {
    owner: String,
    messages: VecDeque<StoredMessage>,
    /// Unix seconds of the last message.
    updated_at: i64,
    /// Orders sessions updated within the same second.
    write_seq: u64,
}

impl Session {
    fn new(owner: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            messages: VecDeque::new(),
            updated_at: 0,
            write_seq: 0,
        }
    }
}

impl MemoryHistory {
    /// Keeps the last `max_messages` of each session, as `HISTORY_MAX_MESSAGES` does.
    pub fn new(max_messages: usize) -> Self {
        Self {
            max_messages,
            sessions: Mutex::new(HashMap::new()),
            reachable: AtomicBool::new(true),
        }
    }

    /// While unreachable, every call fails as an unreachable Redis does.
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::SeqCst);
    }

    /// The sessions, or the error of an outage.
    fn sessions_map(&self) -> Result<MutexGuard<'_, HashMap<String, Session>>, HistoryError> {
        if !self.reachable.load(Ordering::SeqCst) {
            return Err(HistoryError::Unavailable(
                "in-memory store set unreachable".into(),
            ));
        }
        // A panic elsewhere cannot leave a session half-written: every
        // change below is one insert or push.
        Ok(self.sessions.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl HistoryStore for MemoryHistory {
    fn ping(&self) -> BoxFuture<'_, Result<Duration, HistoryError>> {
        Box::pin(async move { self.sessions_map().map(|_| Duration::ZERO) })
    }

    fn owner<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, HistoryError>> {
        Box::pin(async move {
            let sessions = self.sessions_map()?;
            Ok(sessions.get(session_id).map(|s| s.owner.clone()))
        })
    }

    fn claim<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Claim, HistoryError>> {
        Box::pin(async move {
            let mut sessions = self.sessions_map()?;
            match sessions.get(session_id) {
                Some(s) if s.owner == user_id => Ok(Claim::Owned),
                Some(_) => Err(HistoryError::Forbidden),
                None => {
                    sessions.insert(session_id.to_owned(), Session::new(user_id));
                    Ok(Claim::Created)
                }
            }
        })
    }

    fn append<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
        message: &'a StoredMessage,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            let mut sessions = self.sessions_map()?;
            let write_seq = sessions.values().map(|s| s.write_seq).max().unwrap_or(0) + 1;
            // Like Redis, append trusts the caller's claim.
            let session = sessions
                .entry(session_id.to_owned())
                .or_insert_with(|| Session::new(user_id));
            session.messages.push_back(message.clone());
            while session.messages.len() > self.max_messages {
                session.messages.pop_front();
            }
            session.updated_at = super::unix_now();
            session.write_seq = write_seq;
            Ok(())
        })
    }

    fn replace<'a>(
        &'a self,
        session_id: &'a str,
        message: &'a StoredMessage,
    ) -> BoxFuture<'a, Result<bool, HistoryError>> {
        Box::pin(async move {
            let mut sessions = self.sessions_map()?;
            let Some(stored) = sessions
                .get_mut(session_id)
                .and_then(|s| s.messages.iter_mut().rev().find(|m| m.id == message.id))
            else {
                return Ok(false);
            };
            *stored = message.clone();
            Ok(true)
        })
    }

    fn messages<'a>(
        &'a self,
        session_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredMessage>, HistoryError>> {
        Box::pin(async move {
            let sessions = self.sessions_map()?;
            let Some(session) = sessions.get(session_id) else {
                return Ok(Vec::new());
            };
            let skip = session.messages.len().saturating_sub(limit.max(1));
            Ok(session.messages.iter().skip(skip).cloned().collect())
        })
    }

    fn sessions<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionSummary>, HistoryError>> {
        Box::pin(async move {
            let sessions = self.sessions_map()?;
            let mut mine: Vec<(&String, &Session)> = sessions
                .iter()
                .filter(|(_, s)| s.owner == user_id && !s.messages.is_empty())
                .collect();
            mine.sort_by_key(|(_, s)| std::cmp::Reverse(s.write_seq));
            Ok(mine
                .into_iter()
                .map(|(session_id, s)| SessionSummary {
                    session_id: session_id.clone(),
                    updated_at: s.updated_at,
                    message_count: s.messages.len(),
                })
                .collect())
        })
    }

    fn delete<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            let mut sessions = self.sessions_map()?;
            check_owner(sessions.get(session_id).map(|s| s.owner.as_str()), user_id)?;
            sessions.remove(session_id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;

    fn message(text: &str) -> StoredMessage {
        StoredMessage::new(Role::User, text.into())
    }

    #[tokio::test]
    async fn keeps_the_last_messages_of_the_owners_session() {
        let store = MemoryHistory::new(2);
        assert_eq!(store.claim("s", "alice").await.unwrap(), Claim::Created);
        assert_eq!(store.claim("s", "alice").await.unwrap(), Claim::Owned);
        assert!(matches!(
            store.claim("s", "bob").await,
            Err(HistoryError::Forbidden)
        ));
        for text in ["one", "two", "three"] {
            store.append("s", "alice", &message(text)).await.unwrap();
        }
        let kept: Vec<String> = store
            .messages("s", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.content)
            .collect();
        assert_eq!(kept, ["two", "three"]);
        assert_eq!(store.messages("s", 1).await.unwrap()[0].content, "three");
        assert_eq!(store.owner("s").await.unwrap().as_deref(), Some("alice"));
    }

    #[tokio::test]
    async fn lists_and_deletes_only_the_users_sessions() {
        let store = MemoryHistory::new(10);
        for (session, user) in [("a", "alice"), ("b", "bob"), ("c", "alice")] {
            store.claim(session, user).await.unwrap();
            store.append(session, user, &message("hi")).await.unwrap();
        }
        store.claim("empty", "alice").await.unwrap();
        let listed: Vec<String> = store
            .sessions("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        assert_eq!(listed, ["c", "a"], "most recent first, empty ones left out");
        assert!(matches!(
            store.delete("b", "alice").await,
            Err(HistoryError::Forbidden)
        ));
        assert!(matches!(
            store.delete("nope", "alice").await,
            Err(HistoryError::NotFound)
        ));
        store.delete("a", "alice").await.unwrap();
        assert_eq!(store.owner("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_every_call_until_it_is_back() {
        let store = MemoryHistory::new(10);
        store.set_reachable(false);
        assert!(matches!(
            store.ping().await,
            Err(HistoryError::Unavailable(_))
        ));
        assert!(matches!(
            store.claim("s", "alice").await,
            Err(HistoryError::Unavailable(_))
        ));
        store.set_reachable(true);
        assert_eq!(store.claim("s", "alice").await.unwrap(), Claim::Created);
    }
}
