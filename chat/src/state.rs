//! What every handler shares.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voicechat_common::auth::{TokenVerifier, VerifiesTokens};

use crate::config::ChatConfig;
use crate::history::HistoryStore;
use crate::llm::ChatModel;
use crate::metrics::ChatMetrics;
use crate::rate_limit::RateLimiter;
use crate::voice_client::VoiceClient;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ChatConfig>,
    pub verifier: Arc<TokenVerifier>,
    /// Redis in service (`from_config`); tests may use the in-memory store.
    pub history: Arc<dyn HistoryStore>,
    pub llm: Arc<dyn ChatModel>,
    /// One permit per answer being streamed (`LLM_MAX_CONCURRENT_REQUESTS`).
    pub llm_slots: Arc<Semaphore>,
    pub metrics: ChatMetrics,
    pub limiter: Arc<RateLimiter>,
    /// The voice service's client for Realtime sessions, built once: its
    /// TLS configuration and connection pool are shared by every session.
    pub voice: VoiceClient,
    /// Cancelled on SIGTERM: sockets finish their answer, then close with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket and streamed answer, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl VerifiesTokens for AppState {
    fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    fn refused(&self) {
        self.metrics.error("unauthorized");
    }
}
