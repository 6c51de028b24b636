//! Speech throughput: audio seconds per wall second for text-to-speech
//! (Piper) and speech-to-text (Whisper), through the service's HTTP API
//! versus calling the engines in-process, the same under BENCH_CLIENTS (4)
//! concurrent clients, the latency of a cache hit, and the time to the
//! first audio byte of a 600-character paragraph, streamed
//! (`stream_format: audio`) against not, with Piper's time for its first
//! sentence alone. Last, the same speech over the Wyoming protocol
//! against HTTP, alternating, on a service without a cache: synthesis of
//! the paragraph and transcription of the same audio.
//!
//! ./scripts/fetch-models.sh && source ~/.cache/voicechat/env.sh
//! cargo bench -p voicechat-voice --bench speech
//! BENCH_ROUNDS=5 cargo bench -p voicechat-voice --bench speech

use std::time::{Duration, Instant};

use voicechat_common::auth::{AuthSettings, JwtSettings};
use voicechat_common::stt_profile::SttProfile;
use voicechat_voice::audio::{self, STT_SAMPLE_RATE};
use voicechat_voice::config::VoiceConfig;
use voicechat_voice::engine_name::{EngineName, SttEngine, TtsEngine};
use voicechat_voice::engines::Engines;
use voicechat_voice::state::AppState;
use voicechat_voice::stt::SttOptions;

const SECRET: &str = "benchmark-secret-0123456789abcdef0123456789";
const TEXT: &str = "The quick brown fox jumps over the lazy dog. \
    Voice services turn text into speech and speech back into text. \
    This paragraph is long enough to take a few seconds to say.";
