//! A realtime session's settings: what `session.update` may set, checked
//! field by field (an error names the field), and the session object sent
//! in `session.created` / `session.updated`.

use serde_json::{Map, Value, json};
use voicechat_common::realtime::{AudioFormat, EventError, VadSettings};

/// What the answers are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Audio,
    Text,
}

/// `server_vad` turn detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnDetection {
    pub vad: VadSettings,
    /// Answer when the user stops speaking.
    pub create_response: bool,
    /// The user speaking cancels the answer under way.
    pub interrupt_response: bool,
}

impl Default for TurnDetection {
    fn default() -> Self {
        Self {
            vad: VadSettings::default(),
            create_response: true,
            interrupt_response: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    pub modality: Modality,
    /// The system prompt; `None`: the service's (`LLM_SYSTEM_PROMPT`).
    pub instructions: Option<String>,
    pub input_format: AudioFormat,
    pub output_format: AudioFormat,
    /// `None`: push-to-talk (the client commits).
    pub turn_detection: Option<TurnDetection>,
    pub voice: String,
    pub speed: f32,
    /// The language the user speaks (`audio.input.transcription.language`).
    pub language: Option<String>,
    pub max_output_tokens: Option<u64>,
}

const MAX_INSTRUCTIONS_BYTES: usize = 16 * 1024;

impl SessionSettings {
    pub fn new(voice: String, audio: bool) -> Self {
        Self {
            modality: if audio {
                Modality::Audio
            } else {
                Modality::Text
            },
            instructions: None,
            input_format: AudioFormat::Pcm,
            output_format: AudioFormat::Pcm,
            turn_detection: Some(TurnDetection::default()),
            voice,
            speed: 1.0,
            language: None,
            max_output_tokens: None,
        }
    }

    /// Applies the fields present in a `session.update`; nothing changes
    /// when any field is refused. `voice_locked`: audio already went out
    /// in this voice.
    pub fn updated(
        &self,
        update: &Map<String, Value>,
        voice_locked: bool,
    ) -> Result<Self, EventError> {
        let mut next = self.clone();
        match update.get("type").and_then(Value::as_str) {
            None | Some("realtime") => {}
            Some("transcription") => {
                return Err(EventError::invalid(
                    "invalid_session_type",
                    "transcription sessions are the voice service's: GET /v1/realtime?intent=transcription there",
                    "session.type",
                ));
            }
            Some(other) => {
                return Err(EventError::invalid(
                    "invalid_session_type",
                    format!("session.type {other:?} is not realtime"),
                    "session.type",
                ));
            }
        }
        if let Some(modalities) = update.get("output_modalities") {
            next.modality = match modalities.as_array().map(Vec::as_slice) {
                Some([m]) if m == "audio" => Modality::Audio,
                Some([m]) if m == "text" => Modality::Text,
                _ => {
                    return Err(EventError::invalid(
                        "invalid_modalities",
                        "output_modalities must be [\"audio\"] or [\"text\"]",
                        "session.output_modalities",
                    ));
                }
            };
        }
        match update.get("instructions") {
            None => {}
            Some(Value::String(s)) if s.is_empty() => next.instructions = None,
            Some(Value::String(s)) if s.len() <= MAX_INSTRUCTIONS_BYTES => {
                next.instructions = Some(s.clone());
            }
            Some(_) => {
                return Err(EventError::invalid(
                    "invalid_instructions",
                    format!(
                        "instructions must be a string of at most {MAX_INSTRUCTIONS_BYTES} bytes"
                    ),
                    "session.instructions",
                ));
            }
        }
        match update.get("max_output_tokens") {
            None => {}
            Some(Value::String(s)) if s == "inf" => next.max_output_tokens = None,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=4096).contains(&n) => next.max_output_tokens = Some(n),
                _ => {
                    return Err(EventError::invalid(
                        "invalid_max_output_tokens",
                        "max_output_tokens must be 1-4096 or \"inf\"",
                        "session.max_output_tokens",
                    ));
                }
            },
        }
        if let Some(tools) = update.get("tools")
            && tools.as_array().is_none_or(|t| !t.is_empty())
        {
            return Err(EventError::invalid(
                "tools_unsupported",
                "function tools are not supported by this server",
                "session.tools",
            ));
        }
        if let Some(audio) = update.get("audio") {
            let audio = audio.as_object().ok_or_else(|| {
                EventError::invalid("invalid_audio", "audio must be an object", "session.audio")
            })?;
            if let Some(input) = audio.get("input") {
                next.apply_input(input)?;
            }
            if let Some(output) = audio.get("output") {
                next.apply_output(output, voice_locked)?;
            }
        }
        Ok(next)
    }

