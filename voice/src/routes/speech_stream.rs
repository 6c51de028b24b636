//! Streamed speech as HTTP answers, OpenAI's two `stream_format`s:
//! `audio`, the encoded audio as a chunked body, sentence by sentence; and
//! `sse`, Server-Sent Events: `speech.audio.delta` with base64 audio, then
//! `speech.audio.done` with usage (no tokenizer is involved: tokens count
//! characters in; `audio_seconds` says what came out). An error after audio
//! went out ends an `audio` body short (the client sees a broken transfer)
//! and is an `error` event in `sse`.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::json;

use super::sse::event;
use crate::speech::{self, SpeechPiece, SpeechRequest, VoiceError};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    Audio,
    Sse,
}

impl StreamFormat {
    pub fn parse(name: Option<&str>) -> Result<Option<Self>, VoiceError> {
        match name {
            None => Ok(None),
            Some("audio") => Ok(Some(Self::Audio)),
            Some("sse") => Ok(Some(Self::Sse)),
            Some(other) => Err(VoiceError::BadInput(format!(
                "stream_format {other:?} is not audio or sse"
            ))),
        }
    }
}

pub async fn streamed_speech(
    state: &AppState,
    request: SpeechRequest,
    stream: StreamFormat,
    extra_headers: HeaderMap,
) -> Result<Response, VoiceError> {
    let format = request.format;
    let input_chars = request.text.trim().chars().count();
    let (started, rx) = speech::synthesize_streaming(state, request).await?;
    let SpeechPiece::Started {
        engine,
        voice,
        sample_rate,
        audio,
    } = started
    else {
        return Err(VoiceError::Internal("the stream did not start".into()));
    };
    let mut headers = extra_headers;
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("x-voice-engine", engine);
    set("x-voice-name", &voice);
    set("x-sample-rate", &sample_rate.to_string());
    set("x-cache", "miss");
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let body = match stream {
        StreamFormat::Audio => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            let first = futures_util::stream::once(async move { Ok(Bytes::from(audio)) });
            let more = rest.filter_map(|piece| async move {
                match piece {
                    SpeechPiece::Audio(bytes) => Some(Ok(Bytes::from(bytes))),
                    SpeechPiece::Failed(reason) => Some(Err(std::io::Error::other(reason))),
                    SpeechPiece::Refused(e) => Some(Err(std::io::Error::other(e.to_string()))),
                    SpeechPiece::Started { .. } | SpeechPiece::Finished { .. } => None,
                }
            });
            Body::from_stream(first.chain(more))
        }
        StreamFormat::Sse => {
            super::sse::headers(&mut headers);
            let first =
                futures_util::stream::once(async move { Ok::<_, std::io::Error>(delta(&audio)) });
            let more = rest.filter_map(move |piece| async move {
                match piece {
                    SpeechPiece::Audio(bytes) => Some(Ok(delta(&bytes))),
                    SpeechPiece::Finished { audio_secs, .. } => Some(Ok(event(&json!({
                        "type": "speech.audio.done",
                        "usage": {
                            "input_tokens": input_chars,
                            "output_tokens": 0,
                            "total_tokens": input_chars,
                        },
                        "audio_seconds": audio_secs,
                    })))),
                    SpeechPiece::Failed(reason) => Some(Ok(event(&json!({
                        "type": "error",
                        "error": {"message": reason, "type": "server_error", "code": "engines_failed"},
                    })))),
                    SpeechPiece::Refused(e) => Some(Ok(event(&json!({
                        "type": "error",
                        "error": {"message": e.to_string(), "type": "server_error", "code": e.code()},
                    })))),
                    SpeechPiece::Started { .. } => None,
                }
            });
            Body::from_stream(first.chain(more))
        }
    };
    Ok((headers, body).into_response())
}

fn delta(audio: &[u8]) -> Bytes {
    event(&json!({
        "type": "speech.audio.delta",
        "audio": base64::engine::general_purpose::STANDARD.encode(audio),
    }))
}
