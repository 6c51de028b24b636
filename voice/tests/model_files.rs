//! Model files that disappear or break under the service. Engines hold their
//! models in memory, so a running service keeps serving what it loaded; the
//! next start (a pod restart) reports the engine whose file is gone and
//! falls back to the next engine instead of failing.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::*;

const SENTENCE: &str = "Please call me back when you get home.";

/// A private copy of the Piper voice and the Whisper model, so the test
/// can remove or break them.
fn copy_models(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let models = models_dir();
    let piper = dir.join("piper");
    let whisper = dir.join("whisper/ggml-tiny.en.bin");
    std::fs::create_dir_all(&piper).unwrap();
    std::fs::create_dir_all(whisper.parent().unwrap()).unwrap();
    for name in ["en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"] {
        std::fs::copy(models.join("piper").join(name), piper.join(name)).unwrap();
    }
    std::fs::copy(models.join("whisper/ggml-tiny.en.bin"), &whisper).unwrap();
    (piper, whisper)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vcs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn models_removed_at_runtime_keep_serving_and_the_next_start_falls_back() {
    let test = "models_removed_at_runtime_keep_serving_and_the_next_start_falls_back";
    if !models_or_skip(test) {
        return;
    }
    let dir = temp_dir("removed-models");
    let (piper, whisper) = copy_models(&dir);
    let mut cfg = config(None, piper.clone(), models_dir().join("vosk"));
    cfg.whisper_model = whisper.clone();
    let running = Service::start(cfg.clone(), None);
    let r = running.tts(json!({"text": SENTENCE})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-voice-engine"], "piper");
    let wav = r.bytes().await.unwrap().to_vec();

    std::fs::remove_file(piper.join("en_US-joe-medium.onnx")).unwrap();
    std::fs::remove_file(&whisper).unwrap();

    // The running service still speaks and listens with what it loaded.
    let r = running
        .tts(json!({"text": "The files are gone but the voice is loaded."}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-voice-engine"], "piper");
    let r = running.stt(wav.clone(), "").await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["engine"], "whisper", "{t}");
    assert!(
        word_error_rate(SENTENCE, t["text"].as_str().unwrap()) <= PIPER_WER,
        "{t}"
    );
    let health = running.get_json("/health").await;
    assert_eq!(
        health["dependencies"]["engine:piper"]["status"],
        "connected"
    );
    assert_eq!(
        health["dependencies"]["engine:whisper"]["status"],
        "connected"
    );

    // A restart without the files: still ready, degraded, and it says which
    // files are missing; TTS falls back to espeak-ng.
    let restarted = Service::start(cfg, None);
    let ready = client().get(restarted.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let health = restarted.get_json("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    let piper_error = health["dependencies"]["engine:piper"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        piper_error.contains("no voices") && piper_error.contains(&piper.display().to_string()),
        "{health}"
    );
    let whisper_error = health["dependencies"]["engine:whisper"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        whisper_error.contains("not found")
            && whisper_error.contains(&whisper.display().to_string()),
        "{health}"
    );
    let r = restarted.tts(json!({"text": SENTENCE})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-voice-engine"], "espeak-ng");
    // English speech has no engine left (Vosk has only Korean here): a
    // clear error naming the problem, not an empty transcript.
    let r = restarted.stt(wav, "").await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "engine_unavailable", "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn corrupt_model_files_are_reported_by_name_and_fallen_back_from() {
    let test = "corrupt_model_files_are_reported_by_name_and_fallen_back_from";
    if !models_or_skip(test) {
        return;
    }
    let dir = temp_dir("corrupt-models");
    let (piper, whisper) = copy_models(&dir);
    // Cut both models short, as an interrupted download leaves them.
    let onnx = piper.join("en_US-joe-medium.onnx");
    for path in [&onnx, &whisper] {
        let bytes = std::fs::read(path).unwrap();
        std::fs::write(path, &bytes[..bytes.len() / 3]).unwrap();
    }
    let mut cfg = config(None, piper, models_dir().join("vosk"));
    cfg.whisper_model = whisper.clone();
    let s = Service::start(cfg, None);

    let health = s.get_json("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    let piper_error = health["dependencies"]["engine:piper"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(piper_error.contains("en_US-joe-medium"), "{health}");
    let whisper_error = health["dependencies"]["engine:whisper"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        whisper_error.contains("cannot load") && whisper_error.contains("ggml-tiny.en.bin"),
        "{health}"
    );
    let r = s.tts(json!({"text": SENTENCE})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-voice-engine"], "espeak-ng");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An empty models volume (a PVC nobody filled): speech-to-text has no
/// engine at all, so the pod must not take traffic, and `/readyz` says
/// which files it looked for. Text-to-speech alone would still work
/// (espeak-ng needs no model), which is not enough to be ready.
#[tokio::test]
async fn no_speech_to_text_model_at_all_is_not_ready_and_says_why() {
    let dir = temp_dir("no-models");
    let mut cfg = config(None, dir.join("piper"), dir.join("vosk"));
    cfg.whisper_model = dir.join("whisper/ggml-tiny.en.bin");
    let s = Service::start(cfg, None);
    let r = client().get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("no speech-to-text engine loaded"), "{body}");
    assert!(
        body.contains("whisper") && body.contains("ggml-tiny.en.bin"),
        "{body}"
    );
    assert!(body.contains("vosk"), "{body}");
    assert!(!body.contains("text-to-speech"), "{body}");
    // Loading has finished: the startup probe passes, so the kubelet keeps
    // the pod (unready) rather than restarting it.
    let r = client().get(s.url("/startupz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}
