//! Conversation history: the messages kept, what a store promises
//! ([`HistoryStore`], in `store.rs`), and the store the service runs on,
//! [`RedisHistory`] (the in-memory one for tests is in [`memory`]).
//!
//! Redis keys (the first is the original system's, kept for compatibility):
//! - `chat_history:{session_id}` — list of JSON messages, oldest first,
//!   trimmed to the configured length, with a TTL refreshed on every write;
//! - `chat_session:{session_id}` — hash with the owner and creation time;
//!   the owner is set once (`HSETNX`), which is how ownership is enforced;
//! - `chat_user_sessions:{user_id}` — sorted set of the user's session ids
//!   scored by last activity, for listing.

pub mod memory;
mod store;

use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use voicechat_common::redis::RedisUrlError;

use crate::config::HistorySettings;
use crate::llm::Role;

pub use store::{Claim, HistoryStore, check_owner};

/// A message as stored and as sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub role: Role,
    pub content: String,
    /// RFC 3339.
    pub timestamp: String,
    /// Set on an assistant answer cut short (LLM failure, client gone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl StoredMessage {
    pub fn new(role: Role, content: String) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            role,
            content,
            timestamp: voicechat_common::health::now_rfc3339(),
            interrupted: false,
        }
    }
}

/// A row of "my sessions".
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub session_id: String,
    /// Unix seconds of the last message.
    pub updated_at: i64,
    pub message_count: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history store unavailable: {0}")]
    Unavailable(String),
    #[error("session belongs to another user")]
    Forbidden,
    #[error("session not found")]
    NotFound,
}

impl HistoryError {
    /// The code of `Unavailable`, also the warning a conversation sends
    /// while its messages cannot be saved.
    pub const UNAVAILABLE_CODE: &'static str = "history_unavailable";

    /// Stable code: metric label and the client-facing error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => Self::UNAVAILABLE_CODE,
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
        }
    }
}

impl From<redis::RedisError> for HistoryError {
    fn from(e: redis::RedisError) -> Self {
        // Redis errors never include the URL's password, but may include
        // the command; neither carries message content.
        Self::Unavailable(e.to_string())
    }
}

const HISTORY_PREFIX: &str = "chat_history:";
const SESSION_PREFIX: &str = "chat_session:";
const USER_SESSIONS_PREFIX: &str = "chat_user_sessions:";

pub fn history_key(session_id: &str) -> String {
    format!("{HISTORY_PREFIX}{session_id}")
}

fn session_key(session_id: &str) -> String {
    format!("{SESSION_PREFIX}{session_id}")
}

fn user_sessions_key(user_id: &str) -> String {
    format!("{USER_SESSIONS_PREFIX}{user_id}")
}

/// A key or value written into the command as it is sent, in parts, with
/// no `String` of its own: prefix + id, or a message's JSON.
enum Arg<'a> {
    Key(&'static str, &'a str),
    Json(&'a StoredMessage),
}

impl redis::ToRedisArgs for Arg<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writes into the command's own buffer, which cannot fail; a
        // message (strings, booleans) always encodes.
        let written = match self {
            Self::Key(prefix, id) => arg
                .write_all(prefix.as_bytes())
                .and_then(|()| arg.write_all(id.as_bytes())),
            Self::Json(message) => {
                serde_json::to_writer(&mut arg, message).map_err(std::io::Error::other)
            }
        };
        debug_assert!(written.is_ok(), "{written:?}");
    }
}

/// `EVALSHA` of `script` with `keys` keys; keys and arguments follow. The
/// command is written straight into one buffer: `ScriptInvocation` copied
/// each key and argument into a `Vec` of its own, then into the command
/// (a fifth of the allocations of a chat turn).
fn evalsha(script: &redis::Script, keys: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys);
    cmd
}

