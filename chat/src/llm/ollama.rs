//! Ollama's `POST /api/chat` with `stream: true`: one JSON object per line,
//! `{"message":{"content":"..."},"done":false}`, then `{"done":true,...}`.
//! An `{"error":"..."}` line can arrive mid-stream after a 200 status.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::lines::Line;
use super::transport::ChatEndpoint;
use super::{ChatModel, LlmError, PromptMessage, TokenStream, endpoint, probe_get};
use crate::config::LlmSettings;

pub struct OllamaChat {
    http: reqwest::Client,
    base_url: String,
    chat: ChatEndpoint,
    model: String,
}

impl OllamaChat {
    pub fn new(http: reqwest::Client, settings: &LlmSettings) -> Result<Self, LlmError> {
        let chat = ChatEndpoint::new(
            &http,
            endpoint(&settings.base_url, "/api/chat")?,
            None,
            settings.connect_timeout,
            settings.max_concurrent_requests,
        )?;
        Ok(Self {
            http,
            chat,
            base_url: settings.base_url.clone(),
            model: settings.model.clone(),
        })
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    message: Option<ChunkMessage>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ChunkMessage {
    #[serde(default)]
    content: String,
}

/// One NDJSON line → a token, nothing (blank line, empty or final chunk), or an error.
pub(crate) fn parse_line(line: &str) -> Result<Line, LlmError> {
    if line.trim().is_empty() {
        return Ok(Line::Skip);
    }
    let chunk: Chunk = serde_json::from_str(line)
        .map_err(|e| LlmError::Protocol(format!("bad NDJSON line: {e}")))?;
    if let Some(error) = chunk.error {
        return Err(LlmError::Stream(error));
    }
    Ok(match chunk.message {
        Some(m) if !m.content.is_empty() => Line::Token(m.content),
        _ => Line::Skip,
    })
}

impl ChatModel for OllamaChat {
    fn stream_chat(
        &self,
        messages: Vec<PromptMessage>,
    ) -> BoxFuture<'_, Result<TokenStream, LlmError>> {
        async move {
            self.chat
                .post_chat(&self.model, &messages, parse_line)
                .await
        }
        .boxed()
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>> {
        probe_get(self.http.get(format!("{}/api/version", self.base_url))).boxed()
    }

    fn name(&self) -> &'static str {
        "ollama"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_final_chunks_and_errors() {
        let t = parse_line(
            r#"{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}"#,
        );
        assert_eq!(t.unwrap(), Line::Token("Hi".into()));
        let done = parse_line(
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"eval_count":3}"#,
        );
        assert_eq!(done.unwrap(), Line::Skip);
        assert!(
            matches!(parse_line(r#"{"error":"model runner crashed"}"#), Err(LlmError::Stream(m)) if m == "model runner crashed")
        );
        assert!(matches!(
            parse_line("{not json"),
            Err(LlmError::Protocol(_))
        ));
    }
}
