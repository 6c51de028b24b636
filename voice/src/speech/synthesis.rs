//! Text to speech: checks, the cache, the TTS chain on the blocking pool.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{VoiceError, engines, run_blocking};
use crate::cache;
use crate::state::AppState;
use crate::tts::{ChainError, safe_name};

pub use crate::encode::AudioFormat;
use crate::encode::{FORMAT_NAMES, encode};

/// A `response_format`, or the error naming the ones there are.
pub fn parse_format(name: &str) -> Result<AudioFormat, VoiceError> {
    AudioFormat::from_name(name)
        .ok_or_else(|| VoiceError::UnsupportedFormat(format!("{name:?}: use {FORMAT_NAMES}")))
}

pub struct SpeechRequest {
    pub text: String,
    pub voice: Option<String>,
    pub speed: f32,
    pub format: AudioFormat,
}

pub struct Speech {
    pub bytes: Vec<u8>,
    pub sample_rate: u32,
    pub engine: String,
    pub voice: String,
    pub cached: bool,
}

/// What the TTS cache stores next to the audio.
#[derive(Serialize, Deserialize)]
struct CachedSpeech {
    engine: String,
    voice: String,
    sample_rate: u32,
}

/// The request's text, trimmed, once text, speed and voice name are valid.
pub(super) fn checked_text(
    state: &AppState,
    request: &SpeechRequest,
) -> Result<String, VoiceError> {
    let text = request.text.trim().to_owned();
    if text.is_empty() {
        return Err(VoiceError::BadInput("text is empty".into()));
    }
    let chars = text.chars().count();
    let limit = state.config.max_text_chars;
    if chars > limit {
        return Err(VoiceError::TextTooLong { chars, limit });
    }
    if !(0.25..=4.0).contains(&request.speed) || !request.speed.is_finite() {
        return Err(VoiceError::BadInput(format!(
            "speed {} is outside 0.25-4.0",
            request.speed
        )));
    }
    if let Some(v) = &request.voice
        && !safe_name(v)
    {
        return Err(VoiceError::UnknownVoice(v.clone()));
    }
    Ok(text)
}

pub async fn synthesize(state: &AppState, request: SpeechRequest) -> Result<Speech, VoiceError> {
    let text = checked_text(state, &request)?;
    let engines = engines(state)?;
    let key = cache::key(
        "tts",
        &[
            text.as_bytes(),
            request.voice.as_deref().unwrap_or("").as_bytes(),
            &request.speed.to_le_bytes(),
            format!("{:?}", request.format).as_bytes(),
        ],
    );
    if let Some(hit) = cached_speech(state, &key).await {
        return Ok(hit);
    }

    let voice = request.voice.clone();
    let speed = request.speed;
    let format = request.format;
    let worker_engines = engines.clone();
    let started = Instant::now();
    let (synthesis, elapsed, encoded) = run_blocking(state, move || {
        let synthesis = worker_engines
            .tts
            .synthesize(&text, voice.as_deref(), speed)?;
        let elapsed = started.elapsed().as_secs_f64();
        let encoded = encode(&synthesis.audio, format);
        Ok::<_, ChainError>((synthesis, elapsed, encoded))
    })
    .await?
    .map_err(|e| match e {
        ChainError::UnknownVoice(v) => VoiceError::UnknownVoice(v),
        ChainError::AllFailed(reasons) => VoiceError::EnginesFailed(reasons),
    })?;
    let encoded = encoded.map_err(|e| VoiceError::Internal(e.to_string()))?;
    let m = &state.metrics;
    for (engine, _) in &synthesis.fallbacks {
        m.fallbacks.with_label_values(&["tts", engine]).inc();
    }
    m.engine_seconds
        .with_label_values(&[synthesis.engine, "tts"])
        .observe(elapsed);
    let audio_secs = synthesis.audio.duration_secs();
    if audio_secs > 0.0 {
        m.realtime_factor
            .with_label_values(&[synthesis.engine, "tts"])
            .observe(elapsed / audio_secs);
    }
    let speech = Speech {
        bytes: encoded.bytes,
        sample_rate: encoded.sample_rate,
        engine: synthesis.engine.to_owned(),
        voice: synthesis.voice,
        cached: false,
    };
    store_speech(state, &key, &speech).await;
    Ok(speech)
}

async fn cached_speech(state: &AppState, key: &str) -> Option<Speech> {
    if !state.cache.enabled() {
        return None;
    }
    let meta_key = format!("{key}:meta");
    let (audio, meta) = match tokio::try_join!(state.cache.get(key), state.cache.get(&meta_key)) {
        Ok(pair) => pair,
        Err(e) => {
            state
                .metrics
                .cache
                .with_label_values(&["tts", "error"])
                .inc();
            tracing::debug!(error = %e, "tts cache lookup failed");
            return None;
        }
    };
    let hit = audio.zip(meta.and_then(|m| serde_json::from_slice::<CachedSpeech>(&m).ok()));
    state
        .metrics
        .cache
        .with_label_values(&["tts", if hit.is_some() { "hit" } else { "miss" }])
        .inc();
    hit.map(|(bytes, meta)| Speech {
        bytes,
        sample_rate: meta.sample_rate,
        engine: meta.engine,
        voice: meta.voice,
        cached: true,
    })
}

async fn store_speech(state: &AppState, key: &str, speech: &Speech) {
    let meta = CachedSpeech {
        engine: speech.engine.clone(),
        voice: speech.voice.clone(),
        sample_rate: speech.sample_rate,
    };
    let Ok(meta) = serde_json::to_vec(&meta) else {
        return;
    };
    // Meta last: a lookup needs both, so a half-written entry is a miss.
    let stored = async {
        state.cache.put(key, &speech.bytes).await?;
        state.cache.put(&format!("{key}:meta"), &meta).await
    };
    if let Err(e) = stored.await {
        state
            .metrics
            .cache
            .with_label_values(&["tts", "error"])
            .inc();
        tracing::debug!(error = %e, "tts cache store failed");
    }
}