/// Runs `cmd` (from [`evalsha`]), loading `script` and trying once more
/// when Redis does not have it (a restart, a new Redis), as
/// `ScriptInvocation::invoke_async` does.
async fn eval<T: redis::FromRedisValue>(
    script: &redis::Script,
    cmd: &redis::Cmd,
    c: &mut ConnectionManager,
) -> redis::RedisResult<T> {
    match cmd.query_async(c).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load_async(c).await?;
            cmd.query_async(c).await
        }
        result => result,
    }
}

/// Replaces the entry of the list whose JSON `id` is ARGV[1] by ARGV[2],
/// searching from the newest; 1 when replaced, 0 when not found.
static REPLACE_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #entries, 1, -1 do
  local ok, decoded = pcall(cjson.decode, entries[i])
  if ok and type(decoded) == 'table' and decoded.id == ARGV[1] then
    redis.call('LSET', KEYS[1], i - 1, ARGV[2])
    return 1
  end
end
return 0
"#,
    )
});

/// Appends a message and keeps the session's keys fresh, in one call (a
/// MULTI/EXEC pipeline of the same seven commands cost the service twice
/// the bytes to write and nine replies to parse, twice per chat turn).
/// KEYS: history list, session hash, user's sessions; ARGV: message JSON,
/// -(messages kept), TTL seconds, now, session id, oldest score kept.
static APPEND_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], ARGV[2], -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"#,
    )
});

/// The most sessions listed for one user.
const MAX_LISTED_SESSIONS: isize = 100;

/// The service's store: the keys above, every call under a deadline.
pub struct RedisHistory {
    conn: ConnectionManager,
    settings: HistorySettings,
}

impl RedisHistory {
    /// Connects lazily: a Redis that is down at start-up is not an error,
    /// the service starts degraded and connects when Redis appears.
    pub fn new(settings: HistorySettings) -> Result<Self, RedisUrlError> {
        let conn = voicechat_common::redis::connect_lazy(&settings.redis_url, settings.op_timeout)?;
        Ok(Self { conn, settings })
    }

