//! The VoiceChatStack operator: the custom resource, and the reconcile
//! pipeline that turns it into the stack.

pub mod apply;
pub mod build;
pub mod cache;
pub mod controller;
pub mod crd;
#[cfg(test)]
mod fixtures;
pub mod leader;
pub mod metrics;
pub mod models;
pub mod pod_reasons;
pub mod profile;
pub mod settings;
pub mod status;

use kube::CustomResourceExt;

/// Picks rustls' process-wide crypto provider. The build links both ring
/// (kube) and aws-lc-rs (reqwest), and with two candidates rustls refuses to
/// guess: the first TLS connection to the API server would panic. Safe to
/// call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The CRD as YAML, exactly as `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&crd::VoiceChatStack::crd())
}
