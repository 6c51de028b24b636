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
    assert_eq!(r["speech_header"], "RIFF");
    let said = "Please call me back when you get home.";
    assert!(
        word_error_rate(said, r["json"].as_str().unwrap()) <= 0.1,
        "{r}"
    );
    assert_eq!(
        r["text"].as_str().unwrap().trim(),
        r["json"].as_str().unwrap()
    );
    assert_eq!(r["verbose"]["language"], "en");
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
    assert_eq!(r["mp3_error"]["status"], 400);
    assert!(r["mp3_error"]["message"].as_str().unwrap().contains("mp3"));
    let _ = std::fs::remove_dir_all(&work);
}
