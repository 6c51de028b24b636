//! The dereference step: reads what the build needs (the Nodes, for an
//! `Auto` profile; the JWT Secret) and returns it as [`Facts`], with what
//! the status reports about it.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::ReconcileError;
use crate::build::{self, Facts, JWT_KEY};
use crate::cache::ChildCache;
use crate::crd::{self, VoiceChatStack};
use crate::profile;
use crate::settings::OperatorSettings;

/// What the cluster told the reconcile before the build.
pub struct Dereferenced {
    pub facts: Facts,
    /// Why the profile in `facts` was picked, for the status.
    pub profile_reason: String,
    /// Whether the JWT Secret the pods mount exists already.
    pub jwt_secret_present: bool,
}

pub async fn dereference(
    client: &kube::Client,
    cache: &ChildCache,
    settings: &OperatorSettings,
    stack: &VoiceChatStack,
    namespace: &str,
) -> Result<Dereferenced, ReconcileError> {
    let auto = stack.spec.voice.stt_profile == crd::SttProfile::Auto;
    let namespaced = !settings.watch_namespaces.is_empty();
    let nodes = if auto && !namespaced {
        cache.nodes()
    } else {
        Vec::new()
    };
    let (profile, profile_reason) = if auto && namespaced {
        (
            voicechat_common::stt_profile::SttProfile::Cpu,
            "Auto: the operator watches listed namespaces only (WATCH_NAMESPACES) and cannot read Nodes; CPU (set sttProfile GPU for GPU nodes)".to_owned(),
        )
    } else {
        profile::resolve(stack.spec.voice.stt_profile, &nodes, &settings.gpu_resource)
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let (jwt_secret, jwt_secret_present) = match &stack.spec.auth.jwt_secret {
        None => {
            let name = build::meta::name(stack, "jwt");
            match cache
                .get::<Secret>(namespace, &name)
                .as_deref()
                .and_then(secret_value)
            {
                Some(v) => (v, true),
                // Not seen yet (a new stack, or its watch event still on
                // the way): the API server says whether a value exists,
                // which must never be replaced.
                None => jwt_secret_value(&secrets, &name).await?,
            }
        }
        // Not the operator's: not cached.
        Some(r) => {
            let present = secrets
                .get_opt(&r.name)
                .await
                .map_err(ReconcileError::read("the stack's JWT Secret"))?
                .is_some();
            (String::new(), present)
        }
    };
    Ok(Dereferenced {
        facts: Facts {
            profile,
            jwt_secret,
            // Set by the reconcile once it has read the loader Job.
            models_ready: false,
        },
        profile_reason,
        jwt_secret_present,
    })
}

/// A fresh HS256 secret: 48 random bytes, hex (96 characters).
pub fn generate_secret() -> Result<String, ReconcileError> {
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| ReconcileError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The generated JWT secret's current value, so that applying it again
/// changes nothing; a new one only when the Secret does not exist.
async fn jwt_secret_value(
    secrets: &Api<Secret>,
    name: &str,
) -> Result<(String, bool), ReconcileError> {
    let existing = secrets
        .get_opt(name)
        .await
        .map_err(ReconcileError::read("the JWT Secret"))?;
    match existing.as_ref().and_then(secret_value) {
        Some(v) => Ok((v, true)),
        None => Ok((generate_secret()?, false)),
    }
}

/// The HS256 secret a JWT Secret holds.
fn secret_value(secret: &Secret) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(JWT_KEY))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}
