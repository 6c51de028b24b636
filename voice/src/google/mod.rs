//! Google Cloud Text-to-Speech and Speech-to-Text over REST, the optional
//! remote fallbacks (off unless `GOOGLE_APPLICATION_CREDENTIALS` names a
//! service-account key and the engine is enabled).

pub mod auth;
pub mod stt;
pub mod tts;

use std::time::Duration;

/// Settings of the Google engines.
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    /// Path of the service-account JSON key.
    pub credentials: std::path::PathBuf,
    pub tts_enabled: bool,
    pub stt_enabled: bool,
    pub tts_url: String,
    pub stt_url: String,
    /// Voice used when the request names none (`en-US-Standard-C`).
    pub tts_voice: String,
    pub timeout: Duration,
}

/// Why a Google call failed: `Unavailable` (no credentials, no token, no
/// connection) or `Failed` (Google answered, but not with a result).
#[derive(Debug)]
pub enum GoogleError {
    Unavailable(String),
    Failed(String),
}

/// An authenticated JSON client for Google's REST APIs.
pub struct GoogleClient {
    tokens: Option<auth::TokenSource>,
    http: reqwest::Client,
    problem: Option<String>,
}

impl GoogleClient {
    pub fn new(settings: &GoogleSettings, http: reqwest::Client) -> Self {
        let (tokens, problem) =
            match auth::TokenSource::from_file(&settings.credentials, http.clone()) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            };
        Self {
            tokens,
            http,
            problem,
        }
    }

    pub fn available(&self) -> bool {
        self.tokens.is_some()
    }

    pub fn health(&self) -> Result<(), String> {
        match &self.problem {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }

    /// POSTs `body` with an access token and returns the JSON answer.
    /// Blocks: engines run on the blocking pool, where waiting on the
    /// runtime is allowed.
    pub fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, GoogleError> {
        let tokens = self
            .tokens
            .as_ref()
            .ok_or_else(|| GoogleError::Unavailable(self.problem.clone().unwrap_or_default()))?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| GoogleError::Unavailable(format!("no async runtime: {e}")))?;
        handle.block_on(async {
            let token = tokens.token().await.map_err(GoogleError::Unavailable)?;
            let response = self
                .http
                .post(url)
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .map_err(|e| GoogleError::Unavailable(e.without_url().to_string()))?;
            if !response.status().is_success() {
                return Err(GoogleError::Failed(format!("HTTP {}", response.status())));
            }
            response
                .json()
                .await
                .map_err(|e| GoogleError::Failed(e.to_string()))
        })
    }
}
