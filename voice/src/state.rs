//! What every handler shares.

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;
use voicechat_common::auth::{TokenVerifier, VerifiesTokens};

use crate::cache::ResultCache;
use crate::config::VoiceConfig;
use crate::engines::Engines;
use crate::metrics::VoiceMetrics;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<VoiceConfig>,
    pub verifier: Arc<TokenVerifier>,
    /// Set once the models are loaded; `/readyz` is 503 until then.
    pub engines: Arc<OnceLock<Arc<Engines>>>,
    pub cache: Arc<ResultCache>,
    pub metrics: VoiceMetrics,
    /// Bounds concurrent inference: each call uses all `STT_THREADS`.
    pub inference: Arc<Semaphore>,
}

impl VerifiesTokens for AppState {
    fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}
