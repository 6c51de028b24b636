//! A lean HTTP/1.1 client for the one request the chat service makes per
//! answer: `POST` a JSON prompt to a plain-HTTP LLM server and read the
//! streamed answer in the answer's own task.
//!
//! Through reqwest every chunk of the answer went from hyper's connection
//! task to the answer's task, one at a time: two task polls per token, most
//! of a message's polls under `ws_load`. Here one socket read is decoded at
//! once, however many chunks it holds. HTTPS and proxied servers stay on
//! reqwest (`super::transport`).

mod body;
mod chunked;
mod connect;
mod head;
mod pool;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use self::body::READ_BYTES;
pub use self::body::ResponseBody;
use self::connect::Host;
use self::head::{Head, MAX_HEAD_BYTES};
use self::pool::Pool;
use super::LlmError;

/// Idle connections older than this are not reused (reqwest's default).
const IDLE_LIFETIME: Duration = Duration::from_secs(90);

/// One plain-HTTP server, with its kept-alive connections.
pub struct Http1Client {
    host: Host,
    port: u16,
    /// The `Host` header: the URL's host, and its port when it names one.
    host_header: String,
    connect_timeout: Duration,
    pool: Arc<Pool>,
}

/// A response whose head has been read.
pub struct Response {
    pub status: u16,
    /// `Location`, on a redirect.
    pub location: Option<String>,
    pub body: ResponseBody,
}