    /// Runs one Redis operation under the configured deadline.
    async fn run<T, F>(&self, op: impl FnOnce(ConnectionManager) -> F) -> Result<T, HistoryError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        // Twice the per-call timeout: a reconnect plus one attempt.
        let deadline = self.settings.op_timeout * 2;
        match tokio::time::timeout(deadline, op(self.conn.clone())).await {
            Ok(result) => result.map_err(HistoryError::from),
            Err(_) => Err(HistoryError::Unavailable(format!(
                "no answer within {} ms",
                deadline.as_millis()
            ))),
        }
    }

    fn ttl_secs(&self) -> i64 {
        i64::try_from(self.settings.ttl.as_secs())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

impl HistoryStore for RedisHistory {
    fn ping(&self) -> BoxFuture<'_, Result<Duration, HistoryError>> {
        Box::pin(async move {
            let started = Instant::now();
            let pong: String = self
                .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
                .await?;
            if pong != "PONG" {
                return Err(HistoryError::Unavailable(format!("PING answered {pong:?}")));
            }
            Ok(started.elapsed())
        })
    }

    fn owner<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, HistoryError>> {
        let key = session_key(session_id);
        Box::pin(self.run(|mut c| async move { c.hget(key, "owner").await }))
    }

    fn claim<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Claim, HistoryError>> {
        Box::pin(async move {
            let key = session_key(session_id);
            let ttl = self.ttl_secs();
            let (created, owner): (bool, String) = self
                .run(|mut c| async move {
                    redis::pipe()
                        .atomic()
                        .hset_nx(&key, "owner", user_id)
                        .hget(&key, "owner")
                        .expire(&key, ttl)
                        .ignore()
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if owner != user_id {
                return Err(HistoryError::Forbidden);
            }
            Ok(if created {
                Claim::Created
            } else {
                Claim::Owned
            })
        })
    }

    fn append<'a>(
        &'a self,
        session_id: &'a str,
        user_id: &'a str,
        message: &'a StoredMessage,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            let ttl = self.ttl_secs();
            let keep = isize::try_from(self.settings.max_messages).unwrap_or(isize::MAX);
            let now = unix_now();
            let mut cmd = evalsha(&APPEND_SCRIPT, 3);
            cmd.arg(Arg::Key(HISTORY_PREFIX, session_id))
                .arg(Arg::Key(SESSION_PREFIX, session_id))
                .arg(Arg::Key(USER_SESSIONS_PREFIX, user_id))
                .arg(Arg::Json(message))
                .arg(-keep)
                .arg(ttl)
                .arg(now)
                .arg(session_id)
                // Sessions whose history has expired drop out of the listing.
                .arg(now - ttl);
            self.run(|mut c| async move { eval::<i64>(&APPEND_SCRIPT, &cmd, &mut c).await })
                .await
                .map(drop)
        })
    }

    fn replace<'a>(
        &'a self,
        session_id: &'a str,
        message: &'a StoredMessage,
    ) -> BoxFuture<'a, Result<bool, HistoryError>> {
        Box::pin(async move {
            let mut cmd = evalsha(&REPLACE_SCRIPT, 1);
            cmd.arg(Arg::Key(HISTORY_PREFIX, session_id))
                .arg(&message.id)
                .arg(Arg::Json(message));
            // Found and set in one step: appends from another socket of the
            // session cannot move the entry between the two.
            let replaced: i64 = self
                .run(|mut c| async move { eval(&REPLACE_SCRIPT, &cmd, &mut c).await })
                .await?;
            Ok(replaced == 1)
        })
    }

    /// Entries that fail to decode (written by another version) are
    /// skipped, not fatal.
    fn messages<'a>(
        &'a self,
        session_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredMessage>, HistoryError>> {
        Box::pin(async move {
            let key = history_key(session_id);
            let start = -isize::try_from(limit.max(1)).unwrap_or(isize::MAX);
            let raw: Vec<String> = self
                .run(|mut c| async move { c.lrange(key, start, -1).await })
                .await?;
            Ok(raw
                .iter()
                .filter_map(|r| match serde_json::from_str(r) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(session_id, error = %e, "skipping undecodable history entry");
                        None
                    }
                })
                .collect())
        })
    }

    fn sessions<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionSummary>, HistoryError>> {
        Box::pin(async move {
            let key = user_sessions_key(user_id);
            let rows: Vec<(String, f64)> = self
                .run(|mut c| async move {
                    c.zrevrange_withscores(key, 0, MAX_LISTED_SESSIONS - 1)
                        .await
                })
                .await?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for (sid, _) in &rows {
                pipe.llen(history_key(sid));
            }
            let counts: Vec<usize> = self
                .run(|mut c| async move { pipe.query_async(&mut c).await })
                .await?;
            Ok(rows
                .into_iter()
                .zip(counts)
                .filter(|(_, count)| *count > 0)
                .map(|((session_id, score), message_count)| SessionSummary {
                    session_id,
                    // Scores are whole Unix seconds written by `append`.
                    #[allow(clippy::cast_possible_truncation)]
                    updated_at: score as i64,
                    message_count,
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
            check_owner(self.owner(session_id).await?.as_deref(), user_id)?;
            let list = history_key(session_id);
            let session = session_key(session_id);
            let sessions = user_sessions_key(user_id);
            self.run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .del(&list)
                    .ignore()
                    .del(&session)
                    .ignore()
                    .zrem(&sessions, session_id)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Session ids are client-chosen: keep them to a safe alphabet and length
/// so they cannot smuggle key separators or grow keys without bound.
pub fn valid_session_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_restricted() {
        assert!(valid_session_id("2f1c-AB_9"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a:b"));
        assert!(!valid_session_id("../x"));
        assert!(!valid_session_id(&"a".repeat(65)));
    }

    #[test]
    fn stored_messages_round_trip_and_omit_false_flags() {
        let m = StoredMessage::new(Role::User, "hi".into());
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("interrupted"));
        assert_eq!(serde_json::from_str::<StoredMessage>(&json).unwrap(), m);
    }
}
