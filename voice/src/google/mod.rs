//! Google Cloud Text-to-Speech and Speech-to-Text over REST, the optional
//! remote fallbacks (off unless `GOOGLE_APPLICATION_CREDENTIALS` names a
//! service-account key and the engine is enabled).

pub mod auth;
pub mod stt;
pub mod tts;

use std::time::Duration;

/// Settings of the Google engines.
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    /// Path of the service-account JSON key.
    pub credentials: std::path::PathBuf,
    pub tts_enabled: bool,
    pub stt_enabled: bool,
    pub tts_url: String,
    pub stt_url: String,
    /// Voice used when the request names none (`en-US-Standard-C`).
    pub tts_voice: String,
    pub timeout: Duration,
}

/// Runs async HTTP from an engine call: engines run on the blocking pool,
/// where waiting on the runtime is allowed.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    let handle =
        tokio::runtime::Handle::try_current().map_err(|e| format!("no async runtime: {e}"))?;
    Ok(handle.block_on(future))
}
