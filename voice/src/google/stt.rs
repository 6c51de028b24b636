//! Google Cloud Speech-to-Text `speech:recognize` (synchronous, audio up to
//! about a minute, LINEAR16 at 16 kHz, word time offsets).

use base64::Engine as _;
use serde_json::json;

use super::{GoogleClient, GoogleError, GoogleSettings};
use crate::audio::STT_SAMPLE_RATE;
use crate::stt::{Segment, SpeechToText, SttEngine, SttError, SttOptions, SttStream, Transcript};

const ENGINE: SttEngine = SttEngine::Google;
/// Synchronous recognition takes at most about a minute of audio.
const MAX_SECS: usize = 60;

pub struct GoogleStt {
    client: GoogleClient,
    url: String,
}

impl GoogleStt {
    pub fn new(settings: &GoogleSettings, http: reqwest::Client) -> Self {
        Self {
            client: GoogleClient::new(settings, http),
            url: settings.stt_url.clone(),
        }
    }
}

/// `"1.500s"` → 1.5.
fn seconds(v: &serde_json::Value) -> f64 {
    v.as_str()
        .and_then(|s| s.trim_end_matches('s').parse().ok())
        .unwrap_or(0.0)
}

fn parse(answer: &serde_json::Value, language: &str) -> Transcript {
    let mut segments = Vec::new();
    let mut texts = Vec::new();
    for result in answer["results"].as_array().into_iter().flatten() {
        let best = &result["alternatives"][0];
        if let Some(t) = best["transcript"].as_str() {
            texts.push(t.trim().to_owned());
        }
        let words = best["words"].as_array().into_iter().flatten();
        segments.extend(words.map(|w| {
            Segment::new(
                seconds(&w["startTime"]),
                seconds(&w["endTime"]),
                w["word"].as_str().unwrap_or_default().to_owned(),
            )
        }));
    }
    // Google's segments are words.
    let words = segments.iter().map(Segment::as_word).collect();
    Transcript {
        text: texts.join(" "),
        language: answer["results"][0]["languageCode"]
            .as_str()
            .unwrap_or(language)
            .to_owned(),
        segments,
        words,
    }
}

impl SpeechToText for GoogleStt {
    fn engine(&self) -> SttEngine {
        ENGINE
    }

    fn supports(&self, _language: Option<&str>) -> bool {
        self.client.available()
    }

    fn languages(&self) -> Vec<String> {
        if self.client.available() {
            vec!["*".to_owned()]
        } else {
            Vec::new()
        }
    }

    fn transcribe(&self, samples: &[f32], options: &SttOptions) -> Result<Transcript, SttError> {
        if samples.len() > MAX_SECS * STT_SAMPLE_RATE as usize {
            return Err(SttError::Failed {
                engine: ENGINE,
                reason: format!("audio longer than {MAX_SECS} s"),
            });
        }
        let language = options.language.clone().unwrap_or_else(|| "en-US".into());
        let pcm: Vec<u8> = samples
            .iter()
            .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
            .collect();
        let body = json!({
            "config": {
                "encoding": "LINEAR16",
                "sampleRateHertz": STT_SAMPLE_RATE,
                "languageCode": language,
                "enableWordTimeOffsets": true,
            },
            "audio": {"content": base64::engine::general_purpose::STANDARD.encode(pcm)},
        });
        let answer = self
            .client
            .post_json(&self.url, &body)
            .map_err(|e| match e {
                GoogleError::Unavailable(reason) => SttError::Unavailable {
                    engine: ENGINE,
                    reason,
                },
                GoogleError::Failed(reason) => SttError::Failed {
                    engine: ENGINE,
                    reason,
                },
            })?;
        Ok(parse(&answer, &language))
    }

    fn start_stream(&self, _options: &SttOptions) -> Result<Box<dyn SttStream + '_>, SttError> {
        Err(SttError::Unavailable {
            engine: ENGINE,
            reason: "streaming recognition is not offered for the Google engine".into(),
        })
    }

    fn health(&self) -> Result<(), String> {
        self.client.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_with_word_times() {
        let answer = json!({"results": [
            {"alternatives": [{"transcript": "hello world", "words": [
                {"startTime": "0.100s", "endTime": "0.500s", "word": "hello"},
                {"startTime": "0.600s", "endTime": "1s", "word": "world"}]}], "languageCode": "en-us"},
            {"alternatives": [{"transcript": " again"}]}
        ]});
        let t = parse(&answer, "en-US");
        assert_eq!(t.text, "hello world again");
        assert_eq!(t.language, "en-us");
        assert_eq!(t.segments.len(), 2);
        assert!((t.segments[1].end - 1.0).abs() < 1e-9);
    }
}
