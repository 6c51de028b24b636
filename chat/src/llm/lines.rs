//! Splits a streamed HTTP body into lines (NDJSON and SSE are both
//! line-based), bounding the length of a line so a broken server cannot
//! grow the buffer without limit.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::LlmError;

const MAX_LINE_BYTES: usize = 1024 * 1024;

struct State<S> {
    body: S,
    buf: BytesMut,
    finished: bool,
}

/// Lines of the body, without their `\n` / `\r\n`.
pub fn lines<S>(body: S) -> impl Stream<Item = Result<String, LlmError>> + Send
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin,
{
    let state = State {
        body,
        buf: BytesMut::new(),
        finished: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                let line = st.buf.split_to(pos);
                st.buf.advance(1);
                return Some((decode(&line), st));
            }
            if st.finished {
                if st.buf.is_empty() {
                    return None;
                }
                let rest = st.buf.split();
                return Some((decode(&rest), st));
            }
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    st.buf.extend_from_slice(&chunk);
                    if st.buf.len() > MAX_LINE_BYTES {
                        st.finished = true;
                        st.buf.clear();
                        return Some((
                            Err(LlmError::Protocol("line longer than 1 MiB".into())),
                            st,
                        ));
                    }
                }
                Some(Err(e)) => {
                    st.finished = true;
                    st.buf.clear();
                    let err = if e.is_timeout() {
                        LlmError::Timeout("stream")
                    } else {
                        LlmError::Transport(e.without_url().to_string())
                    };
                    return Some((Err(err), st));
                }
                None => st.finished = true,
            }
        }
    })
}

fn decode(line: &[u8]) -> Result<String, LlmError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8(line.to_vec()).map_err(|_| LlmError::Protocol("line is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
