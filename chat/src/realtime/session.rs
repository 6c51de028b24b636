//! A realtime session's state and what each client event does to it: the
//! settings, the input buffer and its turns, the conversation items (the
//! chat session's history), and the response under way. Slow work
//! (transcription, responses) runs in tasks that report back through
//! [`Internal`], so events are always handled at once.

use std::time::Instant;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use voicechat_common::realtime::{
    ClientEvent, EventError, Incoming, InputBuffer, Turn, VadEvent, new_id, server_event,
};

use super::items::{Content, Item, Status, heard_text};
use super::response::{self, Cancel, CancelReason, Outbox, ResponseEnded, ResponseJob};
use super::settings::{Modality, SessionSettings};
use crate::conversation::{Conversation, admit};
use crate::history::StoredMessage;
use crate::llm::Role;
use crate::state::AppState;
use crate::voice_client::{Heard, VoiceClient, VoiceError};

/// Items kept for reference (truncate, retrieve); older ones are dropped
/// (their messages stay in the history).
const MAX_ITEMS: usize = 200;

/// What the session's tasks report.
pub enum Internal {
    Transcribed {
        job: u64,
        item_id: String,
        /// Seconds of the turn's audio.
        audio_secs: f64,
        started: Instant,
        result: Result<Heard, VoiceError>,
    },
    Ended(ResponseEnded),
}

/// A turn (or, at a pause, what may turn out to be one) to transcribe.
pub struct TranscriptionJob {
    pub job: u64,
    pub item_id: String,
    pub turn: Turn,
    pub language: Option<String>,
}

/// A response asked for (by `response.create` or a detected turn) that
/// starts once the transcripts it needs are in.
struct Wanted {
    overrides: Map<String, Value>,
    /// The turn it answers, when a detected turn asked for it.
    answers: Option<String>,
    /// When the user's turn ended (or the client asked).
    since: Instant,
    event_id: Option<String>,
}

/// A transcription started when the user paused, before the silence
/// window confirmed the end of the turn: if the turn does end there, its
/// transcript is (nearly) ready when the window closes.
struct Speculation {
    job: u64,
    item_id: String,
    /// The end of the last speech it heard (session audio clock).
    covers_ms: u64,
    audio_secs: f64,
    started: Instant,
    result: Option<Result<Heard, VoiceError>>,
    /// The turn ended where it was cut: its result is the turn's.
    adopted: bool,
}

struct Running {
    id: String,
    item_id: String,
    cancel: Cancel,
    /// A truncation that arrived before the response ended.
    truncate_at: Option<u64>,
}

pub struct Session {
    state: AppState,
    voice: VoiceClient,
    token: String,
    user_id: String,
    out: Outbox,
    internal: mpsc::Sender<Internal>,
    transcriber: mpsc::Sender<TranscriptionJob>,
    model: String,
    settings: SessionSettings,
    conversation: Conversation,
    items: Vec<Item>,
    input: InputBuffer,
    /// The item id of the speech the detector is hearing, and where it
    /// began on the session's audio clock.
    speaking: Option<(String, u64)>,
    pending_transcriptions: usize,
    /// Transcriptions of committed turns: job → item.
    expected: std::collections::HashMap<u64, String>,
    speculation: Option<Speculation>,
    next_job: u64,
    wanted: Option<Wanted>,
    running: Option<Running>,
    audio_sent: bool,
}

pub struct SessionParts {
    pub state: AppState,
    pub voice: VoiceClient,
    pub token: String,
    pub user_id: String,
    pub out: Outbox,
    pub internal: mpsc::Sender<Internal>,
    pub transcriber: mpsc::Sender<TranscriptionJob>,
    pub model: String,
    pub conversation: Conversation,
}

type Handled = Result<(), EventError>;

