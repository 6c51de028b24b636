//! Splits a streamed HTTP body into lines (NDJSON and SSE are both
//! line-based), bounding the length of a line so a broken server cannot
//! grow the buffer without limit.
//!
//! A plain `Stream` over one buffer: lines are copied out and the buffer
//! advanced in place, so a token costs no state moves (as `unfold` made)
//! and no shared-buffer handles (as `split_to` made).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;

use super::LlmError;

const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Lines of the body, without their `\n` / `\r\n`.
pub fn lines<S>(body: S) -> Lines<S>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin,
{
    Lines {
        body,
        buf: BytesMut::new(),
        finished: false,
    }
}

pub struct Lines<S> {
    body: S,
    buf: BytesMut,
    finished: bool,
}

impl<S> Stream for Lines<S>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    type Item = Result<String, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(pos) = this.buf.iter().position(|b| *b == b'\n') {
                let line = decode(&this.buf[..pos]);
                this.buf.advance(pos + 1);
                return Poll::Ready(Some(line));
            }
            if this.finished {
                if this.buf.is_empty() {
                    return Poll::Ready(None);
                }
                let rest = decode(&this.buf);
                this.buf.clear();
                return Poll::Ready(Some(rest));
            }
            match ready!(Pin::new(&mut this.body).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    this.buf.extend_from_slice(&chunk);
                    if this.buf.len() > MAX_LINE_BYTES {
                        this.finished = true;
                        this.buf.clear();
                        return Poll::Ready(Some(Err(LlmError::Protocol(
                            "line longer than 1 MiB".into(),
                        ))));
                    }
                }
                Some(Err(e)) => {
                    this.finished = true;
                    this.buf.clear();
                    let err = if e.is_timeout() {
                        LlmError::Timeout("stream")
                    } else {
                        LlmError::Transport(e.without_url().to_string())
                    };
                    return Poll::Ready(Some(Err(err)));
                }
                None => this.finished = true,
            }
        }
    }
}

fn decode(line: &[u8]) -> Result<String, LlmError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8(line.to_vec()).map_err(|_| LlmError::Protocol("line is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn splits_across_chunks_and_keeps_the_tail() {
        let chunks: Vec<reqwest::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"c\r\nde\n\nf")),
        ];
        let got: Vec<String> = lines(futures_util::stream::iter(chunks))
            .map(|l| l.unwrap())
            .collect()
            .await;
        assert_eq!(got, ["abc", "de", "", "f"]);
    }

    #[tokio::test]
    async fn refuses_an_endless_line_and_ends() {
        let chunks: Vec<reqwest::Result<Bytes>> = vec![
            Ok(Bytes::from(vec![b'x'; MAX_LINE_BYTES])),
            Ok(Bytes::from_static(b"yy")),
            Ok(Bytes::from_static(b"\nnext\n")),
        ];
        let got: Vec<Result<String, LlmError>> =
            lines(futures_util::stream::iter(chunks)).collect().await;
        assert_eq!(got.len(), 1, "one error, then the end");
        assert!(matches!(&got[0], Err(LlmError::Protocol(m)) if m.contains("1 MiB")));
    }
}
