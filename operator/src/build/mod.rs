//! The desired children of a stack, as a pure function of the stack, the
//! operator's settings and the facts observed in the cluster (no client):
//! so nearly all reconcile logic is tested without a cluster.

mod autoscaling;
pub mod meta;
mod network;
mod pods;
pub mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use sha2::{Digest, Sha256};
use voicechat_common::stt_profile::SttProfile;

use crate::crd::{RedisMode, VoiceChatStack};
use crate::models::StackModels;
use crate::settings::OperatorSettings;
use meta::{Part, child_meta};

/// What the build needs to know about the cluster.
#[derive(Debug, Clone)]
pub struct Facts {
    pub profile: SttProfile,
    /// The generated JWT secret: the existing Secret's value when there is
    /// one (so re-applying changes nothing), else a fresh random value.
    /// Unused when the stack names its own Secret.
    pub jwt_secret: String,
    /// Whether the loader Job of the stack's current models plan has
    /// finished: until then the pods that mount models are not made.
    pub models_ready: bool,
}

/// Every child of a stack, one field per kind: the apply step
/// destructures this without `..`, so a new kind cannot be forgotten.
#[derive(Debug, Clone, Default)]
pub struct Children {
    pub service_account: ServiceAccount,
    pub jwt_secret: Option<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub services: Vec<Service>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub network_policies: Vec<NetworkPolicy>,
    /// The namespace's shared models cache (owned by no stack).
    pub models_cache: Option<PersistentVolumeClaim>,
    pub jobs: Vec<Job>,
    pub deployments: Vec<Deployment>,
    /// Applied after the Deployments they scale.
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
    /// Deployments and ConfigMaps left as they are while the models the
    /// pods will mount load (a changed model list rolls them only once it
    /// is there).
    pub waiting_for_models: Vec<String>,
    pub models: StackModels,
}

/// Why a stack cannot be built; the stack waits for a change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("redis.mode External needs redis.urlSecret")]
    ExternalRedisWithoutUrl,
    #[error("the stack has no name or namespace")]
    Unnamed,
    #[error("{0}")]
    InvalidModel(String),
}

impl BuildError {
    /// Stable category: metric label and Event reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::ExternalRedisWithoutUrl => "InvalidRedis",
            Self::Unnamed => "InvalidMetadata",
            Self::InvalidModel(_) => "InvalidModel",
        }
    }
}

/// Key of the generated JWT Secret.
pub const JWT_KEY: &str = "secret";

pub fn build(
    stack: &VoiceChatStack,
    settings: &OperatorSettings,
    facts: &Facts,
) -> Result<Children, BuildError> {
    if stack.metadata.name.is_none() || stack.metadata.namespace.is_none() {
        return Err(BuildError::Unnamed);
    }
    let spec = &stack.spec;
    if spec.redis.mode == RedisMode::External && spec.redis.url_secret.is_none() {
        return Err(BuildError::ExternalRedisWithoutUrl);
    }
    let jwt_secret = spec.auth.jwt_secret.is_none().then(|| Secret {
        metadata: child_meta(stack, "jwt", None),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            JWT_KEY.to_owned(),
            ByteString(facts.jwt_secret.clone().into_bytes()),
        )])),
        ..Default::default()
    });
    let models = crate::models::resolve(stack, settings, facts.profile)?;
    let chat_config = workloads::chat_config(stack, &models);
    let voice_config = workloads::voice_config(stack, settings, facts.profile, &models);
    let mut deployments = vec![workloads::chat(stack, settings, &checksum(&chat_config))];
    let mut config_maps = vec![chat_config];
    let mut waiting_for_models = Vec::new();
    if facts.models_ready || !models.needs_voice_models() {
        deployments.push(workloads::voice(
            stack,
            settings,
            facts.profile,
            &checksum(&voice_config),
            &models,
        ));
        config_maps.push(voice_config);
    } else {
        // Its configuration too: a voice pod that restarts meanwhile must
        // find the model files its configuration names in its mounts.
        waiting_for_models.push(meta::name(stack, Part::Voice.as_str()));
        waiting_for_models.extend(voice_config.metadata.name);
    }
    let mut services = vec![
        workloads::service(stack, Part::Chat, workloads::CHAT_PORT, spec.service_type),
        workloads::voice_service(stack),
    ];
    let mut pvcs = Vec::new();
    if spec.redis.mode == RedisMode::Managed {
        deployments.push(workloads::redis(stack, settings));
        services.push(workloads::service(
            stack,
            Part::Redis,
            workloads::REDIS_PORT,
            crate::crd::ServiceType::ClusterIP,
        ));
        pvcs.extend(workloads::redis_pvc(stack));
    }
    if spec.ollama.enabled && (facts.models_ready || models.llm().is_none()) {
        deployments.push(workloads::ollama(stack, settings, &models));
    } else if spec.ollama.enabled {
        waiting_for_models.push(meta::name(stack, Part::Ollama.as_str()));
    }
    if spec.ollama.enabled {
        services.push(workloads::service(
            stack,
            Part::Ollama,
            workloads::OLLAMA_PORT,
            crate::crd::ServiceType::ClusterIP,
        ));
    }
    // With an autoscaler, its minimum is what a disruption may count on.
    let least = |replicas: i32, autoscaling: Option<&crate::crd::AutoscalingSpec>| {
        autoscaling.map_or(replicas, |a| a.min_replicas)
    };
    let pdbs = [
        (
            Part::Chat,
            least(spec.chat.replicas, spec.chat.autoscaling.as_ref()),
        ),
        (
            Part::Voice,
            least(spec.voice.replicas, spec.voice.autoscaling.as_ref()),
        ),
    ]
    .into_iter()
    .filter(|(_, replicas)| *replicas > 1)
    .map(|(part, _)| network::pdb(stack, part))
    .collect();
    Ok(Children {
        service_account: ServiceAccount {
            metadata: child_meta(stack, "pods", None),
            // The services never call the Kubernetes API.
            automount_service_account_token: Some(false),
            ..Default::default()
        },
        jwt_secret,
        config_maps,
        pvcs,
        services,
        pdbs,
        network_policies: network::policies(stack),
        models_cache: (!models.is_empty()).then(|| workloads::cache_pvc(stack, settings)),
        jobs: if models.is_empty() {
            Vec::new()
        } else {
            vec![workloads::loader_job(stack, settings, &models)]
        },
        deployments,
        autoscalers: autoscaling::autoscalers(stack),
        waiting_for_models,
        models,
    })
}

/// Checksum of a ConfigMap's data, put on the pod template so that a
/// configuration change rolls the pods (the data is a sorted map, so the
/// same configuration always gives the same checksum).
pub fn checksum(config: &ConfigMap) -> String {
    let mut hash = Sha256::new();
    for (k, v) in config.data.iter().flatten() {
        hash.update(k.as_bytes());
        hash.update([0]);
        hash.update(v.as_bytes());
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests;
