//! Splits a streamed HTTP body into lines (NDJSON and SSE are both
//! line-based), bounding the length of a line so a broken server cannot
//! grow the buffer without limit, and turns each line into a token with
//! the backend's parser.
//!
//! A plain `Stream` over one buffer: each line is parsed where it lies and
//! the buffer advanced in place, so a token costs no state moves (as
//! `unfold` made), no shared-buffer handles (as `split_to` made) and no
//! copy of the line (a `String` per line was a visible part of a token).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;

use super::LlmError;

const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What one line of the body says.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Token(String),
    /// Nothing to show: a blank line, a comment, an empty or final chunk.
    Skip,
    /// The answer is complete (OpenAI's `data: [DONE]`).
    End,
}

/// A backend's reading of one line (without its `\n` / `\r\n`).
pub type ParseLine = fn(&str) -> Result<Line, LlmError>;

/// What one read of a body gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Bytes were appended; more may follow.
    Data,
    /// The body is complete (anything it had last is appended already).
    End,
}

/// Where a streamed answer's bytes come from: each read appends what has
/// arrived to the caller's buffer, so a body that is read in the caller's
/// task hands over every chunk of one socket read at once.
pub trait Body: Unpin {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Result<Read, LlmError>>;
}

/// A reqwest response's body (HTTPS and proxied servers).
pub struct ChunkStream<S>(pub S);

impl<S> Body for ChunkStream<S>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Result<Read, LlmError>> {
        Poll::Ready(match ready!(Pin::new(&mut self.0).poll_next(cx)) {
            Some(Ok(chunk)) => {
                buf.extend_from_slice(&chunk);
                Ok(Read::Data)
            }
            Some(Err(e)) if e.is_timeout() => Err(LlmError::Timeout("stream")),
            Some(Err(e)) => Err(LlmError::Transport(e.without_url().to_string())),
            None => Ok(Read::End),
        })
    }
}

/// The tokens of the body, line by line; ends after the body ends, after
/// [`Line::End`] or after the first error.
pub fn tokens<B: Body>(body: B, parse: ParseLine) -> Tokens<B> {
    Tokens {
        body,
        parse,
        buf: BytesMut::new(),
        body_ended: false,
        finished: false,
    }
}

pub struct Tokens<B> {
    body: B,
    parse: ParseLine,
    buf: BytesMut,
    body_ended: bool,
    /// Nothing more is read or returned.
    finished: bool,
}

