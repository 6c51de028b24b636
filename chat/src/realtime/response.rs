//! One response of a realtime session: the LLM's answer streamed as text
//! deltas, or cut into sentences that the voice service speaks one after
//! another while the LLM goes on, each sentence's audio sent as it comes.
//! Its events follow OpenAI's order, from `response.created` to
//! `response.done`; cancelling (the client, or the user speaking over it)
//! stops the LLM and the speech at once.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voicechat_common::realtime::{AudioFormat, EventError, OutputEncoder, server_event};
use voicechat_common::sentences::SentenceBuffer;

use super::items::{Content, Item, Spoken, Status};
use super::settings::Modality;
use crate::conversation::{AnswerEnd, stream_answer};
use crate::llm::PromptMessage;
use crate::protocol::ServerEvent;
use crate::state::AppState;
use crate::voice_client::{VoiceClient, VoiceError};

/// Events to the client (one writer sends them in order).
pub type Outbox = mpsc::Sender<Value>;

/// Longest text given to the voice service at once.
const MAX_SENTENCE_CHARS: usize = 400;
/// Audio is sent in deltas of at most this much PCM (about 200 ms).
const DELTA_BYTES: usize = 9600;

/// Why a response was cancelled, as `status_details.reason` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    ClientCancelled,
    TurnDetected,
}

impl CancelReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::ClientCancelled => "client_cancelled",
            Self::TurnDetected => "turn_detected",
        }
    }
}

/// A running response's handle: cancel it with a reason.
#[derive(Clone)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<OnceLock<CancelReason>>,
}

impl Cancel {
    pub fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
        }
    }

    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }
}

/// Everything a response needs, taken from the session when it starts.
pub struct ResponseJob {
    pub state: AppState,
    pub voice: VoiceClient,
    pub token: String,
    pub out: Outbox,
    pub response_id: String,
    pub item_id: String,
    pub previous_item_id: Option<String>,
    pub conversation_id: String,
    pub prompt: Vec<PromptMessage>,
    pub modality: Modality,
    pub voice_name: String,
    pub speed: f32,
    pub output_format: AudioFormat,
    pub max_output_tokens: Option<u64>,
    pub cancel: Cancel,
    /// When the user's turn ended (for the latency figures).
    pub turn_ended: Instant,
}

/// How it ended, for the session to store and remember.
#[derive(Debug)]
pub struct ResponseEnded {
    pub response_id: String,
    pub item: Item,
    /// Whether any audio went out (the voice can no longer change).
    pub audio_sent: bool,
}

/// Milliseconds from the end of the user's turn to each step, sent with
/// `response.done` as `voicechat_timing` (the latency benchmark reads it).
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    llm_first_token_ms: Option<u64>,
    first_sentence_ms: Option<u64>,
    first_audio_ms: Option<u64>,
}

fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What the speaking side did.
#[derive(Default)]
struct Speech {
    spoken: Vec<Spoken>,
    audio_bytes: usize,
    failed: Option<VoiceError>,
}

