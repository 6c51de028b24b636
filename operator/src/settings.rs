//! The operator's own configuration: the images and the GPU/CPU profiles
//! (as KubeAI keeps resource profiles in operator config, not in each
//! resource). Read from the environment; the Helm chart sets it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use voicechat_common::config::ConfigError;
use voicechat_common::models::{ModelKind, catalog};
use voicechat_common::stt_profile::SttProfile;

#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSettings {
    /// The Whisper catalog model a stack of this profile gets by default.
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
    pub models: ModelsSettings,
    /// The namespaces whose stacks the operator reconciles
    /// (`WATCH_NAMESPACES`); empty: every namespace.
    pub watch_namespaces: Vec<String>,
    /// Stacks reconciled at once (`RECONCILE_CONCURRENCY`): bounds the
    /// requests in flight and the memory a mass change takes.
    pub reconcile_concurrency: u16,
}

/// The default of [`OperatorSettings::reconcile_concurrency`].
pub const DEFAULT_RECONCILE_CONCURRENCY: u16 = 8;

/// The models cache and where catalog models are downloaded from.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsSettings {
    /// Replaces the scheme and host of every catalog URL (air-gapped
    /// clusters): the mirror holds the upstream paths.
    pub mirror: Option<String>,
    /// StorageClass of the cache PVC; the cluster's default when unset.
    pub storage_class: Option<String>,
    pub cache_size: String,
    /// `ReadWriteOnce` (one node) or `ReadWriteMany` (voice pods on
    /// several nodes).
    pub access_mode: String,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        Self {
            mirror: None,
            storage_class: None,
            cache_size: "20Gi".into(),
            access_mode: "ReadWriteOnce".into(),
        }
    }
}

impl Default for OperatorSettings {
    fn default() -> Self {
        let version = env!("CARGO_PKG_VERSION");
        Self {
            chat_image: format!("ghcr.io/voicechatstack/chat:{version}"),
            voice_image: format!("ghcr.io/voicechatstack/voice:{version}"),
            voice_cuda_image: format!("ghcr.io/voicechatstack/voice-cuda:{version}"),
            // The Redis and Ollama versions the project tests with (Debian
            // bookworm's redis-server; scripts/fetch-llm.sh's Ollama).
            redis_image: "redis:7.0.15-bookworm".into(),
            ollama_image: "ollama/ollama:0.17.4".into(),
            gpu_resource: "nvidia.com/gpu".into(),
            cpu: ProfileSettings {
                whisper_model: default_whisper(SttProfile::Cpu),
                node_selector: BTreeMap::new(),
                tolerations: Vec::new(),
                runtime_class_name: None,
            },
            gpu: ProfileSettings {
                whisper_model: default_whisper(SttProfile::Gpu),
                node_selector: BTreeMap::new(),
                tolerations: vec![Toleration {
                    key: Some("nvidia.com/gpu".into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoSchedule".into()),
                    ..Default::default()
                }],
                runtime_class_name: None,
            },
            models: ModelsSettings::default(),
            watch_namespaces: Vec::new(),
            reconcile_concurrency: DEFAULT_RECONCILE_CONCURRENCY,
        }
    }
}

/// The catalog's default Whisper model of a profile.
fn default_whisper(profile: SttProfile) -> String {
    catalog()
        .default_for(ModelKind::Whisper, profile)
        .map(|m| m.name.clone())
        // The catalog's own test checks that every profile has one.
        .unwrap_or_default()
}

impl OperatorSettings {
    /// Defaults, overridden from the process environment (see
    /// [`OperatorSettings::from_lookup`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Defaults, overridden by `MODELS_MIRROR`, `MODELS_STORAGE_CLASS`,
    /// `MODELS_CACHE_SIZE`, `MODELS_CACHE_ACCESS_MODE`, `CHAT_IMAGE`, `VOICE_IMAGE`,
    /// `VOICE_CUDA_IMAGE`, `REDIS_IMAGE`, `OLLAMA_IMAGE`, `GPU_RESOURCE`, and
    /// per profile (`CPU_`/`GPU_` prefix): `*_WHISPER_MODEL`,
    /// `*_NODE_SELECTOR` (`key=value,...`), `*_TOLERATIONS` (a JSON array
    /// of Kubernetes tolerations; replaces the defaults), `*_RUNTIME_CLASS`.
    /// `lookup` gives a variable's value by name; blank values count as
    /// unset. Tests pass a map, so they never touch the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&lookup);
        let mut s = Self::default();
        let set = |target: &mut String, name: &str| {
            if let Some(v) = vars.get(name) {
                *target = v;
            }
        };
        set(&mut s.chat_image, "CHAT_IMAGE");
        set(&mut s.voice_image, "VOICE_IMAGE");
        set(&mut s.voice_cuda_image, "VOICE_CUDA_IMAGE");
        set(&mut s.redis_image, "REDIS_IMAGE");
        set(&mut s.ollama_image, "OLLAMA_IMAGE");
        set(&mut s.gpu_resource, "GPU_RESOURCE");
        profile_from_vars(&vars, "CPU", &mut s.cpu)?;
        profile_from_vars(&vars, "GPU", &mut s.gpu)?;
        models_from_vars(&vars, &mut s.models)?;
        if let Some(list) = vars.get("WATCH_NAMESPACES") {
            s.watch_namespaces = namespaces(&list)?;
        }
        if let Some(n) = vars.get("RECONCILE_CONCURRENCY") {
            s.reconcile_concurrency = n
                .parse::<u16>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    name: "RECONCILE_CONCURRENCY".into(),
                    message: format!("{n:?} is not a number from 1 to 256"),
                })?;
        }
        Ok(s)
    }

    /// The settings of a resolved speech-to-text profile.
    pub fn profile(&self, profile: SttProfile) -> &ProfileSettings {
        match profile {
            SttProfile::Cpu => &self.cpu,
            SttProfile::Gpu => &self.gpu,
        }
    }
}

