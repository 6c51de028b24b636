//! A scripted conversation with a running local stack, end to end: a text
//! chat over the WebSocket answered by the real LLM, the answer stored in
//! history (REST), spoken by the voice service (TTS), and that speech
//! transcribed back (STT). Each step is timed; any step that does not
//! deliver what a user would need is an error naming the step.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Where the stack is and who talks to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:8007`
    pub chat_url: String,
    /// `http://127.0.0.1:8006`
    pub voice_url: String,
    pub token: String,
    pub prompt: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    #[error("{step}: {message}")]
    Step { step: &'static str, message: String },
    #[error("{step}: timed out after {secs} s")]
    Timeout { step: &'static str, secs: u64 },
}

fn fail(step: &'static str, message: impl std::fmt::Display) -> SmokeError {
    SmokeError::Step {
        step,
        message: message.to_string(),
    }
}

/// What the conversation produced, with timings.
#[derive(Debug, Clone)]
pub struct Report {
    pub session_id: String,
    pub answer: String,
    pub tokens: u64,
    pub connect: Duration,
    pub first_token: Duration,
    pub answer_total: Duration,
    pub tts: Duration,
    pub speech_secs: f64,
    pub tts_engine: String,
    pub stt: Duration,
    pub transcript: String,
    pub stt_engine: String,
    pub history_messages: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_millis();
        writeln!(f, "session          {}", self.session_id)?;
        writeln!(f, "answer           {:?}", self.answer)?;
        writeln!(f, "transcript       {:?}", self.transcript)?;
        writeln!(f, "step                         time")?;
        writeln!(f, "ws connect + session   {:>8} ms", ms(self.connect))?;
        writeln!(f, "LLM first token        {:>8} ms", ms(self.first_token))?;
        writeln!(
            f,
            "LLM answer ({:>3} tok)   {:>8} ms",
            self.tokens,
            ms(self.answer_total)
        )?;
        writeln!(
            f,
            "TTS {:<10} {:>5.1} s {:>7} ms",
            self.tts_engine,
            self.speech_secs,
            ms(self.tts)
        )?;
        writeln!(f, "STT {:<18} {:>7} ms", self.stt_engine, ms(self.stt))?;
        write!(
            f,
            "history          {} messages stored",
            self.history_messages
        )
    }
}

const STEP_TIMEOUT: Duration = Duration::from_secs(180);

async fn within<T>(
    step: &'static str,
    f: impl std::future::Future<Output = Result<T, SmokeError>>,
) -> Result<T, SmokeError> {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .map_err(|_| SmokeError::Timeout {
            step,
            secs: STEP_TIMEOUT.as_secs(),
        })?
}

