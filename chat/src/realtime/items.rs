//! The conversation items of a realtime session, as the client sees them
//! (`realtime.item` messages), with what is needed to truncate an answer
//! to what was heard: the time each spoken sentence began.

use serde_json::{Value, json};

use crate::history::StoredMessage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    InputAudio,
    InputText,
    OutputAudio,
    OutputText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
    Incomplete,
}

/// A sentence of an answer and where its audio lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Spoken {
    pub text: String,
    pub start_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub content: Content,
    pub text: String,
    pub status: Status,
    /// The history message it is stored as (once stored).
    pub stored: Option<StoredMessage>,
    /// An answer's sentences as spoken, in order.
    pub spoken: Vec<Spoken>,
}

impl Item {
    pub fn new(id: String, content: Content) -> Self {
        Self {
            id,
            content,
            text: String::new(),
            status: Status::InProgress,
            stored: None,
            spoken: Vec::new(),
        }
    }

    pub fn is_user(&self) -> bool {
        matches!(self.content, Content::InputAudio | Content::InputText)
    }

    pub fn audio_ms(&self) -> u64 {
        self.spoken.last().map_or(0, |s| s.start_ms + s.duration_ms)
    }

    pub fn to_json(&self) -> Value {
        let part = match self.content {
            // Null until the transcript is in.
            Content::InputAudio => {
                let transcript = (!self.text.is_empty()).then(|| self.text.clone());
                json!({"type": "input_audio", "transcript": transcript})
            }
            Content::InputText => json!({"type": "input_text", "text": self.text}),
            Content::OutputAudio => json!({"type": "output_audio", "transcript": self.text}),
            Content::OutputText => json!({"type": "output_text", "text": self.text}),
        };
        // An answer being made has no content yet, as OpenAI's.
        let content = if !self.is_user() && self.status == Status::InProgress {
            json!([])
        } else {
            json!([part])
        };
        json!({
            "id": self.id,
            "object": "realtime.item",
            "type": "message",
            "role": if self.is_user() { "user" } else { "assistant" },
            "status": match self.status {
                Status::InProgress => "in_progress",
                Status::Completed => "completed",
                Status::Incomplete => "incomplete",
            },
            "content": content,
        })
    }
}

/// What of an answer the listener heard when playback stopped at
/// `audio_end_ms`: every sentence that had finished, and of the one
/// playing, the words in proportion to the time it played.
pub fn heard_text(spoken: &[Spoken], audio_end_ms: u64) -> String {
    let mut heard: Vec<String> = Vec::new();
    for s in spoken {
        if audio_end_ms >= s.start_ms + s.duration_ms {
            heard.push(s.text.clone());
            continue;
        }
        if audio_end_ms > s.start_ms && s.duration_ms > 0 {
            let words: Vec<&str> = s.text.split_whitespace().collect();
            let share = (audio_end_ms - s.start_ms) as f64 / s.duration_ms as f64;
            let n = (words.len() as f64 * share).floor() as usize;
            if n > 0 {
                heard.push(words[..n].join(" "));
            }
        }
        break;
    }
    heard.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spoken() -> Vec<Spoken> {
        vec![
            Spoken {
                text: "Sure, here is the plan.".into(),
                start_ms: 0,
                duration_ms: 1500,
            },
            Spoken {
                text: "We leave at eight and take the bus.".into(),
                start_ms: 1700,
                duration_ms: 2000,
            },
        ]
    }

    #[test]
    fn truncation_keeps_what_was_heard() {
        let s = spoken();
        assert_eq!(heard_text(&s, 0), "");
        assert_eq!(heard_text(&s, 1600), "Sure, here is the plan.");
        // Half of the second sentence's eight words.
        assert_eq!(
            heard_text(&s, 2700),
            "Sure, here is the plan. We leave at eight"
        );
        assert_eq!(
            heard_text(&s, 9999),
            "Sure, here is the plan. We leave at eight and take the bus."
        );
    }

    #[test]
    fn items_look_like_openais() {
        let mut answer = Item::new("item_a".into(), Content::OutputAudio);
        assert_eq!(answer.to_json()["content"], json!([]));
        assert_eq!(answer.to_json()["status"], "in_progress");
        answer.text = "Hi there.".into();
        answer.status = Status::Completed;
        let j = answer.to_json();
        assert_eq!(j["role"], "assistant");
        assert_eq!(
            j["content"][0],
            json!({"type": "output_audio", "transcript": "Hi there."})
        );
        let question = Item::new("item_u".into(), Content::InputAudio);
        assert_eq!(question.to_json()["content"][0]["transcript"], Value::Null);
        assert_eq!(question.to_json()["role"], "user");
        answer.spoken = spoken();
        assert_eq!(answer.audio_ms(), 3700);
    }
}
