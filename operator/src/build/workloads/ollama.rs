//! The optional in-cluster Ollama server the chat service can talk to.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, ContainerPort};

use super::{OLLAMA_PORT, SERVICE_USER, default_resources, deployment, env, pod_spec};
use crate::build::meta::Part;
use crate::build::pods::{container_security, http_probe, scratch_volume};
use crate::crd::VoiceChatStack;
use crate::settings::OperatorSettings;

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
        pod_spec(stack, container, vec![data], SERVICE_USER),
    )
}
