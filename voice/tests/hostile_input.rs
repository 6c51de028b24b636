//! Hostile input to the voice service: uploads that trickle in, invalid
//! UTF-8, 10,000-character texts, path tricks in voice, engine and language
//! names, and WebSocket frames that are not valid UTF-8 or too large. Each
//! is refused with a clear error and the service keeps serving. (Broken,
//! truncated, oversized and too-long audio is in `api_errors.rs`; NaN
//! samples in the audio module's unit tests; random input in `fuzz/`.)

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// A service with no engines (so nothing to load) and a 1 s body deadline.
fn impatient_service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let empty = std::env::temp_dir().join(format!("vcs-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let mut cfg = config(None, empty.clone(), empty);
        cfg.tts_engines.clear();
        cfg.stt_engines.clear();
        cfg.deadlines.body_timeout = Duration::from_secs(1);
        Service::start(cfg, None)
    })
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_upload_that_trickles_in_gets_a_408() {
    let s = impatient_service();
    let (response, after) = voicechat_testkit::slow_client::trickle_body(
        s.addr,
        &format!(
            "POST /api/v1/stt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: audio/wav\r\nContent-Length: 1000000",
            token("a")
        ),
        Duration::from_secs(4),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("request_timeout"), "{response}");
    assert!(after < Duration::from_secs(3), "answered after {after:?}");
    let ready = client().get(s.url("/livez")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "still serving");
}

#[tokio::test]
async fn hostile_text_and_names_are_refused() {
    let s = impatient_service();
    let http = client();
    let r = http
        .post(s.url("/api/v1/tts"))
        .bearer_auth(token("a"))
        .header("content-type", "application/json")
        .body(b"{\"text\": \"caf\xc3\x28\"}".to_vec())
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(r).await;
    assert_eq!(
        (status, e["error"]["code"].clone()),
        (400, json!("invalid_request")),
        "{e}"
    );

    for (body, status, code) in [
        (json!({"text": "x".repeat(10_000)}), 413, "text_too_long"),
        (
            json!({"text": "hi", "voice": "../../../etc/passwd"}),
            400,
            "unknown_voice",
        ),
        (
            json!({"text": "hi", "voice": "/etc/passwd"}),
            400,
            "unknown_voice",
        ),
        (
            json!({"text": "hi", "voice": "en\u{0}us"}),
            400,
            "unknown_voice",
        ),
    ] {
        let r = http
            .post(s.url("/api/v1/tts"))
            .bearer_auth(token("a"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (got, e) = error_of(r).await;
        assert_eq!(got, status, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap_or_default().len() < 200,
            "the message does not echo the input back whole: {e}"
        );
    }
    let r = http
        .post(s.url("/v1/audio/speech"))
        .bearer_auth(token("a"))
        .json(&json!({"model": "tts-1", "input": "hi", "voice": "../../x"}))
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(r).await;
    assert_eq!(status, 400, "{e}");
}

#[tokio::test]
async fn path_tricks_in_engine_and_language_names_are_refused() {
    if !models_or_skip("path_tricks_in_engine_and_language_names_are_refused") {
        return;
    }
    let s = service();
    let wav = silence_wav(16_000, 1.0);
    for (query, code) in [
        ("engine=../../../etc/passwd", "unknown_engine"),
        ("engine=vosk/../whisper", "unknown_engine"),
        ("language=../../../etc", "invalid_request"),
        ("language=ko/../../whisper", "invalid_request"),
    ] {
        let r = client()
            .post(s.url(&format!("/api/v1/stt?{query}")))
            .bearer_auth(token("a"))
            .header("content-type", "audio/wav")
            .body(wav.clone())
            .send()
            .await
            .unwrap();
        let (status, e) = error_of(r).await;
        assert_eq!(status, 400, "{query}: {e}");
        assert_eq!(e["error"]["code"], code, "{query}: {e}");
    }
}

async fn stream_socket()
-> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{}/ws/stt?token={}", service().addr, token("a"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert!(t.as_str().contains("\"ready\""), "{t}"),
        other => panic!("expected ready, got {other:?}"),
    }
    ws
}

async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match frame {
            Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
            Ok(Message::Close(None)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

#[tokio::test]
async fn hostile_stream_frames_close_with_their_code() {
    if !models_or_skip("hostile_stream_frames_close_with_their_code") {
        return;
    }
    let mut ws = stream_socket().await;
    let bad = Frame::message(vec![b'{', 0xc3, 0x28, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(bad)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1007), "invalid UTF-8");

    let mut ws = stream_socket().await;
    ws.send(Message::Binary(vec![0u8; 512 * 1024].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009), "frame over 256 KiB");
}
