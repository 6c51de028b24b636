//! Language-model backends behind one trait. A backend turns a list of
//! messages into a stream of answer tokens; timeouts, cancellation and
//! metrics live in the caller (`conversation`), the same for every backend.

mod http1;
mod lines;
pub mod ollama;
pub mod openai;
#[cfg(test)]
pub mod scripted;
mod transport;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::config::{LlmBackend, LlmSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of the prompt sent to the model.
#[derive(Debug, Clone, Serialize)]
pub struct PromptMessage {
    pub role: Role,
    /// Shared with the conversation's context, not copied per prompt.
    pub content: Arc<str>,
}

/// Answer tokens as they arrive.
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<String, LlmError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM server unreachable: {0}")]
    Unreachable(String),
    #[error("LLM server answered {status}: {message}")]
    Status { status: u16, message: String },
    /// An error reported inside a 200 stream (Ollama sends `{"error": ...}`
    /// lines mid-answer, e.g. when the model runner crashes).
    #[error("LLM stream error: {0}")]
    Stream(String),
    #[error("LLM stream broke off: {0}")]
    Transport(String),
    #[error("unexpected data from LLM server: {0}")]
    Protocol(String),
    #[error("LLM {0} timed out")]
    Timeout(&'static str),
}

impl LlmError {
    /// Stable code: metric label and the client-facing error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "llm_unavailable",
            Self::Status { .. } => "llm_http_error",
            Self::Stream(_) => "llm_stream_error",
            Self::Transport(_) => "llm_transport_error",
            Self::Protocol(_) => "llm_protocol_error",
            Self::Timeout(_) => "llm_timeout",
        }
    }
}

/// A chat model server.
pub trait ChatModel: Send + Sync {
    /// Starts an answer; resolves once the server accepted the request.
    fn stream_chat(
        &self,
        messages: Vec<PromptMessage>,
    ) -> BoxFuture<'_, Result<TokenStream, LlmError>>;
    /// A cheap request that tells whether the server answers (`/health`).
    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>>;
    /// The backend's name for logs and `/health`.
    fn name(&self) -> &'static str;
}

/// The backend chosen by `LLM_BACKEND`.
pub fn from_settings(settings: &LlmSettings) -> Result<Box<dyn ChatModel>, LlmError> {
    // No read timeout here: the caller's idle deadline covers every read,
    // and reqwest's would re-arm a timer for each streamed chunk.
    let http = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .build()
        .map_err(|e| LlmError::Unreachable(e.to_string()))?;
    Ok(match settings.backend {
        LlmBackend::Ollama => Box::new(ollama::OllamaChat::new(http, settings)?),
        LlmBackend::OpenAi => Box::new(openai::OpenAiChat::new(http, settings)?),
    })
}

/// `base` with `path` appended; the configuration checked `base` and took
/// off its trailing `/` (`voicechat_common::config::http_url`).
fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, LlmError> {
    reqwest::Url::parse(&format!("{base}{path}"))
        .map_err(|e| LlmError::Unreachable(format!("the LLM URL is not usable: {e}")))
}

/// Maps a reqwest failure without its URL (it may carry credentials),
/// keeping the causes ("Connection refused") that reqwest's own message
/// leaves out.
fn request_error(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        return LlmError::Timeout("request");
    }
    LlmError::Unreachable(voicechat_common::error_text::with_causes(&e.without_url()))
}

/// A non-2xx answer, with the server's message when it sent one.
fn status_error(status: u16, body: &str) -> LlmError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error").and_then(|e| {
                e.as_str()
                    .map(str::to_owned)
                    .or_else(|| e.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            })
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    LlmError::Status { status, message }
}

/// Sends a cheap GET and reports whether the server answered 2xx.
async fn probe_get(request: reqwest::RequestBuilder) -> Result<(), LlmError> {
    let response = request.send().await.map_err(request_error)?;
    if response.status().is_success() {
        Ok(())
    } else {
        let status = response.status().as_u16();
        Err(status_error(
            status,
            &response.text().await.unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_base_urls_path() {
        assert_eq!(
            endpoint("http://llm:11434", "/api/chat").unwrap().as_str(),
            "http://llm:11434/api/chat"
        );
        assert_eq!(
            endpoint("https://gw.example/llm", "/v1/chat/completions")
                .unwrap()
                .as_str(),
            "https://gw.example/llm/v1/chat/completions"
        );
        assert!(endpoint("not a url", "/api/chat").is_err());
    }
}
