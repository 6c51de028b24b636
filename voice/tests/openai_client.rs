//! The official OpenAI Python client against the voice service, unchanged
//! but for `base_url` and `api_key`. Needs a Python with the `openai`
//! package: `VOICECHAT_OPENAI_PYTHON` (the test script makes a venv).

mod support;

use serde_json::Value;
use support::*;

#[tokio::test]
async fn the_official_openai_client_works_unchanged() {
    let python = std::env::var("VOICECHAT_OPENAI_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_client = std::process::Command::new(&python)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    if !voicechat_testkit::have_or_skip(
        has_client,
        "the_official_openai_client_works_unchanged",
        "openai-python",
        "the openai Python package (VOICECHAT_OPENAI_PYTHON)",
    ) || !models_or_skip("the_official_openai_client_works_unchanged")
    {
        return;
    }
    let base = service().url("");
    let work = std::env::temp_dir().join(format!("vcs-openai-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(base.trim_end_matches('/'))
        .arg(token("openai-user"))
        .arg(&work)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("openai {}: {r}", r["openai_version"]);
    let said = "Please call me back when you get home.";
    assert_eq!(
        r["default_content_type"], "audio/mpeg",
        "mp3 is the default, as OpenAI's"
    );
    let formats = &r["formats"];
    for (format, header, content_type) in [
        ("flac", "fLaC", "audio/flac"),
        ("opus", "OggS", "audio/ogg; codecs=opus"),
        ("aac", "", "audio/aac"),
        ("wav", "RIFF", "audio/wav"),
        ("pcm", "", "audio/pcm"),
        ("mp3", "", "audio/mpeg"),
    ] {
        let entry = &formats[format];
        assert_eq!(entry["content_type"], content_type, "{format}: {entry}");
        if !header.is_empty() {
            assert_eq!(entry["header"], header, "{format}: {entry}");
        }
    }
    // The header as Latin-1 text: an ID3 tag, or a frame sync byte (0xff).
    let mp3_header = formats["mp3"]["header"].as_str().unwrap();
    assert!(
        mp3_header.starts_with("ID3") || mp3_header.starts_with('\u{ff}'),
        "no MP3 frame: {}",
        formats["mp3"]
    );
    let wav_bytes = formats["wav"]["bytes"].as_u64().unwrap();
    for compressed in ["mp3", "opus", "aac"] {
        let bytes = formats[compressed]["bytes"].as_u64().unwrap();
        assert!(
            bytes * 4 < wav_bytes,
            "{compressed}: {bytes} bytes against {wav_bytes} of WAV"
        );
    }
    if voicechat_testkit::have_or_skip(
        r["ffmpeg"].as_bool().unwrap_or(false),
        "the_official_openai_client_works_unchanged (ffprobe part)",
        "ffmpeg",
        "ffprobe and ffmpeg on PATH",
    ) {
        let wav_secs = formats["wav"]["duration"].as_f64().unwrap();
        for (format, codec, rate) in [
            ("mp3", "mp3", None),
            ("opus", "opus", Some(48_000)),
            ("aac", "aac", Some(22_050)),
            ("flac", "flac", None),
            ("wav", "pcm_s16le", None),
            ("pcm", "pcm_s16le", Some(24_000)),
        ] {
            let entry = &formats[format];
            assert_eq!(entry["codec"], codec, "{format}: {entry}");
            assert_eq!(entry["channels"], 1, "{format}: {entry}");
            if let Some(rate) = rate {
                assert_eq!(entry["sample_rate"], rate, "{format}: {entry}");
            }
            // Each request is synthesized anew and Piper's durations vary a
            // few percent; a wrong rate in a header or a lost tail is more.
            let secs = entry["duration"].as_f64().unwrap();
            assert!(
                (secs - wav_secs).abs() < 0.15 * wav_secs,
                "{format}: {secs} s against {wav_secs} s of WAV"
            );
            let heard = entry["heard"].as_str().unwrap();
            assert!(
                word_error_rate(said, heard) <= 0.1,
                "{format}, decoded by ffmpeg, was heard as {heard:?}"
            );
        }
        for streamed in ["sse", "streamed_mp3"] {
            let heard = r[streamed]["heard"].as_str().unwrap();
            let long = "The first sentence comes first. Then the second one follows it. A third one ends the answer.";
            assert!(
                word_error_rate(long, heard) <= 0.2,
                "{streamed}, decoded by ffmpeg, was heard as {heard:?}"
            );
        }
        let uploads = r["uploads"].as_object().unwrap();
        assert_eq!(uploads.len(), 7, "{r}");
        for (container, heard) in uploads {
            let heard = heard.as_str().unwrap();
            assert!(
                word_error_rate(said, heard) <= 0.1,
                "an upload as {container} (made by ffmpeg) was heard as {heard:?}"
            );
        }
    }
    let sse = &r["sse"];
    let types: Vec<&str> = sse["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(types.len() >= 4, "three sentences, then done: {types:?}");
    assert_eq!(types.last(), Some(&"speech.audio.done"), "{types:?}");
    assert!(sse["usage"]["input_tokens"].as_u64().unwrap() > 0, "{sse}");
    assert!(r["streamed_mp3"]["chunks"].as_u64().unwrap() >= 2, "{r}");
    assert!(
        word_error_rate(said, r["json"].as_str().unwrap()) <= 0.1,
        "{r}"
    );
    assert_eq!(
        r["text"].as_str().unwrap().trim(),
        r["json"].as_str().unwrap()
    );
    assert_eq!(r["verbose"]["language"], "english");
    let timed = &r["words"];
    let words = timed["words"].as_array().unwrap();
    let joined: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert!(
        word_error_rate(said, &joined.join(" ")) <= 0.1,
        "word timestamps through the client: {timed}"
    );
    let mut last_end = 0.0;
    for w in words {
        let (start, end) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(start >= last_end && end >= start, "{timed}");
        last_end = end;
    }
    assert!(
        last_end <= timed["duration"].as_f64().unwrap() + 0.05,
        "{timed}"
    );
    let stream = &r["stream"];
    let types = stream["types"].as_array().unwrap();
    assert_eq!(
        types.last().and_then(Value::as_str),
        Some("transcript.text.done"),
        "{stream}"
    );
    assert!(
        types[..types.len() - 1]
            .iter()
            .all(|t| t == "transcript.text.delta")
            && types.len() >= 2,
        "{stream}"
    );
    assert_eq!(
        stream["deltas"], stream["text"],
        "the deltas add up to the text"
    );
    assert!(
        word_error_rate(said, stream["text"].as_str().unwrap()) <= 0.1,
        "{stream}"
    );
    let translation = &r["translation_error"];
    assert_eq!(translation["status"], 400, "tiny.en cannot translate: {r}");
    assert!(
        translation["message"]
            .as_str()
            .unwrap()
            .contains("multilingual Whisper model"),
        "{translation}"
    );
    assert!(r["verbose"]["duration"].as_f64().unwrap() > 1.0);
    assert!(r["verbose"]["segments"].as_u64().unwrap() >= 1);
    assert!(
        r["srt"]
            .as_str()
            .unwrap()
            .starts_with("1\n00:00:00,000 --> "),
        "{r}"
    );
    assert!(
        r["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "whisper-1")
    );
    for format in ["ogg", "MP3"] {
        let error = &r[format!("{format}_error")];
        assert_eq!(error["status"], 400, "{r}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(format) && message.contains("mp3, opus, aac, flac, wav or pcm"),
            "{message}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
