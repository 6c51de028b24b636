//! Wiring: state from configuration, model loading, the router, serving.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::cache::{CacheError, ResultCache};
use crate::config::VoiceConfig;
use crate::engines::Engines;
use crate::metrics::VoiceMetrics;
use crate::routes::{native, openai, ops, stream};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] voicechat_common::config::ConfigError),
    #[error("{0}")]
    Cache(#[from] CacheError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
}

impl AppState {
    pub fn from_config(config: VoiceConfig) -> Result<Self, StartError> {
        let verifier = config.auth.verifier()?;
        let cache = ResultCache::new(
            config.redis_url.as_deref(),
            config.cache_ttl,
            config.redis_timeout,
        )?;
        Ok(Self {
            inference: Arc::new(Semaphore::new(config.inference_concurrency)),
            config: Arc::new(config),
            verifier: Arc::new(verifier),
            engines: Arc::new(OnceLock::new()),
            cache: Arc::new(cache),
            metrics: VoiceMetrics::new()?,
        })
    }

    /// Loads the models on the blocking pool; the service is ready after.
    pub async fn load_engines(&self) {
        if self.engines.get().is_some() {
            return;
        }
        let config = self.config.clone();
        match tokio::task::spawn_blocking(move || Engines::load(&config)).await {
            Ok(engines) => {
                for e in engines.status() {
                    match &e.error {
                        None => {
                            tracing::info!(engine = e.name, kind = e.kind, provides = ?e.provides, "engine ready")
                        }
                        Some(err) => {
                            tracing::warn!(engine = e.name, kind = e.kind, error = %err, "engine unavailable")
                        }
                    }
                }
                let _ = self.engines.set(Arc::new(engines));
            }
            Err(e) => tracing::error!(error = %e, "loading engines panicked"),
        }
    }
}

pub fn router(state: AppState) -> Router {
    // Audio uploads may be large; everything else is small JSON.
    let body_limit = state.config.max_audio_bytes + 64 * 1024;
    let cors = state.config.cors.layer();
    let router = Router::new()
        .route("/api/v1/tts", post(native::tts))
        .route("/api/v1/stt", post(native::stt))
        .route("/api/v1/voices", get(native::voices))
        .route("/api/v1/engines", get(native::engines))
        .route("/ws/stt", get(stream::upgrade))
        .route("/v1/audio/speech", post(openai::speech))
        .route("/v1/audio/transcriptions", post(openai::transcriptions))
        .route("/v1/audio/voices", get(openai::voices))
        .route("/v1/models", get(openai::models))
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .route("/startupz", get(ops::startupz))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.http.clone(),
            voicechat_common::http_metrics::track,
        ));
    // Outermost, so that preflight requests are answered before auth.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
    .with_state(state)
}

/// Serves until `stop` resolves; requests in flight finish first.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let loader = state.clone();
    tokio::spawn(async move { loader.load_engines().await });
    let deadlines = state.config.deadlines;
    voicechat_common::serve::serve(listener, router(state), deadlines, stop)
        .await
        .map_err(StartError::Serve)
}
