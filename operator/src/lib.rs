//! The VoiceChatStack operator: the custom resource, and the reconcile
//! pipeline that turns it into the stack.

pub mod apply;
pub mod build;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod profile;
pub mod settings;
pub mod status;

use kube::CustomResourceExt;

/// The CRD as YAML, exactly as `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&crd::VoiceChatStack::crd())
}
