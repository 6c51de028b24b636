//! Slow clients against `serve`: headers or a body that never finish are
//! cut off at their deadline; prompt clients are served; stopping returns.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voicechat_common::serve::{RequestDeadlines, serve};

const DEADLINES: RequestDeadlines = RequestDeadlines {
    header_timeout: Duration::from_millis(500),
    body_timeout: Duration::from_millis(800),
};

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let app = Router::new().route(
        "/echo",
        post(|body: Bytes| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve(listener, app, DEADLINES, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        handle,
    }
}

/// Everything the server sends until it closes the connection, and when it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn prompt_requests_are_served() {
    let server = start().await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/echo", server.addr))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "5");
}

#[tokio::test]
async fn headers_that_never_end_are_cut_off() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // One header line, then nothing: the classic slow-loris.
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, closed_after) = read_until_closed(&mut stream).await;
    assert!(
        closed_after < Duration::from_secs(5),
        "the connection stayed open {closed_after:?}"
    );
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_a_408() {
    let server = start().await;
    let (response, after) = voicechat_testkit::slow_client::trickle_body(
        server.addr,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000",
        Duration::from_secs(3),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("\"code\":\"request_timeout\""),
        "{response}"
    );
    assert!(response.contains("did not arrive within"), "{response}");
    assert!(after < Duration::from_secs(2), "answered after {after:?}");
}

#[tokio::test]
async fn stopping_returns_once_requests_are_done() {
    let mut server = start().await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // A kept-alive idle connection does not hold the shutdown up.
    let _ = server.stop.take().map(|tx| tx.send(()));
    let result = tokio::time::timeout(Duration::from_secs(5), server.handle)
        .await
        .expect("serve returned");
    assert!(result.unwrap().is_ok());
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still listening"
    );
}