pub async fn run(job: ResponseJob) -> ResponseEnded {
    let out = job.out.clone();
    let send = |event: Value| {
        let out = out.clone();
        async move {
            let _ = out.send(event).await;
        }
    };
    let content = match job.modality {
        Modality::Audio => Content::OutputAudio,
        Modality::Text => Content::OutputText,
    };
    let mut item = Item::new(job.item_id.clone(), content);
    send(server_event(
        "response.created",
        json!({"response": response_object(&job, "in_progress", Value::Null, &[], None)}),
    ))
    .await;
    send(server_event(
        "response.output_item.added",
        json!({"response_id": job.response_id, "output_index": 0, "item": item.to_json()}),
    ))
    .await;
    send(server_event(
        "conversation.item.added",
        json!({"previous_item_id": job.previous_item_id, "item": item.to_json()}),
    ))
    .await;
    let ids = json!({"response_id": job.response_id, "item_id": job.item_id, "output_index": 0, "content_index": 0});
    let part = match job.modality {
        Modality::Audio => json!({"type": "audio", "transcript": ""}),
        Modality::Text => json!({"type": "text", "text": ""}),
    };
    send(server_event(
        "response.content_part.added",
        with(&ids, json!({"part": part})),
    ))
    .await;

    let timing = std::sync::Mutex::new(Timing::default());
    let llm_stop = job.cancel.token.child_token();
    let (tokens_tx, mut tokens) = mpsc::channel::<ServerEvent>(64);
    let (sentences_tx, mut sentences) = mpsc::channel::<String>(32);
    let started = job.turn_ended;
    let llm = async {
        let tx = tokens_tx;
        stream_answer(&job.state, job.prompt.clone(), &tx, &llm_stop, started).await
    };
    let mut max_tokens_hit = false;
    let mut text = String::new();
    let consume = async {
        let mut buffer = SentenceBuffer::new(MAX_SENTENCE_CHARS);
        let mut count = 0u64;
        while let Some(event) = tokens.recv().await {
            let ServerEvent::Token { content, .. } = event else {
                continue;
            };
            if count == 0 {
                timing
                    .lock()
                    .map(|mut t| t.llm_first_token_ms = Some(ms_since(started)))
                    .ok();
            }
            count += 1;
            text.push_str(&content);
            match job.modality {
                Modality::Text => {
                    send(server_event(
                        "response.output_text.delta",
                        with(&ids, json!({"delta": content})),
                    ))
                    .await;
                }
                Modality::Audio => {
                    for sentence in buffer.push(&content) {
                        let _ = sentences_tx.send(sentence).await;
                    }
                }
            }
            if job.max_output_tokens.is_some_and(|max| count >= max) {
                max_tokens_hit = true;
                llm_stop.cancel();
                break;
            }
        }
        if job.modality == Modality::Audio {
            for sentence in buffer.finish() {
                let _ = sentences_tx.send(sentence).await;
            }
        }
        drop(sentences_tx);
    };
    let speak = async {
        let mut speech = Speech::default();
        if job.modality != Modality::Audio {
            return speech;
        }
        while let Some(sentence) = sentences.recv().await {
            if job.cancel.token.is_cancelled() || speech.failed.is_some() {
                continue;
            }
            timing
                .lock()
                .map(|mut t| {
                    t.first_sentence_ms.get_or_insert(ms_since(started));
                })
                .ok();
            let said = tokio::select! {
                said = say(&job, &ids, &sentence, speech.audio_bytes, &timing, &send) => said,
                () = job.cancel.token.cancelled() => continue,
            };
            match said {
                Ok(spoken) => {
                    speech.audio_bytes += spoken.1;
                    speech.spoken.push(spoken.0);
                }
                Err(e) => speech.failed = Some(e),
            }
        }
        speech
    };
    let (answer, (), speech) = tokio::join!(llm, consume, speak);

    // How it ended.
    let cancelled = job.cancel.reason.get().copied();
    let (status, details, failure) = match (&answer.end, cancelled, &speech.failed) {
        (_, Some(reason), _) => (
            "cancelled",
            json!({"type": "cancelled", "reason": reason.as_str()}),
            None,
        ),
        (AnswerEnd::Failed(e), None, _) => {
            let error = EventError::server(e.code(), format!("the LLM failed: {e}"));
            ("failed", failed_details(&error), Some(error))
        }
        (_, None, Some(e)) => {
            let error = EventError::server(e.code(), format!("no speech: {e}"));
            ("failed", failed_details(&error), Some(error))
        }
        (_, None, None) if max_tokens_hit => (
            "incomplete",
            json!({"type": "incomplete", "reason": "max_output_tokens"}),
            None,
        ),
        (AnswerEnd::Cancelled, None, None) => (
            "cancelled",
            json!({"type": "cancelled", "reason": "client_cancelled"}),
            None,
        ),
        (AnswerEnd::Complete, None, None) => ("completed", Value::Null, None),
    };
    if let Some(error) = &failure {
        tracing::warn!(code = error.code, message = %error.message, "realtime response failed");
        send(error.to_event()).await;
    }
    item.text = match job.modality {
        Modality::Text => text.clone(),
        Modality::Audio => speech
            .spoken
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    };
    item.spoken = speech.spoken;
    item.status = if status == "completed" {
        Status::Completed
    } else {
        Status::Incomplete
    };
    match job.modality {
        Modality::Audio => {
            send(server_event("response.output_audio.done", ids.clone())).await;
            send(server_event(
                "response.output_audio_transcript.done",
                with(&ids, json!({"transcript": item.text})),
            ))
            .await;
            send(server_event(
                "response.content_part.done",
                with(
                    &ids,
                    json!({"part": {"type": "audio", "transcript": item.text}}),
                ),
            ))
            .await;
        }
        Modality::Text => {
            send(server_event(
                "response.output_text.done",
                with(&ids, json!({"text": item.text})),
            ))
            .await;
            send(server_event(
                "response.content_part.done",
                with(&ids, json!({"part": {"type": "text", "text": item.text}})),
            ))
            .await;
        }
    }
    let item_json = item.to_json();
    send(server_event(
        "conversation.item.done",
        json!({"previous_item_id": job.previous_item_id, "item": item_json}),
    ))
    .await;
    send(server_event(
        "response.output_item.done",
        json!({"response_id": job.response_id, "output_index": 0, "item": item_json}),
    ))
    .await;
    let timing = timing.into_inner().unwrap_or_default();
    let mut done = response_object(
        &job,
        status,
        details,
        &[item_json],
        Some(answer.streamed.tokens),
    );
    done["voicechat_timing"] = json!({
        "llm_first_token_ms": timing.llm_first_token_ms,
        "first_sentence_ms": timing.first_sentence_ms,
        "first_audio_ms": timing.first_audio_ms,
        "total_ms": ms_since(started),
    });
    send(server_event("response.done", json!({"response": done}))).await;
    ResponseEnded {
        response_id: job.response_id,
        audio_sent: speech.audio_bytes > 0,
        item,
    }
}