/// 610 characters in eight sentences, the first of them short, as an
/// assistant's answer often starts.
const PARAGRAPH: &str = "Sure, here is the plan. \
    We leave the house at eight and take the bus to the station, where the train to the coast waits. \
    The ride takes about two hours, so bring a book or something to listen to on the way. \
    At the coast we walk along the harbour to the old market and have lunch in the square. \
    In the afternoon there is time for the museum or a swim, whichever the weather allows. \
    The last train back leaves at six, and we should be home again before nine in the evening. \
    If anything changes, I will send you a message in the morning so you can plan around it. \
    Do not forget your ticket, and bring some water.";

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn config(models: &std::path::Path, redis_url: Option<String>) -> VoiceConfig {
    // The service's defaults unless the run says otherwise.
    let inference_concurrency = env_usize("VOICE_INFERENCE_CONCURRENCY").unwrap_or(1);
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let threads = env_usize("STT_THREADS")
        .unwrap_or_else(|| voicechat_voice::config::stt_threads(cores, inference_concurrency));
    VoiceConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        auth: AuthSettings::Local(JwtSettings::hs256(SECRET.as_bytes().to_vec()).expect("secret")),
        redis_url,
        cache_ttl: Duration::from_secs(600),
        redis_timeout: Duration::from_millis(300),
        whisper_model: models.join("whisper/ggml-tiny.en-q8_0.bin"),
        models_dir: models.to_path_buf(),
        piper_dir: models.join("piper"),
        vosk_dir: models.join("vosk"),
        vosk_default_language: "en".into(),
        vosk_max_secs: 15.0,
        espeak_program: "espeak-ng".into(),
        espeak_default_voice: "en-us".into(),
        profile: SttProfile::Cpu,
        whisper: voicechat_voice::stt::whisper::WhisperSettings::new(threads),
        sentence_silence_secs: 0.2,
        inference_concurrency,
        inference_queue_limit: 4 * inference_concurrency,
        max_text_chars: 5000,
        max_audio_bytes: 25 << 20,
        max_audio_secs: 600,
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
        wyoming: voicechat_voice::wyoming::WyomingSettings::off(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let models = std::env::var("VOICE_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    if !models.join("whisper/ggml-tiny.en-q8_0.bin").is_file() {
        eprintln!(
            "SKIPPED speech bench: models not found (run ./scripts/fetch-models.sh and source ~/.cache/voicechat/env.sh)"
        );
        return;
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let redis =
        voicechat_testkit::RedisServer::available().then(voicechat_testkit::RedisServer::start);

    // In-process: the engines alone.
    let cfg = config(&models, None);
    let cfg_used = cfg.clone();
    let engines = tokio::task::spawn_blocking(move || Engines::load(&cfg))
        .await
        .expect("load");
    let (mut tts_direct, mut stt_direct) = (Vec::new(), Vec::new());
    let mut speech_secs = 0.0;
    for _ in 0..rounds {
        let t = Instant::now();
        let s = engines
            .tts
            .synthesize(TEXT, Some("en_US-joe-medium"), 1.0)
            .expect("tts");
        let elapsed = t.elapsed().as_secs_f64();
        speech_secs = s.audio.duration_secs();
        tts_direct.push(speech_secs / elapsed);
        let samples = audio::resample(&s.audio, STT_SAMPLE_RATE).expect("resample");
        let t = Instant::now();
        let whisper = engines.stt.get(SttEngine::Whisper).expect("whisper");
        whisper
            .transcribe(&samples, &SttOptions::default())
            .expect("stt");
        stt_direct.push(speech_secs / t.elapsed().as_secs_f64());
    }
    // Piper's time for the paragraph's first sentence alone: what streamed
    // speech can at best take to its first audio.
    let first_sentence = PARAGRAPH
        .split_inclusive(". ")
        .next()
        .unwrap_or(PARAGRAPH)
        .trim()
        .to_owned();
    let mut first_sentence_ms = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        engines
            .tts
            .synthesize(&first_sentence, Some("en_US-joe-medium"), 1.0)
            .expect("tts");
        first_sentence_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(engines);

    // Through the service: HTTP, auth, validation, WAV codec, resampling, cache (bypassed by varying speed).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = AppState::from_config(config(
        &models,
        redis.as_ref().map(voicechat_testkit::RedisServer::url),
    ))
    .expect("state");
    state.load_engines().await;
    tokio::spawn(voicechat_voice::app::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let token = JwtSettings::hs256(SECRET.as_bytes().to_vec())
        .expect("secret")
        .mint("bench", Duration::from_secs(3600))
        .expect("token");
    let http = reqwest::Client::new();
    let api = Api {
        http: http.clone(),
        addr,
        token: token.clone(),
    };
    let (mut tts_service, mut stt_service) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // A distinct speed each round: never a cache hit.
        let speed = 1.0 + round as f32 * 0.001;
        let t = Instant::now();
        let body = api.speak(speed).await.expect("tts");
        let elapsed = t.elapsed().as_secs_f64();
        let secs = audio::decode_wav(&body, 600).expect("wav").duration_secs();
        tts_service.push(secs / elapsed);
        let t = Instant::now();
        api.hear(body).await.expect("stt");
        stt_service.push(secs / t.elapsed().as_secs_f64());
    }

    // Time to the first audio byte of the paragraph, mp3, streamed and not
    // (a distinct speed each time: never a cache hit).
    let (mut streamed_ms, mut whole_ms) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (stream, into) in [(true, &mut streamed_ms), (false, &mut whole_ms)] {
            let speed = 1.01 + round as f32 * 0.001 + if stream { 0.0005 } else { 0.0 };
            let mut body = serde_json::json!({"model": "tts-1", "input": PARAGRAPH,
                "voice": "en_US-joe-medium", "speed": speed});
            if stream {
                body["stream_format"] = "audio".into();
            }
            let t = Instant::now();
            let mut r = http
                .post(format!("http://{addr}/v1/audio/speech"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("speech request");
            let first = r.chunk().await.expect("first chunk");
            assert!(first.is_some_and(|c| !c.is_empty()), "no audio");
            into.push(t.elapsed().as_secs_f64() * 1000.0);
            while r.chunk().await.expect("chunk").is_some() {}
        }
    }

    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let concurrent = concurrent_clients(&api, clients, rounds).await;

    let mut hits = Vec::new();
    if redis.is_some() {
        for _ in 0..20 {
            let t = Instant::now();
            let r = http
                .post(format!("http://{addr}/api/v1/tts"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"text": TEXT, "voice": "en_US-joe-medium", "speed": 1.0}))
                .send()
                .await
                .expect("tts request");
            let cached = r.headers().get("x-cache").is_some_and(|v| v == "hit");
            let _ = r.bytes().await;
            if cached {
                hits.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }

    let wyoming = wyoming_against_http(&models, &token, rounds).await;

    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "speech bench: {speech_secs:.1} s of speech per round, {rounds} rounds, medians (each round in brackets)"
    );
    println!(
        "  rounds: TTS in-process [{}], service [{}]; STT in-process [{}], service [{}]",
        show(&tts_direct),
        show(&tts_service),
        show(&stt_direct),
        show(&stt_service)
    );
    println!(
        "  TTS piper   in-process: {:6.1} audio s / wall s",
        median(tts_direct.clone())
    );
    println!(
        "  TTS piper   service:    {:6.1} audio s / wall s",
        median(tts_service.clone())
    );
    println!(
        "  STT whisper in-process: {:6.1} audio s / wall s (tiny.en)",
        median(stt_direct.clone())
    );
    println!(
        "  STT whisper service:    {:6.1} audio s / wall s",
        median(stt_service.clone())
    );
    println!(
        "  service / in-process:   TTS {:.2}, STT {:.2}",
        median(tts_service.clone()) / median(tts_direct),
        median(stt_service.clone()) / median(stt_direct)
    );
    // Each round's audio was spoken once and heard once.
    let sequential_secs = 2.0 * rounds as f64 * speech_secs;
    let sequential_wall: f64 = tts_service
        .iter()
        .chain(&stt_service)
        .map(|rate| speech_secs / rate)
        .sum();
    let sequential_rate = sequential_secs / sequential_wall;
    println!(
        "  {clients} concurrent clients ({} TTS + STT pairs, inference concurrency {}, {} Whisper threads):",
        clients * rounds,
        cfg_used.inference_concurrency,
        cfg_used.whisper.threads
    );
    println!(
        "    audio s / wall s, TTS + STT: {:.1} (one client: {:.1}, ratio {:.2})",
        concurrent.audio_secs / concurrent.wall_secs,
        sequential_rate,
        concurrent.audio_secs / concurrent.wall_secs / sequential_rate
    );
    println!(
        "    TTS latency p50 / max:       {:.2} / {:.2} s",
        median(concurrent.tts_latency.clone()),
        max(&concurrent.tts_latency)
    );
    println!(
        "    STT latency p50 / max:       {:.2} / {:.2} s",
        median(concurrent.stt_latency.clone()),
        max(&concurrent.stt_latency)
    );
    println!("    failed requests:             {}", concurrent.failures);
    println!(
        "  first audio byte, {} chars (mp3): streamed {:.0} ms, not streamed {:.0} ms (ratio {:.2}); Piper's first sentence alone {:.0} ms (streamed - that: {:+.0} ms)",
        PARAGRAPH.len(),
        median(streamed_ms.clone()),
        median(whole_ms.clone()),
        median(streamed_ms.clone()) / median(whole_ms.clone()),
        median(first_sentence_ms.clone()),
        median(streamed_ms.clone()) - median(first_sentence_ms.clone())
    );
    println!(
        "  Wyoming against HTTP, no cache, {rounds} alternating rounds: TTS {:.0} / {:.0} ms (ratio {:.2}), STT of the same audio {:.0} / {:.0} ms (ratio {:.2})",
        median(wyoming.tts_wyoming_ms.clone()),
        median(wyoming.tts_http_ms.clone()),
        median(wyoming.tts_wyoming_ms.clone()) / median(wyoming.tts_http_ms.clone()),
        median(wyoming.stt_wyoming_ms.clone()),
        median(wyoming.stt_http_ms.clone()),
        median(wyoming.stt_wyoming_ms.clone()) / median(wyoming.stt_http_ms.clone()),
    );
    if hits.is_empty() {
        println!("  cache hit latency:      not measured (no redis-server)");
    } else {
        println!(
            "  cache hit latency:      {:.2} ms median of {} ({} KiB of WAV)",
            median(hits.clone()),
            hits.len(),
            wav_len(&http, addr, &token).await / 1024
        );
    }
}

async fn wav_len(http: &reqwest::Client, addr: std::net::SocketAddr, token: &str) -> usize {
    http.post(format!("http://{addr}/api/v1/tts"))
        .bearer_auth(token)
        .json(&serde_json::json!({"text": TEXT, "voice": "en_US-joe-medium", "speed": 1.0}))
        .send()
        .await
        .map_or(0, |r| r.content_length().unwrap_or(0) as usize)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// The service's speech API as the benchmark calls it.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    addr: std::net::SocketAddr,
    token: String,
}

impl Api {
    /// The paragraph spoken by Piper at `speed`, as WAV.
    async fn speak(&self, speed: f32) -> Result<bytes::Bytes, String> {
        let r = self
            .http
            .post(format!("http://{}/api/v1/tts", self.addr))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"text": TEXT, "voice": "en_US-joe-medium", "speed": speed}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("tts answered {}", r.status()));
        }
        r.bytes().await.map_err(|e| e.to_string())
    }

    /// Whisper's transcript of `wav` (only whether it succeeded matters here).
    async fn hear(&self, wav: bytes::Bytes) -> Result<(), String> {
        let r = self
            .http
            .post(format!("http://{}/api/v1/stt?engine=whisper", self.addr))
            .bearer_auth(&self.token)
            .header("content-type", "audio/wav")
            .body(wav)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("stt answered {}", r.status()))
        }
    }
}