impl Http1Client {
    /// A client for `url`'s server, or `None` when the URL is not one the
    /// lean client speaks to (not `http`, or with credentials in it).
    pub fn for_url(url: &reqwest::Url, connect_timeout: Duration, max_idle: usize) -> Option<Self> {
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host_str = url.host_str()?;
        // IPv6 hosts are written in brackets.
        let bare = host_str
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host_str);
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host_str.to_owned()),
        };
        let host_header = match url.port() {
            Some(port) => format!("{host_str}:{port}"),
            None => host_str.to_owned(),
        };
        Some(Self {
            host,
            port: url.port_or_known_default()?,
            host_header,
            connect_timeout,
            pool: Arc::new(Pool::new(max_idle, IDLE_LIFETIME)),
        })
    }

    /// Sends `POST target` with a JSON `body` and reads the response head.
    ///
    /// A kept-alive connection that fails before any byte of an answer
    /// (the server closed it as it was taken) is replaced once, by a new
    /// connection. The request may then reach the server twice; a chat
    /// prompt changes nothing there, so that costs at most a generation.
    pub async fn post_json(
        &self,
        target: &str,
        authorization: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Response, LlmError> {
        let request = self.request(target, authorization, body);
        if let Some(stream) = self.pool.take() {
            match self.exchange(stream, &request).await {
                Err(Exchange::NoAnswer(e)) => {
                    tracing::debug!(error = %e, "kept-alive LLM connection failed; reconnecting");
                }
                Ok(response) => return Ok(response),
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        let stream = connect::connect(&self.host, self.port, self.connect_timeout).await?;
        match self.exchange(stream, &request).await {
            Ok(response) => Ok(response),
            Err(Exchange::NoAnswer(e)) => Err(LlmError::Unreachable(e)),
            Err(Exchange::Failed(e)) => Err(e),
        }
    }

    fn request(&self, target: &str, authorization: Option<&[u8]>, body: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut request = Vec::with_capacity(256 + body.len());
        // Writing into a Vec cannot fail.
        let _ = write!(
            request,
            "POST {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: voicechat-chat\r\nAccept: */*\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.host_header,
            body.len()
        );
        if let Some(value) = authorization {
            request.extend_from_slice(b"Authorization: ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        request
    }

    async fn exchange(&self, mut stream: TcpStream, request: &[u8]) -> Result<Response, Exchange> {
        let mut raw = BytesMut::with_capacity(READ_BYTES);
        let head = send_and_read_head(&mut stream, request, &mut raw).await?;
        Ok(Response {
            status: head.status,
            location: head.location,
            body: ResponseBody::new(
                stream,
                raw,
                head.framing,
                head.keep_alive,
                Arc::clone(&self.pool),
            ),
        })
    }
}

/// Why no response head was read.
enum Exchange {
    /// The connection failed before any byte of an answer: on a reused
    /// connection the server most likely closed it while it sat idle.
    NoAnswer(String),
    Failed(LlmError),
}

/// Writes the whole request, then reads the head. A server that answers
/// early (a 413 for a huge prompt) and closes then shows as a failed write,
/// not as its status; an LLM server reads the whole prompt first.
async fn send_and_read_head(
    stream: &mut TcpStream,
    request: &[u8],
    raw: &mut BytesMut,
) -> Result<Head, Exchange> {
    stream
        .write_all(request)
        .await
        .map_err(|e| Exchange::NoAnswer(format!("sending the request failed: {e}")))?;
    let mut answered = false;
    loop {
        if let Some(head) = head::parse(raw).map_err(Exchange::Failed)? {
            return Ok(head);
        }
        if raw.len() > MAX_HEAD_BYTES {
            return Err(Exchange::Failed(LlmError::Protocol(
                "response head longer than 64 KiB".into(),
            )));
        }
        raw.reserve(READ_BYTES);
        match stream.read_buf(raw).await {
            Ok(0) if !answered => {
                return Err(Exchange::NoAnswer(
                    "the LLM server closed the connection without answering".into(),
                ));
            }
            Ok(0) => {
                return Err(Exchange::Failed(LlmError::Transport(
                    "the server closed the connection inside the response head".into(),
                )));
            }
            Ok(_) => answered = true,
            Err(e) if !answered => {
                return Err(Exchange::NoAnswer(format!(
                    "reading the answer failed: {e}"
                )));
            }
            Err(e) => return Err(Exchange::Failed(LlmError::Transport(e.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The client against a scripted socket, for what real LLM servers
    //! rarely show; the chat tests run it against axum (the LLM double)
    //! and `real_llm` against Ollama.
    use std::sync::Mutex;

    use futures_util::StreamExt;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    use super::super::lines::{self, Line};
    use super::*;

    /// What the scripted server does with a request.
    enum Answer {
        /// Writes this and waits for the next request.
        Keep(&'static str),
        /// Writes this and closes the connection.
        Close(&'static str),
        /// Writes the first, 100 ms later the second, and waits.
        Paced(&'static str, &'static str),
    }

    /// A server that answers each request (head and body, read by its
    /// Content-Length) with the next of `answers`, on whichever connection
    /// it comes. Returns its URL and the number of connections it accepted.
    async fn scripted_server(answers: Vec<Answer>) -> (reqwest::Url, Arc<Mutex<usize>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            reqwest::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            'connections: loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                *counter.lock().unwrap() += 1;
                let mut socket = tokio::io::BufReader::new(socket);
                loop {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            continue 'connections;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    match answers.next() {
                        Some(Answer::Keep(answer)) => {
                            socket.get_mut().write_all(answer.as_bytes()).await.unwrap();
                        }
                        Some(Answer::Paced(first, second)) => {
                            socket.get_mut().write_all(first.as_bytes()).await.unwrap();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            socket.get_mut().write_all(second.as_bytes()).await.unwrap();
                        }
                        Some(Answer::Close(answer)) => {
                            socket.get_mut().write_all(answer.as_bytes()).await.unwrap();
                            continue 'connections;
                        }
                        None => return,
                    }
                }
            }
        });
        (url, accepted)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n0\r\n\r\n";

    async fn read_body(client: &Http1Client) -> Result<(u16, Vec<u8>), LlmError> {
        let response = client.post_json("/api/chat", None, b"{}").await?;
        let body = response.body.read_to_end(1024).await;
        Ok((response.status, body.to_vec()))
    }

    /// Every line is a token.
    fn each_line(line: &str) -> Result<Line, LlmError> {
        Ok(Line::Token(line.to_owned()))
    }

    async fn lines_of(client: &Http1Client) -> Vec<Result<String, LlmError>> {
        let response = client.post_json("/api/chat", None, b"{}").await.unwrap();
        lines::tokens(response.body, each_line).collect().await
    }

    fn client_for(url: &reqwest::Url) -> Http1Client {
        Http1Client::for_url(url, Duration::from_secs(5), 4).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_kept_alive_between_answers() {
        let interim =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab\n";
        let (url, accepted) = scripted_server(vec![
            Answer::Keep(OK),
            Answer::Keep(interim),
            Answer::Keep(OK),
        ])
        .await;
        let client = client_for(&url);
        for _ in 0..3 {
            assert_eq!(read_body(&client).await.unwrap(), (200, b"ab\n".to_vec()));
        }
        assert_eq!(*accepted.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn an_answer_ended_by_its_done_line_keeps_its_connection() {
        // The last chunk arrives after `[DONE]` was read, before it is parsed.
        const SSE: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            2f\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\r\n\
            e\r\ndata: [DONE]\n\n\r\n";
        const LAST: &str = "0\r\n\r\n";
        let (url, accepted) =
            scripted_server(vec![Answer::Paced(SSE, LAST), Answer::Paced(SSE, LAST)]).await;
        let client = client_for(&url);
        for _ in 0..2 {
            let response = client
                .post_json("/v1/chat/completions", None, b"{}")
                .await
                .unwrap();
            let mut tokens = lines::tokens(response.body, super::super::openai::parse_line);
            assert_eq!(tokens.next().await.unwrap().unwrap(), "hi");
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(tokens.next().await.is_none());
        }
        assert_eq!(*accepted.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn connections_that_cannot_carry_another_answer_are_closed() {
        let (url, accepted) = scripted_server(vec![
            // Dropped mid-answer (the answer was cancelled).
            Answer::Keep("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n"),
            Answer::Keep("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nab\n"),
            // Bytes after the end of the body.
            Answer::Keep("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab\nHTTP/1.1 200 OK"),
            Answer::Keep(OK),
        ])
        .await;
        let client = client_for(&url);
        let response = client.post_json("/api/chat", None, b"{}").await.unwrap();
        let mut tokens = lines::tokens(response.body, each_line);
        assert_eq!(tokens.next().await.unwrap().unwrap(), "ab");
        drop(tokens);
        for _ in 0..3 {
            let lines: Vec<String> = lines_of(&client)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(lines, ["ab"]);
        }
        assert_eq!(*accepted.lock().unwrap(), 4);
        assert_eq!(client.pool.idle(), 1, "only the last one is kept");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_the_server_dropped_is_replaced_once() {
        // The second request finds its connection closed without an answer.
        let (url, accepted) =
            scripted_server(vec![Answer::Keep(OK), Answer::Close(""), Answer::Keep(OK)]).await;
        let client = client_for(&url);
        assert_eq!(read_body(&client).await.unwrap().0, 200);
        assert_eq!(read_body(&client).await.unwrap(), (200, b"ab\n".to_vec()));
        assert_eq!(*accepted.lock().unwrap(), 2);

        // A new connection that fails the same way is not tried again.
        let (url, accepted) =
            scripted_server(vec![Answer::Keep(OK), Answer::Close(""), Answer::Close("")]).await;
        let client = client_for(&url);
        assert_eq!(read_body(&client).await.unwrap().0, 200);
        let err = read_body(&client).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Unreachable(m) if m.contains("without answering")),
            "{err}"
        );
        assert_eq!(*accepted.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn bodies_ended_by_close_and_cut_bodies() {
        let (url, _) = scripted_server(vec![
            Answer::Keep("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno model!"),
            Answer::Close("HTTP/1.0 200 OK\r\n\r\na\nb"),
            Answer::Close("HTTP/1.1 503 Busy\r\nContent-Length: 9\r\n\r\nbus"),
            Answer::Close("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab"),
        ])
        .await;
        let client = client_for(&url);
        assert_eq!(
            read_body(&client).await.unwrap(),
            (404, b"no model!".to_vec())
        );
        let lines: Vec<String> = lines_of(&client)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines, ["a", "b"]);
        // An error's body cut short still gives the status and what came.
        assert_eq!(read_body(&client).await.unwrap(), (503, b"bus".to_vec()));
        let lines = lines_of(&client).await;
        assert!(
            matches!(lines.as_slice(), [Err(LlmError::Transport(m))] if m.contains("before the answer ended")),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_its_cause() {
        // Bound but not listening, and held: connecting is refused, and no
        // other test can take the port meanwhile.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let address = socket.local_addr().unwrap().as_socket().unwrap();
        let url = reqwest::Url::parse(&format!("http://{address}")).unwrap();
        let err = read_body(&client_for(&url)).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Unreachable(m) if m.contains("refused")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_error_body_is_read_up_to_its_limit() {
        let (url, _) = scripted_server(vec![Answer::Keep(
            "HTTP/1.1 500 Oops\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz",
        )])
        .await;
        let response = client_for(&url)
            .post_json("/api/chat", None, b"{}")
            .await
            .unwrap();
        assert_eq!(&response.body.read_to_end(5).await[..], b"abcde");
    }

    #[test]
    fn only_plain_http_urls_without_credentials_are_served() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let timeout = Duration::from_secs(1);
        assert!(Http1Client::for_url(&url("https://api.example/v1"), timeout, 1).is_none());
        assert!(Http1Client::for_url(&url("http://user:pw@llm:8080"), timeout, 1).is_none());
        let c = Http1Client::for_url(&url("http://[::1]:8080/x"), timeout, 1).unwrap();
        assert_eq!(c.host_header, "[::1]:8080");
        assert!(matches!(c.host, Host::Ip(ip) if ip.is_loopback()));
        let c = Http1Client::for_url(&url("http://ollama/api/chat"), timeout, 1).unwrap();
        assert_eq!((c.host_header.as_str(), c.port), ("ollama", 80));
    }

    #[test]
    fn the_request_head_carries_host_length_and_key() {
        let url = reqwest::Url::parse("http://ollama/api/chat").unwrap();
        let c = client_for(&url);
        let request =
            String::from_utf8(c.request("/api/chat?x=1", Some(b"Bearer k"), b"{}")).unwrap();
        assert_eq!(
            request,
            "POST /api/chat?x=1 HTTP/1.1\r\nHost: ollama\r\nUser-Agent: voicechat-chat\r\nAccept: */*\r\nContent-Type: application/json\r\nContent-Length: 2\r\nAuthorization: Bearer k\r\n\r\n{}"
        );
    }
}
