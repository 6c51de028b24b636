//! The voice service's settings, read once from the environment; every
//! variable is listed with its default in docs/voice.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use voicechat_common::auth::AuthSettings;
use voicechat_common::config::{self, ConfigError};
use voicechat_common::serve::RequestDeadlines;
use voicechat_common::stt_profile::SttProfile;

use crate::engine_name::{EngineName, SttEngine, TtsEngine};
use crate::google::GoogleSettings;
use crate::stt::whisper::WhisperSettings;
use crate::wyoming::WyomingSettings;

#[derive(Debug, Clone)]
pub struct VoiceConfig {
    pub listen: SocketAddr,
    pub auth: AuthSettings,
    /// `None` disables the cache.
    pub redis_url: Option<String>,
    pub cache_ttl: Duration,
    pub redis_timeout: Duration,
    pub models_dir: PathBuf,
    pub piper_dir: PathBuf,
    pub whisper_model: PathBuf,
    pub vosk_dir: PathBuf,
    pub vosk_default_language: String,
    pub vosk_max_secs: f64,
    pub espeak_program: String,
    pub espeak_default_voice: String,
    pub profile: SttProfile,
    pub whisper: WhisperSettings,
    /// Silence between sentences of synthesized speech, in seconds.
    pub sentence_silence_secs: f32,
    pub inference_concurrency: usize,
    /// Calls waiting for inference past which the pod reports not-ready.
    pub inference_queue_limit: usize,
    pub max_text_chars: usize,
    pub max_audio_bytes: usize,
    pub max_audio_secs: u32,
    pub vad_threshold_dbfs: f32,
    /// Google Cloud engines; `None` unless `GOOGLE_APPLICATION_CREDENTIALS` is set.
    pub google: Option<GoogleSettings>,
    /// Engines to load (`VOICE_TTS_ENGINES`, `VOICE_STT_ENGINES`), in
    /// their fixed order of preference; Google also needs credentials.
    pub tts_engines: Vec<TtsEngine>,
    pub stt_engines: Vec<SttEngine>,
    /// Browser origins allowed to call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors: voicechat_common::cors::AllowedOrigins,
    /// How long a client may take to send a request's headers and body.
    pub deadlines: RequestDeadlines,
    /// Which installed voice each of OpenAI's voice names gets.
    pub openai_voices: voicechat_common::openai_voices::OpenAiVoices,
    /// The Wyoming protocol's port and limits.
    pub wyoming: WyomingSettings,
}

/// A comma-separated engine list of variable `name`; unset means every
/// engine of the kind.
pub fn parse_engines<E: EngineName>(name: &str, raw: Option<&str>) -> Result<Vec<E>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(E::ALL.to_vec());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|engine| {
            E::parse(engine).ok_or_else(|| ConfigError::Invalid {
                name: name.into(),
                message: format!("unknown engine {engine:?}; known: {}", E::known()),
            })
        })
        .collect()
}