#[derive(Default)]
struct Concurrent {
    audio_secs: f64,
    wall_secs: f64,
    tts_latency: Vec<f64>,
    stt_latency: Vec<f64>,
    failures: usize,
}

/// `clients` clients at once, each speaking the paragraph and transcribing
/// the result `rounds` times (never a cache hit: every request has its own
/// speed).
async fn concurrent_clients(api: &Api, clients: usize, rounds: usize) -> Concurrent {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut mine = Concurrent::default();
                for round in 0..rounds {
                    let speed = 1.1 + (client * rounds + round) as f32 * 0.001;
                    let t = Instant::now();
                    let Ok(wav) = api.speak(speed).await else {
                        mine.failures += 1;
                        continue;
                    };
                    mine.tts_latency.push(t.elapsed().as_secs_f64());
                    let secs = audio::decode_wav(&wav, 600).map_or(0.0, |a| a.duration_secs());
                    let t = Instant::now();
                    if api.hear(wav).await.is_ok() {
                        mine.stt_latency.push(t.elapsed().as_secs_f64());
                        // The audio was both spoken and heard.
                        mine.audio_secs += 2.0 * secs;
                    } else {
                        mine.failures += 1;
                    }
                }
                mine
            })
        })
        .collect();
    let mut total = Concurrent::default();
    for task in tasks {
        let mine = task.await.expect("client task");
        total.audio_secs += mine.audio_secs;
        total.tts_latency.extend(mine.tts_latency);
        total.stt_latency.extend(mine.stt_latency);
        total.failures += mine.failures;
    }
    total.wall_secs = started.elapsed().as_secs_f64();
    total
}

