//! Wiring: state from configuration, the router, and serving with a
//! graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ChatConfig;
use voicechat_common::service::{ServiceRouter, StartError};

use crate::history::RedisHistory;
use crate::llm;
use crate::metrics::ChatMetrics;
use crate::rate_limit::RateLimiter;
use crate::state::AppState;
use crate::voice_client::VoiceClient;
use crate::{health, realtime, rest, ws};

impl AppState {
    pub fn from_config(config: ChatConfig) -> Result<Self, StartError> {
        let verifier = config.auth.verifier()?;
        let history = RedisHistory::new(config.history.clone())?;
        let llm = llm::from_settings(&config.llm).map_err(|e| StartError::part("LLM client", e))?;
        let llm_slots = Arc::new(Semaphore::new(config.llm.max_concurrent_requests));
        let voice = VoiceClient::new(
            config.realtime.voice_url.clone(),
            config.realtime.voice_timeout,
        )
        .map_err(|e| StartError::part("voice client", e))?;
        Ok(Self {
            voice,
            limiter: Arc::new(RateLimiter::new(config.limits.messages_per_minute)),
            config: Arc::new(config),
            verifier: Arc::new(verifier),
            history: Arc::new(history),
            llm: Arc::from(llm),
            llm_slots,
            metrics: ChatMetrics::new()?,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }
}

/// REST bodies are small JSON documents; the chat message limit applies on top.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/ws/chat", get(ws::upgrade))
        .route("/v1/realtime", get(realtime::upgrade))
        .route("/api/v1/chat", post(rest::chat_sse))
        .route("/api/v1/sessions", get(rest::list_sessions))
        .route(
            "/api/v1/sessions/{session_id}",
            delete(rest::delete_session),
        )
        .route(
            "/api/v1/sessions/{session_id}/messages",
            get(rest::session_messages),
        )
        .route("/readyz", get(health::readyz))
        .route("/health", get(health::health));
    let config = state.config.clone();
    ServiceRouter::new(
        api,
        &state.metrics.registry,
        &state.metrics.http,
        MAX_BODY_BYTES,
    )
    .static_files(config.web_dir.as_deref())
    .finish(&config.cors, &[], state)
}

/// Serves until `stop` resolves, then: readiness fails, new connections
/// are refused, sockets finish their answers (up to the drain time) and
/// close with 1001, and this returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let shutdown = state.shutdown.clone();
    let tasks = state.tasks.clone();
    let drain = state.config.limits.shutdown_drain;
    let deadlines = state.config.deadlines;
    let app = router(state);
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        stop.await;
        trigger.cancel();
    });
    voicechat_common::serve::serve(listener, app, deadlines, async move {
        shutdown.cancelled().await;
    })
    .await
    .map_err(StartError::Serve)?;
    tasks.close();
    // Upgraded sockets are not tracked by the HTTP server: wait for them.
    if tokio::time::timeout(drain + Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within the drain time");
    }
    Ok(())
}
