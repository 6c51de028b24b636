//! The voice API's refusals: bad input gets a clear 4xx with a stable
//! code, and every route but the probes needs a valid token.

mod support;

use serde_json::{Value, json};
use support::*;

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
            json!({"text": "hi", "format": "ogg"}),
            400,
            "unsupported_format",
        ),
        (
            json!({"text": "hi", "format": "MP3"}),
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
    let e = r.json::<Value>().await.unwrap();
    assert_eq!(e["error"]["code"], "unsupported_language");
    assert!(
        e["error"]["message"].as_str().unwrap().contains(
            "no installed engine recognizes language \"xx\" (installed: whisper en, vosk ko"
        ),
        "the refusal says what is installed: {e}"
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
