//! Multilingual Whisper (base, converted from the CTranslate2 model on
//! PyPI by scripts/fetch-models.sh): espeak-ng speaks Spanish and German,
//! Whisper detects the language, transcribes, and translates to English.
//! The sentences are ones Whisper base identifies with confidence (short
//! espeak-ng utterances are heard as Thai or English by Whisper base
//! whatever runs it: faster-whisper on the original model too).

mod support;

use std::sync::OnceLock;

use serde_json::Value;
use support::*;

const SPANISH: &str = "El español es una lengua romance que se habla en España y en gran parte de América Latina. Tiene muchos hablantes en todo el mundo.";
const GERMAN: &str = "Ich habe heute keine Zeit, weil ich noch arbeiten muss. Vielleicht können wir uns morgen treffen.";

fn multilingual_model() -> std::path::PathBuf {
    models_dir().join("whisper-multilingual/ggml-base-q8_0.bin")
}

fn ready(test: &str) -> bool {
    models_or_skip(test)
        && voicechat_testkit::have_or_skip(
            multilingual_model().is_file(),
            test,
            "models",
            "the multilingual Whisper model (scripts/fetch-models.sh)",
        )
}

/// A service whose Whisper is the multilingual base model.
fn multilingual() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let m = models_dir();
        let mut config = config(None, m.join("piper"), m.join("vosk"));
        config.whisper_model = multilingual_model();
        config.wyoming.listen = None;
        Service::start(config, None)
    })
}

/// `text` as espeak-ng speaks it in `voice` (a WAV at 22,050 Hz).
fn espeak(voice: &str, speed: &str, text: &str) -> Vec<u8> {
    // A file, not --stdout: a WAV on a pipe has no length in its header.
    // One per call: the tests run at once.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!(
        "vcs-espeak-{}-{n}-{voice}-{speed}.wav",
        std::process::id()
    ));
    let out = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", speed, "-w"])
        .arg(&path)
        .arg(text)
        .output()
        .expect("espeak-ng runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wav = std::fs::read(&path).expect("the WAV espeak-ng wrote");
    let _ = std::fs::remove_file(&path);
    wav
}

async fn openai(route: &str, wav: Vec<u8>, fields: &[(&str, &str)]) -> Value {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav).file_name("speech.wav"),
        )
        .text("model", "whisper-1")
        .text("response_format", "verbose_json");
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let r = client()
        .post(multilingual().url(route))
        .bearer_auth(token("polyglot"))
        .multipart(form)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_language_is_detected_and_reported() {
    if !ready("the_language_is_detected_and_reported") {
        return;
    }
    for (voice, speed, said, code, name) in [
        ("es", "140", SPANISH, "es", "spanish"),
        ("de", "175", GERMAN, "de", "german"),
    ] {
        // Native route: the language code.
        let r = multilingual().stt(espeak(voice, speed, said), "").await;
        assert_eq!(r.status(), 200);
        let t: Value = r.json().await.unwrap();
        let heard = t["text"].as_str().unwrap();
        let wer = word_error_rate(said, heard);
        eprintln!("{voice}: {heard:?} (WER {wer:.2}, {})", t["language"]);
        assert_eq!(t["language"], code, "{t}");
        assert_eq!(t["engine"], "whisper");
        assert!(wer <= 0.25, "WER {wer} for {heard:?}");
        // OpenAI's route: the language's name, as OpenAI reports it.
        let v = openai("/v1/audio/transcriptions", espeak(voice, speed, said), &[]).await;
        assert_eq!(v["language"], name, "{v}");
    }
}

#[tokio::test]
async fn a_named_language_is_transcribed_in_it() {
    if !ready("a_named_language_is_transcribed_in_it") {
        return;
    }
    let v = openai(
        "/v1/audio/transcriptions",
        espeak("de", "175", GERMAN),
        &[("language", "de")],
    )
    .await;
    assert_eq!(v["language"], "german", "{v}");
    let heard = v["text"].as_str().unwrap();
    assert!(word_error_rate(GERMAN, heard) <= 0.25, "{heard:?}");
}

#[tokio::test]
async fn german_speech_is_translated_to_english() {
    if !ready("german_speech_is_translated_to_english") {
        return;
    }
    let v = openai("/v1/audio/translations", espeak("de", "175", GERMAN), &[]).await;
    let text = v["text"].as_str().unwrap().to_lowercase();
    eprintln!("translated: {text:?}");
    assert!(
        text.contains("time today") && text.contains("meet"),
        "an English translation: {text:?}"
    );
    assert!(!text.contains("heute"), "{text:?}");
}