/// Runs the conversation once.
pub async fn converse(target: &Target) -> Result<Report, SmokeError> {
    let http = reqwest::Client::builder()
        .timeout(STEP_TIMEOUT)
        .build()
        .map_err(|e| fail("http client", e))?;

    // 1. Chat over the WebSocket.
    let started = Instant::now();
    let ws_url = format!(
        "{}/ws/chat?token={}",
        target.chat_url.replacen("http", "ws", 1),
        target.token
    );
    let (mut socket, _) = within("websocket connect", async {
        tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .map_err(|e| fail("websocket connect", e))
    })
    .await?;
    let session = within("session event", next_event(&mut socket, "session")).await?;
    let session_id = session["session_id"]
        .as_str()
        .ok_or_else(|| fail("session event", format!("no session_id in {session}")))?
        .to_owned();
    let connect = started.elapsed();

    let asked = Instant::now();
    let message = json!({"type": "message", "content": target.prompt}).to_string();
    socket
        .send(Message::Text(message.into()))
        .await
        .map_err(|e| fail("send message", e))?;
    let mut first_token = None;
    let mut streamed = String::new();
    let done = within("LLM answer", async {
        loop {
            let event = next_any(&mut socket).await?;
            match event["type"].as_str() {
                Some("ack") if event["persisted"] != true => {
                    return Err(fail("LLM answer", "the message was not persisted"));
                }
                Some("token") => {
                    first_token.get_or_insert_with(|| asked.elapsed());
                    streamed.push_str(event["content"].as_str().unwrap_or(""));
                }
                Some("done") => return Ok(event),
                Some("error") => return Err(fail("LLM answer", &event)),
                _ => {}
            }
        }
    })
    .await?;
    let answer_total = asked.elapsed();
    let answer = done["content"].as_str().unwrap_or("").to_owned();
    if answer.trim().is_empty() {
        return Err(fail("LLM answer", "the answer is empty"));
    }
    if answer != streamed {
        return Err(fail(
            "LLM answer",
            format!("streamed tokens {streamed:?} differ from the final answer {answer:?}"),
        ));
    }
    let first_token = first_token.ok_or_else(|| fail("LLM answer", "no token was streamed"))?;
    let _ = socket.close(None).await;

    // 2. The exchange is in history.
    let history: Value = within("history", async {
        let url = format!("{}/api/v1/sessions/{session_id}/messages", target.chat_url);
        let r = send_ok("history", http.get(url).bearer_auth(&target.token)).await?;
        r.json().await.map_err(|e| fail("history", e))
    })
    .await?;
    let messages = history["messages"].as_array().cloned().unwrap_or_default();
    let stored_answer = messages
        .iter()
        .any(|m| m["role"] == "assistant" && m["content"] == answer.as_str());
    if !stored_answer {
        return Err(fail(
            "history",
            "the answer is not in the session's history",
        ));
    }

    // 3. The answer spoken.
    let spoken = Instant::now();
    let (wav, tts_engine) = within("TTS", async {
        let r = send_ok(
            "TTS",
            http.post(format!("{}/api/v1/tts", target.voice_url))
                .bearer_auth(&target.token)
                .json(&json!({"text": answer})),
        )
        .await?;
        let engine = header(&r, "x-voice-engine");
        let bytes = r.bytes().await.map_err(|e| fail("TTS", e))?;
        Ok((bytes, engine))
    })
    .await?;
    let tts = spoken.elapsed();
    let speech_secs = wav_seconds(&wav).map_err(|e| fail("TTS", e))?;
    if speech_secs < 0.3 {
        return Err(fail("TTS", format!("only {speech_secs:.2} s of audio")));
    }

    // 4. The speech transcribed back.
    let heard = Instant::now();
    let transcription: Value = within("STT", async {
        let r = send_ok(
            "STT",
            http.post(format!("{}/api/v1/stt", target.voice_url))
                .bearer_auth(&target.token)
                .header("content-type", "audio/wav")
                .body(wav.clone()),
        )
        .await?;
        r.json().await.map_err(|e| fail("STT", e))
    })
    .await?;
    let stt = heard.elapsed();
    let transcript = transcription["text"].as_str().unwrap_or("").to_owned();
    if transcript.trim().is_empty() {
        return Err(fail("STT", "the spoken answer was transcribed as nothing"));
    }

    Ok(Report {
        session_id,
        tokens: done["tokens"].as_u64().unwrap_or(0),
        answer,
        connect,
        first_token,
        answer_total,
        tts,
        speech_secs,
        tts_engine,
        stt,
        stt_engine: transcription["engine"].as_str().unwrap_or("").to_owned(),
        transcript,
        history_messages: messages.len(),
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_any(socket: &mut Socket) -> Result<Value, SmokeError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| fail("websocket", format!("not JSON: {e}")));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(fail("websocket", format!("closed: {frame:?}")));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(fail("websocket", e)),
            None => return Err(fail("websocket", "closed")),
        }
    }
}

async fn next_event(socket: &mut Socket, kind: &'static str) -> Result<Value, SmokeError> {
    loop {
        let event = next_any(socket).await?;
        if event["type"] == kind {
            return Ok(event);
        }
        if event["type"] == "error" {
            return Err(fail("websocket", &event));
        }
    }
}

/// Sends the request; a transport error or a non-2xx answer (with its
/// body, which names the problem) fails `step`.
async fn send_ok(
    step: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, SmokeError> {
    let r = request.send().await.map_err(|e| fail(step, e))?;
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status();
    Err(fail(
        step,
        format!("{status}: {}", r.text().await.unwrap_or_default()),
    ))
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Seconds of audio in a PCM WAV file, from its header.
pub fn wav_seconds(bytes: &[u8]) -> Result<f64, String> {
    if bytes.len() < 44 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("not a WAV file ({} bytes)", bytes.len()));
    }
    // Walk the chunks: `fmt ` gives the byte rate, `data` the length.
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = at + 8;
        if id == b"fmt " && body + 12 <= bytes.len() {
            byte_rate = Some(u32::from_le_bytes([
                bytes[body + 8],
                bytes[body + 9],
                bytes[body + 10],
                bytes[body + 11],
            ]));
        }
        if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0).ok_or("WAV data before fmt")?;
            let len = size.min(bytes.len().saturating_sub(body));
            return Ok(len as f64 / f64::from(rate));
        }
        at = body + size + (size & 1);
    }
    Err("WAV file without a data chunk".into())
}

#[cfg(test)]
mod tests {
    use super::wav_seconds;

    fn wav(sample_rate: u32, samples: usize) -> Vec<u8> {
        let data = samples * 2;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&sample_rate.to_le_bytes());
        v.extend_from_slice(&(sample_rate * 2).to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data as u32).to_le_bytes());
        v.resize(v.len() + data, 0);
        v
    }

    #[test]
    fn reads_the_duration_from_the_header() {
        let secs = wav_seconds(&wav(22_050, 22_050 * 3 / 2)).unwrap();
        assert!((secs - 1.5).abs() < 1e-9, "{secs}");
        assert!(wav_seconds(b"not audio at all, just some bytes long enough....").is_err());
        let mut truncated = wav(16_000, 100);
        truncated.truncate(40);
        assert!(wav_seconds(&truncated).is_err());
    }
}