/// Speaks one sentence: its transcript, then its audio as it arrives.
/// Returns where it lies in the answer's audio and the bytes sent.
async fn say<F, Fut>(
    job: &ResponseJob,
    ids: &Value,
    sentence: &str,
    bytes_before: usize,
    timing: &std::sync::Mutex<Timing>,
    send: &F,
) -> Result<(Spoken, usize), VoiceError>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut encoder = OutputEncoder::new(job.output_format);
    let start_ms = encoder.millis(bytes_before);
    let mut audio = job
        .voice
        .speak(&job.token, sentence, &job.voice_name, job.speed)
        .await?;
    let mut sent = 0usize;
    let mut pending = Vec::new();
    let mut transcript_sent = false;
    loop {
        let chunk = audio.next().await.transpose()?;
        let last = chunk.is_none();
        if let Some(chunk) = chunk {
            pending.extend(encoder.push(&chunk));
        }
        while pending.len() >= DELTA_BYTES || (last && !pending.is_empty()) {
            let take = pending.len().min(DELTA_BYTES);
            let piece: Vec<u8> = pending.drain(..take).collect();
            if !transcript_sent {
                // The words go out with their first audio, so a listener
                // reads what it hears.
                transcript_sent = true;
                timing
                    .lock()
                    .map(|mut t| {
                        if t.first_audio_ms.is_none() {
                            t.first_audio_ms = Some(ms_since(job.turn_ended));
                            job.state
                                .metrics
                                .realtime_first_audio
                                .observe(job.turn_ended.elapsed().as_secs_f64());
                        }
                    })
                    .ok();
                let delta = if bytes_before == 0 {
                    sentence.to_owned()
                } else {
                    format!(" {sentence}")
                };
                send(server_event(
                    "response.output_audio_transcript.delta",
                    with(ids, json!({"delta": delta})),
                ))
                .await;
            }
            sent += piece.len();
            send(server_event(
                "response.output_audio.delta",
                with(
                    ids,
                    json!({"delta": base64::engine::general_purpose::STANDARD.encode(&piece)}),
                ),
            ))
            .await;
        }
        if last {
            break;
        }
    }
    Ok((
        Spoken {
            text: sentence.to_owned(),
            start_ms,
            duration_ms: encoder.millis(sent),
        },
        sent,
    ))
}

fn failed_details(error: &EventError) -> Value {
    json!({"type": "failed", "error": {"type": error.kind, "code": error.code, "message": error.message}})
}

/// `base` with `extra`'s fields added.
fn with(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    if let (Value::Object(m), Value::Object(e)) = (&mut merged, extra) {
        m.extend(e);
    }
    merged
}

fn response_object(
    job: &ResponseJob,
    status: &str,
    details: Value,
    output: &[Value],
    output_tokens: Option<u64>,
) -> Value {
    // The LLM's streamed chunks are its output tokens; input tokens are
    // not reported by every backend, so they are left out.
    let usage = output_tokens.map(|n| {
        json!({
            "total_tokens": n,
            "output_tokens": n,
            "output_token_details": {"text_tokens": n, "audio_tokens": 0},
        })
    });
    json!({
        "id": job.response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": details,
        "output": output,
        "conversation_id": job.conversation_id,
        "output_modalities": [match job.modality { Modality::Audio => "audio", Modality::Text => "text" }],
        "max_output_tokens": job.max_output_tokens.map_or(json!("inf"), Value::from),
        "audio": {"output": {"format": job.output_format.to_json(), "voice": job.voice_name}},
        "metadata": null,
        "usage": usage,
    })
}
