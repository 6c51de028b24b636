//! `/ws/stt`: audio streamed in frames, partial and final results.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// Speech from the service's own TTS, as 16 kHz 16-bit PCM.
async fn speech_pcm(text: &str, voice: &str, speed: f32) -> Vec<i16> {
    let wav = client()
        .post(service().url("/api/v1/tts"))
        .bearer_auth(token("a"))
        .json(&json!({"text": text, "voice": voice, "speed": speed}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let audio = voicechat_voice::audio::decode_wav(&wav, 60).unwrap();
    voicechat_voice::audio::resample(&audio, 16_000)
        .unwrap()
        .into_iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect()
}

async fn connect(
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{}/ws/stt?{query}", service().addr);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// Sends the audio in 250 ms frames, then `end`; returns every event up to the last `final`.
async fn stream(query: &str, pcm: &[i16]) -> Vec<Value> {
    let mut ws = connect(query).await;
    let ready: Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected ready, got {other:?}"),
    };
    assert_eq!(ready["type"], "ready", "{ready}");
    let mut events = vec![ready];
    for frame in pcm.chunks(4000) {
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        ws.send(Message::Binary(bytes.into())).await.unwrap();
    }
    ws.send(Message::Text(json!({"type": "end"}).to_string().into()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], "error", "{v}");
            let answered_end = v["type"] == "final" && v["reason"] == "end";
            events.push(v);
            if answered_end {
                return events;
            }
        }
    }
}

#[tokio::test]
async fn vosk_streams_korean_partials_and_final() {
    if !models_or_skip("vosk_streams_korean_partials_and_final") {
        return;
    }
    let pcm = speech_pcm("안녕하세요", "ko", 0.69).await;
    let grammar = json!(["안녕하세요", "감사합니다", "[unk]"]).to_string();
    let query = format!(
        "token={}&language=ko&grammar={}",
        token("a"),
        urlencoding(&grammar)
    );
    let events = stream(&query, &pcm).await;
    assert_eq!(events[0]["engine"], "vosk");
    let finals: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "final")
        .filter_map(|e| e["text"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(finals, ["안녕하세요"], "{events:?}");
}

#[tokio::test]
async fn whisper_streams_partials_then_the_final_text() {
    if !models_or_skip("whisper_streams_partials_then_the_final_text") {
        return;
    }
    let sentence = "The quick brown fox jumps over the lazy dog near the river bank.";
    let pcm = speech_pcm(sentence, "en_US-joe-medium", 1.0).await;
    let events = stream(&format!("token={}&engine=whisper", token("a")), &pcm).await;
    assert_eq!(events[0]["engine"], "whisper");
    assert!(
        events.iter().any(|e| e["type"] == "partial"),
        "partials for {} s of audio: {events:?}",
        pcm.len() / 16_000
    );
    let last = events.last().unwrap();
    assert!(
        word_error_rate(sentence, last["text"].as_str().unwrap()) <= PIPER_WER,
        "{last}"
    );
}

#[tokio::test]
async fn streaming_refuses_bad_tokens_and_parameters() {
    if !models_or_skip("streaming_refuses_bad_tokens_and_parameters") {
        return;
    }
    for (query, code) in [
        ("token=garbage".to_owned(), 4001u16),
        (String::new(), 4001),
        (format!("token={}&engine=google", token("a")), 4400),
        (format!("token={}&grammar=notjson", token("a")), 4400),
    ] {
        let mut ws = connect(&query).await;
        let frame = ws.next().await.unwrap().unwrap();
        match frame {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), code, "{query}: {f:?}"),
            other => panic!("{query}: expected a close, got {other:?}"),
        }
    }
}

/// A stream is checked and routed as an upload is: what `POST /api/v1/stt`
/// refuses with a 400, `/ws/stt` refuses with 4400 and the same message.
#[tokio::test]
async fn streaming_refuses_what_the_batch_route_refuses_with_its_message() {
    if !models_or_skip("streaming_refuses_what_the_batch_route_refuses_with_its_message") {
        return;
    }
    let wav = silence_wav(16_000, 1.0);
    for (query, code) in [
        // tiny.en cannot hear xx and Vosk has no model for it.
        ("language=xx".to_owned(), "unsupported_language"),
        ("language=ko/../../whisper".to_owned(), "invalid_request"),
        (
            format!("grammar={}", urlencoding(&json!([]).to_string())),
            "invalid_request",
        ),
        (
            format!("engine=whisper&grammar={}", urlencoding(r#"["yes"]"#)),
            "unsupported_language",
        ),
        ("engine=google".to_owned(), "unknown_engine"),
    ] {
        let r = service().stt(wav.clone(), &query).await;
        assert_eq!(r.status(), 400, "{query}");
        let batch: Value = r.json().await.unwrap();
        assert_eq!(batch["error"]["code"], code, "{query}: {batch}");

        let mut ws = connect(&format!("token={}&{query}", token("a"))).await;
        match ws.next().await.unwrap().unwrap() {
            Message::Close(Some(f)) => {
                assert_eq!(u16::from(f.code), 4400, "{query}: {f:?}");
                assert_eq!(
                    f.reason.as_str(),
                    batch["error"]["message"].as_str().unwrap(),
                    "{query}"
                );
            }
            other => panic!("{query}: expected a close, got {other:?}"),
        }
    }
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
