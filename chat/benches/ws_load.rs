//! WebSocket load benchmark: N concurrent clients each send M messages to
//! the real `voicechat-chat` binary (its own process, so its memory can be
//! read), backed by a real redis-server and a fast scripted LLM.
//!
//! cargo bench -p voicechat-chat --bench ws_load
//! BENCH_CLIENTS=1000 BENCH_MESSAGES=5 cargo bench -p voicechat-chat --bench ws_load
//! scripts/bench-chat.sh    (1,000 and 10,000 clients, file limit raised)
//! BENCH_CHAT_BIN=/tmp/voicechat-chat-before cargo bench ...   (another build)
//!
//! Prints, for one client alone (BENCH_SOLO_MESSAGES, 200, one after
//! another), answer latency p50/p99 (send → `done`); then, for all clients
//! at once, messages/s, latency p50/p99, the service's CPU time per message,
//! its RSS idle, with all clients connected, and at peak, and RSS per idle
//! connection.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use voicechat_common::auth::JwtSettings;
use voicechat_testkit::{LlmDouble, Script};
use voicechat_testkit::{RedisServer, free_port};

const SECRET: &str = "benchmark-secret-0123456789abcdef0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Kills the service however the benchmark ends (a panic included).
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User + system CPU time the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 here.
    let hz = clock_ticks_per_second();
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / hz)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client as browsers and the `websockets` library are: Nagle off.
async fn connect(base: &str, settings: &JwtSettings, user: &str) -> Socket {
    let token = settings
        .mint(user, Duration::from_secs(3600))
        .expect("token");
    let url = format!("ws://{base}/ws/chat?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("connect");
    // session + history
    for _ in 0..2 {
        ws.next().await.expect("opening event").expect("frame");
    }
    ws
}

/// Sends `messages` messages one after another, each after the previous
/// answer's `done`; returns each one's send → `done` time.
async fn converse(ws: &mut Socket, messages: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(messages);
    for m in 0..messages {
        let body = serde_json::json!({"type": "message", "content": format!("message {m}")});
        let sent = Instant::now();
        ws.send(Message::Text(body.to_string().into()))
            .await
            .expect("send");
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().contains("\"type\":\"done\"") {
                        latencies.push(sent.elapsed());
                        break;
                    }
                    assert!(!t.as_str().contains("\"type\":\"error\""), "error: {t}");
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    }
    latencies
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p99 of `sorted` latencies.
fn print_latencies(sorted: &[Duration]) {
    for (label, p) in [("p50", 0.50), ("p99", 0.99)] {
        println!(
            "  latency {label}:        {:.2} ms",
            ms(percentile(sorted, p))
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

#[tokio::main]
async fn main() {
    if !RedisServer::available() {
        eprintln!("SKIPPED ws_load: redis-server not installed (./scripts/test.sh installs it)");
        return;
    }
    let clients = env_usize("BENCH_CLIENTS", 200);
    let messages = env_usize("BENCH_MESSAGES", 10);
    let tokens = env_usize("BENCH_TOKENS", 20);

    let redis = RedisServer::start();
    let words: Vec<String> = (0..tokens).map(|i| format!("w{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let llm = LlmDouble::start(Script::tokens(&words)).await;
    let port = free_port();
    // BENCH_CHAT_BIN runs another build (a copy kept from before a change)
    // against the same load, for A/B runs in one session.
    let binary = std::env::var("BENCH_CHAT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_voicechat-chat").to_owned());
    let service = Command::new(binary)
        .env("CHAT_BIND", "127.0.0.1")
        .env("CHAT_PORT", port.to_string())
        .env("REDIS_URL", redis.url())
        .env("LLM_URL", llm.url())
        .env("JWT_SECRET", SECRET)
        .env("CHAT_RATE_LIMIT_PER_MINUTE", "0")
        // Clients connect one after another before any reads; at 10,000
        // that outlasts the default idle timeout for the first ones.
        .env("WS_IDLE_TIMEOUT_SECS", "900")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start voicechat-chat");
    let service = Service(service);
    let pid = service.0.id();
    let base = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("http://{base}/livez")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "service did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (idle_rss, _) = rss_kib(pid);
    let settings = JwtSettings::hs256(SECRET.as_bytes().to_vec()).expect("secret");

    let solo_messages = env_usize("BENCH_SOLO_MESSAGES", 200);
    let mut solo = connect(&base, &settings, "solo").await;
    let mut solo_latencies = converse(&mut solo, solo_messages).await;
    drop(solo);
    solo_latencies.sort();

    // Connect everyone first, so connection memory can be read at rest.
    let mut sockets = Vec::with_capacity(clients);
    let connect_started = Instant::now();
    for i in 0..clients {
        sockets.push(connect(&base, &settings, &format!("user{i}")).await);
    }
    let connect_time = connect_started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (connected_rss, _) = rss_kib(pid);

    let run_started = Instant::now();
    let cpu_before = cpu_time(pid);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { converse(&mut ws, messages).await }))
        .collect();
    let mut latencies = Vec::with_capacity(clients * messages);
    for t in tasks {
        latencies.extend(t.await.expect("client task"));
    }
    let elapsed = run_started.elapsed();
    let cpu_used = cpu_time(pid).saturating_sub(cpu_before);
    let (_, peak_rss) = rss_kib(pid);
    latencies.sort();

    let total = latencies.len();
    println!(
        "ws_load: one client alone, {solo_messages} messages one after another, {tokens} tokens per answer"
    );
    print_latencies(&solo_latencies);
    println!(
        "ws_load: {clients} clients x {messages} messages, {tokens} tokens per answer, redis-server + scripted LLM"
    );
    println!("  connect all:        {:.2} s", connect_time.as_secs_f64());
    println!(
        "  messages/s:         {:.0}",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  tokens/s streamed:  {:.0}",
        (total * tokens) as f64 / elapsed.as_secs_f64()
    );
    print_latencies(&latencies);
    println!(
        "  service CPU/message: {:.3} ms",
        ms(cpu_used) / total.max(1) as f64
    );
    println!("  service RSS idle:   {:.1} MiB", idle_rss as f64 / 1024.0);
    println!(
        "  RSS all connected:  {:.1} MiB",
        connected_rss as f64 / 1024.0
    );
    println!("  RSS peak:           {:.1} MiB", peak_rss as f64 / 1024.0);
    println!(
        "  RSS per idle conn:  {:.1} KiB",
        connected_rss.saturating_sub(idle_rss) as f64 / clients.max(1) as f64
    );
    drop(service);
}
