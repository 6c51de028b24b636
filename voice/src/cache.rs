//! Results cache in Redis, keyed by a hash of the inputs. An unreachable
//! Redis makes every lookup a miss and every store a no-op: the cache can
//! slow nothing down by more than its timeout and never fails a request.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use voicechat_common::redis::RedisUrlError;

pub struct ResultCache {
    conn: Option<ConnectionManager>,
    ttl: Duration,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(String);

/// A cache key: `voice:{kind}:{sha256 of the parts}`.
pub fn key(kind: &str, parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    format!("voice:{kind}:{}", hex::encode(hash.finalize()))
}

impl ResultCache {
    pub fn new(url: Option<&str>, ttl: Duration, timeout: Duration) -> Result<Self, RedisUrlError> {
        let conn = match url {
            None => None,
            Some(url) => Some(voicechat_common::redis::connect_lazy(url, timeout)?),
        };
        Ok(Self { conn, ttl, timeout })
    }

    pub fn enabled(&self) -> bool {
        self.conn.is_some()
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        let mut conn = conn.clone();
        tokio::time::timeout(self.timeout * 2, conn.get::<_, Option<Vec<u8>>>(key))
            .await
            .map_err(|_| CacheError("timed out".into()))?
            .map_err(|e| CacheError(e.to_string()))
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), CacheError> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let mut conn = conn.clone();
        tokio::time::timeout(
            self.timeout * 2,
            conn.set_ex::<_, _, ()>(key, value, self.ttl.as_secs().max(1)),
        )
        .await
        .map_err(|_| CacheError("timed out".into()))?
        .map_err(|e| CacheError(e.to_string()))
    }

    pub async fn ping(&self) -> Option<Result<Duration, CacheError>> {
        let conn = self.conn.as_ref()?;
        let mut conn = conn.clone();
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.timeout * 2,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        Some(match result {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(CacheError(e.to_string())),
            Err(_) => Err(CacheError("timed out".into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key("tts", &[b"ab", b"c"]), key("tts", &[b"a", b"bc"]));
        assert_ne!(key("tts", &[b"x"]), key("stt", &[b"x"]));
        assert_eq!(key("tts", &[b"x"]).len(), "voice:tts:".len() + 64);
    }
}
