//! Realtime transcription sessions (`/v1/realtime?intent=transcription`)
//! with the official `openai` client: a turn found by server VAD in 24 kHz
//! PCM, then push-to-talk in G.711 μ-law, both spoken by Piper and heard
//! by Whisper. Needs `VOICECHAT_OPENAI_PYTHON` (openai with websockets).

mod support;

use serde_json::Value;
use support::*;

#[tokio::test]
async fn the_official_client_transcribes_in_a_realtime_session() {
    let test = "the_official_client_transcribes_in_a_realtime_session";
    let python = std::env::var("VOICECHAT_OPENAI_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_client = std::process::Command::new(&python)
        .args(["-c", "import openai, websockets, audioop"])
        .status()
        .is_ok_and(|s| s.success());
    if !voicechat_testkit::have_or_skip(
        has_client,
        test,
        "openai-python",
        "the openai Python client with websockets (VOICECHAT_OPENAI_PYTHON)",
    ) || !models_or_skip(test)
    {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/realtime_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(service().url("").trim_end_matches('/'))
        .arg(token("listener"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{r}");
    assert_eq!(r["created"], "transcription");
    let events: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = |name: &str| {
        events
            .iter()
            .position(|e| *e == name)
            .unwrap_or_else(|| panic!("no {name}: {events:?}"))
    };
    assert!(at("input_audio_buffer.speech_started") < at("input_audio_buffer.speech_stopped"));
    assert!(
        at("input_audio_buffer.committed")
            < at("conversation.item.input_audio_transcription.delta")
    );
    assert!(
        !events.iter().any(|e| e.starts_with("response.")),
        "no responses: {events:?}"
    );
    let said = "Please call me back when you get home.";
    for key in ["vad_transcript", "ulaw_transcript"] {
        let heard = r[key].as_str().unwrap();
        let wer = word_error_rate(said, heard);
        assert!(wer <= PIPER_WER, "{key}: heard {heard:?} (WER {wer})");
    }
    let refused = &r["response_refused"];
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "unsupported_event");
    assert_eq!(refused["event_id"], "not-here");
}
