//! A scripted LLM server for exact-token assertions and faults a real model
//! cannot be made to show on demand: Ollama's `/api/chat` (NDJSON, with
//! `{"error":...}` lines mid-stream) and OpenAI's `/v1/chat/completions`
//! (SSE). It records every request body and counts answers whose stream the
//! client dropped before the end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use serde_json::{Value, json};

/// What the next answers look like.
#[derive(Clone, Debug)]
pub enum Script {
    /// Stream these tokens, `delay` apart, then finish normally.
    Tokens {
        tokens: Vec<String>,
        delay: Duration,
    },
    /// Stream these tokens, then an in-stream error (HTTP status stays 200).
    ErrorAfter { tokens: Vec<String>, error: String },
    /// Answer with this HTTP status and error body.
    Status(u16, String),
    /// Stream these tokens, `delay` apart, then drop the connection mid-
    /// answer, as a server that was killed (no final chunk).
    DiesAfter {
        tokens: Vec<String>,
        delay: Duration,
    },
}

impl Script {
    pub fn tokens(tokens: &[&str]) -> Self {
        Self::Tokens {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            delay: Duration::ZERO,
        }
    }

    pub fn slow(tokens: &[&str], delay: Duration) -> Self {
        Self::Tokens {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            delay,
        }
    }
}

#[derive(Default)]
struct Inner {
    script: Mutex<Option<Script>>,
    requests: Mutex<Vec<Value>>,
    /// Each request's `Authorization` header, in order.
    authorizations: Mutex<Vec<Option<String>>>,
    aborted: AtomicUsize,
    completed: AtomicUsize,
}

pub struct LlmDouble {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Counts a stream as aborted when dropped before its last chunk.
struct StreamGuard {
    inner: Arc<Inner>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.inner.completed
        } else {
            &self.inner.aborted
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy)]
enum Wire {
    Ollama,
    OpenAi,
}

impl LlmDouble {
    pub async fn start(script: Script) -> Self {
        let inner = Arc::new(Inner::default());
        *inner.script.lock().unwrap() = Some(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut double = Self {
            addr,
            inner,
            server: None,
        };
        double.serve(listener);
        double
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route(
                "/api/chat",
                post(|state, headers, body| chat(Wire::Ollama, state, headers, body)),
            )
            .route(
                "/api/version",
                get(|| async { Json(json!({"version": "test-double"})) }),
            )
            .route(
                "/v1/chat/completions",
                post(|state, headers, body| chat(Wire::OpenAi, state, headers, body)),
            )
            .route(
                "/v1/models",
                get(|| async { Json(json!({"object": "list", "data": []})) }),
            )
            .with_state(self.inner.clone());
        // Streamed tokens are small writes; Ollama (Go) and llama.cpp's
        // server turn Nagle off, so the double does too.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, script: Script) {
        *self.inner.script.lock().unwrap() = Some(script);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Each chat request's `Authorization` header, oldest first.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.inner.authorizations.lock().unwrap().clone()
    }

    pub fn aborted(&self) -> usize {
        self.inner.aborted.load(Ordering::SeqCst)
    }

    /// Stops listening: new requests are refused as by a dead server.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for LlmDouble {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn chat(
    wire: Wire,
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    answer(inner, &headers, body, wire)
}

fn answer(inner: Arc<Inner>, headers: &HeaderMap, body: Value, wire: Wire) -> Response {
    inner.requests.lock().unwrap().push(body);
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    inner.authorizations.lock().unwrap().push(authorization);
    let script = inner.script.lock().unwrap().clone().expect("script set");
    let (tokens, delay, error, dies) = match script {
        Script::Status(code, message) => {
            let status = StatusCode::from_u16(code).unwrap();
            return (status, Json(json!({"error": message}))).into_response();
        }
        Script::Tokens { tokens, delay } => (tokens, delay, None, false),
        Script::ErrorAfter { tokens, error } => (tokens, Duration::ZERO, Some(error), false),
        Script::DiesAfter { tokens, delay } => (tokens, delay, None, true),
    };
    let mut chunks: Vec<String> = tokens.iter().map(|t| token_chunk(wire, t)).collect();
    match (&error, wire) {
        _ if dies => {}
        (Some(e), Wire::Ollama) => chunks.push(format!("{}\n", json!({"error": e}))),
        (Some(e), Wire::OpenAi) => chunks.push(format!("data: {}\n\n", json!({"error": {"message": e}}))),
        (None, Wire::Ollama) => chunks.push(format!(
            "{}\n",
            json!({"model": "test-model", "message": {"role": "assistant", "content": ""}, "done": true, "eval_count": tokens.len()})
        )),
        (None, Wire::OpenAi) => chunks.push("data: [DONE]\n\n".to_owned()),
    }
    let guard = StreamGuard {
        inner,
        finished: false,
    };
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), guard, true),
        move |(mut rest, mut guard, first)| async move {
            let Some(chunk) = rest.next() else {
                // A failed body makes the server cut the connection.
                return dies.then(|| {
                    (
                        Err(std::io::Error::other("the LLM server died")),
                        (rest, guard, false),
                    )
                });
            };
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if rest.len() == 0 && !dies {
                guard.finished = true;
            }
            Some((
                Ok::<_, std::io::Error>(Bytes::from(chunk)),
                (rest, guard, false),
            ))
        },
    );
    let content_type = match wire {
        Wire::Ollama => "application/x-ndjson",
        Wire::OpenAi => "text/event-stream",
    };
    ([("content-type", content_type)], Body::from_stream(stream)).into_response()
}

fn token_chunk(wire: Wire, token: &str) -> String {
    match wire {
        Wire::Ollama => format!(
            "{}\n",
            json!({"model": "test-model", "message": {"role": "assistant", "content": token}, "done": false})
        ),
        Wire::OpenAi => format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}]})
        ),
    }
}
