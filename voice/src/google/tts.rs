//! Google Cloud Text-to-Speech `text:synthesize` (LINEAR16, i.e. WAV).

use base64::Engine as _;
use serde_json::json;

use super::auth::TokenSource;
use super::{GoogleSettings, block_on};
use crate::audio::{Audio, decode_wav};
use crate::tts::{TextToSpeech, TtsError, VoiceInfo, safe_name};

const ENGINE: &str = "google";

pub struct GoogleTts {
    tokens: Option<TokenSource>,
    http: reqwest::Client,
    url: String,
    voice: String,
    problem: Option<String>,
}

impl GoogleTts {
    pub fn new(settings: &GoogleSettings, http: reqwest::Client) -> Self {
        let (tokens, problem) = match TokenSource::from_file(&settings.credentials, http.clone()) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        };
        Self {
            tokens,
            http,
            url: settings.tts_url.clone(),
            voice: settings.tts_voice.clone(),
            problem,
        }
    }

    async fn request(
        &self,
        tokens: &TokenSource,
        text: &str,
        voice: &str,
        speed: f32,
    ) -> Result<Audio, TtsError> {
        let failed = |reason: String| TtsError::Failed {
            engine: ENGINE,
            reason,
        };
        let token = tokens
            .token()
            .await
            .map_err(|reason| TtsError::Unavailable {
                engine: ENGINE,
                reason,
            })?;
        // Google voice names start with their language code: en-US-Standard-C.
        let language: String = voice.splitn(3, '-').take(2).collect::<Vec<_>>().join("-");
        let body = json!({
            "input": {"text": text},
            "voice": {"languageCode": language, "name": voice},
            "audioConfig": {"audioEncoding": "LINEAR16", "speakingRate": speed.clamp(0.25, 4.0)},
        });
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| TtsError::Unavailable {
                engine: ENGINE,
                reason: e.without_url().to_string(),
            })?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let answer: serde_json::Value = response.json().await.map_err(|e| failed(e.to_string()))?;
        let content = answer["audioContent"]
            .as_str()
            .ok_or_else(|| failed("no audioContent in the answer".into()))?;
        let wav = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| failed(format!("audioContent is not base64: {e}")))?;
        decode_wav(&wav, u32::MAX).map_err(|e| failed(format!("audioContent is not WAV: {e}")))
    }
}

impl TextToSpeech for GoogleTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn voices(&self) -> Vec<VoiceInfo> {
        if self.tokens.is_none() {
            return Vec::new();
        }
        vec![VoiceInfo {
            name: self.voice.clone(),
            engine: ENGINE,
            language: self
                .voice
                .splitn(3, '-')
                .take(2)
                .collect::<Vec<_>>()
                .join("-"),
            sample_rate: 24_000,
        }]
    }

    fn default_voice(&self) -> Option<String> {
        self.tokens.as_ref().map(|_| self.voice.clone())
    }

    fn synthesize(&self, text: &str, voice: &str, speed: f32) -> Result<Audio, TtsError> {
        let tokens = self.tokens.as_ref().ok_or_else(|| TtsError::Unavailable {
            engine: ENGINE,
            reason: self.problem.clone().unwrap_or_default(),
        })?;
        if !safe_name(voice) {
            return Err(TtsError::UnknownVoice {
                engine: ENGINE,
                voice: voice.to_owned(),
            });
        }
        block_on(self.request(tokens, text, voice, speed)).map_err(|reason| {
            TtsError::Unavailable {
                engine: ENGINE,
                reason,
            }
        })?
    }

    fn health(&self) -> Result<(), String> {
        match &self.problem {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }
}
