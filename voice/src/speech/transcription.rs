//! Speech to text: checks, the cache, the STT chain on the blocking pool,
//! and the plan of a streaming recognition (the same checks, no audio yet).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{VoiceError, engines, run_blocking};
use crate::audio::{self, STT_SAMPLE_RATE};
use crate::cache;
use crate::engine_name::EngineName;
use crate::engines::Engines;
use crate::state::AppState;
use crate::stt::request::DecodingRequest;
use crate::stt::{SegmentSink, SttPlan, SttRequest};

pub struct TranscribeRequest {
    pub audio: bytes::Bytes,
    pub language: Option<String>,
    pub engine: Option<String>,
    pub grammar: Option<Vec<String>>,
    pub decoding: DecodingRequest,
}

impl TranscribeRequest {
    /// Audio with every option left to the service.
    pub fn audio(audio: bytes::Bytes) -> Self {
        Self {
            audio,
            language: None,
            engine: None,
            grammar: None,
            decoding: DecodingRequest::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcription {
    pub text: String,
    pub language: String,
    pub engine: String,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<crate::stt::Segment>,
    /// Word timings, when they were asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<crate::stt::Word>,
    #[serde(default)]
    pub cached: bool,
}

pub async fn transcribe(
    state: &AppState,
    request: TranscribeRequest,
) -> Result<Transcription, VoiceError> {
    prepare(state, request).await?.run(None).await
}

/// A transcription checked, decoded and routed, not yet recognized: every
/// refusal comes before it, so a streamed answer can start once it exists.
pub struct PreparedTranscription {
    state: AppState,
    key: String,
    work: Work,
}

enum Work {
    Cached(Transcription),
    Recognize {
        engines: Arc<Engines>,
        plan: SttPlan,
        decoded: audio::Audio,
        request: SttRequest,
    },
}

/// Checks the request, decodes the audio and plans its recognition.
pub async fn prepare(
    state: &AppState,
    request: TranscribeRequest,
) -> Result<PreparedTranscription, VoiceError> {
    let limit = state.config.max_audio_bytes;
    if request.audio.len() > limit {
        return Err(VoiceError::AudioTooLarge {
            bytes: request.audio.len(),
            limit,
        });
    }
    let stt = SttRequest::new(request.language, request.engine, request.grammar)?
        .with_decoding(request.decoding)?;
    // Decoding MP3, AAC or Opus is CPU work: off the async threads.
    let (bytes, max_secs) = (request.audio.clone(), state.config.max_audio_secs);
    let decoded = tokio::task::spawn_blocking(move || audio::decode(&bytes, max_secs))
        .await
        .map_err(|e| VoiceError::Internal(format!("decoding task failed: {e}")))??;
    let engines = engines(state)?;
    let plan = engines.stt.plan(&stt, decoded.duration_secs())?;
    let key = cache::key("stt", &[&request.audio, stt.cache_parts().as_bytes()]);
    let work = match cached_transcription(state, &key).await {
        Some(hit) => Work::Cached(hit),
        None => Work::Recognize {
            engines,
            plan,
            decoded,
            request: stt,
        },
    };
    Ok(PreparedTranscription {
        state: state.clone(),
        key,
        work,
    })
}

impl PreparedTranscription {
    /// Whether the answer is already known (nothing will be decoded).
    pub fn is_cached(&self) -> bool {
        matches!(self.work, Work::Cached(_))
    }

    /// Recognizes the audio; `on_segment` hears each segment as it is
    /// decoded (engines that decode all at once report none).
    pub async fn run(self, on_segment: Option<SegmentSink>) -> Result<Transcription, VoiceError> {
        let Self { state, key, work } = self;
        let (engines, plan, decoded, mut stt) = match work {
            Work::Cached(hit) => return Ok(hit),
            Work::Recognize {
                engines,
                plan,
                decoded,
                request,
            } => (engines, plan, decoded, request),
        };
        stt.options.on_segment = on_segment;
        let duration = decoded.duration_secs();
        let started = Instant::now();
        let recognized = run_blocking(&state, move || {
            let samples = audio::resample(&decoded, STT_SAMPLE_RATE)?;
            Ok::<_, VoiceError>(engines.stt.transcribe(&plan, &samples, &stt.options))
        })
        .await??;
        let m = &state.metrics;
        let failed = match &recognized {
            Ok(r) => &r.failed,
            Err(e) => &e.failed,
        };
        for engine in failed {
            m.fallbacks
                .with_label_values(&["stt", engine.as_str()])
                .inc();
        }
        let recognition = recognized.map_err(|e| VoiceError::EnginesFailed(e.reasons))?;
        let engine = recognition.engine.as_str();
        let elapsed = started.elapsed().as_secs_f64();
        m.engine_seconds
            .with_label_values(&[engine, "stt"])
            .observe(elapsed);
        if duration > 0.0 {
            m.realtime_factor
                .with_label_values(&[engine, "stt"])
                .observe(elapsed / duration);
        }
        let transcript = recognition.transcript;
        let transcription = Transcription {
            text: transcript.text,
            language: transcript.language,
            engine: engine.to_owned(),
            duration,
            segments: transcript.segments,
            words: transcript.words,
            cached: false,
        };
        if let Ok(json) = serde_json::to_vec(&transcription)
            && let Err(e) = state.cache.put(&key, &json).await
        {
            m.cache.with_label_values(&["stt", "error"]).inc();
            tracing::debug!(error = %e, "stt cache store failed");
        }
        Ok(transcription)
    }
}

/// A streaming recognition, checked and routed as a batch one is.
pub struct PlannedStream {
    pub engines: Arc<Engines>,
    pub plan: SttPlan,
    pub request: SttRequest,
}

/// Plans a streaming recognition: the checks of `transcribe`, with the
/// stream counted as short audio (on CPU, Vosk first where it has the
/// language).
pub fn plan_stream(state: &AppState, request: SttRequest) -> Result<PlannedStream, VoiceError> {
    let engines = engines(state)?;
    let plan = engines.stt.plan(&request, 0.0)?;
    Ok(PlannedStream {
        engines,
        plan,
        request,
    })
}

async fn cached_transcription(state: &AppState, key: &str) -> Option<Transcription> {
    if !state.cache.enabled() {
        return None;
    }
    let found = match state.cache.get(key).await {
        Ok(v) => v.and_then(|raw| serde_json::from_slice::<Transcription>(&raw).ok()),
        Err(e) => {
            state
                .metrics
                .cache
                .with_label_values(&["stt", "error"])
                .inc();
            tracing::debug!(error = %e, "stt cache lookup failed");
            return None;
        }
    };
    state
        .metrics
        .cache
        .with_label_values(&["stt", if found.is_some() { "hit" } else { "miss" }])
        .inc();
    found.map(|mut t| {
        t.cached = true;
        t
    })
}
