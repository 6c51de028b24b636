//! OpenAI's Realtime API on the chat service, driven by the official
//! `openai` Python client (`client.realtime.connect`), with real parts: the
//! voice service's own binary with real models (Piper speaks the user's
//! questions and the answers, Whisper hears them), Redis, and a real LLM
//! (`VOICECHAT_TEST_LLM_URL`) or, for timing and faults, the scripted one.
//! Needs `VOICECHAT_OPENAI_PYTHON` (a Python with `openai` and
//! `websockets`), the voice binary next to this test's (cargo builds it
//! with the workspace's tests) and the models (scripts/fetch-models.sh).

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn python() -> String {
    std::env::var("VOICECHAT_OPENAI_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn models_dir() -> PathBuf {
    std::env::var("VOICE_MODELS_DIR").map_or_else(
        |_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/voicechat/models-v1")
        },
        PathBuf::from,
    )
}

/// The voice service's binary, built beside this test by `cargo test`.
fn voice_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("voicechat-voice");
    bin.is_file().then_some(bin)
}

/// Whether everything a spoken test needs is here (else it is skipped,
/// saying why).
fn ready(test: &str) -> bool {
    let client = Command::new(python())
        .args([
            "-c",
            "import openai, websockets; openai.AsyncOpenAI(api_key='x').realtime",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    have_or_skip(
        client,
        test,
        "openai-python",
        "the openai Python client with websockets (VOICECHAT_OPENAI_PYTHON)",
    ) && have_or_skip(RedisServer::available(), test, "redis", "redis-server")
        && have_or_skip(
            voice_binary().is_some()
                && models_dir().join("whisper/ggml-tiny.en-q8_0.bin").is_file()
                && models_dir().join("piper/en_US-joe-medium.onnx").is_file(),
            test,
            "models",
            "the voice service's binary (cargo test --workspace builds it) and its models (scripts/fetch-models.sh)",
        )
}

/// The voice service as its own process, shared by the tests of this
/// binary (the kernel stops it when the tests end).
struct VoiceService {
    url: String,
    _child: Child,
}

fn voice() -> &'static VoiceService {
    static VOICE: OnceLock<VoiceService> = OnceLock::new();
    VOICE.get_or_init(|| {
        let port = voicechat_testkit::free_port();
        let mut command = Command::new(voice_binary().expect("voice binary"));
        command
            .env("VOICE_BIND", "127.0.0.1")
            .env("VOICE_PORT", port.to_string())
            .env("WYOMING_PORT", "0")
            .env("VOICE_CACHE", "false")
            .env("VOICE_MODELS_DIR", models_dir())
            .env("WHISPER_MODEL", "ggml-tiny.en-q8_0.bin")
            .env("JWT_SECRET", SECRET)
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = voicechat_testkit::child::spawn_tied_to_process(command)
            .expect("start the voice service");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..600 {
            if http_ok(port, "/readyz") {
                return VoiceService { url, _child: child };
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the voice service did not become ready");
    })
}

/// Whether `GET path` on the loopback port answers 200 (plain HTTP/1.0:
/// the harness needs no runtime for it).
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// A chat service speaking through `voice_url` (none: text only) with the
/// LLM at `llm_url`.
async fn chat(
    redis: &RedisServer,
    llm_url: &str,
    voice_url: Option<&str>,
    model: Option<String>,
) -> ChatServer {
    let mut config = config(&redis.url(), llm_url);
    config.realtime.voice_url = voice_url.map(str::to_owned);
    if let Some(model) = model {
        config.llm.model = model;
    }
    config.llm.total_timeout = Duration::from_secs(120);
    ChatServer::start(config).await
}

/// Runs one scenario of realtime_client.py; `fault` is called at each
/// checkpoint it reports, and the script goes on when it returns.
async fn scenario<F, Fut>(
    name: &str,
    chat: &ChatServer,
    voice_url: &str,
    user: &str,
    mut fault: F,
) -> Value
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/realtime_client.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .arg(name)
        .arg(chat.http(""))
        .arg(voice_url)
        .arg(token(user))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut result = None;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(300), lines.next_line()).await
    {
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if let Some(name) = value["checkpoint"].as_str() {
            fault(name.to_owned()).await;
            stdin.write_all(b"go\n").await.expect("stdin");
            continue;
        }
        result = Some(value);
    }
    let out = child.wait_with_output().await.expect("python ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stderr}");
    let result = result.unwrap_or_else(|| panic!("{name} printed no result: {stderr}"));
    eprintln!("{name}: {result}");
    result
}

fn events(r: &Value) -> Vec<&str> {
    r["events"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `first` comes before `then` in the events.
fn before(r: &Value, first: &str, then: &str) {
    let e = events(r);
    let a = e
        .iter()
        .position(|x| *x == first)
        .unwrap_or_else(|| panic!("no {first}: {e:?}"));
    let b = e
        .iter()
        .position(|x| *x == then)
        .unwrap_or_else(|| panic!("no {then}: {e:?}"));
    assert!(a < b, "{first} after {then}: {e:?}");
}

async fn history(chat: &ChatServer, user: &str, session_id: &str) -> Vec<Value> {
    let body = chat
        .get_json_as(user, &format!("/api/v1/sessions/{session_id}/messages"))
        .await;
    body["messages"].as_array().cloned().unwrap_or_default()
}

fn real_llm(test: &str) -> Option<(String, String)> {
    let url = std::env::var("VOICECHAT_TEST_LLM_URL").ok();
    have_or_skip(
        url.is_some(),
        test,
        "llm",
        "a real LLM server (VOICECHAT_TEST_LLM_URL)",
    )
    .then(|| {
        let model = std::env::var("VOICECHAT_TEST_LLM_MODEL")
            .unwrap_or_else(|_| "smollm2:135m-instruct-q4_1".into());
        (url.unwrap_or_default(), model)
    })
}

#[tokio::test]
async fn a_spoken_question_is_heard_answered_aloud_and_kept_in_the_history() {
    let test = "a_spoken_question_is_heard_answered_aloud_and_kept_in_the_history";
    if !ready(test) {
        return;
    }
    let Some((llm_url, model)) = real_llm(test) else {
        return;
    };
    let redis = RedisServer::start();
    let voice = voice();
    let chat = chat(&redis, &llm_url, Some(&voice.url), Some(model)).await;
    let r = scenario("spoken", &chat, &voice.url, "speaker", |_| async {}).await;
    for (first, then) in [
        ("session.updated", "input_audio_buffer.speech_started"),
        (
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
        ),
        (
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
        ),
        (
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.completed",
        ),
        (
            "conversation.item.input_audio_transcription.completed",
            "response.created",
        ),
        ("response.created", "response.output_item.added"),
        (
            "response.content_part.added",
            "response.output_audio_transcript.delta",
        ),
        (
            "response.output_audio_transcript.delta",
            "response.output_audio.delta",
        ),
        ("response.output_audio.delta", "response.output_audio.done"),
        (
            "response.output_audio.done",
            "response.output_audio_transcript.done",
        ),
        ("response.output_item.done", "response.done"),
    ] {
        before(&r, first, then);
    }
    let heard = r["user"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        heard.contains("capital of france"),
        "Whisper heard {heard:?}"
    );
    assert_eq!(r["status"], "completed", "{r}");
    let answer = r["answer"].as_str().unwrap_or_default();
    assert!(answer.to_lowercase().contains("paris"), "{answer:?}");
    assert!(r["audio_secs"].as_f64().unwrap() > 0.5, "{r}");
    assert_eq!(r["output"][0]["type"], "output_audio");
    assert_eq!(r["output"][0]["transcript"], answer);
    // Its transcript was started at the pause, before the silence window
    // ended the turn, and used.
    let metrics = reqwest::get(chat.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("chat_realtime_speculative_transcriptions_total{outcome=\"adopted\"} 1"),
        "{metrics}"
    );
    // The turn is in the chat session's history.
    let stored = history(&chat, "speaker", r["session_id"].as_str().unwrap()).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0]["role"], "user");
    assert!(
        stored[0]["content"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("capital of france")
    );
    assert_eq!(
        (&stored[1]["role"], &stored[1]["content"]),
        (&json!("assistant"), &json!(answer))
    );
}

#[tokio::test]
async fn a_typed_question_is_answered_in_text() {
    let test = "a_typed_question_is_answered_in_text";
    if !ready(test) {
        return;
    }
    let Some((llm_url, model)) = real_llm(test) else {
        return;
    };
    let redis = RedisServer::start();
    let voice = voice();
    let chat = chat(&redis, &llm_url, Some(&voice.url), Some(model)).await;
    let r = scenario("text", &chat, &voice.url, "typist", |_| async {}).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert!(
        r["text"].as_str().unwrap().to_lowercase().contains("paris"),
        "{r}"
    );
    assert!(
        !events(&r).contains(&"response.output_audio.delta"),
        "text only: {r}"
    );
    before(
        &r,
        "response.output_text.delta",
        "response.output_text.done",
    );
    let stored = history(&chat, "typist", r["session_id"].as_str().unwrap()).await;
    assert_eq!(stored.len(), 2);
}

#[tokio::test]
async fn push_to_talk_waits_for_the_clients_commit() {
    let test = "push_to_talk_waits_for_the_clients_commit";
    if !ready(test) {
        return;
    }
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["Paris", " is", " the", " capital", "."])).await;
    let voice = voice();
    let chat = chat(&redis, &llm.url(), Some(&voice.url), None).await;
    let r = scenario("push_to_talk", &chat, &voice.url, "walkie", |_| async {}).await;
    let e = events(&r);
    assert!(
        !e.contains(&"input_audio_buffer.speech_started"),
        "no VAD: {e:?}"
    );
    before(&r, "input_audio_buffer.committed", "response.created");
    assert!(
        r["user"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("capital of france"),
        "{r}"
    );
    assert_eq!(r["status"], "completed");
    assert!(r["audio_secs"].as_f64().unwrap() > 0.5, "{r}");
}

#[tokio::test]
async fn talking_over_an_answer_cancels_it_and_keeps_what_was_heard() {
    let test = "talking_over_an_answer_cancels_it_and_keeps_what_was_heard";
    if !ready(test) {
        return;
    }
    let redis = RedisServer::start();
    let sentence = [
        "The", " weather", " today", " is", " sunny", " and", " warm", ".", " ",
    ];
    let long: Vec<&str> = sentence.repeat(12);
    let llm = LlmDouble::start(Script::slow(&long, Duration::from_millis(40))).await;
    let voice = voice();
    let chat = chat(&redis, &llm.url(), Some(&voice.url), None).await;
    let r = scenario("barge_in", &chat, &voice.url, "interrupter", |_| async {}).await;
    let cancelled = &r["cancelled"];
    assert_eq!(cancelled["status"], "cancelled", "{r}");
    assert_eq!(cancelled["reason"], "turn_detected", "{r}");
    assert_eq!(r["truncated"]["type"], "conversation.item.truncated", "{r}");
    assert_eq!(r["truncated"]["audio_end_ms"], r["played_ms"]);
    assert_eq!(
        r["second"]["status"], "completed",
        "the next turn is answered: {r}"
    );
    // The history keeps what the listener heard of the cut answer, marked.
    let stored = history(&chat, "interrupter", r["session_id"].as_str().unwrap()).await;
    let cut = stored
        .iter()
        .find(|m| m["role"] == "assistant" && m["interrupted"] == true)
        .unwrap_or_else(|| panic!("no interrupted answer: {stored:?}"));
    let kept = cut["content"].as_str().unwrap();
    let full: String = long.concat();
    assert!(
        !kept.is_empty() && kept.len() < full.trim().len() / 2,
        "kept {kept:?}"
    );
    assert!(
        full.starts_with(kept.trim_end_matches('.')),
        "kept {kept:?}"
    );
}

#[tokio::test]
async fn hostile_events_are_answered_with_errors_and_change_nothing() {
    let test = "hostile_events_are_answered_with_errors_and_change_nothing";
    if !ready(test) {
        return;
    }
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["Paris", "."])).await;
    let voice = voice();
    let chat = chat(&redis, &llm.url(), Some(&voice.url), None).await;
    let r = scenario("hostile", &chat, &voice.url, "mallory", |_| async {}).await;
    let errors = &r["errors"];
    for (event_id, code) in [
        ("bad_base64", "invalid_base64"),
        ("unknown", "unknown_event"),
        ("huge", "audio_too_large"),
        ("odd_pcm", "invalid_audio"),
        ("bad_rate", "invalid_audio_format"),
        ("empty_commit", "input_audio_buffer_commit_empty"),
        ("nothing_to_cancel", "response_cancel_not_active"),
        ("unknown_item", "item_not_found"),
        ("missing_field", "missing_or_invalid_field"),
        ("bad_item", "invalid_item"),
    ] {
        assert_eq!(errors[event_id]["code"], code, "{event_id}: {errors}");
    }
    assert_eq!(errors["missing_field"]["param"], "content_index");
    assert_eq!(errors["bad_rate"]["param"], "session.audio.input.format");
    // The socket stayed, and nothing of the refused events was kept.
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["text"], "Paris.");
    let stored = history(&chat, "mallory", r["session_id"].as_str().unwrap()).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
}

