//! A WebSocket client for the chat protocol (tokio-tungstenite).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub struct WsClient {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server selected, if any.
    pub protocol: Option<String>,
}

/// What the server ended with.
#[derive(Debug)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

const WAIT: Duration = Duration::from_secs(120);

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, &[]).await
    }

    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = url.into_client_request().expect("request");
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let (socket, response) = connect_async(request).await.expect("websocket connect");
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self { socket, protocol }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn say(&mut self, content: &str) {
        self.send_json(json!({"type": "message", "content": content}))
            .await;
    }

    /// The next JSON event; panics on close or timeout.
    pub async fn event(&mut self) -> Value {
        match self.next().await {
            Ok(v) => v,
            Err(closed) => panic!("socket closed while waiting for an event: {closed:?}"),
        }
    }

    /// The next JSON event, or how the socket closed.
    pub async fn next(&mut self) -> Result<Value, Closed> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("timed out waiting for the server");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return Ok(serde_json::from_str(t.as_str()).expect("server sent JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map_or(
                        Closed {
                            code: 1005,
                            reason: String::new(),
                        },
                        |f| Closed {
                            code: f.code.into(),
                            reason: f.reason.to_string(),
                        },
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(Closed {
                        code: 1006,
                        reason: e.to_string(),
                    });
                }
                None => {
                    return Err(Closed {
                        code: 1006,
                        reason: "stream ended".into(),
                    });
                }
            }
        }
    }

    /// Events up to and including the first of type `kind`.
    pub async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let e = self.event().await;
            let done = e["type"] == kind;
            seen.push(e);
            if done {
                return seen;
            }
        }
    }

    /// Events up to and including the first whose type is one of `kinds`.
    pub async fn until_any(&mut self, kinds: &[&str]) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let e = self.event().await;
            let done = kinds.iter().any(|k| e["type"] == *k);
            seen.push(e);
            if done {
                return seen;
            }
        }
    }

    /// Expects the socket to close; returns the close frame.
    pub async fn closed(&mut self) -> Closed {
        loop {
            match self.next().await {
                Ok(_) => {}
                Err(c) => return c,
            }
        }
    }

    /// Reads the `session` and `history` events sent on connect.
    pub async fn opening(&mut self) -> (String, Value) {
        let session = self.event().await;
        assert_eq!(session["type"], "session", "{session}");
        let history = self.event().await;
        assert_eq!(history["type"], "history", "{history}");
        (
            session["session_id"]
                .as_str()
                .expect("session id")
                .to_owned(),
            history,
        )
    }
}

/// Concatenated `token` contents of a list of events.
pub fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "token")
        .filter_map(|e| e["content"].as_str())
        .collect()
}
