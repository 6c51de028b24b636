//! The Wyoming protocol on the voice service: the `wyoming` package's own
//! client (Home Assistant's) describes, synthesizes, transcribes and
//! streams; hostile and out-of-order input is refused while HTTP and other
//! Wyoming clients go on being served. Needs a Python with the `wyoming`
//! package (`VOICECHAT_WYOMING_PYTHON`; the test script makes a venv).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use voicechat_voice::wyoming::frame::{Event, FrameLimits, encode, read_event};

fn wyoming_addr() -> SocketAddr {
    service().wyoming.expect("the test service serves Wyoming")
}

/// A client written against the framing alone, to send what no
/// well-behaved client would.
struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    async fn connect() -> Self {
        let (read, writer) = TcpStream::connect(wyoming_addr())
            .await
            .expect("connect to Wyoming")
            .into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, event: &Event) {
        self.send_bytes(&encode(event)).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// The next event; `None` once the server closed the connection.
    async fn next(&mut self) -> Option<Event> {
        let limits = FrameLimits {
            header_bytes: 1 << 20,
            data_bytes: 1 << 20,
            payload_bytes: 1 << 22,
        };
        tokio::time::timeout(
            Duration::from_secs(60),
            read_event(&mut self.reader, &limits),
        )
        .await
        .expect("an event or the end within 60 s")
        .ok()
        .flatten()
    }

    /// The next event, which must be an `error` with `code`.
    async fn error(&mut self, code: &str) -> String {
        let event = self.next().await.expect("an error event");
        assert_eq!(event.kind, "error", "{event:?}");
        assert_eq!(event.str("code"), Some(code), "{event:?}");
        event.str("text").unwrap_or_default().to_owned()
    }

    async fn closed(&mut self) {
        assert_eq!(self.next().await, None, "the server closes the connection");
    }

    async fn describe(&mut self) -> Value {
        self.send(&Event::new("describe", json!({}))).await;
        let info = self.next().await.expect("info");
        assert_eq!(info.kind, "info", "{info:?}");
        Value::Object(info.data)
    }
}

