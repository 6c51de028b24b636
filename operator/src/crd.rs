//! The `VoiceChatStack` custom resource (`voicechat.dev/v1alpha1`).
//!
//! Every field has a default, so `spec: {}` is a valid, working stack:
//! one chat and one voice replica, a managed Redis, a generated JWT secret,
//! and the speech-to-text profile picked from the cluster's nodes.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "voicechat.dev",
    version = "v1alpha1",
    kind = "VoiceChatStack",
    plural = "voicechatstacks",
    shortname = "vcs",
    namespaced,
    status = "VoiceChatStackStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"STT","type":"string","jsonPath":".status.sttProfile"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(self.spec.voice) || !has(self.spec.voice.engines) || !has(self.spec.voice.engines.stt) || self.spec.voice.sttProfile != 'GPU' || self.spec.voice.engines.stt.exists(e, e == 'whisper')").message("voice.sttProfile GPU needs the whisper engine in voice.engines.stt")
)]
#[serde(rename_all = "camelCase")]
pub struct VoiceChatStackSpec {
    #[serde(default)]
    pub chat: ChatSpec,
    #[serde(default)]
    pub voice: VoiceSpec,
    #[serde(default)]
    pub redis: RedisSpec,
    #[serde(default)]
    pub auth: AuthSpec,
    /// An Ollama server in the cluster for the chat service.
    #[serde(default)]
    pub ollama: OllamaSpec,
    /// The models the stack loads (Piper voices, Whisper and Vosk models,
    /// the Ollama LLM), by catalog name (`voicechat-operator models`) or by
    /// URL. The operator's loader Job fetches them into the namespace's
    /// shared models cache before the voice and Ollama pods start. Each
    /// kind this list does not name gets the catalog's default for the
    /// resolved profile: one English Piper voice, one Whisper model, and
    /// the chat LLM when Ollama is enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub models: Vec<ModelSource>,
    /// How the chat and voice Services are exposed.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Stop reconciling (children are left as they are) while true.
    #[serde(default)]
    pub paused: bool,
}

/// One model: from the catalog (`name`), any file (`url`, `sha256`, and
/// `path`, which says its kind and where the pods see it), or a file in an
/// OCI image or artifact (`image`, pinned by digest, `file` and `path`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.name), has(self.url), has(self.image)].filter(x, x).size() == 1").message("a model has one of name (a catalog model), url or image"))]
#[x_kube(validation = Rule::new("!has(self.url) || (has(self.sha256) && has(self.path))").message("a model given by url needs sha256 and path"))]
#[x_kube(validation = Rule::new("!has(self.image) || has(self.path)").message("a model given by image needs path"))]
#[x_kube(validation = Rule::new("has(self.url) || !has(self.sha256)").message("sha256 goes with url; a catalog model has its own, an image its digest"))]
#[x_kube(validation = Rule::new("has(self.url) || has(self.image) || !has(self.path)").message("path goes with url or image; a catalog model has its own"))]
#[x_kube(validation = Rule::new("has(self.image) || (!has(self.file) && !has(self.pullSecret) && !has(self.plainHttp))").message("file, pullSecret and plainHttp go with image"))]
pub struct ModelSource {
    /// A catalog name, e.g. `piper/en_US-joe-medium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "catalog_name_schema")]
    pub name: Option<String>,
    /// An http(s) URL of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^/\s]+(/\S*)?$"), length(max = 2048))]
    pub url: Option<String>,
    /// Its SHA-256, 64 lower-case hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
    /// An OCI image or artifact holding the file, pinned by digest:
    /// `<registry>/<repository>@sha256:<64 hex digits>`. The loader pulls
    /// it from the registry itself (any runtime, no image volume needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$"),
        length(max = 512)
    )]
    pub image: Option<String>,
    /// The file in the image: an artifact layer's title (`oras push`), or
    /// its path in the image's filesystem (`/models/ggml-small.bin`).
    /// Default: the file name of `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/?[^\s]+$"), length(max = 1024))]
    pub file: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret in the stack's namespace
    /// with the registry's credentials (mounted in the loader Job only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(max = 253)
    )]
    pub pull_secret: Option<String>,
    /// The registry speaks plain HTTP (an in-cluster or lab registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_http: Option<bool>,
    /// `piper/<file>`, `whisper/<file>` or `llm/<file>.gguf`: the kind, and
    /// the file's name under the pods' `/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(piper|whisper|llm)/[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$"))]
    pub path: Option<String>,
}

