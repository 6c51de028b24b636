//! A slow-loris client: sends a request's head and the start of its body,
//! then trickles one byte every 100 ms, reading whatever the server answers
//! meanwhile.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` (request line and headers, without the blank line, with a
/// `Content-Length` the body never reaches), then trickles the body for up
/// to `trickle_for`. Returns what the server sent before closing, or within
/// 10 s, and how long after the head it took to arrive.
pub async fn trickle_body(
    addr: SocketAddr,
    head: &str,
    trickle_for: Duration,
) -> (String, Duration) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .expect("send head");
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        while started.elapsed() < trickle_for {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // The server may have answered and closed: that ends the trickle.
            if writer.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Reads run alongside the writes, so the answer is read before the
    // reset that writing to a closed connection brings.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((_, body)) = text.split_once("\r\n\r\n")
            && body.trim_end().ends_with('}')
        {
            break;
        }
    }
    let elapsed = started.elapsed();
    trickle.abort();
    (String::from_utf8_lossy(&out).into_owned(), elapsed)
}
