//! Wyoming's framing, as the `wyoming` package reads and writes it
//! (`wyoming/event.py`): a JSON header line `{"type", "data"?,
//! "data_length"?, "payload_length"?, "version"?}`, then `data_length`
//! bytes of JSON merged into `data`, then `payload_length` bytes of
//! payload (raw audio). Every length is checked against the limits before
//! anything is read or allocated.

use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version written in each header: the `wyoming` package's
/// that this server is tested with.
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// The largest pieces of an event this server reads.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// The header line, with any `data` inside it.
    pub header_bytes: usize,
    /// The `data` after the header line.
    pub data_bytes: usize,
    /// The payload (one audio chunk).
    pub payload_bytes: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            // A synthesize event carries its text in the header or the data:
            // VOICE_MAX_TEXT_CHARS (5000) escaped as JSON fits in either.
            header_bytes: 64 * 1024,
            data_bytes: 64 * 1024,
            // Home Assistant sends 1,024 samples per chunk (2 KiB at 16 bits).
            payload_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Option<Vec<u8>>,
}

impl Event {
    pub fn new(kind: &str, data: Value) -> Self {
        let data = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self {
            kind: kind.to_owned(),
            data,
            payload: None,
        }
    }

    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = Some(payload);
        self
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("header line longer than {limit} bytes")]
    HeaderTooLong { limit: usize },
    #[error("header is not a JSON object with a string \"type\": {0}")]
    BadHeader(String),
    #[error("{field} {value} is over the limit of {limit} bytes")]
    TooLarge {
        field: &'static str,
        value: u64,
        limit: usize,
    },
    #[error("data is not a JSON object: {0}")]
    BadData(String),
    #[error("the connection closed inside an event")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// A stable name for logs and the metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HeaderTooLong { .. } | Self::TooLarge { .. } => "too_large",
            Self::BadHeader(_) | Self::BadData(_) => "malformed",
            Self::Truncated => "truncated",
            Self::Io(_) => "io",
        }
    }
}

/// The next event, or `None` when the peer closed the connection between
/// events.
pub async fn read_event<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limits: &FrameLimits,
) -> Result<Option<Event>, FrameError> {
    let Some(line) = read_line(reader, limits.header_bytes).await? else {
        return Ok(None);
    };
    let header: Value =
        serde_json::from_slice(&line).map_err(|e| FrameError::BadHeader(e.to_string()))?;
    let Value::Object(mut header) = header else {
        return Err(FrameError::BadHeader("not an object".into()));
    };
    let kind = match header.remove("type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind,
        _ => return Err(FrameError::BadHeader("no \"type\"".into())),
    };
    let mut data = match header.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(FrameError::BadData("\"data\" in the header".into())),
    };
    let data_length = length(&header, "data_length", limits.data_bytes)?;
    let payload_length = length(&header, "payload_length", limits.payload_bytes)?;
    if data_length > 0 {
        let bytes = read_exact(reader, data_length).await?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(more)) => data.extend(more),
            Ok(_) => return Err(FrameError::BadData("not an object".into())),
            Err(e) => return Err(FrameError::BadData(e.to_string())),
        }
    }
    let payload = if payload_length > 0 {
        Some(read_exact(reader, payload_length).await?)
    } else {
        None
    };
    Ok(Some(Event {
        kind,
        data,
        payload,
    }))
}

/// A length field: absent or null is 0; anything else must be a count
/// within `limit`.
fn length(
    header: &Map<String, Value>,
    field: &'static str,
    limit: usize,
) -> Result<usize, FrameError> {
    match header.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or_else(|| FrameError::BadHeader(format!("{field} is {v}, not a count")))?;
            if n > limit as u64 {
                return Err(FrameError::TooLarge {
                    field,
                    value: n,
                    limit,
                });
            }
            Ok(n as usize)
        }
    }
}

/// One line without its `\n`, reading at most `limit` bytes of it: a peer
/// that never sends a newline cannot make the buffer grow.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let end = if done { taken - 1 } else { taken };
        if line.len() + end > limit {
            return Err(FrameError::HeaderTooLong { limit });
        }
        line.extend_from_slice(&available[..end]);
        reader.consume(taken);
        if done {
            return Ok(Some(line));
        }
    }
}

