//! The voice API's contract: OpenAI compatibility, bad input, auth,
//! probes, and falling back to espeak-ng when Piper has no voice.

mod support;

use std::sync::OnceLock;

use serde_json::{Value, json};
use support::*;
use voicechat_voice::engine_name::{SttEngine, TtsEngine};

/// A service without Piper voices (the model removed) and without Vosk.
fn degraded_service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let empty = std::env::temp_dir().join(format!("vcs-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        // No Redis: the cache is disabled and reported so.
        let mut cfg = config(None, empty.clone(), empty);
        cfg.cors = voicechat_common::cors::AllowedOrigins::parse(WEB_ORIGIN).unwrap();
        Service::start(cfg, None)
    })
}

/// The origin of a web client allowed to call the degraded service.
const WEB_ORIGIN: &str = "http://127.0.0.1:8007";

#[tokio::test]
async fn browsers_on_allowed_origins_may_call_the_api() {
    if !models_or_skip("browsers_on_allowed_origins_may_call_the_api") {
        return;
    }
    let s = degraded_service();
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, s.url("/api/v1/tts"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let r = preflight(WEB_ORIGIN).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let allowed = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    assert_eq!(allowed(&r, "access-control-allow-origin"), WEB_ORIGIN);
    assert!(allowed(&r, "access-control-allow-headers").contains("authorization"));
    assert!(allowed(&r, "access-control-allow-methods").contains("post"));

    let r = preflight("http://evil.example").await.unwrap();
    assert_eq!(
        allowed(&r, "access-control-allow-origin"),
        "",
        "other origins get nothing"
    );

    // The real request still needs a token; CORS only lets the browser read the answer.
    let r = client()
        .post(s.url("/api/v1/tts"))
        .header("origin", WEB_ORIGIN)
        .json(&json!({"text": "Hello."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(allowed(&r, "access-control-allow-origin"), WEB_ORIGIN);
    let r = client()
        .post(s.url("/api/v1/tts"))
        .header("origin", WEB_ORIGIN)
        .bearer_auth(token("a"))
        .json(&json!({"text": "Hello."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(allowed(&r, "access-control-expose-headers").contains("x-voice-engine"));
}

#[tokio::test]
async fn without_piper_tts_falls_back_to_espeak_and_says_so() {
    if !models_or_skip("without_piper_tts_falls_back_to_espeak_and_says_so") {
        return;
    }
    let s = degraded_service();
    let r = client()
        .post(s.url("/api/v1/tts"))
        .bearer_auth(token("a"))
        .json(&json!({"text": "Please call me back when you get home."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-voice-engine"], "espeak-ng");
    let wav = r.bytes().await.unwrap().to_vec();
    // Real speech: Whisper understands it.
    let t: Value = client()
        .post(s.url("/api/v1/stt"))
        .bearer_auth(token("a"))
        .header("content-type", "audio/wav")
        .body(wav)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        word_error_rate(
            "Please call me back when you get home.",
            t["text"].as_str().unwrap()
        ) <= 0.1,
        "{t}"
    );

    let health: Value = client()
        .get(s.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(
        health["dependencies"]["engine:piper"]["status"],
        "disconnected"
    );
    assert!(
        health["dependencies"]["engine:piper"]["error"]
            .as_str()
            .unwrap()
            .contains("no voices")
    );
    assert_eq!(
        health["dependencies"]["engine:espeak-ng"]["status"],
        "connected"
    );
    assert_eq!(health["dependencies"]["redis"]["status"], "disabled");

    let engines: Value = client()
        .get(s.url("/api/v1/engines"))
        .bearer_auth(token("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let piper = engines["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "piper")
        .unwrap();
    assert_eq!(piper["healthy"], false);

    // Asking for the missing voice is a clear 400, not a silent substitute.
    let r = client()
        .post(s.url("/api/v1/tts"))
        .bearer_auth(token("a"))
        .json(&json!({"text": "hi", "voice": "en_US-joe-medium"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_voice");
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_errors() {
    if !models_or_skip("bad_input_gets_clear_4xx_errors") {
        return;
    }
    let s = service();
    let http = client();
    let tts = |body: Value| {
        http.post(s.url("/api/v1/tts"))
            .bearer_auth(token("a"))
            .json(&body)
            .send()
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"text": "x".repeat(501)}), 413, "text_too_long"),
        (json!({"text": "   "}), 400, "invalid_request"),
        (
            json!({"text": "hi", "voice": "../../etc/passwd"}),
            400,
            "unknown_voice",
        ),
        (
            json!({"text": "hi", "voice": "nobody"}),
            400,
            "unknown_voice",
        ),
        (
            json!({"text": "hi", "format": "mp3"}),
            400,
            "unsupported_format",
        ),
        (json!({"text": "hi", "speed": 9.0}), 400, "invalid_request"),
        (json!({"txt": "hi"}), 422, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let r = tts(body.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }

    let good = tts(json!({"text": "Hello there.", "voice": "en-us"}))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let stt = |body: Vec<u8>, content_type: &'static str| {
        http.post(s.url("/api/v1/stt"))
            .bearer_auth(token("a"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            good[..good.len() / 2].to_vec(),
            "audio/wav",
            400,
            "invalid_audio",
        ),
        (good[..30].to_vec(), "audio/wav", 400, "invalid_audio"),
        (Vec::new(), "audio/wav", 400, "empty_audio"),
        (
            b"ID3 this is an mp3".to_vec(),
            "audio/wav",
            400,
            "invalid_audio",
        ),
        (good.clone(), "text/plain", 400, "invalid_request"),
        (
            vec![0u8; 5 * 1024 * 1024],
            "audio/wav",
            413,
            "audio_too_large",
        ),
        (silence_wav(8000, 61.0), "audio/wav", 413, "audio_too_long"),
    ];
    for (body, content_type, status, code) in cases {
        let len = body.len();
        let r = stt(body, content_type)
            .await
            .unwrap_or_else(|e| panic!("{len} bytes as {content_type}: {e}"));
        assert_eq!(r.status(), status, "{len} bytes as {content_type}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(
            e["error"]["code"], code,
            "{len} bytes as {content_type}: {e}"
        );
    }
    let r = http
        .post(s.url("/api/v1/stt?engine=google"))
        .bearer_auth(token("a"))
        .header("content-type", "audio/wav")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unknown_engine"
    );
    let r = http
        .post(s.url("/api/v1/stt?language=xx"))
        .bearer_auth(token("a"))
        .header("content-type", "audio/wav")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "tiny.en cannot hear language xx and Vosk has no model"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unsupported_language"
    );
}

#[tokio::test]
async fn requests_need_a_valid_token() {
    if !models_or_skip("requests_need_a_valid_token") {
        return;
    }
    let s = service();
    for path in ["/api/v1/voices", "/api/v1/engines", "/v1/models"] {
        let r = client().get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = client()
            .get(s.url(path))
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = client()
        .post(s.url("/api/v1/tts"))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for path in ["/livez", "/readyz", "/startupz", "/health", "/metrics"] {
        assert_eq!(
            client().get(s.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn openai_compatible_speech_and_transcriptions() {
    if !models_or_skip("openai_compatible_speech_and_transcriptions") {
        return;
    }
    let s = service();
    let http = client();
    // An OpenAI client's request, unchanged: model tts-1, voice alloy, no format.
    let r = http
        .post(s.url("/v1/audio/speech"))
        .bearer_auth(token("a"))
        .json(&json!({"model": "tts-1", "input": "Please call me back when you get home.", "voice": "alloy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let wav = r.bytes().await.unwrap().to_vec();
    assert_eq!(&wav[..4], b"RIFF");

    let transcribe = |format: &'static str| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(wav.clone())
                    .file_name("speech.wav")
                    .mime_str("audio/wav")
                    .unwrap(),
            )
            .text("model", "whisper-1")
            .text("response_format", format);
        http.post(s.url("/v1/audio/transcriptions"))
            .bearer_auth(token("a"))
            .multipart(form)
            .send()
    };
    let json: Value = transcribe("json").await.unwrap().json().await.unwrap();
    assert!(
        word_error_rate(
            "Please call me back when you get home.",
            json["text"].as_str().unwrap()
        ) <= 0.1,
        "{json}"
    );
    let text = transcribe("text").await.unwrap().text().await.unwrap();
    assert_eq!(text.trim(), json["text"].as_str().unwrap());
    let srt = transcribe("srt").await.unwrap().text().await.unwrap();
    assert!(srt.starts_with("1\n00:00:0"), "{srt}");
    let vtt = transcribe("vtt").await.unwrap().text().await.unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:0"), "{vtt}");
    let verbose: Value = transcribe("verbose_json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verbose["task"], "transcribe");
    assert_eq!(verbose["language"], "en");
    assert!(verbose["duration"].as_f64().unwrap() > 1.0);
    assert_eq!(verbose["segments"][0]["id"], 0);

    // Errors in OpenAI's shape.
    let r = http
        .post(s.url("/v1/audio/speech"))
        .bearer_auth(token("a"))
        .json(&json!({"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "mp3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("mp3"));
    assert!(e["error"].get("param").is_some());

    let models: Value = http
        .get(s.url("/v1/models"))
        .bearer_auth(token("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"whisper-1") && ids.contains(&"piper") && ids.contains(&"vosk"),
        "{ids:?}"
    );
    let voices: Value = http
        .get(s.url("/v1/audio/voices"))
        .bearer_auth(token("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        voices["voices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["voice_id"] == "en_US-joe-medium")
    );
}

#[tokio::test]
async fn redis_outage_never_fails_a_request() {
    if !models_or_skip("redis_outage_never_fails_a_request") {
        return;
    }
    // Its own service, so killing its Redis affects no other test.
    let mut redis = voicechat_testkit::RedisServer::start();
    let m = models_dir();
    let empty = std::env::temp_dir().join(format!("vcs-novosk-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let url = redis.url();
    let s = Service::start(config(Some(url), m.join("piper"), empty), None);
    redis.kill();
    let r = client()
        .post(s.url("/api/v1/tts"))
        .bearer_auth(token("a"))
        .json(&json!({"text": "Still speaking.", "voice": "en-us"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "miss");
    let health: Value = client()
        .get(s.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["dependencies"]["redis"]["status"], "disconnected");
    assert_eq!(
        client()
            .get(s.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("voice_cache_total{kind=\"tts\",result=\"error\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn only_the_configured_engines_are_loaded() {
    if !models_or_skip("only_the_configured_engines_are_loaded") {
        return;
    }
    let m = models_dir();
    let mut cfg = config(None, m.join("piper"), m.join("vosk"));
    cfg.tts_engines = vec![TtsEngine::EspeakNg];
    cfg.stt_engines = vec![SttEngine::Vosk];
    let s = Service::start(cfg, None);
    let engines: Value = client()
        .get(s.url("/api/v1/engines"))
        .bearer_auth(token("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = engines["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["espeak-ng", "vosk"]);
    let r = client()
        .post(s.url("/api/v1/tts"))
        .bearer_auth(token("a"))
        .json(&json!({"text": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-voice-engine"],
        "espeak-ng",
        "Piper's voice is installed but not enabled"
    );
}
