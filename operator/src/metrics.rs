//! The operator's Prometheus metrics.

use std::time::Duration;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct OperatorMetrics {
    pub registry: Registry,
    reconciles: IntCounterVec,
    duration: HistogramVec,
    /// 1 while this replica leads (or runs without leader election).
    pub leader: IntGauge,
    /// Times this replica became the leader.
    pub leader_transitions: IntCounter,
}

impl OperatorMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("voicechat_operator".into()), None)?;
        let reconciles = IntCounterVec::new(
            Opts::new(
                "reconciles_total",
                "Reconciles by result (ok, or the error category)",
            ),
            &["result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("reconcile_seconds", "Reconcile duration")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["result"],
        )?;
        let leader = IntGauge::new("leader", "1 while this replica leads, 0 on standby")?;
        let leader_transitions = IntCounter::new(
            "leader_transitions_total",
            "Times this replica became the leader",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(leader_transitions.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            duration,
            leader,
            leader_transitions,
        })
    }

    pub fn observe(&self, elapsed: Duration, error: Option<&str>) {
        let result = error.unwrap_or("ok");
        self.reconciles.with_label_values(&[result]).inc();
        self.duration
            .with_label_values(&[result])
            .observe(elapsed.as_secs_f64());
    }
}
