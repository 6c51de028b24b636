//! One Wyoming connection: its events in order, the state of a
//! transcription (`transcribe`, `audio-start`, `audio-chunk`s,
//! `audio-stop`) and of a streamed synthesis (`synthesize-start`,
//! `synthesize-chunk`s, `synthesize-stop`). Speech goes through the same
//! checks and engines as HTTP (`crate::speech`).

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::audio::{PcmFormat, to_wav};
use super::frame::{Event, FrameError, FrameLimits, read_event, write_event};
use super::info::{ServiceFacts, info};
use super::voice::choose_voice;
use crate::encode::{AudioFormat, StreamEncoder};
use crate::engine_name::{EngineName, SttEngine};
use crate::speech::{self, SpeechPiece, SpeechRequest, TranscribeRequest, VoiceError};
use crate::state::AppState;
use crate::tts::sentences::SentenceBuffer;

/// Samples per `audio-chunk` sent (wyoming-piper's default).
const SAMPLES_PER_CHUNK: usize = 1024;
/// Longest text handed to the engines at once from a streamed synthesis.
const MAX_STREAMED_SENTENCE_CHARS: usize = 400;

/// Why a connection ended, for the log and `voice_wyoming_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The client closed it between events.
    Client,
    Idle,
    Shutdown,
    /// A frame over the limits (`too_large`), `malformed` or `truncated`.
    Frame(&'static str),
    /// Audio past the limits, a chunk in another format than its start, or
    /// speech that failed after its audio began.
    Refused,
    /// Reading or writing failed (the client went away or stopped reading).
    Io,
}

impl Closed {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
            Self::Frame(reason) => reason,
            Self::Refused => "refused",
            Self::Io => "io",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub limits: FrameLimits,
    /// How long the client may be silent between events, and how long a
    /// write may wait for it to read.
    pub idle_timeout: Duration,
}

/// What a `transcribe` asked for.
#[derive(Debug, Default, Clone)]
struct Asked {
    language: Option<String>,
    engine: Option<String>,
}

enum Hearing {
    Idle,
    Asked(Asked),
    Receiving {
        asked: Asked,
        format: PcmFormat,
        pcm: Vec<u8>,
    },
}

/// A streamed synthesis under way: its voice and the text not yet spoken.
struct Speaking {
    voice: Option<String>,
    text: SentenceBuffer,
}

/// An `error` event to send; `close` ends the connection after it.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    text: String,
    close: bool,
}

impl Refusal {
    fn new(code: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
            close: false,
        }
    }

    fn closing(mut self) -> Self {
        tracing::warn!(code = self.code, text = %self.text, "wyoming: refused, closing the connection");
        self.close = true;
        self
    }

    fn out_of_order(event: &str, when: &str) -> Self {
        Self::new("out_of_order", format!("{event} {when}"))
    }
}

impl From<VoiceError> for Refusal {
    fn from(e: VoiceError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

type Handled = std::io::Result<Result<(), Refusal>>;

pub struct Session<'a, W> {
    state: &'a AppState,
    writer: W,
    settings: SessionSettings,
    hearing: Hearing,
    speaking: Option<Speaking>,
}

impl<'a, W: AsyncWrite + Unpin> Session<'a, W> {
    pub fn new(state: &'a AppState, writer: W, settings: SessionSettings) -> Self {
        Self {
            state,
            writer,
            settings,
            hearing: Hearing::Idle,
            speaking: None,
        }
    }

