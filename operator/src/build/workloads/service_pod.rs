//! What the chat and voice pods share: the configuration both read, the
//! secrets they mount, and their Deployment (probes, drain, ConfigMap).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, Lifecycle,
    LifecycleHandler, PodSpec, Probe, ResourceRequirements, SleepAction, Volume, VolumeMount,
};

use super::{SERVICE_USER, deployment, env, pod_spec, redis};
use crate::build::JWT_KEY;
use crate::build::meta::{Part, name};
use crate::build::pods::{container_security, http_probe, scratch_volume, secret_volume};
use crate::crd::VoiceChatStack;

const JWT_DIR: &str = "/var/run/secrets/voicechat/jwt";
const REDIS_URL_DIR: &str = "/var/run/secrets/voicechat/redis";
const LLM_KEY_DIR: &str = "/var/run/secrets/voicechat/llm";

/// Settings both services read from their ConfigMap.
pub(super) fn common_config(stack: &VoiceChatStack, data: &mut BTreeMap<String, String>) {
    data.insert("LOG_FORMAT".into(), "json".into());
    if stack.spec.redis.url_secret.is_none() {
        data.insert("REDIS_URL".into(), redis::url(stack));
    }
    if let Some(iss) = &stack.spec.auth.issuer {
        data.insert("JWT_ISSUER".into(), iss.clone());
    }
    if let Some(aud) = &stack.spec.auth.audience {
        data.insert("JWT_AUDIENCE".into(), aud.clone());
    }
}

/// The env, volumes and mounts of a service container that reads the JWT
/// secret, the Redis URL (external mode) and, for chat, an LLM API key.
pub(super) fn secret_inputs(
    stack: &VoiceChatStack,
    with_llm_key: bool,
) -> (Vec<EnvVar>, Vec<Volume>, Vec<VolumeMount>) {
    let spec = &stack.spec;
    let mut env_vars = Vec::new();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let (jwt_secret, jwt_key) = match &spec.auth.jwt_secret {
        Some(r) => (r.name.clone(), r.key.clone()),
        None => (name(stack, "jwt"), JWT_KEY.to_owned()),
    };
    let (v, m) = secret_volume("jwt", &jwt_secret, &jwt_key, JWT_DIR);
    volumes.push(v);
    mounts.push(m);
    env_vars.push(env("JWT_SECRET_FILE", format!("{JWT_DIR}/{jwt_key}")));
    if let Some(r) = &spec.redis.url_secret {
        let (v, m) = secret_volume("redis-url", &r.name, &r.key, REDIS_URL_DIR);
        volumes.push(v);
        mounts.push(m);
        env_vars.push(env("REDIS_URL_FILE", format!("{REDIS_URL_DIR}/{}", r.key)));
    }
    if with_llm_key && let Some(r) = &spec.chat.llm.api_key_secret {
        let (v, m) = secret_volume("llm-key", &r.name, &r.key, LLM_KEY_DIR);
        volumes.push(v);
        mounts.push(m);
        env_vars.push(env("LLM_API_KEY_FILE", format!("{LLM_KEY_DIR}/{}", r.key)));
    }
    (env_vars, volumes, mounts)
}

/// A chat or voice pod, as [`service_deployment`] builds it.
pub(super) struct ServicePod<'a> {
    pub part: Part,
    pub image: String,
    pub port: i32,
    pub config: String,
    pub checksum: &'a str,
    pub env: Vec<EnvVar>,
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
    pub resources: ResourceRequirements,
    /// `None`: the part's autoscaler sets them.
    pub replicas: Option<i32>,
    pub startup: Option<Probe>,
}

pub(super) fn service_deployment(stack: &VoiceChatStack, pod: ServicePod<'_>) -> Deployment {
    let (tmp, tmp_mount) = scratch_volume("tmp", "/tmp");
    let mut volumes = pod.volumes;
    volumes.push(tmp);
    let mut mounts = pod.mounts;
    mounts.push(tmp_mount);
    let container = Container {
        name: pod.part.as_str().into(),
        image: Some(pod.image),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: pod.port,
            ..Default::default()
        }]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: pod.config,
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        env: Some(pod.env),
        volume_mounts: Some(mounts),
        liveness_probe: Some(http_probe("/livez", pod.port, 10, 3)),
        readiness_probe: Some(http_probe("/readyz", pod.port, 5, 2)),
        startup_probe: pod.startup,
        // Let load balancers stop sending new connections before SIGTERM.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 5 }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(pod.resources),
        security_context: Some(container_security()),
        ..Default::default()
    };
    deployment(
        stack,
        pod.part,
        pod.replicas,
        Some(pod.checksum),
        PodSpec {
            // preStop (5 s) + the services' drain (10 s) + margin.
            termination_grace_period_seconds: Some(30),
            ..pod_spec(stack, container, volumes, SERVICE_USER)
        },
    )
}
