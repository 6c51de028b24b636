//! What configuration and missing parts make of the service: browsers on
//! the allowed origins, falling back to espeak-ng when Piper has no voice,
//! a Redis outage, and only the configured engines loaded.

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

    let health: Value = s.get_json("/health").await;
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

    let engines: Value = s.get_json("/api/v1/engines").await;
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
    let health: Value = s.get_json("/health").await;
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
    let metrics = s.get_text("/metrics").await;
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
    let engines: Value = s.get_json("/api/v1/engines").await;
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
