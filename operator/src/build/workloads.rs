//! ConfigMaps, Deployments and Services of the chat and voice services,
//! the managed Redis and the optional Ollama.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, Lifecycle,
    LifecycleHandler, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    Service, ServicePort, ServiceSpec, SleepAction, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::JWT_KEY;
use super::meta::{Part, child_meta, labels, name, selector};
use super::pods::{container_security, http_probe, pod_security, scratch_volume, secret_volume};
use crate::crd::{LlmBackend, ServiceType, VoiceChatStack};
use crate::profile::Resolved;
use crate::settings::OperatorSettings;

pub const CHAT_PORT: i32 = 8007;
pub const VOICE_PORT: i32 = 8006;
pub const REDIS_PORT: i32 = 6379;
pub const OLLAMA_PORT: i32 = 11434;
/// Annotation on pod templates: the checksum of their ConfigMap.
pub const CONFIG_CHECKSUM: &str = "voicechat.dev/config-checksum";
const SERVICE_USER: i64 = 10001;
const JWT_DIR: &str = "/var/run/secrets/voicechat/jwt";
const REDIS_URL_DIR: &str = "/var/run/secrets/voicechat/redis";
const LLM_KEY_DIR: &str = "/var/run/secrets/voicechat/llm";

fn managed_redis_url(stack: &VoiceChatStack) -> String {
    format!("redis://{}:{REDIS_PORT}", name(stack, "redis"))
}

fn common_config(stack: &VoiceChatStack, data: &mut BTreeMap<String, String>) {
    data.insert("LOG_FORMAT".into(), "json".into());
    if stack.spec.redis.url_secret.is_none() {
        data.insert("REDIS_URL".into(), managed_redis_url(stack));
    }
    if let Some(iss) = &stack.spec.auth.issuer {
        data.insert("JWT_ISSUER".into(), iss.clone());
    }
    if let Some(aud) = &stack.spec.auth.audience {
        data.insert("JWT_AUDIENCE".into(), aud.clone());
    }
}

pub fn chat_config(stack: &VoiceChatStack) -> ConfigMap {
    let spec = &stack.spec;
    let llm = &spec.chat.llm;
    let mut data = BTreeMap::new();
    common_config(stack, &mut data);
    data.insert("CHAT_PORT".into(), CHAT_PORT.to_string());
    let (backend, default_url) = match llm.backend {
        LlmBackend::Ollama if spec.ollama.enabled => (
            "ollama",
            format!("http://{}:{OLLAMA_PORT}", name(stack, "ollama")),
        ),
        // A conventionally named Ollama Service in the namespace.
        LlmBackend::Ollama => ("ollama", format!("http://ollama:{OLLAMA_PORT}")),
        LlmBackend::OpenAI => ("openai", "http://llm:8000".to_owned()),
    };
    data.insert("LLM_BACKEND".into(), backend.into());
    data.insert("LLM_URL".into(), llm.url.clone().unwrap_or(default_url));
    if let Some(model) = &llm.model {
        data.insert("LLM_MODEL".into(), model.clone());
    }
    if let Some(prompt) = &llm.system_prompt {
        data.insert("LLM_SYSTEM_PROMPT".into(), prompt.clone());
    }
    if let Some(max) = spec.chat.history.max_messages {
        data.insert("HISTORY_MAX_MESSAGES".into(), max.to_string());
    }
    if let Some(ttl) = spec.chat.history.ttl_seconds {
        data.insert("HISTORY_TTL_SECS".into(), ttl.to_string());
    }
    ConfigMap {
        metadata: child_meta(stack, "chat-config", Some(Part::Chat)),
        data: Some(data),
        ..Default::default()
    }
}

pub fn voice_config(
    stack: &VoiceChatStack,
    settings: &OperatorSettings,
    profile: Resolved,
) -> ConfigMap {
    let voice = &stack.spec.voice;
    let mut data = BTreeMap::new();
    common_config(stack, &mut data);
    data.insert("VOICE_PORT".into(), VOICE_PORT.to_string());
    data.insert("VOICE_MODELS_DIR".into(), "/models".into());
    let (profile_name, profile_settings) = match profile {
        Resolved::Cpu => ("cpu", &settings.cpu),
        Resolved::Gpu => ("gpu", &settings.gpu),
    };
    data.insert("STT_PROFILE".into(), profile_name.into());
    data.insert(
        "WHISPER_MODEL".into(),
        voice
            .whisper_model
            .clone()
            .unwrap_or_else(|| profile_settings.whisper_model.clone()),
    );
    if profile == Resolved::Cpu {
        data.insert(
            "STT_THREADS".into(),
            threads_from_cpu_limit(voice.resources.as_ref()).to_string(),
        );
    }
    // Unset lists leave the service's defaults (every engine).
    if let Some(engines) = &voice.engines {
        if let Some(tts) = &engines.tts {
            data.insert("VOICE_TTS_ENGINES".into(), engine_names(tts));
        }
        if let Some(stt) = &engines.stt {
            data.insert("VOICE_STT_ENGINES".into(), engine_names(stt));
        }
    }
    ConfigMap {
        metadata: child_meta(stack, "voice-config", Some(Part::Voice)),
        data: Some(data),
        ..Default::default()
    }
}

