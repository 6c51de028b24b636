//! The operator's own configuration: the images and the GPU/CPU profiles
//! (as KubeAI keeps resource profiles in operator config, not in each
//! resource). Read from the environment; the Helm chart sets it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;

#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSettings {
    pub whisper_model: String,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub runtime_class_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSettings {
    pub chat_image: String,
    pub voice_image: String,
    pub voice_cuda_image: String,
    pub redis_image: String,
    pub ollama_image: String,
    /// Extended resource that marks GPU nodes and is requested by GPU pods.
    pub gpu_resource: String,
    pub cpu: ProfileSettings,
    pub gpu: ProfileSettings,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        let version = env!("CARGO_PKG_VERSION");
        Self {
            chat_image: format!("ghcr.io/voicechatstack/chat:{version}"),
            voice_image: format!("ghcr.io/voicechatstack/voice:{version}"),
            voice_cuda_image: format!("ghcr.io/voicechatstack/voice-cuda:{version}"),
            redis_image: "redis:7.2-alpine".into(),
            ollama_image: "ollama/ollama:0.12.6".into(),
            gpu_resource: "nvidia.com/gpu".into(),
            cpu: ProfileSettings {
                whisper_model: "ggml-base.en.bin".into(),
                node_selector: BTreeMap::new(),
                tolerations: Vec::new(),
                runtime_class_name: None,
            },
            gpu: ProfileSettings {
                whisper_model: "ggml-large-v3-turbo.bin".into(),
                node_selector: BTreeMap::new(),
                tolerations: vec![Toleration {
                    key: Some("nvidia.com/gpu".into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoSchedule".into()),
                    ..Default::default()
                }],
                runtime_class_name: None,
            },
        }
    }
}
