//! Google Cloud Text-to-Speech `text:synthesize` (LINEAR16, i.e. WAV).

use base64::Engine as _;
use serde_json::json;

use super::{GoogleClient, GoogleError, GoogleSettings};
use crate::audio::{Audio, decode_wav};
use crate::tts::{TextToSpeech, TtsError, VoiceInfo, safe_name};

const ENGINE: &str = "google";

pub struct GoogleTts {
    client: GoogleClient,
    url: String,
    voice: String,
}

impl GoogleTts {
    pub fn new(settings: &GoogleSettings, http: reqwest::Client) -> Self {
        Self {
            client: GoogleClient::new(settings, http),
            url: settings.tts_url.clone(),
            voice: settings.tts_voice.clone(),
        }
    }
}

/// Google voice names start with their language code: `en-US-Standard-C`.
fn language_of(voice: &str) -> String {
    voice.splitn(3, '-').take(2).collect::<Vec<_>>().join("-")
}

impl TextToSpeech for GoogleTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn voices(&self) -> Vec<VoiceInfo> {
        if !self.client.available() {
            return Vec::new();
        }
        vec![VoiceInfo {
            name: self.voice.clone(),
            engine: ENGINE,
            language: language_of(&self.voice),
            sample_rate: 24_000,
        }]
    }

    fn default_voice(&self) -> Option<String> {
        self.client.available().then(|| self.voice.clone())
    }

    fn synthesize(&self, text: &str, voice: &str, speed: f32) -> Result<Audio, TtsError> {
        if !safe_name(voice) {
            return Err(TtsError::UnknownVoice {
                engine: ENGINE,
                voice: voice.to_owned(),
            });
        }
        let failed = |reason: String| TtsError::Failed {
            engine: ENGINE,
            reason,
        };
        let body = json!({
            "input": {"text": text},
            "voice": {"languageCode": language_of(voice), "name": voice},
            "audioConfig": {"audioEncoding": "LINEAR16", "speakingRate": speed.clamp(0.25, 4.0)},
        });
        let answer = self
            .client
            .post_json(&self.url, &body)
            .map_err(|e| match e {
                GoogleError::Unavailable(reason) => TtsError::Unavailable {
                    engine: ENGINE,
                    reason,
                },
                GoogleError::Failed(reason) => failed(reason),
            })?;
        let content = answer["audioContent"]
            .as_str()
            .ok_or_else(|| failed("no audioContent in the answer".into()))?;
        let wav = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| failed(format!("audioContent is not base64: {e}")))?;
        decode_wav(&wav, u32::MAX).map_err(|e| failed(format!("audioContent is not WAV: {e}")))
    }

    fn health(&self) -> Result<(), String> {
        self.client.health()
    }
}
