//! The voice service's Prometheus metrics.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use voicechat_common::http_metrics::HttpMetrics;

#[derive(Clone)]
pub struct VoiceMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    /// Wall time of engine calls, by `engine` and `kind` (tts/stt).
    pub engine_seconds: HistogramVec,
    /// Processing time divided by audio duration (below 1: faster than real time).
    pub realtime_factor: HistogramVec,
    /// Engine failures that moved a request to the next engine, by `kind` and `engine`.
    pub fallbacks: IntCounterVec,
    /// Cache lookups by `kind` and `result` (hit/miss/error).
    pub cache: IntCounterVec,
    /// Streamed syntheses by `outcome`: `finished`, `failed`, or
    /// `client_left` (stopped early: the client went away).
    pub tts_streams: IntCounterVec,
    /// Engine calls waiting for their turn (`VOICE_INFERENCE_CONCURRENCY`).
    pub inference_queue_depth: IntGauge,
    /// Engine calls running now (of `VOICE_INFERENCE_CONCURRENCY`).
    pub inference_running: IntGauge,
    /// Wyoming connections open now.
    pub wyoming_connections: IntGauge,
    /// Wyoming events received, by `type` (the protocol's own, else `other`).
    pub wyoming_events: IntCounterVec,
    /// Wyoming connections ended, by `reason`: `client`, `idle`,
    /// `shutdown`, `too_large`, `malformed`, `truncated`, `refused`, `io`,
    /// `too_many_connections`.
    pub wyoming_closed: IntCounterVec,
}

impl VoiceMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("voice".into()), None)?;
        let http = HttpMetrics::register(&registry)?;
        let engine_seconds = HistogramVec::new(
            HistogramOpts::new("engine_seconds", "Engine call duration").buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["engine", "kind"],
        )?;
        let realtime_factor = HistogramVec::new(
            HistogramOpts::new("realtime_factor", "Processing seconds per audio second")
                .buckets(vec![0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]),
            &["engine", "kind"],
        )?;
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "fallbacks_total",
                "Requests moved to the next engine after a failure",
            ),
            &["kind", "engine"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new("cache_total", "Cache lookups"),
            &["kind", "result"],
        )?;
        let tts_streams = IntCounterVec::new(
            Opts::new("tts_streams_total", "Streamed syntheses by how they ended"),
            &["outcome"],
        )?;
        let inference_queue_depth = IntGauge::new(
            "inference_queue_depth",
            "Engine calls waiting for their turn",
        )?;
        let inference_running = IntGauge::new("inference_running", "Engine calls running now")?;
        let wyoming_connections =
            IntGauge::new("wyoming_connections", "Wyoming connections open now")?;
        let wyoming_events = IntCounterVec::new(
            Opts::new("wyoming_events_total", "Wyoming events received"),
            &["type"],
        )?;
        let wyoming_closed = IntCounterVec::new(
            Opts::new(
                "wyoming_closed_total",
                "Wyoming connections ended, by reason",
            ),
            &["reason"],
        )?;
        for c in [
            Box::new(engine_seconds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(realtime_factor.clone()),
            Box::new(fallbacks.clone()),
            Box::new(cache.clone()),
            Box::new(tts_streams.clone()),
            Box::new(inference_queue_depth.clone()),
            Box::new(inference_running.clone()),
            Box::new(wyoming_connections.clone()),
            Box::new(wyoming_events.clone()),
            Box::new(wyoming_closed.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(Self {
            registry,
            http,
            engine_seconds,
            realtime_factor,
            fallbacks,
            cache,
            tts_streams,
            inference_queue_depth,
            inference_running,
            wyoming_connections,
            wyoming_events,
            wyoming_closed,
        })
    }
}