    fn apply_input(&mut self, input: &Value) -> Result<(), EventError> {
        let input = input.as_object().ok_or_else(|| {
            EventError::invalid(
                "invalid_audio",
                "audio.input must be an object",
                "session.audio.input",
            )
        })?;
        if let Some(format) = input.get("format") {
            self.input_format = AudioFormat::parse(format, "session.audio.input.format")?;
        }
        match input.get("turn_detection") {
            None => {}
            Some(Value::Null) => self.turn_detection = None,
            Some(td) => self.turn_detection = Some(turn_detection(td, self.turn_detection)?),
        }
        match input.get("transcription") {
            None | Some(Value::Null) => {}
            Some(Value::Object(t)) => match t.get("language") {
                None | Some(Value::Null) => self.language = None,
                Some(Value::String(l))
                    if (2..=8).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') =>
                {
                    self.language = Some(l.to_ascii_lowercase());
                }
                Some(_) => {
                    return Err(EventError::invalid(
                        "invalid_language",
                        "transcription.language must be a language code such as en",
                        "session.audio.input.transcription.language",
                    ));
                }
            },
            Some(_) => {
                return Err(EventError::invalid(
                    "invalid_transcription",
                    "transcription must be an object or null",
                    "session.audio.input.transcription",
                ));
            }
        }
        Ok(())
    }

