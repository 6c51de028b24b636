//! Verification by a remote service, with a short-lived verdict cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AuthError, Principal, check_size, principal_from};
use crate::config::ConfigError;

/// Verification by a remote service: `POST {url}` with `{"token": "..."}`;
/// a 200 answer `{"valid": true, "user_id"|"sub": "..."}` accepts, a 401/403
/// or `valid: false` refuses, anything else is an outage (not cached).
pub struct RemoteVerifier {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], CachedVerdict>>,
}

/// When a verdict was fetched, and what it was.
type CachedVerdict = (Instant, Result<Principal, AuthError>);

/// Bounds the verdict cache; when full it is cleared rather than evicted
/// entry by entry: verdicts are cheap to fetch again.
const REMOTE_CACHE_MAX_ENTRIES: usize = 10_000;

#[derive(Deserialize)]
struct RemoteVerdict {
    #[serde(default)]
    valid: Option<bool>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

impl RemoteVerifier {
    pub fn new(url: String, ttl: Duration, timeout: Duration) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ConfigError::Invalid {
                name: "AUTH_VERIFY_URL".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            url,
            http,
            ttl,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        check_size(token)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let verdict = self.ask(token).await;
        if !matches!(verdict, Err(AuthError::VerifierUnavailable)) {
            self.remember(key, verdict.clone());
        }
        verdict
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Result<Principal, AuthError>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: [u8; 32], verdict: Result<Principal, AuthError>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= REMOTE_CACHE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), verdict));
        }
    }

    async fn ask(&self, token: &str) -> Result<Principal, AuthError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e.without_url(), "token verification service unreachable");
                AuthError::VerifierUnavailable
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(AuthError::Invalid("refused by verification service"));
        }
        if !status.is_success() {
            tracing::warn!(%status, "token verification service failed");
            return Err(AuthError::VerifierUnavailable);
        }
        let verdict: RemoteVerdict = response
            .json()
            .await
            .map_err(|_| AuthError::VerifierUnavailable)?;
        if verdict.valid == Some(false) {
            return Err(AuthError::Invalid("refused by verification service"));
        }
        principal_from(verdict.user_id.or(verdict.sub))
    }
}
