//! One conversation with a real LLM server. Runs when
//! `VOICECHAT_TEST_LLM_URL` points at one (Ollama by default, or set
//! `VOICECHAT_TEST_LLM_BACKEND=openai`) and `VOICECHAT_TEST_LLM_MODEL`
//! names an installed model; the local-stack script starts one.

mod support;

use support::*;

#[tokio::test]
async fn answers_with_a_real_llm() {
    let url = std::env::var("VOICECHAT_TEST_LLM_URL").ok();
    if !have_or_skip(
        url.is_some(),
        "answers_with_a_real_llm",
        "llm",
        "a real LLM server (VOICECHAT_TEST_LLM_URL)",
    ) {
        return;
    }
    if !have_or_skip(
        RedisServer::available(),
        "answers_with_a_real_llm",
        "redis",
        "redis-server",
    ) {
        return;
    }
    let redis = RedisServer::start();
    let mut cfg = config(&redis.url(), url.as_deref().unwrap_or_default());
    cfg.llm.model = std::env::var("VOICECHAT_TEST_LLM_MODEL")
        .unwrap_or_else(|_| "smollm2:135m-instruct-q4_1".into());
    if std::env::var("VOICECHAT_TEST_LLM_BACKEND").is_ok_and(|b| b == "openai") {
        cfg.llm.backend = voicechat_chat::config::LlmBackend::OpenAi;
    }
    cfg.llm.total_timeout = std::time::Duration::from_secs(120);
    let server = ChatServer::start(cfg).await;
    assert_eq!(
        health(&server).await["dependencies"]["llm"]["status"],
        "connected"
    );

    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    ws.opening().await;
    ws.say("What is the capital of France?").await;
    let events = ws.until_any(&["done", "error"]).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "done", "{last}");
    assert!(last["tokens"].as_u64().unwrap() > 0);
    // An instruction-tuned model answers the question (SmolLM2 by default).
    assert!(
        last["content"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("paris"),
        "{last}"
    );
    assert_eq!(
        support::ws_client::streamed_text(&events),
        last["content"].as_str().unwrap()
    );
    eprintln!(
        "real LLM answered: {:?} ({} tokens, {})",
        last["content"], last["tokens"], last["timing"]
    );
}

/// An Ollama server of this test's own (the shared one must survive), in its
/// own process group so the model runner it starts dies with it.
struct OllamaProcess {
    child: std::process::Child,
    port: u16,
}

impl OllamaProcess {
    async fn start(bin: &str, models: &str, port: u16, log: &std::path::Path) -> Self {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("ollama log");
        let child = std::process::Command::new(bin)
            .arg("serve")
            .env("OLLAMA_HOST", format!("127.0.0.1:{port}"))
            .env("OLLAMA_MODELS", models)
            .env("OLLAMA_KEEP_ALIVE", "10m")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start ollama");
        let server = Self { child, port };
        let started = std::time::Instant::now();
        while reqwest::get(format!("{}/api/version", server.url()))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "ollama did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL to the server and its model runner, as an OOM kill does.
    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for OllamaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn a_real_llm_killed_mid_answer_is_an_error_and_the_next_message_works() {
    let test = "a_real_llm_killed_mid_answer_is_an_error_and_the_next_message_works";
    let (bin, models) = (std::env::var("OLLAMA_BIN"), std::env::var("OLLAMA_MODELS"));
    if !have_or_skip(
        bin.is_ok() && models.is_ok(),
        test,
        "llm",
        "an Ollama binary and model store (OLLAMA_BIN, OLLAMA_MODELS: scripts/fetch-llm.sh)",
    ) || !have_or_skip(RedisServer::available(), test, "redis", "redis-server")
    {
        return;
    }
    let (bin, models) = (bin.unwrap_or_default(), models.unwrap_or_default());
    let log = std::env::temp_dir().join(format!("vcs-ollama-killed-{}.log", std::process::id()));
    let port = voicechat_testkit::free_port();
    let mut ollama = OllamaProcess::start(&bin, &models, port, &log).await;
    let redis = RedisServer::start();
    let mut cfg = config(&redis.url(), &ollama.url());
    cfg.llm.model = std::env::var("VOICECHAT_TEST_LLM_MODEL")
        .unwrap_or_else(|_| "smollm2:135m-instruct-q4_1".into());
    cfg.llm.total_timeout = std::time::Duration::from_secs(120);
    // The restarted Ollama loads the model before its first token: under
    // the test suite's load on 2 cores that took longer than the suite's
    // 10 s idle timeout (an `llm_timeout` in a CI run).
    cfg.llm.idle_timeout = std::time::Duration::from_secs(60);
    let server = ChatServer::start(cfg).await;

    let mut ws = WsClient::connect(&server.ws(&format!("token={}", token("alice")))).await;
    let (session_id, _) = ws.opening().await;
    ws.say("Tell me a long story about a dragon and a castle.")
        .await;
    let mut streamed = ws.until("token").await;
    ollama.kill();
    streamed.extend(ws.until_any(&["done", "error"]).await);
    let last = streamed.last().unwrap();
    assert_eq!(
        last["type"], "error",
        "the answer ended although Ollama was killed: {last}"
    );
    let code = last["code"].as_str().unwrap_or_default();
    assert!(
        ["llm_transport_error", "llm_stream_error"].contains(&code),
        "{last}"
    );
    assert_eq!(
        health(&server).await["dependencies"]["llm"]["status"],
        "disconnected"
    );

    // The same socket, once Ollama is back: the next message is answered.
    let _ollama = OllamaProcess::start(&bin, &models, port, &log).await;
    ws.say("What is the capital of France?").await;
    let events = ws.until_any(&["done", "error"]).await;
    let done = events.last().unwrap();
    assert_eq!(done["type"], "done", "{done}");
    assert!(done["tokens"].as_u64().unwrap_or(0) > 0, "{done}");

    // History keeps both turns; the broken answer is marked interrupted.
    let history = server
        .get_json_as("alice", &format!("/api/v1/sessions/{session_id}/messages"))
        .await;
    let messages = history["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 4, "{history}");
    assert_eq!(messages[1]["interrupted"], true, "{history}");
    assert_ne!(messages[3]["interrupted"], true, "{history}");
    let _ = std::fs::remove_file(&log);
}
