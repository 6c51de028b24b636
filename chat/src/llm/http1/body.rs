//! A response's body, read from its connection in the reader's own task.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::super::LlmError;
use super::super::lines::{Body, Read};
use super::chunked;
use super::head::Framing;
use super::pool::Pool;

/// Room made in the read buffer before each read.
pub const READ_BYTES: usize = 8 * 1024;

/// A response's body, read from its connection in the reader's task. The
/// connection goes back to the pool when the body was read to its end, and
/// is closed when the body is dropped before (the answer was cancelled).
pub struct ResponseBody {
    /// `None` once the body has ended or failed.
    stream: Option<TcpStream>,
    /// Set when reading failed: the body is cut, not complete.
    cut: bool,
    /// Bytes read from the connection and not yet decoded.
    raw: BytesMut,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl ResponseBody {
    /// The body of a response whose head was taken off the front of `raw`.
    pub fn new(
        stream: TcpStream,
        raw: BytesMut,
        framing: Framing,
        keep_alive: bool,
        pool: Arc<Pool>,
    ) -> Self {
        Self {
            stream: Some(stream),
            cut: false,
            raw,
            framing,
            keep_alive,
            pool,
        }
    }

    /// Moves the body's bytes in `raw` to `out`; true once the body ended.
    fn decode(&mut self, out: &mut BytesMut) -> Result<bool, LlmError> {
        let raw = &mut self.raw;
        match &mut self.framing {
            Framing::Length(left) => {
                chunked::take_data(raw, out, left);
                Ok(*left == 0)
            }
            Framing::UntilClose => {
                out.extend_from_slice(raw);
                raw.clear();
                Ok(false)
            }
            Framing::Chunked(state) => chunked::decode(raw, out, state),
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

    /// The body (an error's explanation), up to `limit` bytes; what came
    /// before a failure to read the rest.
    pub async fn read_to_end(mut self, limit: usize) -> BytesMut {
        let mut out = BytesMut::new();
        loop {
            match std::future::poll_fn(|cx| self.poll_read(cx, &mut out)).await {
                Ok(Read::Data) if out.len() <= limit => {}
                _ => {
                    out.truncate(limit);
                    return out;
                }
            }
        }
    }

    fn fail(&mut self, message: String) -> Poll<Result<Read, LlmError>> {
        self.stream = None;
        self.cut = true;
        Poll::Ready(Err(LlmError::Transport(message)))
    }
}

impl Body for ResponseBody {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) -> Poll<Result<Read, LlmError>> {
        // A server that sends faster than the answer is read (or sends
        // only what decodes to nothing) must not keep this task, and the
        // answer's timers, from their turn.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        loop {
            if self.cut {
                return Poll::Ready(Err(LlmError::Transport("the answer was cut off".into())));
            }
            if self.stream.is_none() {
                return Poll::Ready(Ok(Read::End));
            }
            let before = out.len();
            if self.decode(out)? {
                self.end();
                coop.made_progress();
                return Poll::Ready(Ok(Read::End));
            }
            if out.len() > before {
                coop.made_progress();
                return Poll::Ready(Ok(Read::Data));
            }
            let Some(stream) = self.stream.as_ref() else {
                return Poll::Ready(Ok(Read::End));
            };
            self.raw.reserve(READ_BYTES);
            match stream.try_read_buf(&mut self.raw) {
                Ok(0) if self.framing == Framing::UntilClose => {
                    self.stream = None;
                    coop.made_progress();
                    return Poll::Ready(Ok(Read::End));
                }
                Ok(0) => {
                    return self
                        .fail("the server closed the connection before the answer ended".into());
                }
                Ok(_) => coop.made_progress(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(stream.poll_read_ready(cx)) {
                        return self.fail(e.to_string());
                    }
                }
                Err(e) => return self.fail(e.to_string()),
            }
        }
    }
}