/// `[EspeakNg, Google]` → `espeak-ng,google`: the names the service reads.
fn engine_names<E: serde::Serialize>(engines: &[E]) -> String {
    engines
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whisper threads from the CPU limit (rounded up; 2 without a limit).
pub fn threads_from_cpu_limit(resources: Option<&ResourceRequirements>) -> u32 {
    let limit = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("cpu"))
        .map(|q| q.0.as_str());
    let cores = match limit {
        Some(q) if q.ends_with('m') => q
            .trim_end_matches('m')
            .parse::<f64>()
            .ok()
            .map(|m| m / 1000.0),
        Some(q) => q.parse::<f64>().ok(),
        None => None,
    };
    cores.map_or(2, |c| c.ceil().max(1.0) as u32)
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// The env, volumes and mounts of a service container that reads the JWT
/// secret, the Redis URL (external mode) and, for chat, an LLM API key.
fn secret_inputs(
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

struct ServicePod<'a> {
    part: Part,
    image: String,
    port: i32,
    config: String,
    checksum: &'a str,
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    resources: ResourceRequirements,
    replicas: i32,
    startup: Option<Probe>,
}

fn service_deployment(stack: &VoiceChatStack, pod: ServicePod<'_>) -> Deployment {
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
            containers: vec![container],
            volumes: Some(volumes),
            service_account_name: Some(name(stack, "pods")),
            automount_service_account_token: Some(false),
            security_context: Some(pod_security(SERVICE_USER)),
            // preStop (5 s) + the services' drain (10 s) + margin.
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        },
    )
}

fn deployment(
    stack: &VoiceChatStack,
    part: Part,
    replicas: i32,
    checksum: Option<&str>,
    spec: PodSpec,
) -> Deployment {
    let annotations =
        checksum.map(|c| BTreeMap::from([(CONFIG_CHECKSUM.to_owned(), c.to_owned())]));
    Deployment {
        metadata: child_meta(stack, part.as_str(), Some(part)),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
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

pub fn chat(stack: &VoiceChatStack, settings: &OperatorSettings, checksum: &str) -> Deployment {
    let chat = &stack.spec.chat;
    let (mut env_vars, volumes, mounts) = secret_inputs(stack, true);
    env_vars.extend(chat.extra_env.iter().cloned());
    service_deployment(
        stack,
        ServicePod {
            part: Part::Chat,
            image: chat
                .image
                .clone()
                .unwrap_or_else(|| settings.chat_image.clone()),
            port: CHAT_PORT,
            config: name(stack, "chat-config"),
            checksum,
            env: env_vars,
            volumes,
            mounts,
            resources: chat
                .resources
                .clone()
                .unwrap_or_else(|| default_resources("100m", "64Mi", "512Mi")),
            replicas: chat.replicas,
            startup: None,
        },
    )
}

pub fn voice(
    stack: &VoiceChatStack,
    settings: &OperatorSettings,
    profile: Resolved,
    checksum: &str,
) -> Deployment {
    let voice = &stack.spec.voice;
    let (mut env_vars, mut volumes, mut mounts) = secret_inputs(stack, false);
    env_vars.extend(voice.extra_env.iter().cloned());
    let models = match &voice.models_pvc {
        Some(claim) => Volume {
            name: "models".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(true),
            }),
            ..Default::default()
        },
        None => scratch_volume("models", "/models").0,
    };
    volumes.push(models);
    mounts.push(VolumeMount {
        name: "models".into(),
        mount_path: "/models".into(),
        read_only: Some(voice.models_pvc.is_some()),
        ..Default::default()
    });
    let (image, profile_settings) = match profile {
        Resolved::Cpu => (
            voice
                .image
                .clone()
                .unwrap_or_else(|| settings.voice_image.clone()),
            &settings.cpu,
        ),
        Resolved::Gpu => (
            voice
                .cuda_image
                .clone()
                .unwrap_or_else(|| settings.voice_cuda_image.clone()),
            &settings.gpu,
        ),
    };
    let mut resources = voice
        .resources
        .clone()
        .unwrap_or_else(|| default_resources("500m", "512Mi", "4Gi"));
    if profile == Resolved::Gpu {
        resources
            .limits
            .get_or_insert_with(BTreeMap::new)
            .entry(settings.gpu_resource.clone())
            .or_insert_with(|| Quantity("1".into()));
    }
    let mut deployment = service_deployment(
        stack,
        ServicePod {
            part: Part::Voice,
            image,
            port: VOICE_PORT,
            config: name(stack, "voice-config"),
            checksum,
            env: env_vars,
            volumes,
            mounts,
            resources,
            replicas: voice.replicas,
            // Loading models can take minutes: up to 10 before liveness
            // applies. `/startupz` passes once loading has finished, even
            // with models missing: such a pod stays unready, not restarted.
            startup: Some(http_probe("/startupz", VOICE_PORT, 5, 120)),
        },
    );
    if let Some(pod) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
    {
        let selector = voice
            .node_selector
            .clone()
            .unwrap_or_else(|| profile_settings.node_selector.clone());
        pod.node_selector = (!selector.is_empty()).then_some(selector);
        let tolerations = voice
            .tolerations
            .clone()
            .unwrap_or_else(|| profile_settings.tolerations.clone());
        pod.tolerations = (!tolerations.is_empty()).then_some(tolerations);
        pod.runtime_class_name = voice
            .runtime_class_name
            .clone()
            .or_else(|| profile_settings.runtime_class_name.clone());
    }
    deployment
}

