//! A lean HTTP/1.1 client for the one request the chat service makes per
//! answer: `POST` a JSON prompt to a plain-HTTP LLM server and read the
//! streamed answer in the answer's own task.
//!
//! Through reqwest every chunk of the answer went from hyper's connection
//! task to the answer's task, one at a time: two task polls per token, most
//! of a message's polls under `ws_load`. Here one socket read is decoded at
//! once, however many chunks it holds. HTTPS and proxied servers stay on
//! reqwest (`super::transport`).

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::LlmError;
use super::lines::{Body, Read};

/// A response head longer than this is refused (hyper's default limit is
/// larger, but an LLM server's head is a few hundred bytes).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A chunk-size or trailer line longer than this is refused.
const MAX_CHUNK_LINE_BYTES: usize = 4096;
/// Header fields read from a response head.
const MAX_HEADERS: usize = 64;
/// Room made in the read buffer before each read.
const READ_BYTES: usize = 8 * 1024;
/// Idle connections older than this are not reused (reqwest's default).
const IDLE_LIFETIME: Duration = Duration::from_secs(90);

/// Where the server is.
#[derive(Debug, Clone)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

/// One plain-HTTP server, with its kept-alive connections.
pub struct Http1Client {
    host: Host,
    port: u16,
    /// The `Host` header: the URL's host, and its port when it names one.
    host_header: String,
    connect_timeout: Duration,
    pool: Arc<Pool>,
}

/// Connections whose last response was read to its end, newest last.
struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    max_idle: usize,
}

impl Pool {
    /// The newest idle connection the server has not closed.
    fn take(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((stream, since)) = idle.pop() {
            // A closed connection reads as end of file (or as stray bytes,
            // which no idle HTTP/1.1 connection may carry).
            let open = matches!(
                stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            );
            if open && since.elapsed() < IDLE_LIFETIME {
                return Some(stream);
            }
        }
        None
    }

    fn put(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push((stream, Instant::now()));
        }
    }
}