impl VoiceConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let listen = voicechat_common::service::listen_addr("VOICE_BIND", "VOICE_PORT", 8006)?;
        let profile = match config::env_string("STT_PROFILE") {
            None => SttProfile::Cpu,
            Some(p) => SttProfile::parse(&p).ok_or_else(|| ConfigError::Invalid {
                name: "STT_PROFILE".into(),
                message: format!("{:?} is not cpu or gpu", p.to_ascii_lowercase()),
            })?,
        };
        let models_dir = PathBuf::from(
            config::env_string("VOICE_MODELS_DIR").unwrap_or_else(|| "/models".into()),
        );
        let whisper_model = match config::env_string("WHISPER_MODEL") {
            Some(m) if m.contains('/') => PathBuf::from(m),
            Some(m) => models_dir.join("whisper").join(m),
            None => default_whisper_model(&models_dir.join("whisper"), profile),
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let inference_concurrency =
            config::env_parse("VOICE_INFERENCE_CONCURRENCY", 1usize)?.max(1);
        let threads =
            config::env_parse("STT_THREADS", stt_threads(cores, inference_concurrency))?.max(1);
        let defaults = WhisperSettings::new(threads);
        let whisper = WhisperSettings {
            flash_attn: config::env_bool("STT_WHISPER_FLASH_ATTN", defaults.flash_attn)?,
            fit_audio_ctx: config::env_bool("STT_WHISPER_FIT_AUDIO_CTX", defaults.fit_audio_ctx)?,
            beam_size: beam_size(config::env_parse(
                "STT_WHISPER_BEAM_SIZE",
                defaults.beam_size,
            )?)?,
            ..defaults
        };
        let sentence_silence_secs = config::env_parse("TTS_SENTENCE_SILENCE_SECS", 0.2f32)?;
        if !(0.0..=5.0).contains(&sentence_silence_secs) {
            return Err(ConfigError::Invalid {
                name: "TTS_SENTENCE_SILENCE_SECS".into(),
                message: "must be between 0 and 5 seconds".into(),
            });
        }
        let cache_enabled = config::env_bool("VOICE_CACHE", true)?;
        Ok(Self {
            cors: voicechat_common::cors::AllowedOrigins::from_env()?,
            // Uploads are up to VOICE_MAX_AUDIO_BYTES (25 MiB): 2 minutes is
            // about 1.7 Mbit/s.
            deadlines: RequestDeadlines::from_env(Duration::from_secs(120))?,
            listen,
            auth: AuthSettings::from_env()?,
            redis_url: if cache_enabled {
                Some(
                    config::secret("REDIS_URL")?.unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
                )
            } else {
                None
            },
            cache_ttl: Duration::from_secs(config::env_parse("VOICE_CACHE_TTL_SECS", 86_400u64)?),
            redis_timeout: Duration::from_millis(config::env_parse("REDIS_TIMEOUT_MS", 500u64)?),
            piper_dir: config::env_string("PIPER_VOICES_DIR")
                .map_or_else(|| models_dir.join("piper"), PathBuf::from),
            vosk_dir: config::env_string("VOSK_MODELS_DIR")
                .map_or_else(|| models_dir.join("vosk"), PathBuf::from),
            models_dir,
            whisper_model,
            vosk_default_language: config::env_string("VOSK_DEFAULT_LANGUAGE")
                .unwrap_or_else(|| "en".into()),
            vosk_max_secs: config::env_parse("VOSK_MAX_SECS", 15.0f64)?,
            espeak_program: config::env_string("ESPEAK_NG_PROGRAM")
                .unwrap_or_else(|| "espeak-ng".into()),
            espeak_default_voice: config::env_string("ESPEAK_DEFAULT_VOICE")
                .unwrap_or_else(|| "en-us".into()),
            profile,
            whisper,
            sentence_silence_secs,
            inference_concurrency,
            inference_queue_limit: config::env_parse(
                "VOICE_INFERENCE_QUEUE_LIMIT",
                4 * inference_concurrency,
            )?
            .max(1),
            max_text_chars: config::env_parse("VOICE_MAX_TEXT_CHARS", 5000usize)?,
            max_audio_bytes: config::env_parse("VOICE_MAX_AUDIO_BYTES", 25 * 1024 * 1024usize)?,
            max_audio_secs: config::env_parse("VOICE_MAX_AUDIO_SECS", 600u32)?,
            vad_threshold_dbfs: config::env_parse("VAD_THRESHOLD_DBFS", -45.0f32)?,
            google: google_from_env()?,
            tts_engines: parse_engines(
                "VOICE_TTS_ENGINES",
                config::env_string("VOICE_TTS_ENGINES").as_deref(),
            )?,
            stt_engines: parse_engines(
                "VOICE_STT_ENGINES",
                config::env_string("VOICE_STT_ENGINES").as_deref(),
            )?,
            openai_voices: voicechat_common::openai_voices::OpenAiVoices::parse(
                config::env_string("OPENAI_VOICE_MAP").as_deref(),
            )?,
            wyoming: wyoming_from_env(listen)?,
        })
    }
}

/// `WYOMING_PORT` (10300; 0 turns Wyoming off) on the HTTP port's address.
fn wyoming_from_env(http: SocketAddr) -> Result<WyomingSettings, ConfigError> {
    let port: u16 = config::env_parse("WYOMING_PORT", WyomingSettings::DEFAULT_PORT)?;
    if port == 0 {
        return Ok(WyomingSettings::off());
    }
    if port == http.port() {
        return Err(ConfigError::Invalid {
            name: "WYOMING_PORT".into(),
            message: format!("{port} is the HTTP port (VOICE_PORT)"),
        });
    }
    let defaults = WyomingSettings::on(SocketAddr::new(http.ip(), port));
    let idle_secs =
        config::env_parse("WYOMING_IDLE_TIMEOUT_SECS", defaults.idle_timeout.as_secs())?;
    if !(1..=3600).contains(&idle_secs) {
        return Err(ConfigError::Invalid {
            name: "WYOMING_IDLE_TIMEOUT_SECS".into(),
            message: format!("{idle_secs} is not between 1 and 3600"),
        });
    }
    let max_connections = config::env_parse("WYOMING_MAX_CONNECTIONS", defaults.max_connections)?;
    if max_connections == 0 {
        return Err(ConfigError::Invalid {
            name: "WYOMING_MAX_CONNECTIONS".into(),
            message: "must be at least 1 (WYOMING_PORT=0 turns Wyoming off)".into(),
        });
    }
    Ok(WyomingSettings {
        idle_timeout: Duration::from_secs(idle_secs),
        max_connections,
        ..defaults
    })
}

