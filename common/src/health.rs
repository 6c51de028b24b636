//! The `/health` document of the service contract.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyState {
    Connected,
    Disconnected,
    Disabled,
}

/// One dependency's state as seen by the last probe.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyHealth {
    pub status: DependencyState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DependencyHealth {
    pub fn connected(latency: Duration) -> Self {
        Self {
            status: DependencyState::Connected,
            latency_ms: Some(round_ms(latency)),
            error: None,
        }
    }

    pub fn disconnected(latency: Duration, error: impl Into<String>) -> Self {
        Self {
            status: DependencyState::Disconnected,
            latency_ms: Some(round_ms(latency)),
            error: Some(error.into()),
        }
    }

    pub fn disabled() -> Self {
        Self {
            status: DependencyState::Disabled,
            latency_ms: None,
            error: None,
        }
    }
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// The whole `/health` body.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub service: &'static str,
    pub version: &'static str,
    pub dependencies: BTreeMap<String, DependencyHealth>,
    pub active_connections: i64,
    pub timestamp: String,
}

impl HealthReport {
    /// Degraded as soon as one enabled dependency is disconnected: the
    /// service still serves, but not everything it promises.
    pub fn new(
        service: &'static str,
        version: &'static str,
        dependencies: BTreeMap<String, DependencyHealth>,
        active_connections: i64,
    ) -> Self {
        let degraded = dependencies
            .values()
            .any(|d| d.status == DependencyState::Disconnected);
        Self {
            status: if degraded {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            },
            service,
            version,
            dependencies,
            active_connections,
            timestamp: now_rfc3339(),
        }
    }
}

/// The current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_disconnected_dependency_degrades() {
        let mut deps = BTreeMap::new();
        deps.insert(
            "redis".to_owned(),
            DependencyHealth::connected(Duration::from_millis(1)),
        );
        deps.insert("llm".to_owned(), DependencyHealth::disabled());
        assert_eq!(
            HealthReport::new("s", "v", deps.clone(), 0).status,
            HealthStatus::Healthy
        );
        deps.insert(
            "llm".to_owned(),
            DependencyHealth::disconnected(Duration::ZERO, "refused"),
        );
        let report = HealthReport::new("s", "v", deps, 3);
        assert_eq!(report.status, HealthStatus::Degraded);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["dependencies"]["llm"]["status"], "disconnected");
        assert_eq!(json["active_connections"], 3);
    }
}