    fn apply_output(&mut self, output: &Value, voice_locked: bool) -> Result<(), EventError> {
        let output = output.as_object().ok_or_else(|| {
            EventError::invalid(
                "invalid_audio",
                "audio.output must be an object",
                "session.audio.output",
            )
        })?;
        if let Some(format) = output.get("format") {
            self.output_format = AudioFormat::parse(format, "session.audio.output.format")?;
        }
        if let Some(voice) = output.get("voice") {
            let name = match voice {
                Value::String(v) => Some(v.as_str()),
                Value::Object(v) => v.get("id").and_then(Value::as_str),
                _ => None,
            }
            .filter(|v| {
                (1..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
            })
            .ok_or_else(|| {
                EventError::invalid(
                    "invalid_voice",
                    "voice must be a voice name (letters, digits, . _ + -)",
                    "session.audio.output.voice",
                )
            })?;
            if name != self.voice && voice_locked {
                return Err(EventError::invalid(
                    "cannot_update_voice",
                    "the voice cannot change once audio has been sent in this session",
                    "session.audio.output.voice",
                ));
            }
            self.voice = name.to_owned();
        }
        if let Some(speed) = output.get("speed") {
            self.speed = speed
                .as_f64()
                .filter(|s| (0.25..=4.0).contains(s))
                .ok_or_else(|| {
                    EventError::invalid(
                        "invalid_speed",
                        "speed must be between 0.25 and 4",
                        "session.audio.output.speed",
                    )
                })? as f32;
        }
        Ok(())
    }

    /// The session object as `session.created` / `session.updated` send it.
    pub fn to_json(&self, id: &str, model: &str) -> Value {
        let turn_detection = match &self.turn_detection {
            None => Value::Null,
            Some(td) => json!({
                "type": "server_vad",
                "threshold": td.vad.threshold,
                "prefix_padding_ms": td.vad.prefix_padding_ms,
                "silence_duration_ms": td.vad.silence_duration_ms,
                "create_response": td.create_response,
                "interrupt_response": td.interrupt_response,
                "idle_timeout_ms": null,
            }),
        };
        json!({
            "type": "realtime",
            "object": "realtime.session",
            "id": id,
            "model": model,
            "output_modalities": [match self.modality { Modality::Audio => "audio", Modality::Text => "text" }],
            "instructions": self.instructions.clone().unwrap_or_default(),
            "max_output_tokens": self.max_output_tokens.map_or(json!("inf"), Value::from),
            "tools": [],
            "tool_choice": "auto",
            "audio": {
                "input": {
                    "format": self.input_format.to_json(),
                    "turn_detection": turn_detection,
                    "transcription": {"model": "whisper-1", "language": self.language},
                    "noise_reduction": null,
                },
                "output": {
                    "format": self.output_format.to_json(),
                    "voice": self.voice,
                    "speed": self.speed,
                },
            },
        })
    }
}

fn turn_detection(
    value: &Value,
    current: Option<TurnDetection>,
) -> Result<TurnDetection, EventError> {
    let param = "session.audio.input.turn_detection";
    let td = value.as_object().ok_or_else(|| {
        EventError::invalid(
            "invalid_turn_detection",
            "turn_detection must be an object or null",
            param,
        )
    })?;
    match td.get("type").and_then(Value::as_str) {
        Some("server_vad") => {}
        Some("semantic_vad") => {
            return Err(EventError::invalid(
                "invalid_turn_detection",
                "semantic_vad is not supported: use server_vad",
                &format!("{param}.type"),
            ));
        }
        _ => {
            return Err(EventError::invalid(
                "invalid_turn_detection",
                "turn_detection.type must be server_vad",
                &format!("{param}.type"),
            ));
        }
    }
    let mut out = current.unwrap_or_default();
    if let Some(t) = td.get("threshold").filter(|v| !v.is_null()) {
        out.vad.threshold = t
            .as_f64()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| {
                EventError::invalid(
                    "invalid_turn_detection",
                    "threshold must be 0-1",
                    &format!("{param}.threshold"),
                )
            })? as f32;
    }
    for (field, slot, max) in [
        (
            "prefix_padding_ms",
            &mut out.vad.prefix_padding_ms,
            5_000u64,
        ),
        (
            "silence_duration_ms",
            &mut out.vad.silence_duration_ms,
            10_000,
        ),
    ] {
        if let Some(v) = td.get(field).filter(|v| !v.is_null()) {
            *slot = v
                .as_u64()
                .filter(|ms| (0..=max).contains(ms))
                .ok_or_else(|| {
                    EventError::invalid(
                        "invalid_turn_detection",
                        format!("{field} must be 0-{max}"),
                        &format!("{param}.{field}"),
                    )
                })? as u32;
        }
    }
    if out.vad.silence_duration_ms < 100 {
        return Err(EventError::invalid(
            "invalid_turn_detection",
            "silence_duration_ms must be at least 100",
            &format!("{param}.silence_duration_ms"),
        ));
    }
    for (field, slot) in [
        ("create_response", &mut out.create_response),
        ("interrupt_response", &mut out.interrupt_response),
    ] {
        if let Some(v) = td.get(field).filter(|v| !v.is_null()) {
            *slot = v.as_bool().ok_or_else(|| {
                EventError::invalid(
                    "invalid_turn_detection",
                    format!("{field} must be true or false"),
                    &format!("{param}.{field}"),
                )
            })?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn an_update_sets_what_it_names_and_keeps_the_rest() {
        let s = SessionSettings::new("alloy".into(), true);
        let next = s
            .updated(
                &update(json!({
                    "type": "realtime",
                    "output_modalities": ["text"],
                    "instructions": "Be brief.",
                    "audio": {"input": {
                        "format": {"type": "audio/pcmu"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
                        "transcription": {"model": "gpt-4o-transcribe", "language": "EN"},
                    }, "output": {"voice": "marin", "speed": 1.5}},
                })),
                false,
            )
            .unwrap();
        assert_eq!(next.modality, Modality::Text);
        assert_eq!(next.instructions.as_deref(), Some("Be brief."));
        assert_eq!(next.input_format, AudioFormat::Pcmu);
        assert_eq!(next.output_format, AudioFormat::Pcm);
        let td = next.turn_detection.unwrap();
        assert_eq!(td.vad.silence_duration_ms, 800);
        assert_eq!(td.vad.prefix_padding_ms, 300, "kept");
        assert_eq!(next.language.as_deref(), Some("en"));
        assert_eq!((next.voice.as_str(), next.speed), ("marin", 1.5));
        let ptt = next
            .updated(
                &update(json!({"audio": {"input": {"turn_detection": null}}})),
                false,
            )
            .unwrap();
        assert_eq!(ptt.turn_detection, None);
        let json = ptt.to_json("s1", "m");
        assert_eq!(json["audio"]["input"]["turn_detection"], Value::Null);
        assert_eq!(json["audio"]["input"]["format"]["type"], "audio/pcmu");
        assert_eq!(json["output_modalities"], json!(["text"]));
    }

    #[test]
    fn refusals_name_the_field_and_change_nothing() {
        let s = SessionSettings::new("alloy".into(), true);
        for (bad, param) in [
            (json!({"type": "transcription"}), "session.type"),
            (
                json!({"output_modalities": ["audio", "text"]}),
                "session.output_modalities",
            ),
            (
                json!({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}),
                "session.audio.input.format",
            ),
            (
                json!({"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}),
                "session.audio.input.turn_detection.type",
            ),
            (
                json!({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 3}}}}),
                "session.audio.input.turn_detection.threshold",
            ),
            (
                json!({"audio": {"output": {"voice": "../x"}}}),
                "session.audio.output.voice",
            ),
            (json!({"tools": [{"type": "function"}]}), "session.tools"),
            (json!({"max_output_tokens": 0}), "session.max_output_tokens"),
        ] {
            let e = s.updated(&update(bad.clone()), false).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{bad}: {}", e.message);
        }
        let e = s
            .updated(
                &update(json!({"audio": {"output": {"voice": "echo"}}})),
                true,
            )
            .unwrap_err();
        assert_eq!(e.code, "cannot_update_voice");
        assert!(
            s.updated(
                &update(json!({"audio": {"output": {"voice": "alloy"}}})),
                true
            )
            .is_ok()
        );
    }
}