impl Session {
    pub fn new(parts: SessionParts) -> Self {
        let realtime = &parts.state.config.realtime;
        let settings =
            SessionSettings::new(realtime.default_voice.clone(), parts.voice.configured());
        let input = InputBuffer::new(
            settings.input_format,
            settings.turn_detection.map(|t| t.vad),
            realtime.max_buffer_secs,
        );
        Self {
            state: parts.state,
            voice: parts.voice,
            token: parts.token,
            user_id: parts.user_id,
            out: parts.out,
            internal: parts.internal,
            transcriber: parts.transcriber,
            model: parts.model,
            settings,
            conversation: parts.conversation,
            items: Vec::new(),
            input,
            speaking: None,
            pending_transcriptions: 0,
            expected: std::collections::HashMap::new(),
            speculation: None,
            next_job: 0,
            wanted: None,
            running: None,
            audio_sent: false,
        }
    }

    pub fn session_id(&self) -> &str {
        &self.conversation.session_id
    }

    async fn send(&self, event: Value) {
        let _ = self.out.send(event).await;
    }

    fn session_json(&self) -> Value {
        self.settings
            .to_json(&self.conversation.session_id, &self.model)
    }

    pub async fn created(&self) {
        self.send(server_event(
            "session.created",
            json!({"session": self.session_json()}),
        ))
        .await;
    }

    /// Handles one client event; a refusal is sent as an `error` event
    /// with the event's id, and changes nothing.
    pub async fn handle(&mut self, incoming: Incoming) {
        let event_id = incoming.event_id.clone();
        let result = match incoming.event {
            ClientEvent::SessionUpdate(update) => self.update(&update).await,
            ClientEvent::Append(audio) => self.append(&audio).await,
            ClientEvent::Commit => self.commit().await,
            ClientEvent::Clear => {
                self.input.clear();
                self.speaking = None;
                self.discard_speculation();
                self.send(server_event("input_audio_buffer.cleared", json!({})))
                    .await;
                Ok(())
            }
            ClientEvent::ItemCreate(item) => self.create_item(&item).await,
            ClientEvent::ResponseCreate(overrides) => {
                self.want_response(overrides, None, Instant::now(), event_id.clone())
                    .await
            }
            ClientEvent::ResponseCancel { response_id } => self.cancel(response_id.as_deref()),
            ClientEvent::ItemTruncate {
                item_id,
                content_index,
                audio_end_ms,
            } => self.truncate(&item_id, content_index, audio_end_ms).await,
            ClientEvent::ItemRetrieve { item_id } => {
                match self.items.iter().find(|i| i.id == item_id) {
                    Some(item) => {
                        self.send(server_event(
                            "conversation.item.retrieved",
                            json!({"item": item.to_json()}),
                        ))
                        .await;
                        Ok(())
                    }
                    None => Err(unknown_item(&item_id)),
                }
            }
            ClientEvent::ItemDelete { .. } => Err(EventError::invalid(
                "unsupported_event",
                "items cannot be deleted: the conversation is the chat session's history (DELETE /api/v1/sessions/{id} removes it all)",
                "type",
            )),
        };
        if let Err(e) = result {
            self.state.metrics.error(e.code);
            self.send(e.for_event(event_id.as_deref()).to_event()).await;
        }
    }

    async fn update(&mut self, update: &Map<String, Value>) -> Handled {
        let next = self.settings.updated(update, self.audio_sent)?;
        if next.modality == Modality::Audio && !self.voice.configured() {
            return Err(EventError::invalid(
                "voice_not_configured",
                "audio needs the voice service, and this chat service has none (VOICE_URL)",
                "session.output_modalities",
            ));
        }
        let input_changed = next.input_format != self.settings.input_format
            || next.turn_detection.map(|t| t.vad) != self.settings.turn_detection.map(|t| t.vad);
        self.settings = next;
        if input_changed {
            self.input.configure(
                self.settings.input_format,
                self.settings.turn_detection.map(|t| t.vad),
                self.state.config.realtime.max_buffer_secs,
            );
            self.speaking = None;
        }
        self.send(server_event(
            "session.updated",
            json!({"session": self.session_json()}),
        ))
        .await;
        Ok(())
    }

