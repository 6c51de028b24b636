//! The voice service as the Realtime API uses it: speech-to-text of a
//! committed turn (`POST /api/v1/stt`, a WAV) and speech of each answer
//! sentence as it is made (`POST /v1/audio/speech`, 24 kHz PCM streamed).
//! Calls carry the caller's own token: the voice service checks it as it
//! checks any client's.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("the voice service is not configured (VOICE_URL)")]
    NotConfigured,
    #[error("the voice service at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the voice service answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the voice service did not answer within {0:?}")]
    Timeout(Duration),
}

impl VoiceError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "voice_not_configured",
            Self::Unreachable { .. } | Self::Timeout(_) => "voice_unavailable",
            Self::Refused { .. } => "voice_refused",
        }
    }
}

/// Speech as it comes: 16-bit PCM at 24 kHz.
pub type SpeechStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, VoiceError>> + Send>>;

#[derive(Clone)]
pub struct VoiceClient {
    http: reqwest::Client,
    base: Option<String>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Transcribed {
    text: String,
    #[serde(default)]
    language: Option<String>,
}

/// What was heard.
#[derive(Debug, Clone)]
pub struct Heard {
    pub text: String,
    pub language: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

impl VoiceClient {
    pub fn new(base: Option<String>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base,
            timeout,
        })
    }

    pub fn configured(&self) -> bool {
        self.base.is_some()
    }

    fn url(&self, path: &str) -> Result<String, VoiceError> {
        let base = self.base.as_deref().ok_or(VoiceError::NotConfigured)?;
        Ok(format!("{base}{path}"))
    }

    fn unreachable(&self, e: &reqwest::Error) -> VoiceError {
        if e.is_timeout() {
            return VoiceError::Timeout(self.timeout);
        }
        VoiceError::Unreachable {
            url: self.base.clone().unwrap_or_default(),
            reason: voicechat_common::error_text::with_causes(e),
        }
    }

    async fn refused(response: reqwest::Response) -> VoiceError {
        let status = response.status().as_u16();
        let message = match response.json::<ErrorBody>().await {
            Ok(body) => body.error.message,
            Err(_) => "no error message".into(),
        };
        VoiceError::Refused { status, message }
    }

    /// The text of `wav`, in `language` if given.
    pub async fn transcribe(
        &self,
        token: &str,
        wav: Vec<u8>,
        language: Option<&str>,
    ) -> Result<Heard, VoiceError> {
        // The session checked the language: letters and '-' only.
        let path = match language {
            Some(language) => format!("/api/v1/stt?language={language}"),
            None => "/api/v1/stt".to_owned(),
        };
        let request = self
            .http
            .post(self.url(&path)?)
            .bearer_auth(token)
            .header("content-type", "audio/wav")
            .timeout(self.timeout)
            .body(wav);
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            return Err(Self::refused(response).await);
        }
        let heard: Transcribed = response.json().await.map_err(|e| self.unreachable(&e))?;
        Ok(Heard {
            text: heard.text,
            language: heard.language,
        })
    }

    /// `text` spoken with `voice`, as 16-bit PCM at 24 kHz in pieces as
    /// the voice service makes them. Dropping the stream stops the
    /// synthesis (the voice service sees its client leave).
    pub async fn speak(
        &self,
        token: &str,
        text: &str,
        voice: &str,
        speed: f32,
    ) -> Result<SpeechStream, VoiceError> {
        let body = serde_json::json!({
            "model": "tts-1",
            "input": text,
            "voice": voice,
            "speed": speed,
            "response_format": "pcm",
            "stream_format": "audio",
        });
        let send = self
            .http
            .post(self.url("/v1/audio/speech")?)
            .bearer_auth(token)
            .json(&body)
            .send();
        let response = tokio::time::timeout(self.timeout, send)
            .await
            .map_err(|_| VoiceError::Timeout(self.timeout))?
            .map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            return Err(Self::refused(response).await);
        }
        let timeout = self.timeout;
        let base = self.base.clone().unwrap_or_default();
        let chunks = response.bytes_stream();
        Ok(Box::pin(futures_util::stream::unfold(
            (chunks, timeout, base),
            |(mut chunks, timeout, base)| async move {
                let next = match tokio::time::timeout(timeout, chunks.next()).await {
                    Err(_) => Some(Err(VoiceError::Timeout(timeout))),
                    Ok(None) => None,
                    Ok(Some(Ok(bytes))) => Some(Ok(bytes)),
                    Ok(Some(Err(e))) => Some(Err(VoiceError::Unreachable {
                        url: base.clone(),
                        reason: voicechat_common::error_text::with_causes(&e),
                    })),
                };
                next.map(|item| (item, (chunks, timeout, base)))
            },
        )))
    }
}
