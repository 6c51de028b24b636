//! `/readyz` and `/health` (`/livez` and `/metrics` are the service shell's).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use voicechat_common::health::{DependencyHealth, HealthReport};

use crate::state::AppState;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Ready unless shutting down: a Redis or LLM outage degrades the service
/// (reported by `/health`) but must not take it out of the load balancer.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else {
        "ok".into_response()
    }
}

pub async fn health(State(state): State<AppState>) -> Json<HealthReport> {
    let (redis, llm) = tokio::join!(redis_health(&state), llm_health(&state));
    let mut dependencies = BTreeMap::new();
    dependencies.insert("redis".to_owned(), redis);
    dependencies.insert("llm".to_owned(), llm);
    Json(HealthReport::new(
        "chat",
        env!("CARGO_PKG_VERSION"),
        dependencies,
        state.metrics.ws_active.get(),
    ))
}

async fn redis_health(state: &AppState) -> DependencyHealth {
    let started = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, state.history.ping()).await {
        Ok(Ok(latency)) => DependencyHealth::connected(latency),
        Ok(Err(e)) => DependencyHealth::disconnected(started.elapsed(), e.to_string()),
        Err(_) => DependencyHealth::disconnected(started.elapsed(), "timed out"),
    }
}

async fn llm_health(state: &AppState) -> DependencyHealth {
    let started = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, state.llm.probe()).await {
        Ok(Ok(())) => DependencyHealth::connected(started.elapsed()),
        Ok(Err(e)) => DependencyHealth::disconnected(started.elapsed(), e.to_string()),
        Err(_) => DependencyHealth::disconnected(started.elapsed(), "timed out"),
    }
}
