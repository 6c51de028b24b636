//! The optional in-cluster Ollama server the chat service can talk to.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar, VolumeMount};
use voicechat_common::models::PlannedModel;

use super::models::{cache_volume, file_mount};
use super::{OLLAMA_PORT, SERVICE_USER, default_resources, deployment, env, pod_spec};
use crate::build::meta::Part;
use crate::build::pods::{container_security, http_probe, scratch_volume};
use crate::crd::VoiceChatStack;
use crate::models::StackModels;
use crate::settings::OperatorSettings;

/// Before the server starts, an init container makes the stack's LLM an
/// Ollama model from the GGUF in the models cache (`ollama create`, a local
/// copy): the model is there at every start and never pulled.
fn load_model(image: &str, model: &PlannedModel, data_mount: &VolumeMount) -> Option<Container> {
    let file = model.files.first()?;
    let name = model.ollama_name.as_deref()?;
    let gguf = format!("/models/{}", file.path);
    // Names and values are plain words (the catalog checks them).
    let parameters: String = model
        .ollama_parameters
        .iter()
        .map(|(k, v)| format!("PARAMETER {k} {v}\\n"))
        .collect();
    // Ollama's own client uploads the file to a server on loopback.
    let script = format!(
        "/usr/bin/ollama serve & server=$!; i=0; \
         until /usr/bin/ollama list >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 120 ] && exit 1; sleep 0.5; done; \
         printf 'FROM {gguf}\\n{parameters}' > /data/Modelfile && /usr/bin/ollama create '{name}' -f /data/Modelfile; status=$?; \
         kill $server; wait $server; exit $status"
    );
    Some(Container {
        name: "load-model".into(),
        image: Some(image.to_owned()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        env: Some(ollama_env("127.0.0.1")),
        volume_mounts: Some(vec![data_mount.clone(), file_mount(file)]),
        resources: Some(default_resources("100m", "256Mi", "2Gi")),
        security_context: Some(container_security()),
        ..Default::default()
    })
}

fn ollama_env(host: &str) -> Vec<EnvVar> {
    vec![
        env("HOME", "/data".into()),
        env("OLLAMA_MODELS", "/data/models".into()),
        env("OLLAMA_HOST", format!("{host}:{OLLAMA_PORT}")),
    ]
}

pub fn ollama(
    stack: &VoiceChatStack,
    settings: &OperatorSettings,
    models: &StackModels,
) -> Deployment {
    let spec = &stack.spec.ollama;
    let (data, data_mount) = scratch_volume("data", "/data");
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| settings.ollama_image.clone());
    let init = models
        .llm()
        .and_then(|m| load_model(&image, m, &data_mount));
    let container = Container {
        name: "ollama".into(),
        image: Some(image),
        env: Some(ollama_env("0.0.0.0")),
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
    let mut volumes = vec![data];
    if init.is_some() {
        volumes.push(cache_volume(true));
    }
    let mut pod = pod_spec(stack, container, volumes, SERVICE_USER);
    pod.init_containers = init.map(|c| vec![c]);
    deployment(stack, Part::Ollama, Some(1), None, pod)
}
