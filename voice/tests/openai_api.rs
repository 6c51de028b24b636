//! The OpenAI-compatible routes, called as an OpenAI client calls them:
//! speech, transcriptions in every response format, errors in OpenAI's
//! shape, models and voices.

mod support;

use serde_json::{Value, json};
use support::*;

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
    assert_eq!(
        r.headers()["content-type"],
        "audio/mpeg",
        "mp3, OpenAI's default"
    );
    // What came back is transcribed as it is: an MP3 upload.
    let mp3 = r.bytes().await.unwrap().to_vec();
    assert!(mp3.starts_with(b"ID3") || mp3[0] == 0xff, "no MP3 frame");

    let transcribe = |format: &'static str| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(mp3.clone())
                    .file_name("speech.mp3")
                    .mime_str("audio/mpeg")
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
        .json(&json!({"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "ogg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("ogg"));
    assert!(e["error"].get("param").is_some());

    let models: Value = s.get_json("/v1/models").await;
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
    let voices: Value = s.get_json("/v1/audio/voices").await;
    assert!(
        voices["voices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["voice_id"] == "en_US-joe-medium")
    );
}
