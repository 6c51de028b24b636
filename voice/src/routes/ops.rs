//! `/startupz`, `/readyz` and `/health` (`/livez` and `/metrics` are the
//! service shell's).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use voicechat_common::health::{DependencyHealth, HealthReport};

use crate::state::AppState;

/// 503 while the models are loading, 200 once loading has finished,
/// whatever it found: the startup probe, so that a pod whose models are
/// missing stays alive and unready (and says why in `/readyz`) instead of
/// being restarted in a loop.
pub async fn startupz(State(state): State<AppState>) -> Response {
    if state.engines.get().is_some() {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading models").into_response()
    }
}

/// 503 until the models are loaded, while a kind of engine that was
/// asked for has none loaded (the body says which files are missing), and
/// while the inference queue is full (the Service then sends new work to
/// other pods); a Redis outage never fails readiness.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.engines.get() {
        None => (StatusCode::SERVICE_UNAVAILABLE, "loading models").into_response(),
        Some(engines) => match engines
            .not_ready_reason()
            .or_else(|| state.inference.full_reason())
        {
            None => "ok".into_response(),
            Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        },
    }
}

/// Redis plus one entry per engine (`engine:piper`, ...): an engine that
/// failed to load is `disconnected` and makes the service `degraded`.
pub async fn health(State(state): State<AppState>) -> Json<HealthReport> {
    let mut dependencies = BTreeMap::new();
    let redis = match state.cache.ping().await {
        None => DependencyHealth::disabled(),
        Some(Ok(latency)) => DependencyHealth::connected(latency),
        Some(Err(e)) => DependencyHealth::disconnected(Duration::ZERO, e.to_string()),
    };
    dependencies.insert("redis".to_owned(), redis);
    match state.engines.get() {
        None => {
            dependencies.insert(
                "models".to_owned(),
                DependencyHealth::disconnected(Duration::ZERO, "loading"),
            );
        }
        Some(engines) => {
            for e in engines.status() {
                let health = match e.error {
                    None => DependencyHealth::connected(Duration::ZERO),
                    Some(err) => DependencyHealth::disconnected(Duration::ZERO, err),
                };
                dependencies.insert(format!("engine:{}", e.name), health);
            }
        }
    }
    Json(HealthReport::new(
        "voice",
        env!("CARGO_PKG_VERSION"),
        dependencies,
        0,
    ))
}
