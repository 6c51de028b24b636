//! The catalog of known models: `models-catalog.json` beside this crate,
//! compiled in. Each entry has its upstream URL, size and the digest its
//! publisher gives, and says for which speech-to-text profiles it is a
//! default. `voicechat-operator models` prints it; docs/models.md
//! documents it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::plan::{PlannedFile, PlannedModel, Unpack, mirrored_url, valid_cache_path};
use crate::stt_profile::SttProfile;

const CATALOG_JSON: &str = include_str!("../../models-catalog.json");

/// What a model is for; also the first part of its name and of its files'
/// paths in the cache (`piper/…`, `whisper/…`, `vosk/…`, `llm/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Piper,
    Whisper,
    Vosk,
    Llm,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [Self::Piper, Self::Whisper, Self::Vosk, Self::Llm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Piper => "piper",
            Self::Whisper => "whisper",
            Self::Vosk => "vosk",
            Self::Llm => "llm",
        }
    }

    /// The kind a name or cache path starts with (`piper/...`).
    pub fn of_path(path: &str) -> Option<Self> {
        let first = path.split('/').next()?;
        Self::ALL.into_iter().find(|k| k.as_str() == first)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelFile {
    /// Where the file lives in the models cache, e.g. `piper/en_US-joe-medium.onnx`.
    pub path: String,
    pub url: String,
    /// Bytes, as the publisher lists them.
    pub size: u64,
    pub digest: Digest,
    /// The download is an archive, unpacked into `path` (a folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<Unpack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogModel {
    /// `<kind>/<name>`, e.g. `piper/en_US-joe-medium`.
    pub name: String,
    pub description: String,
    pub license: String,
    /// Profiles for which this model is the default of its kind.
    #[serde(default)]
    pub default_for: Vec<SttProfileLabel>,
    /// LLMs: the name the chat service asks Ollama for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama_name: Option<String>,
    /// LLMs: Modelfile `PARAMETER`s. A tiny model samples nonsense at
    /// Ollama's default temperature (1 answer in 4 to "What is the capital
    /// of France?" here), and answers "Paris" every time at 0.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ollama_parameters: BTreeMap<String, String>,
    pub files: Vec<ModelFile>,
}

/// `CPU` or `GPU`, as the CRD and the status write profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SttProfileLabel {
    #[serde(rename = "CPU")]
    Cpu,
    #[serde(rename = "GPU")]
    Gpu,
}

impl SttProfileLabel {
    fn matches(self, profile: SttProfile) -> bool {
        matches!(
            (self, profile),
            (Self::Cpu, SttProfile::Cpu) | (Self::Gpu, SttProfile::Gpu)
        )
    }
}

impl CatalogModel {
    pub fn kind(&self) -> Option<ModelKind> {
        ModelKind::of_path(&self.name)
    }

    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// This model as the loader fetches it, every URL through `mirror`
    /// when one is set.
    pub fn plan(&self, mirror: Option<&str>) -> Result<PlannedModel, CatalogError> {
        let kind = self
            .kind()
            .ok_or_else(|| CatalogError::BadName(self.name.clone()))?;
        let files = self
            .files
            .iter()
            .map(|f| {
                let url = match mirror {
                    Some(m) => mirrored_url(&f.url, m).map_err(|reason| CatalogError::BadUrl {
                        model: self.name.clone(),
                        reason,
                    })?,
                    None => f.url.clone(),
                };
                Ok(PlannedFile {
                    path: f.path.clone(),
                    url,
                    size: Some(f.size),
                    digest: f.digest.clone(),
                    unpack: f.unpack,
                    oci: None,
                })
            })
            .collect::<Result<_, CatalogError>>()?;
        Ok(PlannedModel {
            name: self.name.clone(),
            kind,
            ollama_name: self.ollama_name.clone(),
            ollama_parameters: self.ollama_parameters.clone(),
            files,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub models: Vec<CatalogModel>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("unknown model {name:?}; known: {known}")]
    Unknown { name: String, known: String },
    #[error("model name {0:?} must start with piper/, whisper/, vosk/ or llm/")]
    BadName(String),
    #[error("model {model}: {reason}")]
    BadUrl { model: String, reason: String },
    #[error("model {model}: file path {path:?} is not a plain path under {kind}/")]
    BadPath {
        model: String,
        path: String,
        kind: &'static str,
    },
    #[error("model {0} is listed twice")]
    Duplicate(String),
    #[error("model {model}: Ollama parameter {key:?} = {value:?} is not a plain name and value")]
    BadParameter {
        model: String,
        key: String,
        value: String,
    },
    #[error("no {kind} model is the default for {profile}")]
    NoDefault {
        kind: &'static str,
        profile: &'static str,
    },
}

/// The compiled-in catalog.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // Build-time data, checked by `the_catalog_is_complete_and_consistent`.
        let catalog: Catalog =
            serde_json::from_str(CATALOG_JSON).expect("models-catalog.json is valid");
        catalog
    })
}