#[derive(Default)]
struct ProtocolTimes {
    tts_http_ms: Vec<f64>,
    tts_wyoming_ms: Vec<f64>,
    stt_http_ms: Vec<f64>,
    stt_wyoming_ms: Vec<f64>,
}

/// The paragraph synthesized and its audio transcribed over HTTP and over
/// Wyoming, alternating, on a service of its own without a cache.
async fn wyoming_against_http(
    models: &std::path::Path,
    token: &str,
    rounds: usize,
) -> ProtocolTimes {
    use voicechat_voice::wyoming::WyomingSettings;
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let wyoming_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (http_addr, wyoming_addr) = (
        http_listener.local_addr().expect("addr"),
        wyoming_listener.local_addr().expect("addr"),
    );
    let mut cfg = config(models, None);
    cfg.wyoming = WyomingSettings::on(wyoming_addr);
    let state = AppState::from_config(cfg).expect("state");
    state.load_engines().await;
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(voicechat_voice::wyoming::serve(
        wyoming_listener,
        state.clone(),
        stop.clone(),
    ));
    tokio::spawn(voicechat_voice::app::serve(
        http_listener,
        state,
        stop.clone().cancelled_owned(),
    ));
    let api = Api {
        http: reqwest::Client::new(),
        addr: http_addr,
        token: token.to_owned(),
    };
    let mut times = ProtocolTimes::default();
    for _ in 0..rounds {
        let t = Instant::now();
        let wav = api.speak(1.0).await.expect("tts");
        times.tts_http_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let (rate, pcm) = wyoming_speak(wyoming_addr, TEXT).await;
        times
            .tts_wyoming_ms
            .push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(rate > 0 && !pcm.is_empty(), "no audio over Wyoming");
        let t = Instant::now();
        api.hear(wav.clone()).await.expect("stt");
        times.stt_http_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // The same samples: the WAV's data chunk.
        let decoded = audio::decode_wav(&wav, 600).expect("wav");
        let same: Vec<u8> = audio::encode_pcm16(&decoded);
        let t = Instant::now();
        wyoming_hear(wyoming_addr, decoded.sample_rate, &same).await;
        times
            .stt_wyoming_ms
            .push(t.elapsed().as_secs_f64() * 1000.0);
    }
    stop.cancel();
    times
}

