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
    assert_eq!(verbose["language"], "english", "named as OpenAI names it");
    assert!(verbose["duration"].as_f64().unwrap() > 1.0);
    let segment = &verbose["segments"][0];
    assert_eq!(segment["id"], 0);
    assert!(
        !segment["tokens"].as_array().unwrap().is_empty(),
        "{segment}"
    );
    let logprob = segment["avg_logprob"].as_f64().unwrap();
    assert!(logprob < 0.0 && logprob > -1.5, "clear speech: {segment}");
    let no_speech = segment["no_speech_prob"].as_f64().unwrap();
    assert!((0.0..0.5).contains(&no_speech), "{segment}");
    assert!(verbose.get("words").is_none(), "words only when asked for");

    // Word timestamps: the words of the text, in order, inside the audio.
    let words_form = |granularities: &[&str]| {
        let mut form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(mp3.clone()).file_name("speech.mp3"),
            )
            .text("model", "whisper-1")
            .text("response_format", "verbose_json");
        for g in granularities {
            form = form.text("timestamp_granularities[]", (*g).to_owned());
        }
        http.post(s.url("/v1/audio/transcriptions"))
            .bearer_auth(token("a"))
            .multipart(form)
            .send()
    };
    let timed: Value = words_form(&["word", "segment"])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let words = timed["words"].as_array().unwrap();
    let said: Vec<String> = words
        .iter()
        .map(|w| w["word"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        word_error_rate(&said.join(" "), timed["text"].as_str().unwrap()) == 0.0,
        "the words are the text's: {said:?} against {}",
        timed["text"]
    );
    let duration = timed["duration"].as_f64().unwrap();
    let mut last_end = 0.0;
    for w in words {
        let (start, end) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(start >= last_end && end >= start, "monotonic: {words:?}");
        assert!(
            end <= duration + 0.05,
            "inside the audio: {w} of {duration} s"
        );
        last_end = end;
    }
    let segments = timed["segments"].as_array().unwrap();
    let (first, last) = (&segments[0], &segments[segments.len() - 1]);
    assert!(words[0]["start"].as_f64() >= first["start"].as_f64());
    assert!(last_end <= last["end"].as_f64().unwrap());
    assert!(
        last_end > 0.5 * duration,
        "the words span the speech: {words:?}"
    );
    let words_only: Value = words_form(&["word"]).await.unwrap().json().await.unwrap();
    assert!(words_only.get("segments").is_none() && words_only["words"].is_array());

    // tiny.en is English-only: no translations, saying why.
    let r = http
        .post(s.url("/v1/audio/translations"))
        .bearer_auth(token("a"))
        .multipart(
            reqwest::multipart::Form::new()
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(mp3.clone()).file_name("speech.mp3"),
                )
                .text("model", "whisper-1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "translation_unavailable", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("translation needs a multilingual Whisper model (installed: whisper en"),
        "{e}"
    );

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
        ids.contains(&"whisper-1")
            && ids.contains(&"tts-1-hd")
            && ids.contains(&"piper")
            && ids.contains(&"vosk")
            && ids.contains(&"en_US-joe-medium"),
        "speech models and voices: {ids:?}"
    );
    let voices: Value = s.get_json("/v1/audio/voices").await;
    assert!(
        voices["voices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["voice_id"] == "en_US-joe-medium")
    );
    let openai = voices["openai_voices"].as_object().unwrap();
    assert_eq!(openai.len(), 13, "{openai:?}");
    assert!(openai["marin"].is_null(), "no table: the default voice");
}