impl<B: Body> Tokens<B> {
    /// The next line in the buffer, parsed, if a whole one is there.
    fn next_line(&mut self) -> Option<Result<Line, LlmError>> {
        let (line, consumed) = match self.buf.iter().position(|b| *b == b'\n') {
            Some(pos) => (&self.buf[..pos], pos + 1),
            None if self.body_ended && !self.buf.is_empty() => (&self.buf[..], self.buf.len()),
            None => return None,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let parsed = match std::str::from_utf8(line) {
            Ok(line) => (self.parse)(line),
            Err(_) => Err(LlmError::Protocol("line is not UTF-8".into())),
        };
        self.buf.advance(consumed);
        Some(parsed)
    }

    /// After the end line, reads what of the body has already arrived
    /// (OpenAI's `[DONE]` is followed by HTTP/1's last chunk), so that its
    /// connection goes back to the pool; never waits for more.
    fn drain(&mut self, cx: &mut Context<'_>) {
        const MOST_READS: usize = 4;
        if self.body_ended {
            return;
        }
        for _ in 0..MOST_READS {
            self.buf.clear();
            match self.body.poll_read(cx, &mut self.buf) {
                Poll::Ready(Ok(Read::Data)) => {}
                _ => return,
            }
        }
    }

    fn finish(
        &mut self,
        last: Option<Result<String, LlmError>>,
    ) -> Poll<Option<Result<String, LlmError>>> {
        self.finished = true;
        self.buf.clear();
        Poll::Ready(last)
    }
}

impl<B: Body> Stream for Tokens<B> {
    type Item = Result<String, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            match this.next_line() {
                Some(Ok(Line::Token(token))) => return Poll::Ready(Some(Ok(token))),
                Some(Ok(Line::Skip)) => continue,
                Some(Ok(Line::End)) => {
                    this.drain(cx);
                    return this.finish(None);
                }
                Some(Err(e)) => return this.finish(Some(Err(e))),
                None if this.body_ended => return this.finish(None),
                None => {}
            }
            match ready!(this.body.poll_read(cx, &mut this.buf)) {
                Ok(Read::Data) => {}
                Ok(Read::End) => this.body_ended = true,
                Err(e) => return this.finish(Some(Err(e))),
            }
            if this.buf.len() > MAX_LINE_BYTES {
                return this.finish(Some(Err(LlmError::Protocol(
                    "line longer than 1 MiB".into(),
                ))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// Each line is a token, except: blank (skipped), `END`, `bad`.
    fn parse(line: &str) -> Result<Line, LlmError> {
        match line {
            "" => Ok(Line::Skip),
            "END" => Ok(Line::End),
            "bad" => Err(LlmError::Protocol("bad line".into())),
            token => Ok(Line::Token(token.into())),
        }
    }

    fn body(chunks: &[&'static [u8]]) -> impl Body {
        ChunkStream(futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        ))
    }

    async fn all(chunks: &[&'static [u8]]) -> Vec<Result<String, LlmError>> {
        tokens(body(chunks), parse).collect().await
    }

    #[tokio::test]
    async fn splits_across_chunks_skips_and_keeps_the_tail() {
        let got: Vec<String> = all(&[b"ab", b"c\r\nde\n\nf"])
            .await
            .into_iter()
            .map(|t| t.unwrap())
            .collect();
        assert_eq!(got, ["abc", "de", "f"]);
    }

    #[tokio::test]
    async fn ends_at_the_end_line_and_after_the_first_error() {
        let got: Vec<String> = all(&[b"a\nEND\nb\n"])
            .await
            .into_iter()
            .map(|t| t.unwrap())
            .collect();
        assert_eq!(got, ["a"]);
        let got = all(&[b"a\nbad\nb\n"]).await;
        assert_eq!(got.len(), 2, "a token, the error, then the end");
        assert!(matches!(&got[1], Err(LlmError::Protocol(m)) if m == "bad line"));
    }

    #[tokio::test]
    async fn reads_what_follows_the_end_line_without_waiting_for_more() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let read = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&read);
        let chunks: Vec<reqwest::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"a\nEND\n")),
            Ok(Bytes::from_static(b"after the end")),
        ];
        let body = futures_util::stream::iter(chunks).inspect(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let got: Vec<_> = tokens(ChunkStream(body), parse).collect().await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            read.load(Ordering::SeqCst),
            2,
            "the chunk after the end was read"
        );

        // A body that has nothing more yet does not hold the end up.
        let stalled = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"a\nEND\n"))])
            .chain(futures_util::stream::pending());
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokens(ChunkStream(stalled), parse).collect::<Vec<_>>(),
        )
        .await
        .expect("the answer ends at its end line");
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn refuses_a_line_that_is_not_utf8() {
        let got = all(&[b"a\n\xff\xfe\nb\n"]).await;
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[1], Err(LlmError::Protocol(m)) if m.contains("UTF-8")));
    }

    #[tokio::test]
    async fn refuses_an_endless_line_and_ends() {
        let chunks: Vec<reqwest::Result<Bytes>> = vec![
            Ok(Bytes::from(vec![b'x'; MAX_LINE_BYTES])),
            Ok(Bytes::from_static(b"yy")),
            Ok(Bytes::from_static(b"\nnext\n")),
        ];
        let got: Vec<Result<String, LlmError>> =
            tokens(ChunkStream(futures_util::stream::iter(chunks)), parse)
                .collect()
                .await;
        assert_eq!(got.len(), 1, "one error, then the end");
        assert!(matches!(&got[0], Err(LlmError::Protocol(m)) if m.contains("1 MiB")));
    }
}