impl Catalog {
    pub fn get(&self, name: &str) -> Result<&CatalogModel, CatalogError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| CatalogError::Unknown {
                name: name.to_owned(),
                known: self.names().join(", "),
            })
    }

    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }

    /// The default model of `kind` for `profile`.
    pub fn default_for(
        &self,
        kind: ModelKind,
        profile: SttProfile,
    ) -> Result<&CatalogModel, CatalogError> {
        self.models
            .iter()
            .find(|m| m.kind() == Some(kind) && m.default_for.iter().any(|p| p.matches(profile)))
            .ok_or(CatalogError::NoDefault {
                kind: kind.as_str(),
                profile: profile.label(),
            })
    }

    /// Every rule an entry must follow: a kind in its name, unique names,
    /// files under the kind's folder, http(s) URLs, one default per kind
    /// and profile (for the kinds a stack gets by default).
    pub fn check(&self) -> Result<(), CatalogError> {
        let mut seen = std::collections::BTreeSet::new();
        for model in &self.models {
            let kind = model
                .kind()
                .ok_or_else(|| CatalogError::BadName(model.name.clone()))?;
            if !seen.insert(model.name.as_str()) {
                return Err(CatalogError::Duplicate(model.name.clone()));
            }
            // They go into a shell command line (the Ollama init container).
            if let Some(name) = &model.ollama_name
                && (name.starts_with('-')
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b)))
            {
                return Err(CatalogError::BadParameter {
                    model: model.name.clone(),
                    key: "ollamaName".into(),
                    value: name.clone(),
                });
            }
            for (key, value) in &model.ollama_parameters {
                let plain = |s: &str, extra: &[u8]| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
                };
                if !plain(key, b"_") || !plain(value, b"._-") {
                    return Err(CatalogError::BadParameter {
                        model: model.name.clone(),
                        key: key.clone(),
                        value: value.clone(),
                    });
                }
            }
            for file in &model.files {
                if !valid_cache_path(&file.path) || ModelKind::of_path(&file.path) != Some(kind) {
                    return Err(CatalogError::BadPath {
                        model: model.name.clone(),
                        path: file.path.clone(),
                        kind: kind.as_str(),
                    });
                }
                mirrored_url(&file.url, "http://mirror.invalid").map_err(|reason| {
                    CatalogError::BadUrl {
                        model: model.name.clone(),
                        reason,
                    }
                })?;
            }
        }
        for kind in [ModelKind::Piper, ModelKind::Whisper, ModelKind::Llm] {
            for profile in [SttProfile::Cpu, SttProfile::Gpu] {
                self.default_for(kind, profile)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_complete_and_consistent() {
        let catalog = catalog();
        catalog.check().unwrap();
        for model in &catalog.models {
            assert!(!model.files.is_empty(), "{} has no file", model.name);
            for file in &model.files {
                assert!(file.size > 0, "{}: {} has no size", model.name, file.path);
                assert!(
                    file.url.starts_with("https://"),
                    "{}: upstream URLs are https",
                    model.name
                );
            }
            if model.kind() == Some(ModelKind::Llm) {
                assert!(
                    model.ollama_name.is_some(),
                    "{} has no Ollama name",
                    model.name
                );
            }
            assert!(!model.description.is_empty() && !model.license.is_empty());
        }
        let cpu = catalog
            .default_for(ModelKind::Whisper, SttProfile::Cpu)
            .unwrap();
        let gpu = catalog
            .default_for(ModelKind::Whisper, SttProfile::Gpu)
            .unwrap();
        assert!(
            cpu.total_size() * 4 < gpu.total_size(),
            "the GPU gets a larger Whisper than the CPU ({} vs {})",
            gpu.name,
            cpu.name
        );
    }

    #[test]
    fn an_unknown_name_is_refused_listing_the_known_ones() {
        let err = catalog().get("piper/nope").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"piper/nope\""), "{message}");
        assert!(message.contains("piper/en_US-joe-medium"), "{message}");
    }

    #[test]
    fn a_mirror_replaces_the_host_and_keeps_the_path() {
        let model = catalog().get("piper/en_US-joe-medium").unwrap();
        let planned = model.plan(Some("http://10.0.0.1:8080/models/")).unwrap();
        let upstream = &model.files[0].url;
        let path = upstream
            .split_once("://")
            .unwrap()
            .1
            .split_once('/')
            .unwrap()
            .1;
        assert_eq!(
            planned.files[0].url,
            format!("http://10.0.0.1:8080/models/{path}")
        );
        assert_eq!(planned.files[0].digest, model.files[0].digest);
        assert_eq!(model.plan(None).unwrap().files[0].url, *upstream);
    }

    #[test]
    fn a_catalog_breaking_a_rule_is_refused() {
        let mut broken = catalog().clone();
        broken.models[0].files[0].path = "whisper/../../etc/passwd".into();
        assert!(matches!(broken.check(), Err(CatalogError::BadPath { .. })));
        let mut twice = catalog().clone();
        twice.models.push(twice.models[0].clone());
        assert!(matches!(twice.check(), Err(CatalogError::Duplicate(_))));
        let mut bad_parameter = catalog().clone();
        bad_parameter.models[0]
            .ollama_parameters
            .insert("stop".into(), "'; rm -rf /".into());
        assert!(matches!(
            bad_parameter.check(),
            Err(CatalogError::BadParameter { .. })
        ));
        let mut no_default = catalog().clone();
        no_default
            .models
            .retain(|m| m.kind() != Some(ModelKind::Whisper));
        assert!(matches!(
            no_default.check(),
            Err(CatalogError::NoDefault {
                kind: "whisper",
                ..
            })
        ));
    }
}
