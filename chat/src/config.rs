//! The chat service's settings: one typed struct, read once at start-up.
//! Every variable is listed with its default in docs/chat.md.

use std::net::SocketAddr;
use std::time::Duration;

use voicechat_common::auth::AuthSettings;
use voicechat_common::config::{self, ConfigError};
use voicechat_common::serve::RequestDeadlines;

/// Which LLM protocol `LLM_URL` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmBackend {
    /// Ollama's `/api/chat`, streamed NDJSON.
    Ollama,
    /// `/v1/chat/completions`, streamed SSE (vLLM, llama.cpp server, OpenAI...).
    OpenAi,
}

#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub backend: LlmBackend,
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub system_prompt: Option<String>,
    /// How many past messages are sent with each request.
    pub context_messages: usize,
    pub connect_timeout: Duration,
    /// Longest wait for the next chunk of a streamed answer.
    pub idle_timeout: Duration,
    /// Longest a whole answer may take.
    pub total_timeout: Duration,
    /// Answers streamed from the LLM at once; further turns wait their turn
    /// (within `total_timeout`). Bounds the service's sockets and memory under
    /// a burst, and keeps the LLM server's own queue short.
    pub max_concurrent_requests: usize,
}

#[derive(Debug, Clone)]
pub struct HistorySettings {
    pub redis_url: String,
    pub max_messages: usize,
    pub ttl: Duration,
    /// Bound on each Redis call, so an unreachable Redis degrades quickly
    /// instead of stalling a conversation.
    pub op_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub max_message_chars: usize,
    pub max_frame_bytes: usize,
    pub messages_per_minute: u32,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    /// On SIGTERM, how long a running answer may still finish.
    pub shutdown_drain: Duration,
}

/// The Realtime API (`/v1/realtime`): speech goes through the voice service.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// The voice service (`VOICE_URL`); without it sessions are text only.
    pub voice_url: Option<String>,
    /// Bound on a speech-to-text request, and on the wait for the next
    /// chunk of streamed speech.
    pub voice_timeout: Duration,
    /// The most audio the input buffer holds before a commit.
    pub max_buffer_secs: u32,
    /// The voice answers are spoken with when the session names none
    /// (an OpenAI name such as `alloy` or an installed voice).
    pub default_voice: String,
}

#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub listen: SocketAddr,
    pub auth: AuthSettings,
    pub llm: LlmSettings,
    pub history: HistorySettings,
    pub limits: LimitSettings,
    /// Where the web client's static files are served from (`/`), if anywhere.
    pub web_dir: Option<String>,
    /// Browser origins allowed to call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors: voicechat_common::cors::AllowedOrigins,
    /// How long a client may take to send a request's headers and body.
    pub deadlines: RequestDeadlines,
    pub realtime: RealtimeSettings,
}

impl ChatConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let listen = voicechat_common::service::listen_addr("CHAT_BIND", "CHAT_PORT", 8007)?;
        let backend = match config::env_string("LLM_BACKEND").as_deref() {
            None | Some("ollama") => LlmBackend::Ollama,
            Some("openai") => LlmBackend::OpenAi,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LLM_BACKEND".into(),
                    message: format!("{other:?} is not ollama or openai"),
                });
            }
        };
        let llm = LlmSettings {
            backend,
            base_url: llm_url(backend)?,
            model: config::env_string("LLM_MODEL")
                .unwrap_or_else(|| "smollm2:135m-instruct-q4_1".into()),
            api_key: config::secret("LLM_API_KEY")?,
            system_prompt: config::env_string("LLM_SYSTEM_PROMPT")
                .or_else(|| Some("You are a helpful, concise voice assistant.".into())),
            context_messages: config::env_parse("LLM_CONTEXT_MESSAGES", 20usize)?,
            connect_timeout: secs("LLM_CONNECT_TIMEOUT_SECS", 5)?,
            idle_timeout: secs("LLM_IDLE_TIMEOUT_SECS", 60)?,
            total_timeout: secs("LLM_TIMEOUT_SECS", 300)?,
            max_concurrent_requests: positive("LLM_MAX_CONCURRENT_REQUESTS", 256)?,
        };
        let history = HistorySettings {
            redis_url: config::secret("REDIS_URL")?
                .unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            max_messages: positive("HISTORY_MAX_MESSAGES", 200)?,
            ttl: secs("HISTORY_TTL_SECS", 7 * 24 * 3600)?,
            op_timeout: Duration::from_millis(config::env_parse("REDIS_TIMEOUT_MS", 1000u64)?),
        };
        let limits = LimitSettings {
            max_message_chars: positive("CHAT_MAX_MESSAGE_CHARS", 4000)?,
            max_frame_bytes: positive("CHAT_MAX_FRAME_BYTES", 64 * 1024)?,
            messages_per_minute: config::env_parse("CHAT_RATE_LIMIT_PER_MINUTE", 30u32)?,
            ping_interval: secs("WS_PING_INTERVAL_SECS", 20)?,
            idle_timeout: secs("WS_IDLE_TIMEOUT_SECS", 60)?,
            shutdown_drain: secs("SHUTDOWN_DRAIN_SECS", 10)?,
        };
        Ok(Self {
            cors: voicechat_common::cors::AllowedOrigins::from_env()?,
            listen,
            auth: AuthSettings::from_env()?,
            llm,
            history,
            limits,
            web_dir: config::env_string("CHAT_WEB_DIR"),
            // REST bodies are small JSON documents.
            deadlines: RequestDeadlines::from_env(Duration::from_secs(30))?,
            realtime: RealtimeSettings {
                voice_url: config::env_string("VOICE_URL")
                    .map(|url| config::http_url("VOICE_URL", &url))
                    .transpose()?,
                voice_timeout: secs("VOICE_TIMEOUT_SECS", 30)?,
                max_buffer_secs: u32::try_from(positive("REALTIME_MAX_BUFFER_SECS", 120)?)
                    .unwrap_or(u32::MAX),
                default_voice: config::env_string("REALTIME_VOICE")
                    .unwrap_or_else(|| "alloy".into()),
            },
        })
    }
}

/// `LLM_URL`; for Ollama also the seed system's `OLLAMA_BASE_URL`.
fn llm_url(backend: LlmBackend) -> Result<String, ConfigError> {
    let found = match backend {
        LlmBackend::Ollama => config::env_string_or_seed("LLM_URL", "OLLAMA_BASE_URL"),
        LlmBackend::OpenAi => config::env_string("LLM_URL").map(|url| (url, "LLM_URL".into())),
    };
    match found {
        Some((raw, variable)) => config::http_url(&variable, &raw),
        None => Ok(match backend {
            LlmBackend::Ollama => "http://127.0.0.1:11434",
            LlmBackend::OpenAi => "http://127.0.0.1:8000",
        }
        .into()),
    }
}

fn secs(name: &str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(config::env_parse(name, default)?))
}

fn positive(name: &str, default: usize) -> Result<usize, ConfigError> {
    let v = config::env_parse(name, default)?;
    if v == 0 {
        return Err(ConfigError::Invalid {
            name: name.into(),
            message: "must be greater than 0".into(),
        });
    }
    Ok(v)
}
