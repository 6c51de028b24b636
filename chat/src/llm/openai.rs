//! OpenAI-compatible `POST /v1/chat/completions` with `stream: true`:
//! server-sent events `data: {"choices":[{"delta":{"content":"..."}}]}`,
//! ended by `data: [DONE]`.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::lines::Line;
use super::transport::ChatEndpoint;
use super::{ChatModel, LlmError, PromptMessage, TokenStream, endpoint, probe_get};
use crate::config::LlmSettings;

pub struct OpenAiChat {
    http: reqwest::Client,
    base_url: String,
    chat: ChatEndpoint,
    model: String,
    api_key: Option<String>,
}

impl OpenAiChat {
    pub fn new(http: reqwest::Client, settings: &LlmSettings) -> Result<Self, LlmError> {
        // Accept both `http://host:8000` and `http://host:8000/v1`.
        let base_url = settings.base_url.trim_end_matches("/v1").to_owned();
        let chat = ChatEndpoint::new(
            &http,
            endpoint(&base_url, "/v1/chat/completions")?,
            settings.api_key.as_deref(),
            settings.connect_timeout,
            settings.max_concurrent_requests,
        )?;
        Ok(Self {
            http,
            chat,
            base_url,
            model: settings.model.clone(),
            api_key: settings.api_key.clone(),
        })
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// One SSE line. OpenAI-style servers put each event in one `data:` line,
/// so events need no multi-line reassembly; comments and other fields are skipped.
pub(crate) fn parse_line(line: &str) -> Result<Line, LlmError> {
    let Some(data) = line.strip_prefix("data:") else {
        return Ok(Line::Skip);
    };
    let data = data.trim_start();
    if data == "[DONE]" {
        return Ok(Line::End);
    }
    let chunk: Chunk =
        serde_json::from_str(data).map_err(|e| LlmError::Protocol(format!("bad SSE data: {e}")))?;
    if let Some(error) = chunk.error {
        let message = error
            .get("message")
            .and_then(|m| m.as_str())
            .map_or_else(|| error.to_string(), str::to_owned);
        return Err(LlmError::Stream(message));
    }
    let content = chunk
        .choices
        .into_iter()
        .filter_map(|c| c.delta.and_then(|d| d.content))
        .collect::<String>();
    Ok(if content.is_empty() {
        Line::Skip
    } else {
        Line::Token(content)
    })
}

impl ChatModel for OpenAiChat {
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
        probe_get(self.request(self.http.get(format!("{}/v1/models", self.base_url)))).boxed()
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deltas_done_comments_and_errors() {
        assert_eq!(
            parse_line(r#"data: {"choices":[{"delta":{"content":"Hel"},"finish_reason":null}]}"#)
                .unwrap(),
            Line::Token("Hel".into())
        );
        assert_eq!(
            parse_line(r#"data: {"choices":[{"delta":{"role":"assistant"}}]}"#).unwrap(),
            Line::Skip
        );
        assert_eq!(parse_line("data: [DONE]").unwrap(), Line::End);
        assert_eq!(parse_line(": keep-alive").unwrap(), Line::Skip);
        assert_eq!(parse_line("").unwrap(), Line::Skip);
        assert!(
            matches!(parse_line(r#"data: {"error":{"message":"overloaded"}}"#), Err(LlmError::Stream(m)) if m == "overloaded")
        );
    }
}