/// The first installed model of the profile's preference list (the first
/// of the list when none is installed, so the error names a useful file).
pub fn default_whisper_model(dir: &std::path::Path, profile: SttProfile) -> PathBuf {
    let list = profile.whisper_models();
    list.iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join(list[0]))
}

fn google_from_env() -> Result<Option<GoogleSettings>, ConfigError> {
    let Some(credentials) = config::env_string("GOOGLE_APPLICATION_CREDENTIALS") else {
        return Ok(None);
    };
    Ok(Some(GoogleSettings {
        credentials: PathBuf::from(credentials),
        tts_enabled: config::env_bool("GOOGLE_TTS", true)?,
        stt_enabled: config::env_bool("GOOGLE_STT", true)?,
        tts_url: config::env_string("GOOGLE_TTS_URL")
            .unwrap_or_else(|| "https://texttospeech.googleapis.com/v1/text:synthesize".into()),
        stt_url: config::env_string("GOOGLE_STT_URL")
            .unwrap_or_else(|| "https://speech.googleapis.com/v1/speech:recognize".into()),
        tts_voice: config::env_string("GOOGLE_TTS_VOICE")
            .unwrap_or_else(|| "en-US-Standard-C".into()),
        timeout: Duration::from_secs(config::env_parse("GOOGLE_TIMEOUT_SECS", 30u64)?),
    }))
}

/// Beam search as faster-whisper offers it: 1 (greedy) to 8 beams.
fn beam_size(beams: u32) -> Result<u32, ConfigError> {
    if (1..=8).contains(&beams) {
        Ok(beams)
    } else {
        Err(ConfigError::Invalid {
            name: "STT_WHISPER_BEAM_SIZE".into(),
            message: format!("{beams} is not between 1 and 8"),
        })
    }
}

/// Whisper threads per call when `STT_THREADS` is unset: the cores shared
/// among the calls that run at once. whisper.cpp's threads spin while they
/// wait for each other, so more threads than cores is not a little slower
/// but many times slower (docs/benchmarks.md: 8x with 2 calls of 2 threads
/// on 2 cores).
pub fn stt_threads(cores: usize, inference_concurrency: usize) -> usize {
    (cores / inference_concurrency.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_lists_default_to_all_and_refuse_unknown_names() {
        use SttEngine::{Google, Vosk, Whisper};
        assert_eq!(
            parse_engines::<SttEngine>("X", None).unwrap(),
            [Whisper, Vosk, Google]
        );
        assert_eq!(
            parse_engines::<SttEngine>("X", Some("vosk, whisper")).unwrap(),
            [Vosk, Whisper]
        );
        assert!(
            parse_engines::<TtsEngine>("X", Some(""))
                .unwrap()
                .is_empty()
        );
        let err = parse_engines::<TtsEngine>("VOICE_TTS_ENGINES", Some("piper,coqui")).unwrap_err();
        assert!(err.to_string().contains("coqui"), "{err}");
        assert!(
            err.to_string()
                .ends_with("unknown engine \"coqui\"; known: piper, espeak-ng, google"),
            "{err}"
        );
    }

    #[test]
    fn beam_sizes_outside_one_to_eight_are_refused() {
        assert_eq!(beam_size(1).unwrap(), 1);
        assert_eq!(beam_size(8).unwrap(), 8);
        for bad in [0, 9] {
            let err = beam_size(bad).unwrap_err().to_string();
            assert!(err.contains("STT_WHISPER_BEAM_SIZE"), "{err}");
        }
    }

    #[test]
    fn whisper_threads_share_the_cores_among_concurrent_calls() {
        assert_eq!(stt_threads(8, 1), 8);
        assert_eq!(stt_threads(8, 2), 4);
        assert_eq!(stt_threads(2, 3), 1);
        assert_eq!(stt_threads(1, 0), 1);
    }
}