/// The service answers both protocols: a new Wyoming connection describes
/// and HTTP answers `/health`.
async fn still_serving() {
    let info = RawClient::connect().await.describe().await;
    assert!(
        !info["tts"][0]["voices"].as_array().unwrap().is_empty(),
        "{info}"
    );
    let health = client()
        .get(service().url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

fn chunk(rate: u32, pcm: Vec<u8>) -> Event {
    Event::new(
        "audio-chunk",
        json!({"rate": rate, "width": 2, "channels": 1}),
    )
    .with_payload(pcm)
}

#[tokio::test]
async fn the_wyoming_package_speaks_hears_and_streams() {
    let python = std::env::var("VOICECHAT_WYOMING_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_client = std::process::Command::new(&python)
        .args(["-c", "import wyoming.client"])
        .status()
        .is_ok_and(|s| s.success());
    if !voicechat_testkit::have_or_skip(
        has_client,
        "the_wyoming_package_speaks_hears_and_streams",
        "wyoming-python",
        "the wyoming Python package (VOICECHAT_WYOMING_PYTHON)",
    ) || !models_or_skip("the_wyoming_package_speaks_hears_and_streams")
    {
        return;
    }
    let addr = wyoming_addr();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wyoming_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("wyoming {}: {r}", r["wyoming_version"]);

    // describe: what is installed, with languages.
    let d = &r["describe"];
    let model = |name: &str| {
        d["asr_models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no ASR model {name}: {d}"))
            .clone()
    };
    assert_eq!(model("whisper")["languages"], json!(["en"]));
    assert_eq!(model("vosk")["languages"], json!(["ko"]));
    let voices = d["voices"].as_array().unwrap();
    let joe = voices
        .iter()
        .find(|v| v["name"] == "en_US-joe-medium")
        .unwrap_or_else(|| panic!("no Piper voice: {d}"));
    assert_eq!(joe["languages"], json!(["en_US"]));
    assert_eq!(joe["installed"], true);
    assert!(
        voices.iter().any(|v| v["name"] == "en-us"),
        "espeak-ng's voices too: {d}"
    );
    assert_eq!(d["supports_synthesize_streaming"], true);

    // synthesize → transcribe, both over Wyoming.
    let s = &r["synthesize"];
    assert_eq!(
        (&s["rate"], &s["width"], &s["channels"]),
        (&json!(22050), &json!(2), &json!(1))
    );
    let secs = s["bytes"].as_f64().unwrap() / 2.0 / 22050.0;
    assert!((1.5..6.0).contains(&secs), "{secs} s of speech");
    assert!(s["chunks"].as_u64().unwrap() > 10, "{s}");
    let heard = r["round_trip"]["text"].as_str().unwrap();
    let said = "Please call me back when you get home.";
    let wer = word_error_rate(said, heard);
    assert!(wer <= PIPER_WER, "heard {heard:?} (WER {wer})");
    assert_eq!(r["round_trip"]["language"], "en");

    // Streaming: audio before the text ended, one stream of two sentences.
    let st = &r["streamed"];
    assert_eq!(st["first_audio_before_stop"], true);
    assert_eq!(st["stopped"], true);
    assert_eq!(st["rate"], 22050);
    assert_eq!(
        st["audio_starts"], 2,
        "one audio per sentence, the repeated synthesize not spoken: {st}"
    );
    let streamed_secs = st["bytes"].as_f64().unwrap() / 2.0 / 22050.0;
    assert!(
        (2.0..10.0).contains(&streamed_secs),
        "{streamed_secs} s for two sentences"
    );
}

#[tokio::test]
async fn garbage_and_oversized_frames_close_only_their_connection() {
    if !models_or_skip("garbage_and_oversized_frames_close_only_their_connection") {
        return;
    }
    // Garbage bytes.
    let mut c = RawClient::connect().await;
    c.send_bytes(b"\x00\xffGET / HTTP/1.1 not json\n").await;
    let why = c.error("malformed").await;
    assert!(why.contains("JSON"), "{why}");
    c.closed().await;
    still_serving().await;

    // A header claiming a 1 GB payload: refused before anything is read.
    let mut c = RawClient::connect().await;
    c.send_bytes(b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000,\"width\":2,\"channels\":1},\"payload_length\":1000000000}\n")
        .await;
    let why = c.error("too_large").await;
    assert!(why.contains("payload_length 1000000000"), "{why}");
    c.closed().await;

    // A header line that never ends.
    let mut c = RawClient::connect().await;
    c.send_bytes(&vec![b'{'; 80 * 1024]).await;
    c.error("too_large").await;
    c.closed().await;
    still_serving().await;
}

#[tokio::test]
async fn events_out_of_order_are_refused_and_the_connection_goes_on() {
    if !models_or_skip("events_out_of_order_are_refused_and_the_connection_goes_on") {
        return;
    }
    let mut c = RawClient::connect().await;
    c.send(&chunk(16000, vec![0; 3200])).await;
    let why = c.error("out_of_order").await;
    assert_eq!(why, "audio-chunk before audio-start");
    c.send(&Event::new("audio-stop", json!({}))).await;
    c.error("out_of_order").await;
    c.send(&Event::new("synthesize-chunk", json!({"text": "Hello."})))
        .await;
    c.error("out_of_order").await;
    c.send(&Event::new("synthesize-stop", json!({}))).await;
    c.error("out_of_order").await;
    // An event this server does not know is dropped, as Wyoming servers do.
    c.send(&Event::new("run-pipeline", json!({"start_stage": "asr"})))
        .await;
    // Bad requests are refused as HTTP refuses them.
    c.send(&Event::new(
        "synthesize",
        json!({"text": "Hi.", "voice": {"name": "nl_NL-nobody"}}),
    ))
    .await;
    c.error("unknown_voice").await;
    c.send(&Event::new(
        "synthesize",
        json!({"text": "Hi.", "voice": {"language": "zz"}}),
    ))
    .await;
    let why = c.error("unknown_voice").await;
    assert!(why.contains("en_US"), "names what is installed: {why}");
    c.send(&Event::new("synthesize", json!({"text": "x".repeat(600)})))
        .await;
    c.error("text_too_long").await;
    c.send(&Event::new("transcribe", json!({"name": "deepgram"})))
        .await;
    c.error("unknown_model").await;
    c.send(&Event::new(
        "audio-start",
        json!({"rate": 16000, "width": 9, "channels": 1}),
    ))
    .await;
    c.error("invalid_audio").await;
    // The same connection still works.
    let info = c.describe().await;
    assert_eq!(info["asr"][0]["name"], "voicechat-voice");
    c.send(&Event::new("ping", json!({"text": "still there?"})))
        .await;
    let pong = c.next().await.expect("pong");
    assert_eq!(
        (pong.kind.as_str(), pong.str("text")),
        ("pong", Some("still there?"))
    );

    // A language no engine has is refused by the same routing as HTTP.
    c.send(&Event::new("transcribe", json!({"language": "fr-FR"})))
        .await;
    c.send(&Event::new(
        "audio-start",
        json!({"rate": 16000, "width": 2, "channels": 1}),
    ))
    .await;
    c.send(&chunk(16000, vec![0; 32000])).await;
    c.send(&Event::new("audio-stop", json!({}))).await;
    let why = c.error("unsupported_language").await;
    assert!(why.contains("\"fr\""), "{why}");
    still_serving().await;
}

#[tokio::test]
async fn audio_past_the_limits_is_refused() {
    if !models_or_skip("audio_past_the_limits_is_refused") {
        return;
    }
    // A chunk in another format than its start.
    let mut c = RawClient::connect().await;
    c.send(&Event::new(
        "audio-start",
        json!({"rate": 16000, "width": 2, "channels": 1}),
    ))
    .await;
    c.send(&chunk(8000, vec![0; 1600])).await;
    let why = c.error("invalid_audio").await;
    assert!(why.contains("differs"), "{why}");
    c.closed().await;

    // More audio than VOICE_MAX_AUDIO_SECS (60 s in these tests).
    let mut c = RawClient::connect().await;
    c.send(&Event::new(
        "audio-start",
        json!({"rate": 16000, "width": 2, "channels": 1}),
    ))
    .await;
    for _ in 0..61 {
        c.send(&chunk(16000, vec![0; 32000])).await;
    }
    let why = c.error("audio_too_long").await;
    assert!(why.contains("60 s"), "{why}");
    c.closed().await;
    still_serving().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    if !models_or_skip("a_silent_connection_is_closed_after_the_idle_timeout") {
        return;
    }
    let idle = support::WYOMING_IDLE_TIMEOUT;
    let mut silent = RawClient::connect().await;
    // Half an event, then nothing.
    silent.send_bytes(b"{\"type\":\"desc").await;
    let started = Instant::now();
    // Meanwhile others are served.
    still_serving().await;
    silent.closed().await;
    let waited = started.elapsed();
    assert!(
        waited >= idle && waited < idle + Duration::from_secs(5),
        "closed after {waited:?} (idle timeout {idle:?})"
    );
    let metrics = service().get_text("/metrics").await;
    assert!(
        metrics.contains("voice_wyoming_closed_total{reason=\"idle\"}"),
        "{metrics}"
    );
}
