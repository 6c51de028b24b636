//! Speech streamed as it is made: the text sentence by sentence on the
//! blocking pool, each sentence's encoded bytes sent on at once, so that
//! the client hears the first sentence while the rest are synthesized. A
//! client that goes away (the receiver dropped) stops the synthesis at the
//! next sentence. Streamed speech is not cached.

use tokio::sync::mpsc;

use super::synthesis::{SpeechRequest, checked_text};
use super::{VoiceError, engines, run_blocking};
use crate::encode::StreamEncoder;
use crate::state::AppState;
use crate::tts::ChainError;

/// What a streamed synthesis sends, in order: `Started` with the first
/// sentence's bytes (so that a failure before any audio is still an HTTP
/// error), more `Audio`, then `Finished` or `Failed`.
#[derive(Debug)]
pub enum SpeechPiece {
    Started {
        engine: &'static str,
        voice: String,
        sample_rate: u32,
        audio: Vec<u8>,
    },
    Audio(Vec<u8>),
    Finished {
        audio_secs: f64,
        sentences: usize,
    },
    /// Failed after audio went out.
    Failed(String),
    /// Failed before any audio: the request's error.
    Refused(VoiceError),
}

/// Starts the synthesis in the request's format; the first piece is
/// `Started`, or the error that came before any audio.
pub async fn synthesize_streaming(
    state: &AppState,
    request: SpeechRequest,
) -> Result<(SpeechPiece, mpsc::Receiver<SpeechPiece>), VoiceError> {
    let encoder = StreamEncoder::new(request.format);
    synthesize_streaming_with(state, request, encoder).await
}

/// `synthesize_streaming` with the bytes made by `encoder` (which
/// overrides the request's format).
pub async fn synthesize_streaming_with(
    state: &AppState,
    request: SpeechRequest,
    mut encoder: StreamEncoder,
) -> Result<(SpeechPiece, mpsc::Receiver<SpeechPiece>), VoiceError> {
    let text = checked_text(state, &request)?;
    let engines = engines(state)?;
    let (tx, mut rx) = mpsc::channel(4);
    let worker_state = state.clone();
    tokio::spawn(async move {
        let failed = tx.clone();
        let streams = worker_state.metrics.tts_streams.clone();
        let outcome = run_blocking(&worker_state, move || {
            let mut audio_secs = 0.0;
            let mut encode_error = None;
            let result = engines.tts.synthesize_streaming(
                &text,
                request.voice.as_deref(),
                request.speed,
                |sentence| {
                    let first = audio_secs == 0.0;
                    audio_secs += sentence.audio.duration_secs();
                    let bytes = match encoder.push(&sentence.audio) {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            encode_error = Some(e.to_string());
                            return false;
                        }
                    };
                    let piece = if first {
                        SpeechPiece::Started {
                            engine: sentence.engine,
                            voice: sentence.voice.to_owned(),
                            sample_rate: encoder.output_rate(sentence.audio.sample_rate),
                            audio: bytes,
                        }
                    } else {
                        SpeechPiece::Audio(bytes)
                    };
                    tx.blocking_send(piece).is_ok()
                },
            );
            let last = match (result, encode_error) {
                (_, Some(e)) => SpeechPiece::Failed(e),
                (Err(e), None) if audio_secs == 0.0 => SpeechPiece::Refused(match e {
                    ChainError::UnknownVoice(v) => VoiceError::UnknownVoice(v),
                    ChainError::AllFailed(reasons) => VoiceError::EnginesFailed(reasons),
                }),
                (Err(e), None) => SpeechPiece::Failed(e.to_string()),
                (Ok(done), None) if done.client_left => {
                    tracing::info!(
                        sentences = done.sentences,
                        of = done.of,
                        "the client went away; synthesis stopped"
                    );
                    streams.with_label_values(&["client_left"]).inc();
                    return;
                }
                (Ok(done), None) => match encoder.finish() {
                    Ok(bytes) => {
                        if !bytes.is_empty() && tx.blocking_send(SpeechPiece::Audio(bytes)).is_err()
                        {
                            return;
                        }
                        SpeechPiece::Finished {
                            audio_secs,
                            sentences: done.sentences,
                        }
                    }
                    Err(e) => SpeechPiece::Failed(e.to_string()),
                },
            };
            let outcome = if matches!(last, SpeechPiece::Finished { .. }) {
                "finished"
            } else {
                "failed"
            };
            streams.with_label_values(&[outcome]).inc();
            let _ = tx.blocking_send(last);
        })
        .await;
        if let Err(e) = outcome {
            let _ = failed.send(SpeechPiece::Failed(e.to_string())).await;
        }
    });
    match rx.recv().await {
        Some(started @ SpeechPiece::Started { .. }) => Ok((started, rx)),
        Some(SpeechPiece::Refused(e)) => Err(e),
        Some(SpeechPiece::Failed(reason)) => Err(VoiceError::Internal(reason)),
        Some(other) => Err(VoiceError::Internal(format!(
            "the stream began with {other:?}"
        ))),
        None => Err(VoiceError::Internal(
            "the synthesis ended before any audio".into(),
        )),
    }
}
