//! ConfigMaps, Deployments and Services of the chat and voice services,
//! the managed Redis and the optional Ollama: one file per part; here the
//! ports and the shapes every part shares (Deployment, pod, Service).

mod chat;
mod models;
mod ollama;
mod redis;
mod service_pod;
mod voice;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements, Service, ServicePort,
    ServiceSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Part, child_meta, labels, name, selector};
use super::pods::pod_security;
use crate::crd::{ServiceType, VoiceChatStack};

pub use chat::{chat, chat_config};
pub use models::{
    LOADER_CONTAINER, MODELS_CACHE_PVC, PLAN_LABEL, cache_pvc, cache_volume, file_mount,
    loader_job, loader_job_name,
};
pub use ollama::ollama;
pub use redis::{redis, redis_pvc};
pub use voice::{threads_from_cpu_limit, voice, voice_config, voice_service};

pub const CHAT_PORT: i32 = 8007;
pub const VOICE_PORT: i32 = 8006;
pub const REDIS_PORT: i32 = 6379;
pub const OLLAMA_PORT: i32 = 11434;
/// The voice service's Wyoming port (when `voice.wyoming.enabled`).
pub const WYOMING_PORT: i32 = 10300;
/// Annotation on pod templates: the checksum of their ConfigMap.
pub const CONFIG_CHECKSUM: &str = "voicechat.dev/config-checksum";
/// The user the chat, voice and Ollama containers run as.
const SERVICE_USER: i64 = 10001;

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn default_resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity(cpu.into())),
            ("memory".into(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".into(),
            Quantity(memory_limit.into()),
        )])),
        ..Default::default()
    }
}

/// The pod of every part: one container, the stack's ServiceAccount
/// without a token (no part calls the Kubernetes API), running as `user`.
fn pod_spec(
    stack: &VoiceChatStack,
    container: Container,
    volumes: Vec<Volume>,
    user: i64,
) -> PodSpec {
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        service_account_name: Some(name(stack, "pods")),
        automount_service_account_token: Some(false),
        security_context: Some(pod_security(user)),
        ..Default::default()
    }
}

/// `replicas` `None`: an autoscaler sets them, the operator does not.
fn deployment(
    stack: &VoiceChatStack,
    part: Part,
    replicas: Option<i32>,
    checksum: Option<&str>,
    spec: PodSpec,
) -> Deployment {
    let annotations =
        checksum.map(|c| BTreeMap::from([(CONFIG_CHECKSUM.to_owned(), c.to_owned())]));
    Deployment {
        metadata: child_meta(stack, part.as_str(), Some(part)),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector(stack, Some(part))),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(stack, Some(part))),
                    annotations,
                    ..Default::default()
                }),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A named port of a Service.
pub struct NamedPort {
    pub name: &'static str,
    pub port: i32,
}

pub fn service(stack: &VoiceChatStack, part: Part, port: i32, kind: ServiceType) -> Service {
    let name = if part == Part::Redis { "redis" } else { "http" };
    service_with_ports(stack, part, &[NamedPort { name, port }], kind)
}

pub fn service_with_ports(
    stack: &VoiceChatStack,
    part: Part,
    ports: &[NamedPort],
    kind: ServiceType,
) -> Service {
    let type_ = match kind {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    Service {
        metadata: child_meta(stack, part.as_str(), Some(part)),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(selector(stack, Some(part))),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(p.name.into()),
                        port: p.port,
                        target_port: Some(IntOrString::Int(p.port)),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}