/// `a,b`: namespace names (DNS labels), each once.
fn namespaces(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for ns in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let label = (1..=63).contains(&ns.len())
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !label {
            return Err(ConfigError::Invalid {
                name: "WATCH_NAMESPACES".into(),
                message: format!("{ns:?} is not a namespace name"),
            });
        }
        if !out.iter().any(|o| o == ns) {
            out.push(ns.to_owned());
        }
    }
    Ok(out)
}

/// Variables by name, trimmed, blank ones as unset (as
/// [`voicechat_common::config::env_string`] reads the process env).
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// One profile's settings from `{prefix}_WHISPER_MODEL`,
/// `{prefix}_NODE_SELECTOR`, `{prefix}_TOLERATIONS` and
/// `{prefix}_RUNTIME_CLASS`.
fn profile_from_vars(
    vars: &Vars<'_>,
    prefix: &str,
    profile: &mut ProfileSettings,
) -> Result<(), ConfigError> {
    let name = format!("{prefix}_WHISPER_MODEL");
    if let Some(model) = vars.get(&name) {
        let found = catalog().get(&model).map_err(|e| ConfigError::Invalid {
            name: name.clone(),
            message: e.to_string(),
        })?;
        if found.kind() != Some(ModelKind::Whisper) {
            return Err(ConfigError::Invalid {
                name,
                message: format!("{model} is not a Whisper model"),
            });
        }
        profile.whisper_model = model;
    }
    let name = format!("{prefix}_NODE_SELECTOR");
    if let Some(selector) = vars.get(&name) {
        for pair in selector.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| ConfigError::Invalid {
                name: name.clone(),
                message: format!("{pair:?} is not key=value"),
            })?;
            profile
                .node_selector
                .insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    let name = format!("{prefix}_TOLERATIONS");
    if let Some(json) = vars.get(&name) {
        profile.tolerations = serde_json::from_str(&json).map_err(|e| ConfigError::Invalid {
            name,
            message: format!("not a JSON array of tolerations: {e}"),
        })?;
    }
    if let Some(class) = vars.get(&format!("{prefix}_RUNTIME_CLASS")) {
        profile.runtime_class_name = Some(class);
    }
    Ok(())
}

