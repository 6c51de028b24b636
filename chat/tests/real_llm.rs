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
    cfg.llm.model =
        std::env::var("VOICECHAT_TEST_LLM_MODEL").unwrap_or_else(|_| "gemma3:270m".into());
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
    ws.say("The capital of France is").await;
    let events = ws.until_any(&["done", "error"]).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "done", "{last}");
    assert!(last["tokens"].as_u64().unwrap() > 0);
    assert!(!last["content"].as_str().unwrap().trim().is_empty());
    assert_eq!(
        support::ws_client::streamed_text(&events),
        last["content"].as_str().unwrap()
    );
    eprintln!(
        "real LLM answered: {:?} ({} tokens, {})",
        last["content"], last["tokens"], last["timing"]
    );
}
