//! The Google Cloud engines as the last fallback, against a local stand-in
//! for Google's token, Text-to-Speech and Speech endpoints (Google itself is
//! unreachable from the build machines). The stand-in checks what a real
//! Google would: the RS256 assertion signed with the service account's key,
//! the bearer token, the request shapes; its speech is real espeak-ng audio.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use support::*;
use voicechat_voice::google::GoogleSettings;

struct Google {
    public_pem: Vec<u8>,
    token_uri: String,
    token_requests: AtomicUsize,
    recognized_samples: AtomicUsize,
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer ya29.stand-in")
}

async fn issue_token(
    State(g): State<Arc<Google>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    g.token_requests.fetch_add(1, Ordering::SeqCst);
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        );
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&g.token_uri]);
    validation.set_issuer(&["voice@project.iam.gserviceaccount.com"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&g.public_pem).unwrap();
    match jsonwebtoken::decode::<Value>(
        form.get("assertion").map_or("", String::as_str),
        &key,
        &validation,
    ) {
        Ok(data) if data.claims["scope"] == "https://www.googleapis.com/auth/cloud-platform" => (
            StatusCode::OK,
            Json(
                json!({"access_token": "ya29.stand-in", "expires_in": 3600, "token_type": "Bearer"}),
            ),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        ),
    }
}

async fn synthesize(headers: HeaderMap, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    if !bearer_ok(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401}})),
        );
    }
    if body["audioConfig"]["audioEncoding"] != "LINEAR16"
        || body["voice"]["name"] != "en-US-Standard-C"
        || body["voice"]["languageCode"] != "en-US"
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message": body.to_string()}})),
        );
    }
    let text = body["input"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // A complete WAV file, as Google's LINEAR16 answers are.
    let file = std::env::temp_dir().join(format!("vcs-google-tts-{}.wav", std::process::id()));
    std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&file)
        .arg(&text)
        .status()
        .unwrap();
    let wav = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    (
        StatusCode::OK,
        Json(json!({"audioContent": base64::engine::general_purpose::STANDARD.encode(wav)})),
    )
}

async fn recognize(
    State(g): State<Arc<Google>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !bearer_ok(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401}})),
        );
    }
    let config = &body["config"];
    if config["encoding"] != "LINEAR16"
        || config["sampleRateHertz"] != 16000
        || config["languageCode"] != "fr"
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message": config.to_string()}})),
        );
    }
    let audio = base64::engine::general_purpose::STANDARD
        .decode(body["audio"]["content"].as_str().unwrap_or_default())
        .unwrap_or_default();
    g.recognized_samples
        .store(audio.len() / 2, Ordering::SeqCst);
    (
        StatusCode::OK,
        Json(
            json!({"results": [{"alternatives": [{"transcript": "bonjour", "words": [
        {"startTime": "0.200s", "endTime": "0.900s", "word": "bonjour"}]}], "languageCode": "fr-fr"}]}),
        ),
    )
}

#[tokio::test]
async fn google_engines_are_the_last_fallback() {
    if !models_or_skip("google_engines_are_the_last_fallback") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vcs-google-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let keygen = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status();
    if !voicechat_testkit::have_or_skip(
        keygen.is_ok_and(|s| s.success()),
        "google_engines_are_the_last_fallback",
        "openssl",
        "openssl (to make a test RSA key)",
    ) {
        return;
    }
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let google = Arc::new(Google {
        public_pem: public,
        token_uri: format!("{base}/token"),
        token_requests: AtomicUsize::new(0),
        recognized_samples: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/token", post(issue_token))
        .route("/v1/text:synthesize", post(synthesize))
        .route("/v1/speech:recognize", post(recognize))
        .with_state(google.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let account = dir.join("account.json");
    std::fs::write(
        &account,
        json!({
            "type": "service_account",
            "client_email": "voice@project.iam.gserviceaccount.com",
            "private_key": std::fs::read_to_string(&key).unwrap(),
            "token_uri": format!("{base}/token"),
        })
        .to_string(),
    )
    .unwrap();

    // No Piper voice, no espeak-ng program, no Vosk model: only Whisper (English) is local.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cfg = config(None, empty.clone(), empty);
    cfg.espeak_program = "/nonexistent/espeak-ng".into();
    cfg.google = Some(GoogleSettings {
        credentials: account,
        tts_enabled: true,
        stt_enabled: true,
        tts_url: format!("{base}/v1/text:synthesize"),
        stt_url: format!("{base}/v1/speech:recognize"),
        tts_voice: "en-US-Standard-C".into(),
        timeout: std::time::Duration::from_secs(10),
    });
    let s = Service::start(cfg, None);
    let http = client();

    let mut wav = Vec::new();
    for _ in 0..2 {
        let r = http
            .post(s.url("/api/v1/tts"))
            .bearer_auth(token("a"))
            .json(&json!({"text": "Please call me back when you get home."}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        assert_eq!(r.headers()["x-voice-engine"], "google");
        assert_eq!(r.headers()["x-voice-name"], "en-US-Standard-C");
        wav = r.bytes().await.unwrap().to_vec();
    }
    assert_eq!(
        google.token_requests.load(Ordering::SeqCst),
        1,
        "the access token is reused"
    );

    // English stays local (Whisper); French only Google can hear.
    let t: Value = http
        .post(s.url("/api/v1/stt"))
        .bearer_auth(token("a"))
        .header("content-type", "audio/wav")
        .body(wav.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["engine"], "whisper", "{t}");
    assert!(
        word_error_rate(
            "Please call me back when you get home.",
            t["text"].as_str().unwrap()
        ) <= 0.1,
        "{t}"
    );
    let t: Value = http
        .post(s.url("/api/v1/stt?language=fr"))
        .bearer_auth(token("a"))
        .header("content-type", "audio/wav")
        .body(wav.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["engine"], "google", "{t}");
    assert_eq!(t["text"], "bonjour");
    assert_eq!(t["segments"][0]["end"], 0.9);
    let secs = t["duration"].as_f64().unwrap();
    let sent = google.recognized_samples.load(Ordering::SeqCst) as f64 / 16_000.0;
    assert!(
        (sent - secs).abs() < 0.05,
        "Google got {sent} s of 16 kHz audio for {secs} s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