    /// Serves events from `reader` until the client leaves, the connection
    /// idles, a frame is refused, or `stop` is cancelled (between events:
    /// speech under way is finished first).
    pub async fn run<R: AsyncBufRead + Unpin>(
        mut self,
        mut reader: R,
        stop: &CancellationToken,
    ) -> Closed {
        loop {
            let read = tokio::select! {
                read = tokio::time::timeout(
                    self.settings.idle_timeout,
                    read_event(&mut reader, &self.settings.limits),
                ) => read,
                () = stop.cancelled() => return Closed::Shutdown,
            };
            let event = match read {
                Err(_) => return Closed::Idle,
                Ok(Ok(None)) => return Closed::Client,
                Ok(Ok(Some(event))) => event,
                Ok(Err(FrameError::Io(_))) => return Closed::Io,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "wyoming: refused a frame, closing the connection");
                    // Best effort: the client may still read why.
                    let _ = self.send_error(e.reason(), &e.to_string()).await;
                    return Closed::Frame(e.reason());
                }
            };
            self.state
                .metrics
                .wyoming_events
                .with_label_values(&[event_label(&event.kind)])
                .inc();
            match self.handle(event).await {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => {
                    if self.send_error(refusal.code, &refusal.text).await.is_err() {
                        return Closed::Io;
                    }
                    if refusal.close {
                        return Closed::Refused;
                    }
                }
                Err(_) => return Closed::Io,
            }
        }
    }

    async fn handle(&mut self, event: Event) -> Handled {
        match event.kind.as_str() {
            "describe" => self.describe().await.map(Ok),
            "ping" => {
                let text = event.data.get("text").cloned().unwrap_or_default();
                self.send(&Event::new("pong", json!({ "text": text })))
                    .await
                    .map(Ok)
            }
            "transcribe" => Ok(self.transcribe(&event)),
            "audio-start" => Ok(self.audio_start(&event)),
            "audio-chunk" => Ok(self.audio_chunk(event)),
            "audio-stop" => self.audio_stop().await,
            "synthesize" => self.synthesize(&event).await,
            "synthesize-start" => Ok(self.synthesize_start(&event)),
            "synthesize-chunk" => self.synthesize_chunk(&event).await,
            "synthesize-stop" => self.synthesize_stop().await,
            other => {
                // Wyoming servers drop events they do not know (newer
                // clients send e.g. `select-program` to any server).
                tracing::debug!(event = other, "wyoming: ignored an event");
                Ok(Ok(()))
            }
        }
    }

    async fn describe(&mut self) -> std::io::Result<()> {
        let engines = self.state.engines.get().cloned();
        let whisper_file = self
            .state
            .config
            .whisper_model
            .file_name()
            .and_then(|f| f.to_str());
        let data = info(
            engines.as_deref(),
            &ServiceFacts {
                version: env!("CARGO_PKG_VERSION"),
                whisper_file,
            },
        );
        self.send(&Event::new("info", data)).await
    }

    // --- speech to text ---

    fn transcribe(&mut self, event: &Event) -> Result<(), Refusal> {
        if matches!(self.hearing, Hearing::Receiving { .. }) {
            return Err(Refusal::out_of_order(
                "transcribe",
                "while audio is streaming",
            ));
        }
        // Info lists one model per engine, named as the engine.
        let engine = match event.str("name") {
            Some(name) if SttEngine::parse(name).is_some() => Some(name.to_owned()),
            Some(name) => {
                return Err(Refusal::new(
                    "unknown_model",
                    format!("no speech-to-text model {name:?}: describe lists them"),
                ));
            }
            None => None,
        };
        self.hearing = Hearing::Asked(Asked {
            language: event.str("language").map(primary_language),
            engine,
        });
        Ok(())
    }

    fn audio_start(&mut self, event: &Event) -> Result<(), Refusal> {
        let asked = match &self.hearing {
            Hearing::Idle => Asked::default(),
            Hearing::Asked(asked) => asked.clone(),
            Hearing::Receiving { .. } => {
                return Err(Refusal::out_of_order(
                    "audio-start",
                    "while audio is streaming",
                ));
            }
        };
        let format =
            PcmFormat::of(event).map_err(|e| Refusal::new("invalid_audio", e.to_string()))?;
        self.hearing = Hearing::Receiving {
            asked,
            format,
            pcm: Vec::new(),
        };
        Ok(())
    }

    fn audio_chunk(&mut self, event: Event) -> Result<(), Refusal> {
        let Hearing::Receiving { format, pcm, .. } = &mut self.hearing else {
            return Err(Refusal::out_of_order("audio-chunk", "before audio-start"));
        };
        let format = *format;
        let config = &self.state.config;
        // A chunk in another format would be heard as noise.
        let refusal = if PcmFormat::of(&event).ok() != Some(format) {
            Some(Refusal::new(
                "invalid_audio",
                format!(
                    "audio-chunk's format differs from audio-start's ({} Hz, {} bytes, {} channels)",
                    format.rate, format.width, format.channels
                ),
            ))
        } else {
            pcm.extend_from_slice(event.payload.as_deref().unwrap_or_default());
            let secs = pcm.len() as f64 / format.bytes_per_second() as f64;
            if secs > f64::from(config.max_audio_secs) {
                Some(Refusal::new(
                    "audio_too_long",
                    format!("audio is over the limit of {} s", config.max_audio_secs),
                ))
            } else if pcm.len() > config.max_audio_bytes {
                Some(Refusal::new(
                    "audio_too_large",
                    format!(
                        "audio is over the limit of {} bytes",
                        config.max_audio_bytes
                    ),
                ))
            } else {
                None
            }
        };
        match refusal {
            Some(refusal) => {
                self.hearing = Hearing::Idle;
                Err(refusal.closing())
            }
            None => Ok(()),
        }
    }

    async fn audio_stop(&mut self) -> Handled {
        let (asked, format, pcm) = match std::mem::replace(&mut self.hearing, Hearing::Idle) {
            Hearing::Receiving { asked, format, pcm } => (asked, format, pcm),
            other => {
                self.hearing = other;
                return Ok(Err(Refusal::out_of_order(
                    "audio-stop",
                    "before audio-start",
                )));
            }
        };
        let request = TranscribeRequest {
            language: asked.language,
            engine: asked.engine,
            ..TranscribeRequest::audio(to_wav(format, &pcm).into())
        };
        match speech::transcribe(self.state, request).await {
            Ok(t) => {
                let event = Event::new(
                    "transcript",
                    json!({"text": t.text, "language": t.language}),
                );
                self.send(&event).await.map(Ok)
            }
            Err(e) => Ok(Err(e.into())),
        }
    }

    // --- text to speech ---

    fn voice(&self, event: &Event) -> Result<Option<String>, Refusal> {
        let engines = self.state.engines.get().ok_or(VoiceError::Loading)?;
        choose_voice(
            event.data.get("voice"),
            event.str("text_format"),
            &engines.tts.voices(),
        )
        .map_err(|e| Refusal::new(e.code(), e.to_string()))
    }

    async fn synthesize(&mut self, event: &Event) -> Handled {
        if self.speaking.is_some() {
            // Home Assistant sends the whole text again as `synthesize`
            // inside a stream, for servers that cannot stream: not twice.
            return Ok(Ok(()));
        }
        let voice = match self.voice(event) {
            Ok(voice) => voice,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let text = event.str("text").unwrap_or_default().to_owned();
        self.speak(text, voice).await
    }

    fn synthesize_start(&mut self, event: &Event) -> Result<(), Refusal> {
        if self.speaking.is_some() {
            return Err(Refusal::out_of_order(
                "synthesize-start",
                "while a synthesis is streaming",
            ));
        }
        let voice = self.voice(event)?;
        self.speaking = Some(Speaking {
            voice,
            text: SentenceBuffer::new(MAX_STREAMED_SENTENCE_CHARS),
        });
        Ok(())
    }

    async fn synthesize_chunk(&mut self, event: &Event) -> Handled {
        let Some(speaking) = &mut self.speaking else {
            return Ok(Err(Refusal::out_of_order(
                "synthesize-chunk",
                "before synthesize-start",
            )));
        };
        let sentences = speaking.text.push(event.str("text").unwrap_or_default());
        let voice = speaking.voice.clone();
        self.speak_sentences(sentences, voice).await
    }

    async fn synthesize_stop(&mut self) -> Handled {
        let Some(mut speaking) = self.speaking.take() else {
            return Ok(Err(Refusal::out_of_order(
                "synthesize-stop",
                "before synthesize-start",
            )));
        };
        let rest = speaking.text.finish();
        if let Err(refusal) = self.speak_sentences(rest, speaking.voice).await? {
            return Ok(Err(refusal));
        }
        self.send(&Event::new("synthesize-stopped", json!({})))
            .await
            .map(Ok)
    }

    /// Each sentence of a stream as audio of its own, as wyoming-piper
    /// sends them. A sentence refused (too long, engines failing) is an
    /// `error` event; the stream goes on with the next.
    async fn speak_sentences(&mut self, sentences: Vec<String>, voice: Option<String>) -> Handled {
        for sentence in sentences {
            if let Err(refusal) = self.speak(sentence, voice.clone()).await? {
                if refusal.close {
                    return Ok(Err(refusal));
                }
                self.send_error(refusal.code, &refusal.text).await?;
            }
        }
        Ok(Ok(()))
    }

    /// `text` as `audio-start`, `audio-chunk`s as its sentences are
    /// synthesized, `audio-stop`. A failure before any audio is refused; a
    /// failure after audio began closes the connection (the client would
    /// otherwise take the audio cut short for all of it).
    async fn speak(&mut self, text: String, voice: Option<String>) -> Handled {
        let request = SpeechRequest {
            text,
            voice,
            speed: 1.0,
            // Overridden by the encoder: 16-bit PCM at the voice's rate.
            format: AudioFormat::Pcm,
        };
        let started =
            speech::synthesize_streaming_with(self.state, request, StreamEncoder::native_pcm())
                .await;
        let (first, mut rest) = match started {
            Ok(started) => started,
            Err(e) => return Ok(Err(e.into())),
        };
        let SpeechPiece::Started {
            sample_rate, audio, ..
        } = first
        else {
            return Ok(Err(Refusal::new(
                "internal_error",
                "the synthesis did not start",
            )
            .closing()));
        };
        let format = PcmFormat::speech(sample_rate);
        self.send(&Event::new("audio-start", format.fields()))
            .await?;
        self.send_audio(format, &audio).await?;
        loop {
            match rest.recv().await {
                Some(SpeechPiece::Audio(bytes)) => self.send_audio(format, &bytes).await?,
                Some(SpeechPiece::Finished { .. }) => break,
                Some(SpeechPiece::Failed(reason)) => {
                    return Ok(Err(Refusal::new("engines_failed", reason).closing()));
                }
                Some(other) => {
                    return Ok(Err(Refusal::new(
                        "internal_error",
                        format!("the synthesis sent {other:?} after audio"),
                    )
                    .closing()));
                }
                None => {
                    return Ok(Err(Refusal::new(
                        "internal_error",
                        "the synthesis ended without finishing",
                    )
                    .closing()));
                }
            }
        }
        self.send(&Event::new("audio-stop", json!({})))
            .await
            .map(Ok)
    }

    async fn send_audio(&mut self, format: PcmFormat, pcm: &[u8]) -> std::io::Result<()> {
        for chunk in pcm.chunks(SAMPLES_PER_CHUNK * 2) {
            let event = Event::new("audio-chunk", format.fields()).with_payload(chunk.to_vec());
            write_event(&mut self.writer, &event).await?;
        }
        self.flush().await
    }

    async fn send(&mut self, event: &Event) -> std::io::Result<()> {
        write_event(&mut self.writer, event).await?;
        self.flush().await
    }

    async fn send_error(&mut self, code: &str, text: &str) -> std::io::Result<()> {
        self.send(&Event::new("error", json!({"text": text, "code": code})))
            .await
    }

    /// A client that stops reading cannot hold a connection (and the
    /// synthesis feeding it) forever.
    async fn flush(&mut self) -> std::io::Result<()> {
        tokio::time::timeout(self.settings.idle_timeout, self.writer.flush())
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "client is not reading")
            })?
    }
}

/// `en-US`, `en_US` → `en`: Whisper and Vosk know languages, not regions.
fn primary_language(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or(tag)
        .to_ascii_lowercase()
}

/// The metric label of an event type: the protocol's own, else `other`
/// (a client cannot grow the label set).
fn event_label(kind: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "describe",
        "ping",
        "transcribe",
        "audio-start",
        "audio-chunk",
        "audio-stop",
        "synthesize",
        "synthesize-start",
        "synthesize-chunk",
        "synthesize-stop",
    ];
    KNOWN
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags_become_languages() {
        assert_eq!(primary_language("en-US"), "en");
        assert_eq!(primary_language("pt_BR"), "pt");
        assert_eq!(primary_language("KO"), "ko");
    }

    #[test]
    fn event_labels_are_a_closed_set() {
        assert_eq!(event_label("audio-chunk"), "audio-chunk");
        assert_eq!(event_label("run-pipeline"), "other");
    }
}
