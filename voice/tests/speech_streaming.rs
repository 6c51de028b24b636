//! Streamed speech (`stream_format` `audio` and `sse` on
//! `/v1/audio/speech`): sentence by sentence, the first sentence's audio
//! before the rest is made, one valid stream in all, and a client that goes
//! away stops the synthesis.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;

/// Six sentences, 420 characters: under the test service's 500.
const PARAGRAPH: &str = "The library opens at nine in the morning. \
Children come first, with their parents and their books. \
At noon the reading room fills with students from the school nearby. \
In the afternoon the old men play chess by the window. \
When the lights go on, the librarian counts the returned books. \
She locks the door at seven and walks home along the river.";

fn speech(body: Value) -> reqwest::RequestBuilder {
    client()
        .post(service().url("/v1/audio/speech"))
        .bearer_auth(token("stream"))
        .json(&body)
}

fn wav_of_pcm24(pcm: &[u8]) -> Vec<u8> {
    let samples: Vec<f32> = pcm
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    voicechat_voice::audio::encode_wav(&voicechat_voice::audio::Audio {
        samples,
        sample_rate: 24_000,
    })
}

async fn transcribe(wav: Vec<u8>) -> String {
    let r = service().stt(wav, "engine=whisper").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn streamed_audio_comes_sentence_by_sentence_and_is_one_stream() {
    if !models_or_skip("streamed_audio_comes_sentence_by_sentence_and_is_one_stream") {
        return;
    }
    let started = Instant::now();
    let r = speech(
        json!({"model": "tts-1", "input": PARAGRAPH, "voice": "alloy",
                          "response_format": "pcm", "stream_format": "audio"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/pcm");
    assert_eq!(r.headers()["x-sample-rate"], "24000");
    let mut body = r.bytes_stream();
    let mut chunks = Vec::new();
    let mut first_at = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        first_at.get_or_insert_with(|| started.elapsed());
        chunks.push(chunk);
    }
    let total = started.elapsed();
    let first = first_at.unwrap();
    assert!(chunks.len() >= 6, "{} chunks for 6 sentences", chunks.len());
    // The first sentence is heard while the other five are made.
    assert!(
        first < total.mul_f32(0.6),
        "first audio after {first:?} of {total:?}"
    );
    let pcm: Vec<u8> = chunks.concat();
    let secs = pcm.len() as f64 / 48_000.0;
    assert!(secs > 10.0, "{secs} s of audio for six sentences");
    let heard = transcribe(wav_of_pcm24(&pcm)).await;
    let wer = word_error_rate(PARAGRAPH, &heard);
    assert!(wer <= 0.25, "heard {heard:?} (WER {wer:.2})");
    eprintln!(
        "streamed: first audio after {first:?}, all {secs:.1} s of audio after {total:?}, {} chunks",
        chunks.len()
    );
}

#[tokio::test]
async fn sse_sends_deltas_then_done_with_usage() {
    if !models_or_skip("sse_sends_deltas_then_done_with_usage") {
        return;
    }
    let text = "Streaming as events. Two sentences of it.";
    let r = speech(json!({"model": "tts-1", "input": text, "voice": "alloy",
                          "response_format": "pcm", "stream_format": "sse"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.len() >= 3, "{types:?}");
    assert!(
        types[..types.len() - 1]
            .iter()
            .all(|t| *t == "speech.audio.delta"),
        "{types:?}"
    );
    let done = events.last().unwrap();
    assert_eq!(done["type"], "speech.audio.done");
    assert_eq!(done["usage"]["input_tokens"], text.chars().count());
    let pcm: Vec<u8> = events[..events.len() - 1]
        .iter()
        .flat_map(|e| {
            base64::engine::general_purpose::STANDARD
                .decode(e["audio"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    let secs = pcm.len() as f64 / 48_000.0;
    assert!(
        (secs - done["audio_seconds"].as_f64().unwrap()).abs() < 0.1,
        "{secs} s against {done}"
    );
    let heard = transcribe(wav_of_pcm24(&pcm)).await;
    assert!(word_error_rate(text, &heard) <= 0.2, "heard {heard:?}");
}

#[tokio::test]
async fn a_client_that_goes_away_stops_the_synthesis() {
    if !models_or_skip("a_client_that_goes_away_stops_the_synthesis") {
        return;
    }
    let left = || async {
        let metrics = service().get_text("/metrics").await;
        metrics
            .lines()
            .find(|l| l.starts_with("voice_tts_streams_total{outcome=\"client_left\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = left().await;
    let r = speech(
        json!({"model": "tts-1", "input": PARAGRAPH, "voice": "alloy",
                          "response_format": "mp3", "stream_format": "audio"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    assert!(body.next().await.is_some(), "no first sentence");
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(30);
    while left().await == before {
        assert!(
            Instant::now() < deadline,
            "the synthesis did not stop when the client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_bad_stream_format_and_an_unknown_voice_are_refused_before_any_audio() {
    if !models_or_skip("a_bad_stream_format_and_an_unknown_voice_are_refused_before_any_audio") {
        return;
    }
    for (body, status, says) in [
        (
            json!({"input": "hi", "voice": "alloy", "stream_format": "chunks"}),
            400,
            "stream_format",
        ),
        (
            json!({"input": "hi", "voice": "nobody", "stream_format": "sse"}),
            400,
            "nobody",
        ),
    ] {
        let r = speech(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {e}"
        );
    }
}