#[tokio::test]
async fn the_voice_service_down_is_named_and_text_still_works() {
    let test = "the_voice_service_down_is_named_and_text_still_works";
    if !ready(test) {
        return;
    }
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["Paris", "."])).await;
    let nowhere = format!("http://127.0.0.1:{}", voicechat_testkit::free_port());
    let chat = chat(&redis, &llm.url(), Some(&nowhere), None).await;
    let r = scenario("voice_down", &chat, &voice().url, "unlucky", |_| async {}).await;
    assert_eq!(r["spoken"]["status"], "failed", "{r}");
    assert_eq!(r["spoken"]["error_code"], "voice_unavailable", "{r}");
    let error = &r["errors"][0];
    assert_eq!(error["code"], "voice_unavailable", "{r}");
    assert!(
        error["message"].as_str().unwrap().contains(&nowhere),
        "names the voice service: {error}"
    );
    assert_eq!(r["typed"]["status"], "completed");
    assert_eq!(r["typed"]["text"], "Paris.");
}

#[tokio::test]
async fn the_llm_dying_mid_answer_is_an_error_and_the_session_goes_on() {
    let test = "the_llm_dying_mid_answer_is_an_error_and_the_session_goes_on";
    if !ready(test) {
        return;
    }
    let redis = RedisServer::start();
    let tokens: Vec<String> = (1..=20).map(|i| format!("{i} ")).collect();
    let llm = LlmDouble::start(Script::DiesAfter {
        tokens,
        delay: Duration::from_millis(20),
    })
    .await;
    let url = llm.url();
    let voice = voice();
    let chat = chat(&redis, &url, Some(&voice.url), None).await;
    let r = scenario("llm_killed", &chat, &voice.url, "survivor", |checkpoint| {
        assert_eq!(checkpoint, "failed");
        llm.set(Script::tokens(&["Yes", "."]));
        async {}
    })
    .await;
    assert_eq!(r["failed"]["status"], "failed", "{r}");
    assert!(
        r["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "an error event: {r}"
    );
    assert_eq!(r["again"]["status"], "completed", "{r}");
    assert_eq!(r["again"]["text"], "Yes.");
}

#[tokio::test]
async fn a_bad_token_is_refused_before_any_session() {
    let test = "a_bad_token_is_refused_before_any_session";
    if !ready(test) {
        return;
    }
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let chat = chat(&redis, &llm.url(), Some("http://127.0.0.1:9"), None).await;
    let r = scenario(
        "bad_token",
        &chat,
        "http://127.0.0.1:9",
        "nobody",
        |_| async {},
    )
    .await;
    assert_eq!(r["refused"], true, "{r}");
    assert_eq!(r["code"], 4001, "{r}");
}

/// Browsers cannot set headers: OpenAI's form is the subprotocols
/// `realtime` and `openai-insecure-api-key.<key>`; the server must select
/// `realtime` (never echo the key) and start the session.
#[tokio::test]
async fn the_browser_subprotocol_form_is_accepted() {
    if !have_or_skip(
        RedisServer::available(),
        "the_browser_subprotocol_form_is_accepted",
        "redis",
        "redis-server",
    ) {
        return;
    }
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["x"])).await;
    let chat = chat(&redis, &llm.url(), None, None).await;
    let mut request = format!("ws://{}/v1/realtime?model=m", chat.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("realtime, openai-insecure-api-key.{}", token("browser"))
            .parse()
            .unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake");
    assert_eq!(response.headers()["sec-websocket-protocol"], "realtime");
    let first = socket.next().await.unwrap().unwrap();
    let created: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(created["type"], "session.created", "{created}");
    assert_eq!(created["session"]["type"], "realtime");
    // Without VOICE_URL the session is text only, and says so when asked for audio.
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"type": "session.update", "event_id": "e1", "session": {"type": "realtime", "output_modalities": ["audio"]}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let answer: Value =
        serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["error"]["event_id"], "e1");
}
