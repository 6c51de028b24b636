//! The chat service: its ConfigMap (the LLM it talks to, history limits)
//! and its Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;

use super::service_pod::{ServicePod, common_config, secret_inputs, service_deployment};
use super::{CHAT_PORT, OLLAMA_PORT, VOICE_PORT, default_resources};
use crate::build::meta::{Part, child_meta, name};
use crate::crd::{LlmBackend, VoiceChatStack};
use crate::models::StackModels;
use crate::settings::OperatorSettings;

pub fn chat_config(stack: &VoiceChatStack, models: &StackModels) -> ConfigMap {
    let spec = &stack.spec;
    let llm = &spec.chat.llm;
    let mut data = BTreeMap::new();
    common_config(stack, &mut data);
    data.insert("CHAT_PORT".into(), CHAT_PORT.to_string());
    // The Realtime API (/v1/realtime) hears and speaks through the stack's
    // voice Service.
    data.insert(
        "VOICE_URL".into(),
        format!("http://{}:{VOICE_PORT}", name(stack, Part::Voice.as_str())),
    );
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
    // The stack's own Ollama serves the LLM its loader fetched.
    let loaded = spec
        .ollama
        .enabled
        .then(|| models.llm().and_then(|m| m.ollama_name.clone()))
        .flatten();
    if let Some(model) = llm.model.clone().or(loaded) {
        data.insert("LLM_MODEL".into(), model);
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
            replicas: chat.autoscaling.is_none().then_some(chat.replicas),
            startup: None,
        },
    )
}