    async fn append(&mut self, audio: &str) -> Handled {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(audio)
            .map_err(|e| {
                EventError::invalid(
                    "invalid_base64",
                    format!("audio is not base64: {e}"),
                    "audio",
                )
            })?;
        let events = self.input.append(&bytes)?;
        for event in events {
            match event {
                VadEvent::SpeechStarted { at_ms } => {
                    let item_id = new_id("item_");
                    self.send(server_event(
                        "input_audio_buffer.speech_started",
                        json!({"audio_start_ms": at_ms, "item_id": item_id}),
                    ))
                    .await;
                    self.speaking = Some((item_id, at_ms));
                    self.discard_speculation();
                    let interrupts = self
                        .settings
                        .turn_detection
                        .is_some_and(|t| t.interrupt_response);
                    if interrupts && let Some(running) = &self.running {
                        running.cancel.cancel(CancelReason::TurnDetected);
                    }
                }
                VadEvent::Paused { at_ms, detected_ms } => {
                    self.speculate(at_ms, detected_ms).await?
                }
                VadEvent::SpeechStopped { at_ms, detected_ms } => {
                    let (item_id, started_ms) = self
                        .speaking
                        .take()
                        .unwrap_or_else(|| (new_id("item_"), at_ms));
                    self.send(server_event(
                        "input_audio_buffer.speech_stopped",
                        json!({"audio_end_ms": at_ms, "item_id": item_id}),
                    ))
                    .await;
                    let padding = self
                        .settings
                        .turn_detection
                        .map_or(0, |t| t.vad.prefix_padding_ms);
                    let start = started_ms.saturating_sub(u64::from(padding));
                    let turn = self.input.take_span(start, detected_ms);
                    let respond = self
                        .settings
                        .turn_detection
                        .is_some_and(|t| t.create_response);
                    // The transcript started at the pause is the turn's
                    // when nothing was said after it.
                    let speculated = self
                        .speculation
                        .as_ref()
                        .is_some_and(|s| s.item_id == item_id && s.covers_ms >= at_ms);
                    if !speculated {
                        self.discard_speculation();
                    }
                    self.commit_turn(item_id, turn, respond).await?;
                }
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> Handled {
        if self.input.is_empty() {
            return Err(EventError::invalid(
                "input_audio_buffer_commit_empty",
                "the input audio buffer is empty: append audio first",
                "",
            ));
        }
        let item_id = self
            .speaking
            .take()
            .map_or_else(|| new_id("item_"), |(id, _)| id);
        let turn = self.input.take_all();
        self.discard_speculation();
        self.commit_turn(item_id, turn, false).await
    }

    /// A turn of the user's audio: committed, added as an item, queued for
    /// its transcript; `respond`: answer it once heard.
    async fn commit_turn(&mut self, item_id: String, turn: Turn, respond: bool) -> Handled {
        let previous = self.items.last().map(|i| i.id.clone());
        if !self.voice.configured() {
            return Err(EventError::invalid(
                "voice_not_configured",
                "spoken turns need the voice service, and this chat service has none (VOICE_URL)",
                "",
            ));
        }
        let mut item = Item::new(item_id.clone(), Content::InputAudio);
        item.status = Status::Completed;
        self.send(server_event(
            "input_audio_buffer.committed",
            json!({"previous_item_id": previous, "item_id": item_id}),
        ))
        .await;
        self.send(server_event(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": item.to_json()}),
        ))
        .await;
        self.send(server_event(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": item.to_json()}),
        ))
        .await;
        self.push_item(item);
        self.pending_transcriptions += 1;
        if respond {
            self.want_response(Map::new(), Some(item_id.clone()), Instant::now(), None)
                .await?;
        }
        match self.speculation.as_mut() {
            Some(s) if s.item_id == item_id => {
                s.adopted = true;
                self.state
                    .metrics
                    .realtime_speculations
                    .with_label_values(&["adopted"])
                    .inc();
                if s.result.is_some()
                    && let Some(s) = self.speculation.take()
                    && let Some(result) = s.result
                {
                    self.transcribed(s.item_id, s.audio_secs, s.started, result)
                        .await;
                    self.start_wanted().await;
                }
            }
            _ => {
                self.discard_speculation();
                let job = self.queue_transcription(item_id.clone(), turn).await?;
                self.expected.insert(job, item_id);
            }
        }
        Ok(())
    }

    /// Drops a transcription started at a pause that the turn outgrew.
    fn discard_speculation(&mut self) {
        if self.speculation.take().is_some() {
            self.state
                .metrics
                .realtime_speculations
                .with_label_values(&["discarded"])
                .inc();
        }
    }

    async fn queue_transcription(
        &mut self,
        item_id: String,
        turn: Turn,
    ) -> Result<u64, EventError> {
        self.next_job += 1;
        let job = TranscriptionJob {
            job: self.next_job,
            item_id,
            turn,
            language: self.settings.language.clone(),
        };
        if self.transcriber.send(job).await.is_err() {
            return Err(EventError::server(
                "internal_error",
                "the transcriber stopped",
            ));
        }
        Ok(self.next_job)
    }

    /// The user paused: start transcribing what was said, in case the
    /// silence window ends the turn here.
    async fn speculate(&mut self, at_ms: u64, detected_ms: u64) -> Handled {
        let Some((item_id, started_ms)) = self.speaking.clone() else {
            return Ok(());
        };
        if !self.voice.configured() {
            return Ok(());
        }
        let padding = self
            .settings
            .turn_detection
            .map_or(0, |t| t.vad.prefix_padding_ms);
        let turn = self
            .input
            .copy_span(started_ms.saturating_sub(u64::from(padding)), detected_ms);
        let audio_secs = turn.duration_secs();
        self.discard_speculation();
        let job = self.queue_transcription(item_id.clone(), turn).await?;
        self.speculation = Some(Speculation {
            job,
            item_id,
            covers_ms: at_ms,
            audio_secs,
            started: Instant::now(),
            result: None,
            adopted: false,
        });
        Ok(())
    }

    async fn create_item(&mut self, item: &Map<String, Value>) -> Handled {
        if item.get("type").and_then(Value::as_str) != Some("message") {
            return Err(EventError::invalid(
                "unsupported_item",
                "only message items can be created",
                "item.type",
            ));
        }
        let (role, content) = match item.get("role").and_then(Value::as_str) {
            Some("user") => (Role::User, Content::InputText),
            Some("assistant") => (Role::Assistant, Content::OutputText),
            Some("system") => {
                return Err(EventError::invalid(
                    "unsupported_item",
                    "system messages are set with session.instructions",
                    "item.role",
                ));
            }
            _ => {
                return Err(EventError::invalid(
                    "invalid_item",
                    "item.role must be user or assistant",
                    "item.role",
                ));
            }
        };
        let text = item
            .get("content")
            .and_then(Value::as_array)
            .filter(|parts| parts.len() == 1)
            .and_then(|parts| parts[0].as_object())
            .filter(|part| {
                matches!(
                    part.get("type").and_then(Value::as_str),
                    Some("input_text" | "output_text" | "text")
                )
            })
            .and_then(|part| part.get("text").and_then(Value::as_str))
            .ok_or_else(|| {
                EventError::invalid(
                    "invalid_item",
                    "item.content must be one text part: [{\"type\": \"input_text\", \"text\": \"...\"}]",
                    "item.content",
                )
            })?
            .to_owned();
        if role == Role::User {
            admit(&self.state, &self.user_id, &text)
                .map_err(|e| EventError::invalid(e.code(), e.to_string(), "item.content"))?;
        } else if text.chars().count() > self.state.config.limits.max_message_chars {
            return Err(EventError::invalid(
                "message_too_large",
                format!(
                    "text is over {} characters",
                    self.state.config.limits.max_message_chars
                ),
                "item.content",
            ));
        }
        let previous = self.items.last().map(|i| i.id.clone());
        match item.get("previous_item_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(p)) if Some(p) == previous.as_ref() => {}
            Some(_) => {
                return Err(EventError::invalid(
                    "unsupported_previous_item",
                    "items are added at the end of the conversation",
                    "previous_item_id",
                ));
            }
        }
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| (1..=64).contains(&id.len()))
            .map_or_else(|| new_id("item_"), str::to_owned);
        let mut new = Item::new(id, content);
        new.text = text.clone();
        new.status = Status::Completed;
        let message = StoredMessage::new(role, text);
        self.store(&mut new, message).await?;
        self.send(server_event(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": new.to_json()}),
        ))
        .await;
        self.send(server_event(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": new.to_json()}),
        ))
        .await;
        self.push_item(new);
        Ok(())
    }

    /// Stores an item's message in the history.
    async fn store(&mut self, item: &mut Item, message: StoredMessage) -> Handled {
        match self.conversation.add(&self.state, message.clone()).await {
            Ok(saved) => {
                if !saved {
                    tracing::warn!(session_id = %self.conversation.session_id, "realtime turn not saved: history unavailable");
                }
                item.stored = Some(message);
                Ok(())
            }
            Err(e) => Err(EventError::invalid(e.code(), e.to_string(), "")),
        }
    }

    fn push_item(&mut self, item: Item) {
        self.items.push(item);
        if self.items.len() > MAX_ITEMS {
            self.items.remove(0);
        }
    }

    async fn want_response(
        &mut self,
        overrides: Map<String, Value>,
        answers: Option<String>,
        since: Instant,
        event_id: Option<String>,
    ) -> Handled {
        if self.running.is_some() || self.wanted.is_some() {
            return Err(EventError::invalid(
                "conversation_already_has_active_response",
                "a response is already under way: cancel it or wait for response.done",
                "",
            ));
        }
        // Checked now, so that a bad override is refused at once.
        self.response_settings(&overrides)?;
        self.wanted = Some(Wanted {
            overrides,
            answers,
            since,
            event_id,
        });
        self.start_wanted().await;
        Ok(())
    }

    fn response_settings(
        &self,
        overrides: &Map<String, Value>,
    ) -> Result<SessionSettings, EventError> {
        for unsupported in ["input", "tools", "conversation"] {
            if overrides
                .get(unsupported)
                .is_some_and(|v| !v.is_null() && v != "auto")
            {
                return Err(EventError::invalid(
                    "unsupported_response_option",
                    format!("response.{unsupported} is not supported"),
                    &format!("response.{unsupported}"),
                ));
            }
        }
        let settings = self.settings.updated(overrides, self.audio_sent)?;
        if settings.modality == Modality::Audio && !self.voice.configured() {
            return Err(EventError::invalid(
                "voice_not_configured",
                "audio needs the voice service, and this chat service has none (VOICE_URL)",
                "response.output_modalities",
            ));
        }
        Ok(settings)
    }

    /// Starts the wanted response once nothing it needs is missing.
    async fn start_wanted(&mut self) {
        if self.running.is_some() || self.pending_transcriptions > 0 {
            return;
        }
        let Some(wanted) = self.wanted.take() else {
            return;
        };
        let settings = match self.response_settings(&wanted.overrides) {
            Ok(s) => s,
            Err(e) => {
                self.send(e.for_event(wanted.event_id.as_deref()).to_event())
                    .await;
                return;
            }
        };
        let response_id = new_id("resp_");
        let item_id = new_id("item_");
        let cancel = Cancel::new();
        let job = ResponseJob {
            state: self.state.clone(),
            voice: self.voice.clone(),
            token: self.token.clone(),
            out: self.out.clone(),
            response_id: response_id.clone(),
            item_id: item_id.clone(),
            previous_item_id: self.items.last().map(|i| i.id.clone()),
            conversation_id: self.conversation.session_id.clone(),
            prompt: self
                .conversation
                .prompt_with(&self.state, settings.instructions.as_deref()),
            modality: settings.modality,
            voice_name: settings.voice.clone(),
            speed: settings.speed,
            output_format: settings.output_format,
            max_output_tokens: settings.max_output_tokens,
            cancel: cancel.clone(),
            turn_ended: wanted.since,
        };
        self.running = Some(Running {
            id: response_id,
            item_id,
            cancel,
            truncate_at: None,
        });
        let internal = self.internal.clone();
        self.state.tasks.spawn(async move {
            let ended = response::run(job).await;
            let _ = internal.send(Internal::Ended(ended)).await;
        });
    }

    fn cancel(&mut self, response_id: Option<&str>) -> Handled {
        match &self.running {
            Some(running) if response_id.is_none_or(|id| id == running.id) => {
                running.cancel.cancel(CancelReason::ClientCancelled);
                Ok(())
            }
            Some(_) => Err(EventError::invalid(
                "response_not_found",
                "no response under way has that id",
                "response_id",
            )),
            None if self.wanted.take().is_some() => Ok(()),
            None => Err(EventError::invalid(
                "response_cancel_not_active",
                "there is no response to cancel",
                "",
            )),
        }
    }

    async fn truncate(&mut self, item_id: &str, content_index: u64, audio_end_ms: u64) -> Handled {
        if content_index != 0 {
            return Err(EventError::invalid(
                "invalid_content_index",
                "items have one content part: content_index must be 0",
                "content_index",
            ));
        }
        if let Some(running) = &mut self.running
            && running.item_id == item_id
        {
            // Applied when the response has ended and its audio is known.
            running.truncate_at = Some(audio_end_ms);
            return Ok(());
        }
        let Some(index) = self.items.iter().position(|i| i.id == item_id) else {
            return Err(unknown_item(item_id));
        };
        self.apply_truncation(index, audio_end_ms).await
    }

    async fn apply_truncation(&mut self, index: usize, audio_end_ms: u64) -> Handled {
        let item = &self.items[index];
        if item.content != Content::OutputAudio {
            return Err(EventError::invalid(
                "invalid_item",
                "only an assistant's audio can be truncated",
                "item_id",
            ));
        }
        let audio_ms = item.audio_ms();
        if audio_end_ms > audio_ms {
            return Err(EventError::invalid(
                "invalid_audio_end_ms",
                format!("audio_end_ms {audio_end_ms} is past the item's audio ({audio_ms} ms)"),
                "audio_end_ms",
            ));
        }
        let text = heard_text(&item.spoken, audio_end_ms);
        let item_id = item.id.clone();
        let stored = item.stored.clone();
        if let Some(mut message) = stored {
            message.content = text.clone();
            message.interrupted = true;
            self.conversation
                .replace(&self.state, message.clone())
                .await;
            self.items[index].stored = Some(message);
        }
        let item = &mut self.items[index];
        item.text = text;
        item.status = Status::Incomplete;
        self.send(server_event(
            "conversation.item.truncated",
            json!({"item_id": item_id, "content_index": 0, "audio_end_ms": audio_end_ms}),
        ))
        .await;
        Ok(())
    }

    /// A task's report.
    pub async fn internal(&mut self, report: Internal) {
        match report {
            Internal::Transcribed {
                job,
                item_id,
                audio_secs,
                started,
                result,
            } => {
                match self.speculation.as_mut() {
                    Some(s) if s.job == job && s.adopted => {
                        let s = self.speculation.take();
                        if let Some(s) = s {
                            self.transcribed(s.item_id, audio_secs, s.started, result)
                                .await;
                        }
                    }
                    // Kept until the turn ends (or goes on).
                    Some(s) if s.job == job => s.result = Some(result),
                    _ => {
                        if self.expected.remove(&job).is_some() {
                            self.transcribed(item_id, audio_secs, started, result).await;
                        }
                    }
                }
            }
            Internal::Ended(ended) => self.ended(ended).await,
        }
        self.start_wanted().await;
    }

    async fn transcribed(
        &mut self,
        item_id: String,
        audio_secs: f64,
        started: Instant,
        result: Result<Heard, VoiceError>,
    ) {
        self.pending_transcriptions = self.pending_transcriptions.saturating_sub(1);
        let answers_this = self
            .wanted
            .as_ref()
            .is_some_and(|w| w.answers.as_deref() == Some(&item_id));
        let heard = match result {
            Ok(heard) => heard,
            Err(e) => {
                let error = EventError::server(e.code(), format!("transcription failed: {e}"));
                self.send(server_event(
                    "conversation.item.input_audio_transcription.failed",
                    json!({"item_id": item_id, "content_index": 0, "error": {
                        "type": error.kind, "code": error.code, "message": error.message, "param": null}}),
                ))
                .await;
                self.send(error.to_event()).await;
                if answers_this {
                    self.wanted = None;
                }
                return;
            }
        };
        let text = heard.text.trim().to_owned();
        self.state
            .metrics
            .realtime_stt
            .observe(started.elapsed().as_secs_f64());
        self.send(server_event(
            "conversation.item.input_audio_transcription.delta",
            json!({"item_id": item_id, "content_index": 0, "delta": text}),
        ))
        .await;
        let Some(index) = self.items.iter().position(|i| i.id == item_id) else {
            return;
        };
        self.send(server_event(
            "conversation.item.input_audio_transcription.completed",
            json!({"item_id": item_id, "content_index": 0, "transcript": text,
                   "usage": {"type": "duration", "seconds": audio_secs}}),
        ))
        .await;
        if text.is_empty() {
            // Nothing was said: nothing to store or answer.
            if answers_this {
                self.wanted = None;
            }
            return;
        }
        let mut item = self.items[index].clone();
        item.text = text.clone();
        if let Err(e) = admit(&self.state, &self.user_id, &text) {
            self.send(EventError::invalid(e.code(), e.to_string(), "").to_event())
                .await;
            if answers_this {
                self.wanted = None;
            }
            return;
        }
        if let Err(e) = self
            .store(&mut item, StoredMessage::new(Role::User, text))
            .await
        {
            self.send(e.to_event()).await;
            if answers_this {
                self.wanted = None;
            }
            return;
        }
        self.items[index] = item;
    }

    async fn ended(&mut self, ended: ResponseEnded) {
        let Some(running) = self.running.take_if(|r| r.id == ended.response_id) else {
            return;
        };
        self.audio_sent |= ended.audio_sent;
        let mut item = ended.item;
        if !item.text.is_empty() {
            let mut message = StoredMessage::new(Role::Assistant, item.text.clone());
            message.interrupted = item.status != Status::Completed;
            if let Err(e) = self.store(&mut item, message).await {
                self.send(e.to_event()).await;
            }
        }
        self.push_item(item);
        if let Some(at) = running.truncate_at {
            let index = self.items.len() - 1;
            let at = at.min(self.items[index].audio_ms());
            if let Err(e) = self.apply_truncation(index, at).await {
                self.send(e.to_event()).await;
            }
        }
    }

    /// The client is gone: stop the response under way.
    pub fn close(&mut self) {
        if let Some(running) = &self.running {
            running.cancel.cancel(CancelReason::ClientCancelled);
        }
    }

    pub fn is_responding(&self) -> bool {
        self.running.is_some()
    }
}

fn unknown_item(item_id: &str) -> EventError {
    EventError::invalid(
        "item_not_found",
        format!(
            "no item {:?} in this session",
            item_id.chars().take(64).collect::<String>()
        ),
        "item_id",
    )
}