struct Wyoming {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Wyoming {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (read, writer) = stream.into_split();
        Self {
            reader: tokio::io::BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, event: voicechat_voice::wyoming::frame::Event) {
        use tokio::io::AsyncWriteExt;
        self.writer
            .write_all(&voicechat_voice::wyoming::frame::encode(&event))
            .await
            .expect("write");
    }

    async fn next(&mut self) -> voicechat_voice::wyoming::frame::Event {
        let limits = voicechat_voice::wyoming::FrameLimits::default();
        let event = voicechat_voice::wyoming::frame::read_event(&mut self.reader, &limits)
            .await
            .expect("a frame")
            .expect("an event");
        assert_ne!(event.kind, "error", "{event:?}");
        event
    }
}

async fn wyoming_speak(addr: std::net::SocketAddr, text: &str) -> (u64, Vec<u8>) {
    use voicechat_voice::wyoming::frame::Event;
    let mut c = Wyoming::connect(addr).await;
    c.send(Event::new(
        "synthesize",
        serde_json::json!({"text": text, "voice": {"name": "en_US-joe-medium"}}),
    ))
    .await;
    let (mut rate, mut pcm) = (0, Vec::new());
    loop {
        let event = c.next().await;
        match event.kind.as_str() {
            "audio-start" => rate = event.u64("rate").unwrap_or_default(),
            "audio-chunk" => pcm.extend(event.payload.unwrap_or_default()),
            "audio-stop" => return (rate, pcm),
            _ => {}
        }
    }
}

async fn wyoming_hear(addr: std::net::SocketAddr, rate: u32, pcm: &[u8]) {
    use voicechat_voice::wyoming::frame::Event;
    let format = serde_json::json!({"rate": rate, "width": 2, "channels": 1});
    let mut c = Wyoming::connect(addr).await;
    c.send(Event::new(
        "transcribe",
        serde_json::json!({"name": "whisper"}),
    ))
    .await;
    c.send(Event::new("audio-start", format.clone())).await;
    for chunk in pcm.chunks(2048) {
        c.send(Event::new("audio-chunk", format.clone()).with_payload(chunk.to_vec()))
            .await;
    }
    c.send(Event::new("audio-stop", serde_json::json!({})))
        .await;
    loop {
        if c.next().await.kind == "transcript" {
            return;
        }
    }
}
