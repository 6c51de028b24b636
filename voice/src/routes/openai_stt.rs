//! OpenAI's `/v1/audio/transcriptions` and `/v1/audio/translations`:
//! the form fields as the official clients send them, every
//! `response_format`, word and segment timestamps, and `stream=true` as
//! Server-Sent Events (`transcript.text.delta`, then
//! `transcript.text.done`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Caller;
use super::native::{Upload, read_upload};
use super::openai::OpenAiError;
use crate::engine_name::{EngineName, SttEngine};
use crate::speech::{self, PreparedTranscription, TranscribeRequest, Transcription, VoiceError};
use crate::state::AppState;
use crate::stt::request::DecodingRequest;
use crate::stt::{Segment, SegmentListener, SegmentSink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl ResponseFormat {
    fn parse(name: &str) -> Result<Self, VoiceError> {
        Ok(match name {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            other => {
                return Err(VoiceError::BadInput(format!(
                    "response_format {other:?} is not json, text, srt, vtt or verbose_json"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Self::Transcribe => "transcribe",
            Self::Translate => "translate",
        }
    }
}

/// What the form asks for, checked.
pub struct SttForm {
    pub format: ResponseFormat,
    pub segments: bool,
    pub words: bool,
    pub stream: bool,
    pub request: TranscribeRequest,
}

/// Reads OpenAI's form fields. `model` names a local engine (`whisper`,
/// `vosk`); `whisper-1` and other names let routing pick.
pub fn parse_form(upload: Upload, task: Task) -> Result<SttForm, VoiceError> {
    let fields = &upload.fields;
    let format = ResponseFormat::parse(&fields.get("response_format").unwrap_or("json".into()))?;
    let mut segments = false;
    let mut words = false;
    let granularities = fields
        .all("timestamp_granularities[]")
        .chain(fields.all("timestamp_granularities"));
    for granularity in granularities {
        match granularity {
            "segment" => segments = true,
            "word" => words = true,
            other => {
                return Err(VoiceError::BadInput(format!(
                    "timestamp_granularities {other:?} is not word or segment"
                )));
            }
        }
    }
    if (segments || words) && format != ResponseFormat::VerboseJson {
        return Err(VoiceError::BadInput(
            "timestamp_granularities needs response_format verbose_json".into(),
        ));
    }
    // Segments unless only words were asked for, as OpenAI's.
    let segments = segments || !words;
    let stream = match fields.get("stream").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(VoiceError::BadInput(format!(
                "stream {other:?} is not true or false"
            )));
        }
    };
    if stream && !matches!(format, ResponseFormat::Json | ResponseFormat::Text) {
        return Err(VoiceError::BadInput(
            "stream needs response_format json or text".into(),
        ));
    }
    let engine = fields
        .get("model")
        .filter(|m| SttEngine::parse(m).is_some_and(SttEngine::is_local));
    let request = TranscribeRequest {
        audio: upload.audio,
        // A translation's source language is detected.
        language: match task {
            Task::Transcribe => fields.get("language"),
            Task::Translate => None,
        },
        engine,
        grammar: None,
        decoding: DecodingRequest {
            prompt: fields.get("prompt"),
            temperature: fields.get("temperature"),
            translate: task == Task::Translate,
            word_timestamps: words,
        },
    };
    Ok(SttForm {
        format,
        segments,
        words,
        stream,
        request,
    })
}

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions(
    State(state): State<AppState>,
    _caller: Caller,
    request: Request,
) -> Result<Response, OpenAiError> {
    answer(&state, request, Task::Transcribe).await
}

/// `POST /v1/audio/translations`: English text whatever was spoken; needs
/// a multilingual Whisper model.
pub async fn translations(
    State(state): State<AppState>,
    _caller: Caller,
    request: Request,
) -> Result<Response, OpenAiError> {
    answer(&state, request, Task::Translate).await
}

async fn answer(state: &AppState, request: Request, task: Task) -> Result<Response, OpenAiError> {
    let upload = read_upload(state, request).await?;
    let form = parse_form(upload, task)?;
    let (format, segments, words, stream) = (form.format, form.segments, form.words, form.stream);
    let prepared = speech::prepare(state, form.request).await?;
    if stream {
        return Ok(streamed(prepared));
    }
    let t = prepared.run(None).await?;
    Ok(render(&t, format, task, segments, words))
}

/// OpenAI's usage for audio models: the seconds heard, rounded up.
fn usage(t: &Transcription) -> Value {
    json!({"type": "duration", "seconds": t.duration.ceil() as u64})
}

pub fn render(
    t: &Transcription,
    format: ResponseFormat,
    task: Task,
    segments: bool,
    words: bool,
) -> Response {
    match format {
        ResponseFormat::Text => text(format!("{}\n", t.text), "text/plain; charset=utf-8"),
        ResponseFormat::Srt => text(subtitles(t, false), "application/x-subrip"),
        ResponseFormat::Vtt => text(subtitles(t, true), "text/vtt"),
        ResponseFormat::Json => Json(json!({ "text": t.text, "usage": usage(t) })).into_response(),
        ResponseFormat::VerboseJson => Json(verbose_json(t, task, segments, words)).into_response(),
    }
}

pub fn verbose_json(t: &Transcription, task: Task, segments: bool, words: bool) -> Value {
    let mut body = json!({
        "task": task.name(),
        "language": crate::stt::whisper::language_name(&t.language).unwrap_or(&t.language),
        "duration": t.duration,
        "text": t.text,
        "usage": usage(t),
    });
    if segments {
        body["segments"] = t
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| verbose_segment(i, s))
            .collect();
    }
    if words {
        body["words"] = json!(t.words);
    }
    body
}

fn verbose_segment(id: usize, s: &Segment) -> Value {
    let decoding = s.decoding.as_ref();
    json!({
        "id": id,
        // whisper.cpp does not say which 30-second window a segment came
        // from; the start in centiseconds' frames is where it began.
        "seek": (s.start * 100.0).round() as u64,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": decoding.map_or(&[][..], |d| &d.tokens[..]),
        "temperature": decoding.map_or(0.0, |d| d.temperature),
        "avg_logprob": decoding.map_or(0.0, |d| d.avg_logprob),
        "compression_ratio": compression_ratio(&s.text),
        "no_speech_prob": decoding.map_or(0.0, |d| d.no_speech_prob),
    })
}

/// Bytes of text over bytes of its zlib compression, as OpenAI's Whisper
/// computes it to spot repetition loops.
fn compression_ratio(text: &str) -> f64 {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    if z.write_all(text.as_bytes()).is_err() {
        return 0.0;
    }
    match z.finish() {
        Ok(compressed) if !compressed.is_empty() => text.len() as f64 / compressed.len() as f64,
        _ => 0.0,
    }
}

fn text(body: String, content_type: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// SRT or WebVTT cues, one per segment.
pub fn subtitles(t: &Transcription, vtt: bool) -> String {
    let stamp = |secs: f64| {
        let ms = (secs.max(0.0) * 1000.0).round() as u64;
        let sep = if vtt { '.' } else { ',' };
        format!(
            "{:02}:{:02}:{:02}{sep}{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let mut out = String::new();
    if vtt {
        out.push_str("WEBVTT\n\n");
    }
    for (i, s) in t.segments.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(s.start),
            stamp(s.end),
            s.text
        ));
    }
    out
}

/// Sends each decoded segment to the answer as a text delta.
struct DeltaListener {
    deltas: mpsc::UnboundedSender<Bytes>,
    /// Whether a delta went out (engines that decode all at once send
    /// none; their text goes out whole at the end).
    sent: AtomicBool,
}

impl SegmentListener for DeltaListener {
    fn segment(&self, segment: &Segment) {
        let first = !self.sent.swap(true, Ordering::SeqCst);
        let delta = if first {
            segment.text.clone()
        } else {
            format!(" {}", segment.text)
        };
        let _ = self.deltas.send(delta_event(&delta));
    }

    fn gone(&self) -> bool {
        self.deltas.is_closed()
    }
}

fn delta_event(delta: &str) -> Bytes {
    super::sse::event(&json!({"type": "transcript.text.delta", "delta": delta}))
}

/// The answer as Server-Sent Events. The deltas put together are the
/// final text; a client that leaves stops the decoding.
fn streamed(prepared: PreparedTranscription) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = Arc::new(DeltaListener {
        deltas: tx.clone(),
        sent: AtomicBool::new(false),
    });
    tokio::spawn(async move {
        let outcome = prepared.run(Some(SegmentSink::new(listener.clone()))).await;
        let last = match outcome {
            Ok(t) => {
                if !listener.sent.load(Ordering::SeqCst) && !t.text.is_empty() {
                    let _ = tx.send(delta_event(&t.text));
                }
                json!({"type": "transcript.text.done", "text": t.text, "usage": usage(&t)})
            }
            Err(e) => json!({
                "type": "error",
                "error": {"message": e.to_string(), "type": "server_error", "code": e.code()},
            }),
        };
        let _ = tx.send(super::sse::event(&last));
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (event, rx))
    })
    .map(Ok::<_, std::io::Error>);
    let mut headers = HeaderMap::new();
    super::sse::headers(&mut headers);
    (headers, Body::from_stream(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stt::{SegmentDecoding, Word};

    fn transcription() -> Transcription {
        Transcription {
            text: "hi there".into(),
            language: "en".into(),
            engine: "whisper".into(),
            duration: 3.5,
            segments: vec![Segment {
                decoding: Some(SegmentDecoding {
                    tokens: vec![50, 51],
                    avg_logprob: -0.25,
                    no_speech_prob: 0.01,
                    temperature: 0.0,
                }),
                ..Segment::new(0.0, 3661.5, "hi there".into())
            }],
            words: vec![
                Word {
                    word: "hi".into(),
                    start: 0.0,
                    end: 0.4,
                },
                Word {
                    word: "there".into(),
                    start: 0.4,
                    end: 1.0,
                },
            ],
            cached: false,
        }
    }

    fn form(pairs: &[(&str, &str)], task: Task) -> Result<SttForm, VoiceError> {
        let upload = Upload {
            audio: Bytes::from_static(b"RIFF"),
            fields: pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        };
        parse_form(upload, task)
    }

    #[test]
    fn the_form_is_read_as_the_official_clients_send_it() {
        let f = form(
            &[
                ("model", "whisper-1"),
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
                ("timestamp_granularities[]", "segment"),
                ("prompt", "Kubernetes"),
                ("temperature", "0.2"),
                ("language", "de"),
            ],
            Task::Transcribe,
        )
        .unwrap();
        assert!(f.words && f.segments && !f.stream);
        assert_eq!(f.request.engine, None, "whisper-1 lets routing pick");
        assert_eq!(f.request.language.as_deref(), Some("de"));
        assert!(f.request.decoding.word_timestamps && !f.request.decoding.translate);
        assert_eq!(f.request.decoding.prompt.as_deref(), Some("Kubernetes"));
        let words_only = form(
            &[
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
            ],
            Task::Transcribe,
        )
        .unwrap();
        assert!(words_only.words && !words_only.segments);
        let translation =
            form(&[("language", "de"), ("model", "whisper")], Task::Translate).unwrap();
        assert!(translation.request.decoding.translate);
        assert_eq!(translation.request.language, None);
        assert_eq!(translation.request.engine.as_deref(), Some("whisper"));
        let streamed = form(
            &[("stream", "true"), ("response_format", "text")],
            Task::Transcribe,
        );
        assert!(streamed.unwrap().stream);
    }

    #[test]
    fn contradicting_fields_are_refused_naming_them() {
        for (pairs, needle) in [
            (
                &[("timestamp_granularities[]", "word")][..],
                "timestamp_granularities needs response_format verbose_json",
            ),
            (
                &[
                    ("response_format", "verbose_json"),
                    ("timestamp_granularities[]", "char"),
                ][..],
                "\"char\" is not word or segment",
            ),
            (
                &[("stream", "true"), ("response_format", "srt")][..],
                "stream needs response_format json or text",
            ),
            (
                &[("stream", "yes")][..],
                "stream \"yes\" is not true or false",
            ),
            (&[("response_format", "xml")][..], "response_format \"xml\""),
        ] {
            let Err(err) = form(pairs, Task::Transcribe) else {
                panic!("{pairs:?} was accepted");
            };
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn srt_and_vtt_timestamps() {
        let t = transcription();
        assert_eq!(
            subtitles(&t, false),
            "1\n00:00:00,000 --> 01:01:01,500\nhi there\n\n"
        );
        assert_eq!(
            subtitles(&t, true),
            "WEBVTT\n\n00:00:00.000 --> 01:01:01.500\nhi there\n\n"
        );
    }

    #[test]
    fn verbose_json_has_openai_fields_and_the_granularities_asked_for() {
        let t = transcription();
        let v = verbose_json(&t, Task::Transcribe, true, false);
        assert_eq!(v["language"], "english");
        assert_eq!(v["task"], "transcribe");
        assert_eq!(v["usage"], json!({"type": "duration", "seconds": 4}));
        let s = &v["segments"][0];
        for field in [
            "id",
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ] {
            assert!(!s[field].is_null(), "{field} missing: {s}");
        }
        assert_eq!(s["tokens"], json!([50, 51]));
        assert!(v.get("words").is_none());
        let words_only = verbose_json(&t, Task::Translate, false, true);
        assert!(words_only.get("segments").is_none());
        assert_eq!(words_only["words"][1]["word"], "there");
        assert_eq!(words_only["task"], "translate");
    }

    #[test]
    fn repetition_compresses_well() {
        let looped = "the cat sat on the mat ".repeat(20);
        assert!(compression_ratio(&looped) > 5.0);
        assert!(compression_ratio("Please call me back.") < 2.0);
    }
}
