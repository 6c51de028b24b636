//! What every handler shares.

use std::sync::{Arc, OnceLock};

use voicechat_common::auth::{TokenVerifier, VerifiesTokens};

use crate::cache::ResultCache;
use crate::config::VoiceConfig;
use crate::engines::Engines;
use crate::metrics::VoiceMetrics;
use crate::queue::InferenceQueue;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<VoiceConfig>,
    pub verifier: Arc<TokenVerifier>,
    /// Set once the models are loaded; `/readyz` is 503 until then.
    pub engines: Arc<OnceLock<Arc<Engines>>>,
    pub cache: Arc<ResultCache>,
    pub metrics: VoiceMetrics,
    /// Bounds concurrent inference (each call uses all `STT_THREADS`), and
    /// says when too many calls wait.
    pub inference: Arc<InferenceQueue>,
}

impl VerifiesTokens for AppState {
    fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}
