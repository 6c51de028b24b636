//! Harness for the voice integration tests: the service in-process on its
//! own runtime (models load once per test binary), real models from
//! `scripts/fetch-models.sh`, a real redis-server, and helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use voicechat_common::auth::{AuthSettings, JwtSettings};
use voicechat_common::stt_profile::SttProfile;
use voicechat_testkit::{RedisServer, have_or_skip};
use voicechat_voice::config::VoiceConfig;
use voicechat_voice::engine_name::{EngineName, SttEngine, TtsEngine};
use voicechat_voice::state::AppState;

/// Short, so that the idle test is quick; clients in the tests never
/// pause this long between events.
pub const WYOMING_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

pub const SECRET: &str = "voice-integration-test-secret-0123456789";

pub fn models_dir() -> PathBuf {
    std::env::var("VOICE_MODELS_DIR").map_or_else(
        |_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/voicechat/models-v1")
        },
        PathBuf::from,
    )
}

/// Whether the real models are installed (or the test must be skipped).
pub fn models_or_skip(test: &str) -> bool {
    let m = models_dir();
    let present = m.join("whisper/ggml-tiny.en-q8_0.bin").is_file()
        && m.join("piper/en_US-joe-medium.onnx").is_file()
        && m.join("vosk/ko").is_dir();
    have_or_skip(
        present,
        test,
        "models",
        "voice models (scripts/fetch-models.sh)",
    ) && have_or_skip(RedisServer::available(), test, "redis", "redis-server")
}

pub fn token(user: &str) -> String {
    JwtSettings::hs256(SECRET.as_bytes().to_vec())
        .expect("secret")
        .mint(user, Duration::from_secs(600))
        .expect("mint")
}

pub fn config(redis_url: Option<String>, piper_dir: PathBuf, vosk_dir: PathBuf) -> VoiceConfig {
    let models = models_dir();
    VoiceConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        auth: AuthSettings::Local(JwtSettings::hs256(SECRET.as_bytes().to_vec()).expect("secret")),
        redis_url,
        cache_ttl: Duration::from_secs(600),
        redis_timeout: Duration::from_millis(300),
        whisper_model: models.join("whisper/ggml-tiny.en-q8_0.bin"),
        models_dir: models,
        piper_dir,
        vosk_dir,
        vosk_default_language: "en".into(),
        vosk_max_secs: 15.0,
        espeak_program: "espeak-ng".into(),
        espeak_default_voice: "en-us".into(),
        profile: SttProfile::Cpu,
        whisper: voicechat_voice::stt::whisper::WhisperSettings::new(2),
        sentence_silence_secs: 0.2,
        inference_concurrency: 1,
        inference_queue_limit: 4,
        max_text_chars: 500,
        max_audio_bytes: 4 * 1024 * 1024,
        max_audio_secs: 60,
        vad_threshold_dbfs: -45.0,
        google: None,
        tts_engines: TtsEngine::ALL.to_vec(),
        stt_engines: SttEngine::ALL.to_vec(),
        cors: Default::default(),
        deadlines: voicechat_common::serve::RequestDeadlines {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(120),
        },
        openai_voices: Default::default(),
        wyoming: voicechat_voice::wyoming::WyomingSettings {
            idle_timeout: WYOMING_IDLE_TIMEOUT,
            ..voicechat_voice::wyoming::WyomingSettings::on("127.0.0.1:0".parse().expect("addr"))
        },
    }
}

/// A voice service running on its own runtime thread for the whole binary.
pub struct Service {
    pub addr: SocketAddr,
    /// The Wyoming port (when the configuration turns it on).
    pub wyoming: Option<SocketAddr>,
    pub redis: Option<RedisServer>,
}

impl Service {
    /// Starts the service and waits until its models are loaded.
    pub fn start(config: VoiceConfig, redis: Option<RedisServer>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                let wyoming = match config.wyoming.listen {
                    Some(at) => Some(
                        tokio::net::TcpListener::bind(at)
                            .await
                            .expect("bind wyoming"),
                    ),
                    None => None,
                };
                let wyoming_addr = wyoming.as_ref().map(|l| l.local_addr().expect("addr"));
                let state = AppState::from_config(config).expect("state");
                state.load_engines().await;
                tx.send((addr, wyoming_addr)).expect("send addr");
                if let Some(listener) = wyoming {
                    let stop = tokio_util::sync::CancellationToken::new();
                    tokio::spawn(voicechat_voice::wyoming::serve(
                        listener,
                        state.clone(),
                        stop,
                    ));
                }
                voicechat_voice::app::serve(listener, state, std::future::pending())
                    .await
                    .expect("serve");
            });
        });
        let (addr, wyoming) = rx.recv().expect("service address");
        Self {
            addr,
            wyoming,
            redis,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST /api/v1/tts` with this JSON body, as user `alice`.
    pub async fn tts(&self, body: serde_json::Value) -> reqwest::Response {
        client()
            .post(self.url("/api/v1/tts"))
            .bearer_auth(token("alice"))
            .json(&body)
            .send()
            .await
            .expect("tts request")
    }

    /// `GET path` as user `a`, answered with JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.expect("JSON body")
    }

    /// `GET path` as user `a`, answered with text.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("text body")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        client()
            .get(self.url(path))
            .bearer_auth(token("a"))
            .send()
            .await
            .expect("GET request")
    }

    /// `POST /api/v1/stt?{query}` with this WAV, as user `alice`.
    pub async fn stt(&self, wav: Vec<u8>, query: &str) -> reqwest::Response {
        client()
            .post(self.url(&format!("/api/v1/stt?{query}")))
            .bearer_auth(token("alice"))
            .header("content-type", "audio/wav")
            .body(wav)
            .send()
            .await
            .expect("stt request")
    }
}

/// The full service: all models, Redis cache.
pub fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let redis = RedisServer::start();
        let m = models_dir();
        Service::start(
            config(Some(redis.url()), m.join("piper"), m.join("vosk")),
            Some(redis),
        )
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// The word error rate allowed when Whisper tiny.en hears a sentence that
/// Piper spoke. Piper's VITS model samples noise, so its speech differs
/// from call to call, and now and then a word or two is misheard (WER up
/// to 0.15 on a 13-word sentence, about one run in eight here).
pub const PIPER_WER: f64 = 0.2;

/// Word error rate of `hypothesis` against `reference`, on lowercase words
/// without punctuation (Levenshtein distance over words / reference length).
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let words = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric() || *c == '\'')
                    .collect::<String>()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// A WAV of `secs` of silence at `rate`.
pub fn silence_wav(rate: u32, secs: f32) -> Vec<u8> {
    let audio = voicechat_voice::audio::Audio {
        samples: vec![0.0; (rate as f32 * secs) as usize],
        sample_rate: rate,
    };
    voicechat_voice::audio::encode_wav(&audio)
}
