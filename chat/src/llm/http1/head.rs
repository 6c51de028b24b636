//! A response head: its status, how its body ends (RFC 9112 §6.3) and
//! whether its connection may carry another request.

use bytes::{Buf, BytesMut};

use super::super::LlmError;
use super::chunked::Chunk;

/// A response head longer than this is refused (an LLM server's is a few
/// hundred bytes).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields read from a response head.
const MAX_HEADERS: usize = 64;

/// What a response head says.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    pub keep_alive: bool,
    /// `Location`, on a redirect.
    pub location: Option<String>,
}

/// How the end of a body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes the connection.
    UntilClose,
}

/// Takes a complete final response head off the front of `raw`, skipping
/// interim (1xx) heads; `None` while the head is incomplete.
pub fn parse(raw: &mut BytesMut) -> Result<Option<Head>, LlmError> {
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
        let head = read(status, response.version == Some(0), response.headers)?;
        raw.advance(length);
        return Ok(Some(head));
    }
}

/// A header's value as text; only the fields read here need to be.
fn text<'h>(header: &httparse::Header<'h>) -> Result<&'h str, LlmError> {
    std::str::from_utf8(header.value)
        .map_err(|_| LlmError::Protocol(format!("header {} is not UTF-8", header.name)))
}

/// A Content-Length value: digits, or the same digits repeated in a list
/// (RFC 9110 §8.6).
fn content_length(value: &str) -> Result<u64, LlmError> {
    let mut length = None;
    for part in value.split(',').map(str::trim) {
        let parsed = Some(part)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or_else(|| LlmError::Protocol("bad Content-Length".into()))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(LlmError::Protocol("conflicting Content-Length".into()));
        }
        length = Some(parsed);
    }
    length.ok_or_else(|| LlmError::Protocol("empty Content-Length".into()))
}

fn read(status: u16, http10: bool, headers: &[httparse::Header<'_>]) -> Result<Head, LlmError> {
    let mut keep_alive = !http10;
    let mut chunked: Option<bool> = None;
    let mut length: Option<u64> = None;
    let mut location = None;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding (RFC 9112 §6.3).
            let last = text(header)?.rsplit(',').next().unwrap_or_default().trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let parsed = content_length(text(header)?)?;
            if length.is_some_and(|l| l != parsed) {
                return Err(LlmError::Protocol("conflicting Content-Length".into()));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("connection") {
            for option in text(header)?.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("location") && (300..400).contains(&status) {
            location = Some(String::from_utf8_lossy(header.value).into_owned());
        }
    }
    // Both framings at once, or chunked in HTTP/1.0, may be a smuggling
    // attempt: read this body by its coding, then close (RFC 9112 §6.1).
    if chunked.is_some() && (length.is_some() || http10) {
        keep_alive = false;
    }
    let framing = match (status, chunked, length) {
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
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &[u8]) -> Result<Option<Head>, LlmError> {
        parse(&mut BytesMut::from(text))
    }

    fn full(text: &str) -> Head {
        head(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn heads_give_status_framing_and_keep_alive() {
        let h = full(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Chunked(Chunk::Size), true)
        );
        let h = full("HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (404, Framing::Length(12), false)
        );
        let h = full("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
        let h = full("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = full("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(2), true));
        let h = full(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        );
        assert_eq!(
            (h.framing, h.keep_alive),
            (Framing::Chunked(Chunk::Size), false)
        );
        let h = full("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = full(
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://llm/x\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(h.location.as_deref(), Some("https://llm/x"));
        let h = head(b"HTTP/1.1 200 OK\r\nX-Odd: \xff\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            h.framing,
            Framing::Length(1),
            "fields not read may be any bytes"
        );
    }

    #[test]
    fn incomplete_and_broken_heads() {
        assert!(head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        for (text, expected) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                "conflicting",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
                "conflicting",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
                "bad Content-Length",
            ),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched"),
            ("SSH-2.0-OpenSSH\r\n\r\n", "bad response head"),
        ] {
            let err = head(text.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, LlmError::Protocol(m) if m.contains(expected)),
                "{text}: {err}"
            );
        }
    }
}
