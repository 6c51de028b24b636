//! The chat service's Prometheus metrics (`GET /metrics`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use voicechat_common::http_metrics::HttpMetrics;

#[derive(Clone)]
pub struct ChatMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    pub ws_active: IntGauge,
    pub ws_opened: IntCounter,
    /// `direction`: `in` (user messages accepted) or `out` (answers completed).
    pub messages: IntCounterVec,
    pub llm_duration: Histogram,
    pub llm_first_token: Histogram,
    pub llm_tokens: IntCounter,
    /// Turns waiting for a free LLM slot (`LLM_MAX_CONCURRENT_REQUESTS`).
    pub llm_waiting: IntGauge,
    /// `kind`: the failure's stable code (the one clients get).
    pub errors: IntCounterVec,
    /// Open Realtime API sessions (`/v1/realtime`).
    pub realtime_sessions: IntGauge,
    /// Speech-to-text of a committed turn, through the voice service.
    pub realtime_stt: Histogram,
    /// From the end of a turn (commit) to the answer's first audio.
    pub realtime_first_audio: Histogram,
    /// Transcriptions started at a pause, by `outcome`: `adopted` (the turn
    /// ended there) or `discarded` (the user went on).
    pub realtime_speculations: IntCounterVec,
}

impl ChatMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("chat".into()), None)?;
        let http = HttpMetrics::register(&registry)?;
        let ws_active = IntGauge::new("ws_connections_active", "Open WebSocket connections")?;
        let ws_opened = IntCounter::new("ws_connections_total", "WebSocket connections accepted")?;
        let messages = IntCounterVec::new(
            Opts::new("messages_total", "Chat messages by direction"),
            &["direction"],
        )?;
        let seconds = vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
        let llm_duration = Histogram::with_opts(
            HistogramOpts::new(
                "llm_answer_seconds",
                "Time from request to the last answer token",
            )
            .buckets(seconds.clone()),
        )?;
        let llm_first_token = Histogram::with_opts(
            HistogramOpts::new(
                "llm_first_token_seconds",
                "Time from request to the first answer token",
            )
            .buckets(seconds),
        )?;
        let llm_tokens = IntCounter::new("llm_tokens_total", "Answer tokens streamed")?;
        let llm_waiting = IntGauge::new(
            "llm_requests_waiting",
            "Answers waiting for a free LLM request slot",
        )?;
        let errors = IntCounterVec::new(Opts::new("errors_total", "Errors by kind"), &["kind"])?;
        let realtime_sessions =
            IntGauge::new("realtime_sessions_active", "Open Realtime API sessions")?;
        let fine = vec![
            0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
        ];
        let realtime_stt = Histogram::with_opts(
            HistogramOpts::new(
                "realtime_transcription_seconds",
                "Speech-to-text of a committed realtime turn",
            )
            .buckets(fine.clone()),
        )?;
        let realtime_first_audio = Histogram::with_opts(
            HistogramOpts::new(
                "realtime_first_audio_seconds",
                "From the end of a realtime turn to the answer's first audio",
            )
            .buckets(fine),
        )?;
        registry.register(Box::new(ws_active.clone()))?;
        registry.register(Box::new(ws_opened.clone()))?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(llm_duration.clone()))?;
        registry.register(Box::new(llm_first_token.clone()))?;
        registry.register(Box::new(llm_tokens.clone()))?;
        registry.register(Box::new(llm_waiting.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(realtime_sessions.clone()))?;
        registry.register(Box::new(realtime_stt.clone()))?;
        let realtime_speculations = IntCounterVec::new(
            Opts::new(
                "realtime_speculative_transcriptions_total",
                "Transcriptions started at a pause in a realtime turn, by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(realtime_first_audio.clone()))?;
        registry.register(Box::new(realtime_speculations.clone()))?;
        Ok(Self {
            registry,
            http,
            ws_active,
            ws_opened,
            messages,
            llm_duration,
            llm_first_token,
            llm_tokens,
            llm_waiting,
            errors,
            realtime_sessions,
            realtime_stt,
            realtime_first_audio,
            realtime_speculations,
        })
    }

    pub fn error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }
}

/// Counts one thing in a gauge for as long as it lives (an open socket, an
/// answer waiting for a slot), so a task that ends early or a dropped
/// (cancelled) future is uncounted too.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn inc(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_guard_counts_while_it_lives() {
        let gauge = IntGauge::new("g", "test gauge").unwrap();
        let first = GaugeGuard::inc(&gauge);
        let second = GaugeGuard::inc(&gauge);
        assert_eq!(gauge.get(), 2);
        drop(first);
        assert_eq!(gauge.get(), 1);
        drop(second);
        assert_eq!(gauge.get(), 0);
    }
}