fn tcp_probe(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    }
}

pub fn redis(stack: &VoiceChatStack, settings: &OperatorSettings) -> Deployment {
    let redis = &stack.spec.redis;
    let data = match &redis.persistence_size {
        Some(_) => Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name(stack, "redis-data"),
                read_only: None,
            }),
            ..Default::default()
        },
        None => scratch_volume("data", "/data").0,
    };
    let container = Container {
        name: "redis".into(),
        image: Some(
            redis
                .image
                .clone()
                .unwrap_or_else(|| settings.redis_image.clone()),
        ),
        args: Some(
            ["--dir", "/data", "--appendonly", "yes", "--save", ""]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("redis".into()),
            container_port: REDIS_PORT,
            ..Default::default()
        }]),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            ..Default::default()
        }]),
        liveness_probe: Some(tcp_probe(REDIS_PORT)),
        readiness_probe: Some(tcp_probe(REDIS_PORT)),
        resources: Some(default_resources("50m", "64Mi", "512Mi")),
        security_context: Some(container_security()),
        ..Default::default()
    };
    let mut redis = deployment(
        stack,
        Part::Redis,
        1,
        None,
        PodSpec {
            containers: vec![container],
            volumes: Some(vec![data]),
            automount_service_account_token: Some(false),
            service_account_name: Some(name(stack, "pods")),
            security_context: Some(pod_security(999)),
            ..Default::default()
        },
    );
    // One Redis at a time on its data: a surge pod would open the same AOF.
    if let Some(spec) = redis.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    redis
}

pub fn redis_pvc(stack: &VoiceChatStack) -> Option<PersistentVolumeClaim> {
    let size = stack.spec.redis.persistence_size.clone()?;
    Some(PersistentVolumeClaim {
        metadata: child_meta(stack, "redis-data", Some(Part::Redis)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn ollama(stack: &VoiceChatStack, settings: &OperatorSettings) -> Deployment {
    let spec = &stack.spec.ollama;
    let (data, data_mount) = scratch_volume("data", "/data");
    let container = Container {
        name: "ollama".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| settings.ollama_image.clone()),
        ),
        env: Some(vec![
            env("HOME", "/data".into()),
            env("OLLAMA_MODELS", "/data/models".into()),
            env("OLLAMA_HOST", format!("0.0.0.0:{OLLAMA_PORT}")),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: OLLAMA_PORT,
            ..Default::default()
        }]),
        volume_mounts: Some(vec![data_mount]),
        readiness_probe: Some(http_probe("/api/version", OLLAMA_PORT, 10, 3)),
        liveness_probe: Some(http_probe("/api/version", OLLAMA_PORT, 20, 3)),
        resources: Some(
            spec.resources
                .clone()
                .unwrap_or_else(|| default_resources("500m", "1Gi", "8Gi")),
        ),
        security_context: Some(container_security()),
        ..Default::default()
    };
    deployment(
        stack,
        Part::Ollama,
        1,
        None,
        PodSpec {
            containers: vec![container],
            volumes: Some(vec![data]),
            automount_service_account_token: Some(false),
            service_account_name: Some(name(stack, "pods")),
            security_context: Some(pod_security(SERVICE_USER)),
            ..Default::default()
        },
    )
}

pub fn service(stack: &VoiceChatStack, part: Part, port: i32, kind: ServiceType) -> Service {
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
            ports: Some(vec![ServicePort {
                name: Some(if part == Part::Redis { "redis" } else { "http" }.into()),
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