/// The catalog's names as the schema's enum: an unknown name is refused
/// by the API server, naming the field and the known names.
fn catalog_name_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names = voicechat_common::models::catalog().names();
    schemars::json_schema!({"type": "string", "enum": names})
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// A key of a Secret in the stack's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatSpec {
    /// Defaults to the operator's configured chat image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    #[serde(default)]
    pub llm: LlmSpec,
    #[serde(default)]
    pub history: HistorySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables, after the operator's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_env: Vec<EnvVar>,
    /// A HorizontalPodAutoscaler for the chat pods (`replicas` is then
    /// the autoscaler's to set). The per-pod metric is
    /// `chat_ws_connections_active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

/// Autoscaling of a part: CPU by default; a per-pod metric the part
/// exports when the cluster serves it through a metrics adapter
/// (`custom.metrics.k8s.io`, e.g. the Prometheus Adapter; docs/operator.md).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not be more than maxReplicas"))]
pub struct AutoscalingSpec {
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU use to keep, in percent of the pods' CPU request.
    #[serde(default = "seventy")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
    /// Average of the part's per-pod metric to keep (voice: calls waiting
    /// for inference; chat: open WebSockets); unset: CPU only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub target_per_pod: Option<i32>,
}

fn seventy() -> i32 {
    70
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum LlmBackend {
    #[default]
    Ollama,
    OpenAI,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmSpec {
    #[serde(default)]
    pub backend: LlmBackend,
    /// LLM server URL; defaults to the in-cluster Ollama when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// API key for OpenAI-compatible servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<SecretKeyRef>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistorySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_messages: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60))]
    pub ttl_seconds: Option<i64>,
}

/// Which hardware speech-to-text runs on.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SttProfile {
    /// GPU when a schedulable node offers one, else CPU.
    #[default]
    Auto,
    #[serde(rename = "CPU")]
    Cpu,
    #[serde(rename = "GPU")]
    Gpu,
}

impl SttProfile {
    /// The profile the user asked for; `None` for `Auto`, which
    /// [`crate::profile::resolve`] picks from the cluster's nodes.
    pub fn explicit(self) -> Option<voicechat_common::stt_profile::SttProfile> {
        use voicechat_common::stt_profile;
        match self {
            Self::Auto => None,
            Self::Cpu => Some(stt_profile::SttProfile::Cpu),
            Self::Gpu => Some(stt_profile::SttProfile::Gpu),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoiceSpec {
    /// Defaults to the operator's configured CPU voice image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image used by the GPU profile; defaults to the operator's CUDA image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_image: Option<String>,
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    #[serde(default)]
    pub stt_profile: SttProfile,
    /// Which engines the voice service loads; all of them when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engines: Option<VoiceEngines>,
    /// Whisper model file name (e.g. `ggml-base.en.bin`); defaults per profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whisper_model: Option<String>,
    /// Where models come from: an existing PersistentVolumeClaim holding
    /// `piper/`, `whisper/`, `vosk/` (mounted read-only at /models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_pvc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Overrides of the profile's scheduling settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_env: Vec<EnvVar>,
    /// Which installed voice each of OpenAI's voice names speaks with on
    /// `/v1/audio/speech` (`alloy: en_US-joe-medium`); a name left out
    /// speaks with the default voice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "openai_voices_schema")]
    pub openai_voices: BTreeMap<String, String>,
    /// Home Assistant's Wyoming protocol on the voice service (TCP 10300).
    #[serde(default, skip_serializing_if = "WyomingSpec::is_default")]
    pub wyoming: WyomingSpec,
    /// A HorizontalPodAutoscaler for the voice pods (`replicas` is then
    /// the autoscaler's to set). The per-pod metric is
    /// `voice_inference_queue_depth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

/// Wyoming has no authentication: whoever reaches the port can use the
/// engines. So it is off unless enabled, and then a NetworkPolicy admits
/// only the peers listed (by default, pods of the stack's namespace).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WyomingSpec {
    /// Serve Wyoming on port 10300 (named `wyoming` on the voice Service).
    #[serde(default)]
    pub enabled: bool,
    /// Who may connect, as NetworkPolicy peers (namespaceSelector,
    /// podSelector, ipBlock); empty: every pod in the stack's namespace.
    /// Enforced where the cluster's network plugin enforces policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allow_from: Vec<NetworkPolicyPeer>,
}

impl WyomingSpec {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// A map whose keys must be OpenAI's voice names: the API server refuses
/// another key, listing the names.
fn openai_voices_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    use voicechat_common::openai_voices::{OPENAI_VOICES, VOICE_NAME_PATTERN};
    let names = OPENAI_VOICES
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string", "pattern": VOICE_NAME_PATTERN},
        "maxProperties": OPENAI_VOICES.len(),
        "x-kubernetes-validations": [{
            "rule": format!("self.all(k, k in [{names}])"),
            "message": format!("keys are OpenAI's voice names: {}", OPENAI_VOICES.join(", ")),
        }],
    })
}

/// Engines of the voice service, each list in order of preference is fixed
/// by the service (Piper, espeak-ng, Google; Whisper, Vosk, Google).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct VoiceEngines {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<Vec<TtsEngine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt: Option<Vec<SttEngine>>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TtsEngine {
    Piper,
    EspeakNg,
    Google,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SttEngine {
    Whisper,
    Vosk,
    Google,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RedisMode {
    /// The operator runs Redis for the stack.
    #[default]
    Managed,
    /// The stack uses the Redis whose URL is in `urlSecret`.
    External,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'External' || has(self.urlSecret)").message("redis.mode External needs redis.urlSecret"))]
pub struct RedisSpec {
    #[serde(default)]
    pub mode: RedisMode,
    /// External mode: the Secret key holding `redis://...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret: Option<SecretKeyRef>,
    /// Managed mode: keep data on a PersistentVolumeClaim of this size (e.g. `1Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Use this Secret key as the HS256 secret instead of generating one.
    /// Immutable: changing it would invalidate every issued token at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("auth.jwtSecret is immutable; create a new stack to change it"))]
    pub jwt_secret: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OllamaSpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn one() -> i32 {
    1
}

// Written out (not derived) so that they agree with the serde field
// defaults: the CRD schema's defaults for an omitted `chat`/`voice` come
// from these, and the API server applies them.
impl Default for ChatSpec {
    fn default() -> Self {
        Self {
            image: None,
            replicas: one(),
            llm: LlmSpec::default(),
            history: HistorySpec::default(),
            resources: None,
            extra_env: Vec::new(),
            autoscaling: None,
        }
    }
}

impl Default for VoiceSpec {
    fn default() -> Self {
        Self {
            image: None,
            cuda_image: None,
            replicas: one(),
            stt_profile: SttProfile::default(),
            engines: None,
            whisper_model: None,
            models_pvc: None,
            resources: None,
            node_selector: None,
            tolerations: None,
            runtime_class_name: None,
            extra_env: Vec::new(),
            openai_voices: BTreeMap::new(),
            wyoming: WyomingSpec::default(),
            autoscaling: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_spec_means_the_same_as_the_schema_defaults() {
        let from_empty: VoiceChatStackSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(from_empty, VoiceChatStackSpec::default());
        assert_eq!(from_empty.chat.replicas, 1);
        assert_eq!(from_empty.voice.replicas, 1);
        let partial: VoiceChatStackSpec =
            serde_json::from_str(r#"{"voice": {"sttProfile": "GPU"}}"#).unwrap();
        assert_eq!(partial.voice.replicas, 1);
        assert_eq!(partial.voice.stt_profile, SttProfile::Gpu);
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoiceChatStackStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and one per part: `SecretReady`, `RedisReady`, `ChatReady`, `VoiceReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The resolved profile: `CPU` or `GPU`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_profile_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Each model of the stack and where its download stands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelStatus>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ModelPhase {
    Pending,
    Downloading,
    Ready,
    Failed,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    pub name: String,
    pub phase: ModelPhase,
    /// Downloading: bytes so far and in all, from the loader's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<i64>,
    /// Failed: `DigestMismatch`, `NotFound`, `NoSpace`, `Timeout`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub chat: String,
    pub voice: String,
}
