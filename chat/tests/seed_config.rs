//! The real `voicechat-chat` binary started the way the seed system was
//! configured: `REDIS_URL`, `OLLAMA_BASE_URL`, `API_BASE_URL` (tokens
//! verified at `$API_BASE_URL/api/v1/auth/verify-token`) and
//! `JWT_SECRET_FILE`. The project's own names win when both are set, and a
//! set variable that names an unusable URL stops the service at start.

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_voicechat-chat");

/// A stand-in for the seed's API server: only its token check, which
/// accepts one opaque token.
async fn seed_api_server() -> String {
    let verify = axum::Router::new().route(
        "/api/v1/auth/verify-token",
        axum::routing::post(
            |axum::Json(body): axum::Json<serde_json::Value>| async move {
                if body["token"] == "seed-token" {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"valid": true, "user_id": "seed-user"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"valid": false})),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, verify).await.unwrap() });
    base
}

/// Starts the binary with exactly `env` (plus where to listen) and waits
/// for `/livez`.
async fn start(env: &[(&str, String)]) -> (Child, String) {
    let port = voicechat_testkit::free_port();
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("CHAT_BIND", "127.0.0.1")
        .env("CHAT_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start voicechat-chat");
    let base = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("http://{base}/livez")).await.is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("voicechat-chat exited with {status}: {}", logs(child));
        }
        assert!(Instant::now() < deadline, "service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base)
}

/// Stops the child and returns everything it logged.
fn logs(mut child: Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        let _ = stream.read_to_string(&mut logs);
    }
    logs
}

#[tokio::test]
async fn the_seed_systems_variables_configure_redis_the_llm_and_token_checks() {
    require_redis!("seed configuration test");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["from ", "the ", "seed's ", "Ollama"])).await;
    let api = seed_api_server().await;
    let dir = std::env::temp_dir().join(format!("vcs-chat-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("jwt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();

    let (child, base) = start(&[
        ("REDIS_URL", redis.url()),
        ("OLLAMA_BASE_URL", llm.url()),
        ("API_BASE_URL", api),
        ("JWT_SECRET_FILE", secret_file.display().to_string()),
    ])
    .await;
    let health: serde_json::Value = reqwest::get(format!("http://{base}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["dependencies"]["llm"]["status"], "connected");
    assert_eq!(health["dependencies"]["redis"]["status"], "connected");

    // Verified by the seed's API server, answered by the seed's Ollama.
    let mut ws = WsClient::connect(&format!("ws://{base}/ws/chat?token=seed-token")).await;
    ws.opening().await;
    ws.say("hello").await;
    let events = ws.until("done").await;
    assert_eq!(
        events.last().unwrap()["content"],
        "from the seed's Ollama",
        "{events:?}"
    );
    assert_eq!(
        llm.requests().len(),
        1,
        "the LLM at OLLAMA_BASE_URL answered"
    );
    let mut refused = WsClient::connect(&format!("ws://{base}/ws/chat?token=other")).await;
    assert_eq!(refused.closed().await.code, 4001);

    let logs = logs(child);
    for variable in ["OLLAMA_BASE_URL", "API_BASE_URL"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("configuration: using") && l.contains(variable)),
            "no start-up line says {variable} was used:\n{logs}"
        );
    }
    assert!(
        !logs.contains(SECRET),
        "the JWT secret appeared in the logs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_projects_own_names_win_over_the_seeds() {
    require_redis!("seed configuration precedence test");
    let redis = RedisServer::start();
    let llm = LlmDouble::start(Script::tokens(&["ours"])).await;
    // Nothing listens on port 9 (discard): the seed's URL would be down.
    let (child, base) = start(&[
        ("REDIS_URL", redis.url()),
        ("LLM_URL", llm.url()),
        ("OLLAMA_BASE_URL", "http://127.0.0.1:9".into()),
        ("JWT_SECRET", SECRET.into()),
    ])
    .await;
    let health: serde_json::Value = reqwest::get(format!("http://{base}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["dependencies"]["llm"]["status"], "connected");
    let logs = logs(child);
    assert!(
        logs.contains("both LLM_URL and OLLAMA_BASE_URL are set; using LLM_URL"),
        "{logs}"
    );
}

#[test]
fn a_set_variable_naming_an_unusable_url_stops_the_start() {
    for (variable, value) in [
        ("OLLAMA_BASE_URL", "ollama:11434"),
        ("LLM_URL", "not a url"),
        ("API_BASE_URL", "ftp://api.example.com"),
        ("AUTH_VERIFY_URL", "http://"),
        ("REDIS_URL", "127.0.0.1:6379"),
    ] {
        let out = Command::new(BIN)
            .env_clear()
            .env("CHAT_PORT", "0")
            .env("JWT_SECRET", SECRET)
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("voicechat-chat: ") && last.contains(variable),
            "{variable}={value}: {stderr}"
        );
    }
}
