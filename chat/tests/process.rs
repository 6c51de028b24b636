//! The real `voicechat-chat` binary: configuration from the environment,
//! SIGTERM handling, logs without secrets, and the `mint-token` command.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_voicechat-chat");

#[tokio::test]
async fn sigterm_finishes_the_answer_closes_1001_and_exits_cleanly_without_logging_secrets() {
    if !have_or_skip(
        RedisServer::available(),
        "sigterm test",
        "redis",
        "redis-server",
    ) {
        return;
    }
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::slow(
        &["one ", "two ", "three"],
        Duration::from_millis(150),
    ))
    .await;
    let port = voicechat_testkit::free_port();
    let dir = std::env::temp_dir().join(format!("vcs-chat-proc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("jwt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();

    let mut child = Command::new(BIN)
        .env_clear()
        .env("CHAT_BIND", "127.0.0.1")
        .env("CHAT_PORT", port.to_string())
        .env("REDIS_URL", redis.url())
        .env("LLM_URL", llm.url())
        .env("JWT_SECRET_FILE", &secret_file)
        .env("SHUTDOWN_DRAIN_SECS", "5")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start voicechat-chat");
    let base = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("http://{base}/livez")).await.is_err() {
        assert!(Instant::now() < deadline, "service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let user_token = token("alice");
    let mut ws = WsClient::connect(&format!("ws://{base}/ws/chat?token={user_token}")).await;
    ws.opening().await;
    ws.say("count to three").await;
    assert_eq!(ws.event().await["type"], "ack");

    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: plain kill(2) on our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let events = ws.until("done").await;
    assert_eq!(
        events.last().unwrap()["content"],
        "one two three",
        "in-flight answer finished"
    );
    let closed = ws.closed().await;
    assert_eq!(closed.code, 1001, "{closed:?}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");

    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("chat service listening"),
        "JSON logs expected:\n{logs}"
    );
    assert!(
        logs.lines()
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with('{')),
        "every log line is JSON:\n{logs}"
    );
    assert!(
        !logs.contains(SECRET),
        "the JWT secret appeared in the logs"
    );
    assert!(!logs.contains(&user_token), "a token appeared in the logs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_to_start_without_a_secret_and_names_the_variable() {
    let out = Command::new(BIN)
        .env_clear()
        .env("CHAT_PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JWT_SECRET_FILE or JWT_SECRET is required"),
        "{stderr}"
    );

    let out = Command::new(BIN)
        .env_clear()
        .env("JWT_SECRET", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));
}

#[test]
fn mint_token_prints_a_token_the_service_accepts() {
    let out = Command::new(BIN)
        .args(["mint-token", "--user", "demo", "--ttl", "60"])
        .env_clear()
        .env("JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = String::from_utf8(out.stdout).unwrap();
    let verifier = voicechat_common::auth::JwtVerifier::new(&jwt_settings()).unwrap();
    assert_eq!(verifier.verify(minted.trim()).unwrap().user_id, "demo");
}