fn models_from_vars(vars: &Vars<'_>, models: &mut ModelsSettings) -> Result<(), ConfigError> {
    if let Some(mirror) = vars.get("MODELS_MIRROR") {
        voicechat_common::models::mirrored_url("https://upstream/x", &mirror).map_err(
            |message| ConfigError::Invalid {
                name: "MODELS_MIRROR".into(),
                message,
            },
        )?;
        models.mirror = Some(mirror);
    }
    models.storage_class = vars.get("MODELS_STORAGE_CLASS");
    if let Some(size) = vars.get("MODELS_CACHE_SIZE") {
        models.cache_size = size;
    }
    if let Some(mode) = vars.get("MODELS_CACHE_ACCESS_MODE") {
        if !["ReadWriteOnce", "ReadWriteMany"].contains(&mode.as_str()) {
            return Err(ConfigError::Invalid {
                name: "MODELS_CACHE_ACCESS_MODE".into(),
                message: format!(
                    "{mode:?} is not ReadWriteOnce or ReadWriteMany (the loader and the voice pods share the cache)"
                ),
            });
        }
        models.access_mode = mode;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from exactly these variables.
    fn from_vars(vars: &[(&str, &str)]) -> Result<OperatorSettings, ConfigError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OperatorSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn reconcile_concurrency_is_bounded() {
        assert_eq!(
            from_vars(&[]).unwrap().reconcile_concurrency,
            DEFAULT_RECONCILE_CONCURRENCY
        );
        let s = from_vars(&[("RECONCILE_CONCURRENCY", "32")]).unwrap();
        assert_eq!(s.reconcile_concurrency, 32);
        for bad in ["0", "257", "many"] {
            let err = from_vars(&[("RECONCILE_CONCURRENCY", bad)]).unwrap_err();
            assert!(err.to_string().contains("RECONCILE_CONCURRENCY"), "{err}");
        }
    }

    #[test]
    fn watch_namespaces_are_names_each_once() {
        let s = from_vars(&[("WATCH_NAMESPACES", " apps, team-b ,apps,")]).unwrap();
        assert_eq!(s.watch_namespaces, ["apps", "team-b"]);
        assert!(from_vars(&[]).unwrap().watch_namespaces.is_empty());
        for bad in ["Apps", "-a", "a_b", "a b", &"x".repeat(64)] {
            let err = from_vars(&[("WATCH_NAMESPACES", bad)]).unwrap_err();
            assert!(err.to_string().contains("WATCH_NAMESPACES"), "{bad}: {err}");
        }
    }

    #[test]
    fn environment_overrides_defaults() {
        let mut vars = vec![
            ("GPU_RESOURCE", "amd.com/gpu"),
            ("GPU_NODE_SELECTOR", "accelerator=mi300, pool = gpu"),
        ];
        let s = from_vars(&vars).unwrap();
        assert_eq!(s.gpu_resource, "amd.com/gpu");
        assert_eq!(s.gpu.node_selector["accelerator"], "mi300");
        assert_eq!(s.gpu.node_selector["pool"], "gpu");
        assert_eq!(s.chat_image, OperatorSettings::default().chat_image);
        assert_eq!(
            s.gpu.tolerations,
            OperatorSettings::default().gpu.tolerations,
            "defaults kept when not overridden"
        );
        vars.extend([
            (
                "CPU_TOLERATIONS",
                r#"[{"key":"pool","operator":"Equal","value":"voice","effect":"NoSchedule"}]"#,
            ),
            ("CPU_NODE_SELECTOR", "pool=voice"),
            ("CPU_RUNTIME_CLASS", "gvisor"),
            ("CPU_WHISPER_MODEL", "whisper/small.en"),
        ]);
        let s = from_vars(&vars).unwrap();
        assert_eq!(s.cpu.tolerations[0].value.as_deref(), Some("voice"));
        assert_eq!(s.cpu.node_selector["pool"], "voice");
        assert_eq!(s.cpu.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(s.cpu.whisper_model, "whisper/small.en");
        assert_eq!(
            s.gpu.whisper_model,
            OperatorSettings::default().gpu.whisper_model
        );
        let err = from_vars(&[("CPU_TOLERATIONS", "{not json")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CPU_TOLERATIONS"), "{err}");
        assert!(
            from_vars(&[("CPU_TOLERATIONS", "[]"), ("GPU_NODE_SELECTOR", "nonsense")]).is_err()
        );
    }

    #[test]
    fn models_settings_are_checked() {
        let s = from_vars(&[
            ("MODELS_MIRROR", "http://10.0.0.1:8080"),
            ("MODELS_STORAGE_CLASS", "fast"),
            ("MODELS_CACHE_ACCESS_MODE", "ReadWriteMany"),
        ])
        .unwrap();
        assert_eq!(s.models.mirror.as_deref(), Some("http://10.0.0.1:8080"));
        assert_eq!(s.models.storage_class.as_deref(), Some("fast"));
        assert_eq!(s.models.access_mode, "ReadWriteMany");
        assert_eq!(s.models.cache_size, "20Gi");
        for (name, value) in [
            ("MODELS_MIRROR", "10.0.0.1:8080"),
            ("MODELS_CACHE_ACCESS_MODE", "ReadOnlyMany"),
            ("MODELS_CACHE_ACCESS_MODE", "ReadWriteOncePod"),
            ("CPU_WHISPER_MODEL", "ggml-small.en.bin"),
            ("GPU_WHISPER_MODEL", "piper/en_US-joe-medium"),
        ] {
            let err = from_vars(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn blank_values_count_as_unset() {
        let s = from_vars(&[("CHAT_IMAGE", "  "), ("REDIS_IMAGE", " redis:8 ")]).unwrap();
        assert_eq!(s.chat_image, OperatorSettings::default().chat_image);
        assert_eq!(s.redis_image, "redis:8");
    }

    #[test]
    fn each_profile_defaults_to_its_own_whisper_model() {
        let s = OperatorSettings::default();
        assert_eq!(
            s.profile(SttProfile::Cpu).whisper_model,
            "whisper/base.en-q8_0"
        );
        assert_eq!(
            s.profile(SttProfile::Gpu).whisper_model,
            "whisper/large-v3-turbo"
        );
    }
}