async fn read_exact<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    n: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut bytes = vec![0; n];
    match reader.read_exact(&mut bytes).await {
        Ok(_) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// The bytes of `event` on the wire: the data goes after the header line
/// (with `data_length`), as the `wyoming` package writes it.
pub fn encode(event: &Event) -> Vec<u8> {
    let mut header = Map::new();
    header.insert("type".into(), Value::String(event.kind.clone()));
    header.insert("version".into(), Value::String(PROTOCOL_VERSION.into()));
    let data = if event.data.is_empty() {
        None
    } else {
        // Serializing a map of JSON values cannot fail.
        serde_json::to_vec(&event.data).ok()
    };
    if let Some(data) = &data {
        header.insert("data_length".into(), Value::from(data.len()));
    }
    if let Some(payload) = &event.payload
        && !payload.is_empty()
    {
        header.insert("payload_length".into(), Value::from(payload.len()));
    }
    let mut out = serde_json::to_vec(&header).unwrap_or_default();
    out.push(b'\n');
    if let Some(data) = data {
        out.extend(data);
    }
    if let Some(payload) = &event.payload {
        out.extend_from_slice(payload);
    }
    out
}

pub async fn write_event<W: AsyncWrite + Unpin>(
    writer: &mut W,
    event: &Event,
) -> std::io::Result<()> {
    writer.write_all(&encode(event)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn read(bytes: &[u8]) -> Result<Option<Event>, FrameError> {
        let mut reader = tokio::io::BufReader::new(bytes);
        read_event(&mut reader, &FrameLimits::default()).await
    }

    #[tokio::test]
    async fn events_round_trip_with_data_and_payload() {
        let event = Event::new(
            "audio-chunk",
            json!({"rate": 16000, "width": 2, "channels": 1}),
        )
        .with_payload(vec![1, 2, 3, 4]);
        let wire = encode(&event);
        let header_end = wire.iter().position(|&b| b == b'\n').unwrap();
        let header: Value = serde_json::from_slice(&wire[..header_end]).unwrap();
        assert_eq!(header["type"], "audio-chunk");
        assert_eq!(header["payload_length"], 4);
        assert!(header.get("data").is_none(), "data goes after the header");
        assert_eq!(read(&wire).await.unwrap(), Some(event));
    }

    #[tokio::test]
    async fn inline_data_and_data_after_the_header_are_merged() {
        let wire = b"{\"type\":\"synthesize\",\"data\":{\"a\":1},\"data_length\":17}\n{\"text\":\"Hello.\"}";
        let event = read(wire).await.unwrap().unwrap();
        assert_eq!(event.kind, "synthesize");
        assert_eq!(event.data["a"], 1);
        assert_eq!(event.str("text"), Some("Hello."));
        assert_eq!(event.payload, None);
    }

    #[tokio::test]
    async fn a_closed_connection_between_events_is_none_and_inside_one_is_an_error() {
        assert!(read(b"").await.unwrap().is_none());
        assert!(matches!(
            read(b"{\"type\":\"x\"").await,
            Err(FrameError::Truncated)
        ));
        let cut = b"{\"type\":\"audio-chunk\",\"payload_length\":10}\n12345";
        assert!(matches!(read(cut).await, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn lengths_over_the_limits_are_refused_before_reading() {
        let huge = b"{\"type\":\"audio-chunk\",\"payload_length\":1000000000}\n";
        match read(huge).await {
            Err(e @ FrameError::TooLarge { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "payload_length 1000000000 is over the limit of 1048576 bytes"
                )
            }
            other => panic!("{other:?}"),
        }
        let data = b"{\"type\":\"x\",\"data_length\":100000}\n";
        assert!(matches!(
            read(data).await,
            Err(FrameError::TooLarge {
                field: "data_length",
                ..
            })
        ));
        let long = vec![b'a'; 70 * 1024];
        assert!(matches!(
            read(&long).await,
            Err(FrameError::HeaderTooLong { .. })
        ));
    }

    #[tokio::test]
    async fn malformed_headers_are_refused() {
        for bad in [
            &b"garbage\n"[..],
            b"[1,2]\n",
            b"{\"data\":{}}\n",
            b"{\"type\":7}\n",
            b"{\"type\":\"x\",\"payload_length\":-1}\n",
            b"{\"type\":\"x\",\"data\":[1]}\n",
        ] {
            assert!(
                matches!(
                    read(bad).await,
                    Err(FrameError::BadHeader(_) | FrameError::BadData(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let data = b"{\"type\":\"x\",\"data_length\":3}\n[1]";
        assert!(matches!(read(data).await, Err(FrameError::BadData(_))));
    }
}
