//! Wiring: state from configuration, model loading, the router, serving.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use voicechat_common::service::{ServiceRouter, StartError};

use crate::cache::ResultCache;
use crate::config::VoiceConfig;
use crate::engines::Engines;
use crate::metrics::VoiceMetrics;
use crate::queue::InferenceQueue;
use crate::routes::{native, openai, openai_stt, ops, realtime, stream};
use crate::state::AppState;

impl AppState {
    pub fn from_config(config: VoiceConfig) -> Result<Self, StartError> {
        let verifier = config.auth.verifier()?;
        let cache = ResultCache::new(
            config.redis_url.as_deref(),
            config.cache_ttl,
            config.redis_timeout,
        )?;
        let metrics = VoiceMetrics::new()?;
        Ok(Self {
            inference: InferenceQueue::new(
                config.inference_concurrency,
                config.inference_queue_limit,
                metrics.inference_queue_depth.clone(),
                metrics.inference_running.clone(),
            ),
            config: Arc::new(config),
            verifier: Arc::new(verifier),
            engines: Arc::new(OnceLock::new()),
            cache: Arc::new(cache),
            metrics,
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

/// Response headers a browser client may read: the TTS metadata.
const EXPOSED_HEADERS: &[&str] = &["x-voice-engine", "x-voice-name", "x-sample-rate", "x-cache"];

pub fn router(state: AppState) -> Router {
    // Audio uploads may be large; everything else is small JSON.
    let body_limit = state.config.max_audio_bytes + 64 * 1024;
    let routes = Router::new()
        .route("/api/v1/tts", post(native::tts))
        .route("/api/v1/stt", post(native::stt))
        .route("/api/v1/voices", get(native::voices))
        .route("/api/v1/engines", get(native::engines))
        .route("/ws/stt", get(stream::upgrade))
        .route("/v1/realtime", get(realtime::upgrade))
        .route("/v1/audio/speech", post(openai::speech))
        .route("/v1/audio/transcriptions", post(openai_stt::transcriptions))
        .route("/v1/audio/translations", post(openai_stt::translations))
        .route("/v1/audio/voices", get(openai::voices))
        .route("/v1/models", get(openai::models))
        .route("/readyz", get(ops::readyz))
        .route("/startupz", get(ops::startupz))
        .route("/health", get(ops::health));
    let config = state.config.clone();
    ServiceRouter::new(
        routes,
        &state.metrics.registry,
        &state.metrics.http,
        body_limit,
    )
    .finish(&config.cors, EXPOSED_HEADERS, state)
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