/// A response whose head has been read.
pub struct Response {
    pub status: u16,
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
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                max_idle,
            }),
        })
    }

    /// Sends `POST target` with a JSON `body` and reads the response head.
    /// A kept-alive connection the server closed before answering is
    /// replaced by a new one once, as hyper's pool does.
    pub async fn post_json(
        &self,
        target: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Response, LlmError> {
        let request = self.request(target, authorization, body);
        loop {
            let (mut stream, reused) = match self.pool.take() {
                Some(stream) => (stream, true),
                None => (self.connect().await?, false),
            };
            let mut raw = BytesMut::with_capacity(READ_BYTES);
            match exchange(&mut stream, &request, &mut raw).await {
                Ok(head) => {
                    return Ok(Response {
                        status: head.status,
                        body: ResponseBody {
                            stream: Some(stream),
                            raw,
                            framing: head.framing,
                            keep_alive: head.keep_alive,
                            pool: Arc::clone(&self.pool),
                        },
                    });
                }
                Err(Exchange::NoAnswer(_)) if reused => continue,
                Err(Exchange::NoAnswer(e)) => return Err(LlmError::Unreachable(e)),
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
    }

    fn request(&self, target: &str, authorization: Option<&str>, body: &[u8]) -> Vec<u8> {
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
            let _ = write!(request, "Authorization: {value}\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        request
    }

    async fn connect(&self) -> Result<TcpStream, LlmError> {
        let connecting = async {
            match &self.host {
                Host::Name(name) => TcpStream::connect((name.as_str(), self.port)).await,
                Host::Ip(ip) => TcpStream::connect((*ip, self.port)).await,
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| LlmError::Timeout("connect"))?
            .map_err(|e| {
                LlmError::Unreachable(format!("cannot connect to {}: {e}", self.host_header))
            })?;
        // Ollama and llama.cpp's server turn Nagle off too; a request is
        // one write, so this only keeps it from waiting on an ACK.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// Why no response head was read.
enum Exchange {
    /// The connection failed before any byte of an answer: on a reused
    /// connection the server most likely closed it while it sat idle.
    NoAnswer(String),
    Failed(LlmError),
}

/// What a response head says about its body.
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// How the end of a body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes the connection.
    UntilClose,
}

/// Where the decoder is in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

async fn exchange(
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
        if let Some(head) = parse_head(raw).map_err(Exchange::Failed)? {
            return Ok(head);
        }
        if raw.len() > MAX_HEAD_BYTES {
            return Err(Exchange::Failed(LlmError::Protocol(
                "response head longer than 64 KiB".into(),
            )));
        }
        raw.reserve(READ_BYTES);
        let read = stream.read_buf(raw).await;
        match read {
            Ok(0) if !answered => {
                return Err(Exchange::NoAnswer(
                    "the server closed the connection without answering".into(),
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

/// Takes a complete final response head off the front of `raw`, skipping
/// interim (1xx) heads; `None` while the head is incomplete.
fn parse_head(raw: &mut BytesMut) -> Result<Option<Head>, LlmError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let length = match response.parse(raw) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(LlmError::Protocol(format!("bad response head: {e}"))),
        };
        let status = response.code.unwrap_or_default();
        if status == 101 {
            return Err(LlmError::Protocol("the server switched protocols".into()));
        }
        if (100..200).contains(&status) {
            raw.advance(length);
            continue;
        }
        let head = read_head(status, response.version == Some(0), response.headers)?;
        raw.advance(length);
        return Ok(Some(head));
    }
}

fn read_head(
    status: u16,
    http10: bool,
    headers: &[httparse::Header<'_>],
) -> Result<Head, LlmError> {
    let mut keep_alive = !http10;
    let mut transfer_encoding: Option<bool> = None;
    let mut length: Option<u64> = None;
    for header in headers {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| LlmError::Protocol(format!("header {} is not UTF-8", header.name)))?;
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding (RFC 9112 §6.3).
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            transfer_encoding = Some(last.eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let parsed: u64 = value
                .trim()
                .parse()
                .map_err(|_| LlmError::Protocol(format!("bad Content-Length {value:?}")))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(LlmError::Protocol(
                    "conflicting Content-Length headers".into(),
                ));
            }
            length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = match (status, transfer_encoding, length) {
        (204 | 304, _, _) => Framing::Length(0),
        (_, Some(true), _) => Framing::Chunked(Chunk::Size),
        (_, Some(false), _) | (_, None, None) => Framing::UntilClose,
        (_, None, Some(length)) => Framing::Length(length),
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Head {
        status,
        framing,
        keep_alive,
    })
}

/// A response's body, read from its connection in the reader's task. The
/// connection goes back to the pool when the body was read to its end, and
/// is closed when the body is dropped before (the answer was cancelled).
pub struct ResponseBody {
    /// `None` once the body has ended.
    stream: Option<TcpStream>,
    /// Bytes read from the connection and not yet decoded.
    raw: BytesMut,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl ResponseBody {
    /// Moves the body's bytes in `raw` to `out`; true once the body ended.
    fn decode(&mut self, out: &mut BytesMut) -> Result<bool, LlmError> {
        let raw = &mut self.raw;
        match &mut self.framing {
            Framing::Length(left) => {
                take_data(raw, out, left);
                Ok(*left == 0)
            }
            Framing::UntilClose => {
                out.extend_from_slice(raw);
                raw.clear();
                Ok(false)
            }
            Framing::Chunked(state) => decode_chunked(raw, out, state),
        }
    }

    /// The body ended: its connection is reusable when nothing follows it.
    fn end(&mut self) {
        if let Some(stream) = self.stream.take()
            && self.keep_alive
            && self.raw.is_empty()
        {
            self.pool.put(stream);
        }
    }

    /// The whole body (an error's explanation), up to `limit` bytes.
    pub async fn read_to_end(mut self, limit: usize) -> Result<BytesMut, LlmError> {
        let mut out = BytesMut::new();
        loop {
            let read = std::future::poll_fn(|cx| self.poll_read(cx, &mut out)).await?;
            if read == Read::End || out.len() > limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }
}

/// Copies up to `left` bytes of data from `raw` to `out`.
fn take_data(raw: &mut BytesMut, out: &mut BytesMut, left: &mut u64) {
    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(raw.len());
    out.extend_from_slice(&raw[..n]);
    raw.advance(n);
    *left -= n as u64;
}

/// Where the first line of `raw` ends: its length without CRLF, and the
/// bytes it takes with its CRLF; `None` while it is incomplete.
fn line_end(raw: &[u8], what: &str) -> Result<Option<(usize, usize)>, LlmError> {
    match raw.iter().position(|b| *b == b'\n') {
        Some(pos) if pos > 0 && raw[pos - 1] == b'\r' => Ok(Some((pos - 1, pos + 1))),
        Some(pos) => Ok(Some((pos, pos + 1))),
        None if raw.len() > MAX_CHUNK_LINE_BYTES => Err(LlmError::Protocol(format!(
            "{what} line longer than {MAX_CHUNK_LINE_BYTES} bytes"
        ))),
        None => Ok(None),
    }
}

/// A chunk-size line's size (hex digits, then optional `;` extensions).
fn chunk_size(line: &[u8]) -> Result<u64, LlmError> {
    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
    std::str::from_utf8(digits)
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| {
            LlmError::Protocol(format!(
                "bad chunk size {:?}",
                String::from_utf8_lossy(line)
            ))
        })
}

/// Decodes chunked transfer coding (RFC 9112 §7.1) from `raw` into `out`
/// as far as `raw` goes; true once the last chunk and trailers are read.
fn decode_chunked(
    raw: &mut BytesMut,
    out: &mut BytesMut,
    state: &mut Chunk,
) -> Result<bool, LlmError> {
    loop {
        match state {
            Chunk::Size => {
                let Some((length, taken)) = line_end(raw, "chunk size")? else {
                    return Ok(false);
                };
                let size = chunk_size(&raw[..length])?;
                raw.advance(taken);
                *state = if size == 0 {
                    Chunk::Trailer
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                take_data(raw, out, left);
                if *left > 0 {
                    return Ok(false);
                }
                *state = Chunk::DataEnd;
            }
            Chunk::DataEnd => {
                let Some((length, taken)) = line_end(raw, "chunk end")? else {
                    return Ok(false);
                };
                if length > 0 {
                    return Err(LlmError::Protocol("chunk longer than its size".into()));
                }
                raw.advance(taken);
                *state = Chunk::Size;
            }
            Chunk::Trailer => {
                let Some((length, taken)) = line_end(raw, "trailer")? else {
                    return Ok(false);
                };
                raw.advance(taken);
                if length == 0 {
                    *state = Chunk::Done;
                }
            }
            Chunk::Done => return Ok(true),
        }
    }
}

impl Body for ResponseBody {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) -> Poll<Result<Read, LlmError>> {
        loop {
            if self.stream.is_none() {
                return Poll::Ready(Ok(Read::End));
            }
            let before = out.len();
            if self.decode(out)? {
                self.end();
                return Poll::Ready(Ok(Read::End));
            }
            if out.len() > before {
                return Poll::Ready(Ok(Read::Data));
            }
            let Some(stream) = self.stream.as_ref() else {
                return Poll::Ready(Ok(Read::End));
            };
            self.raw.reserve(READ_BYTES);
            match stream.try_read_buf(&mut self.raw) {
                Ok(0) if self.framing == Framing::UntilClose => {
                    self.stream = None;
                    return Poll::Ready(Ok(Read::End));
                }
                Ok(0) => {
                    self.stream = None;
                    return Poll::Ready(Err(LlmError::Transport(
                        "the server closed the connection before the answer ended".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(stream.poll_read_ready(cx)) {
                        self.stream = None;
                        return Poll::Ready(Err(LlmError::Transport(e.to_string())));
                    }
                }
                Err(e) => {
                    self.stream = None;
                    return Poll::Ready(Err(LlmError::Transport(e.to_string())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Framing cases real LLM servers rarely show, against a scripted
    //! socket; the chat tests run the client against axum (the LLM
    //! double) and `real_llm` against llama.cpp's server.
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), LlmError> {
        let (mut raw, mut out, mut state) = (BytesMut::new(), BytesMut::new(), Chunk::Size);
        let mut ended = false;
        for piece in input.chunks(step) {
            raw.extend_from_slice(piece);
            ended = decode_chunked(&mut raw, &mut out, &mut state)?;
        }
        Ok((out.to_vec(), ended))
    }

    #[test]
    fn chunked_bodies_decode_however_the_bytes_are_split() {
        let body = b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
        for step in [1, 2, 3, 7, body.len()] {
            let (out, ended) = decode_all(body, step).unwrap();
            assert_eq!(out, b"hello 0123456789", "step {step}");
            assert!(ended, "step {step}");
        }
        let (out, ended) = decode_all(b"3\r\nabc\r\n", 1).unwrap();
        assert_eq!((out.as_slice(), ended), (&b"abc"[..], false));
    }

    #[test]
    fn broken_chunked_bodies_are_refused() {
        for (body, expected) in [
            (&b"zz\r\nabc\r\n"[..], "bad chunk size"),
            (b"\r\n", "bad chunk size"),
            (b"3\r\nabcd\r\n", "longer than its size"),
            (b"ffffffffffffffffff\r\n", "bad chunk size"),
        ] {
            let err = decode_all(body, body.len()).unwrap_err();
            assert!(
                matches!(&err, LlmError::Protocol(m) if m.contains(expected)),
                "{body:?}: {err}"
            );
        }
        let endless = vec![b'1'; MAX_CHUNK_LINE_BYTES + 1];
        assert!(matches!(
            decode_all(&endless, endless.len()),
            Err(LlmError::Protocol(m)) if m.contains("longer than")
        ));
    }

    fn head(text: &str) -> Result<Option<Head>, LlmError> {
        parse_head(&mut BytesMut::from(text.as_bytes()))
    }

    #[test]
    fn heads_give_status_framing_and_keep_alive() {
        let h = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Chunked(Chunk::Size), true)
        );
        let h = head("HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (404, Framing::Length(12), false)
        );
        let h = head("HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked(Chunk::Size));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(LlmError::Protocol(m)) if m.contains("conflicting")
        ));
        assert!(matches!(
            head("SSH-2.0-OpenSSH\r\n\r\n"),
            Err(LlmError::Protocol(_))
        ));
    }

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
        let body = response.body.read_to_end(1024).await?;
        Ok((response.status, body.to_vec()))
    }

    fn client(url: &reqwest::Url) -> Http1Client {
        Http1Client::for_url(url, Duration::from_secs(5), 4).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_kept_alive_between_answers() {
        let (url, accepted) =
            scripted_server(vec![Answer::Keep(OK), Answer::Keep(OK), Answer::Keep(OK)]).await;
        let client = client(&url);
        for _ in 0..3 {
            assert_eq!(read_body(&client).await.unwrap(), (200, b"ab\n".to_vec()));
        }
        assert_eq!(*accepted.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn an_answer_ended_by_its_done_line_keeps_its_connection() {
        use futures_util::StreamExt;
        // The last chunk arrives after `[DONE]` was read, before it is parsed.
        const SSE: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            2f\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\r\n\
            e\r\ndata: [DONE]\n\n\r\n";
        const LAST: &str = "0\r\n\r\n";
        let (url, accepted) =
            scripted_server(vec![Answer::Paced(SSE, LAST), Answer::Paced(SSE, LAST)]).await;
        let client = client(&url);
        for _ in 0..2 {
            let response = client
                .post_json("/v1/chat/completions", None, b"{}")
                .await
                .unwrap();
            let mut tokens =
                super::super::lines::tokens(response.body, super::super::openai::parse_line);
            assert_eq!(tokens.next().await.unwrap().unwrap(), "hi");
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(tokens.next().await.is_none());
        }
        assert_eq!(*accepted.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_kept_alive_connection_the_server_dropped_is_replaced() {
        // The second request finds its connection closed without an answer.
        let (url, accepted) =
            scripted_server(vec![Answer::Keep(OK), Answer::Close(""), Answer::Keep(OK)]).await;
        let client = client(&url);
        assert_eq!(read_body(&client).await.unwrap().0, 200);
        assert_eq!(read_body(&client).await.unwrap(), (200, b"ab\n".to_vec()));
        assert_eq!(*accepted.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn an_error_body_is_read_and_a_cut_answer_is_an_error() {
        let (url, _) = scripted_server(vec![
            Answer::Keep("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno model!"),
            Answer::Close("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab"),
        ])
        .await;
        let client = client(&url);
        assert_eq!(
            read_body(&client).await.unwrap(),
            (404, b"no model!".to_vec())
        );
        let err = read_body(&client).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Transport(m) if m.contains("before the answer ended")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_its_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url =
            reqwest::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let err = read_body(&client(&url)).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Unreachable(m) if m.contains("refused")),
            "{err}"
        );
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
        let request =
            String::from_utf8(c.request("/api/chat?x=1", Some("Bearer k"), b"{}")).unwrap();
        assert_eq!(
            request,
            "POST /api/chat?x=1 HTTP/1.1\r\nHost: ollama\r\nUser-Agent: voicechat-chat\r\nAccept: */*\r\nContent-Type: application/json\r\nContent-Length: 2\r\nAuthorization: Bearer k\r\n\r\n{}"
        );
    }
}
