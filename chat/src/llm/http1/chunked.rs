//! Chunked transfer coding (RFC 9112 §7.1), decoded as far as the bytes
//! read so far go, without copying a chunk-size line anywhere.

use bytes::{Buf, BytesMut};

use super::super::LlmError;

/// A chunk-size or trailer line longer than this is refused.
pub const MAX_LINE_BYTES: usize = 4096;
/// Trailer fields are skipped, up to this many bytes in all.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// How much of a bad chunk-size line an error quotes: the message reaches
/// the user, the server's bytes need not.
const QUOTED_BYTES: usize = 32;

/// Where the decoder is in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    /// Trailer bytes read so far.
    Trailer(usize),
    Done,
}

/// Copies up to `left` bytes of data from `raw` to `out`.
pub fn take_data(raw: &mut BytesMut, out: &mut BytesMut, left: &mut u64) {
    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(raw.len());
    out.extend_from_slice(&raw[..n]);
    raw.advance(n);
    *left -= n as u64;
}

/// Where the first line of `raw` ends: its length without CRLF, and the
/// bytes it takes with its CRLF; `None` while it is incomplete.
fn line_end(raw: &[u8], what: &str) -> Result<Option<(usize, usize)>, LlmError> {
    let too_long = || {
        Err(LlmError::Protocol(format!(
            "{what} line longer than {MAX_LINE_BYTES} bytes"
        )))
    };
    match raw.iter().position(|b| *b == b'\n') {
        Some(pos) if pos > MAX_LINE_BYTES => too_long(),
        Some(pos) if pos > 0 && raw[pos - 1] == b'\r' => Ok(Some((pos - 1, pos + 1))),
        Some(pos) => Ok(Some((pos, pos + 1))),
        None if raw.len() > MAX_LINE_BYTES => too_long(),
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
            let quoted = &line[..line.len().min(QUOTED_BYTES)];
            LlmError::Protocol(format!(
                "bad chunk size {:?}",
                String::from_utf8_lossy(quoted)
            ))
        })
}

/// Decodes from `raw` into `out` as far as `raw` goes; true once the last
/// chunk and the trailer section are read.
pub fn decode(raw: &mut BytesMut, out: &mut BytesMut, state: &mut Chunk) -> Result<bool, LlmError> {
    loop {
        match state {
            Chunk::Size => {
                let Some((length, taken)) = line_end(raw, "chunk size")? else {
                    return Ok(false);
                };
                let size = chunk_size(&raw[..length])?;
                raw.advance(taken);
                *state = if size == 0 {
                    Chunk::Trailer(0)
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
            Chunk::Trailer(read) => {
                let Some((length, taken)) = line_end(raw, "trailer")? else {
                    return Ok(false);
                };
                raw.advance(taken);
                *read += taken;
                if *read > MAX_TRAILER_BYTES {
                    return Err(LlmError::Protocol("trailer longer than 16 KiB".into()));
                }
                if length == 0 {
                    *state = Chunk::Done;
                }
            }
            Chunk::Done => return Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), LlmError> {
        let (mut raw, mut out, mut state) = (BytesMut::new(), BytesMut::new(), Chunk::Size);
        let mut ended = false;
        for piece in input.chunks(step) {
            raw.extend_from_slice(piece);
            ended = decode(&mut raw, &mut out, &mut state)?;
        }
        Ok((out.to_vec(), ended))
    }

    #[test]
    fn bodies_decode_however_the_bytes_are_split() {
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
    fn broken_bodies_are_refused() {
        for (body, expected) in [
            (&b"zz\r\nabc\r\n"[..], "bad chunk size"),
            (b"\r\n", "bad chunk size"),
            (b"+3\r\nabc\r\n", "bad chunk size"),
            (b"3\r\nabcd\r\n", "longer than its size"),
            (b"ffffffffffffffffff\r\n", "bad chunk size"),
        ] {
            let err = decode_all(body, body.len()).unwrap_err();
            assert!(
                matches!(&err, LlmError::Protocol(m) if m.contains(expected)),
                "{body:?}: {err}"
            );
        }
        let endless = vec![b'1'; MAX_LINE_BYTES + 1];
        let err = decode_all(&endless, endless.len()).unwrap_err();
        assert!(
            matches!(&err, LlmError::Protocol(m) if m.contains("longer than")),
            "{err}"
        );
        let mut long_line = b"1;".to_vec();
        long_line.extend(vec![b'x'; MAX_LINE_BYTES]);
        long_line.extend_from_slice(b"\r\nx\r\n");
        let err = decode_all(&long_line, long_line.len()).unwrap_err();
        assert!(
            matches!(&err, LlmError::Protocol(m) if m.contains("longer than")),
            "{err}"
        );
        let mut long = b"0\r\n".to_vec();
        for _ in 0..1000 {
            long.extend_from_slice(b"X-Trailer: some value\r\n");
        }
        let err = decode_all(&long, 100).unwrap_err();
        assert!(
            matches!(&err, LlmError::Protocol(m) if m.contains("trailer")),
            "{err}"
        );
    }

    #[test]
    fn an_error_quotes_little_of_the_servers_bytes() {
        let mut line = vec![b'x'; 1000];
        line.extend_from_slice(b"\r\n");
        let LlmError::Protocol(message) = decode_all(&line, line.len()).unwrap_err() else {
            panic!("a protocol error");
        };
        assert!(message.len() < 60, "{message}");
    }
}
