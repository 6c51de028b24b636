//! A stack's models, resolved to files (pure): the `models` list of its
//! spec, and for each kind the stack needs but the list does not name,
//! the catalog's default for the resolved profile. The hash of the result
//! names the loader Job, so a changed list runs a new one.

use sha2::{Digest as _, Sha256};
use voicechat_common::models::{
    ModelKind, PlannedFile, PlannedModel, catalog, pull_secret_auth_file,
};
use voicechat_common::stt_profile::SttProfile;

use crate::build::BuildError;
use crate::crd::{SttEngine, TtsEngine, VoiceChatStack};
use crate::settings::OperatorSettings;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackModels {
    pub models: Vec<PlannedModel>,
    /// 10 hex digits of the plan's SHA-256.
    pub hash: String,
}

impl StackModels {
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn of_kind(&self, kind: ModelKind) -> impl Iterator<Item = &PlannedModel> {
        self.models.iter().filter(move |m| m.kind == kind)
    }

    /// Files the voice pods mount (every kind but the LLM).
    pub fn voice_files(&self) -> impl Iterator<Item = &PlannedFile> {
        self.models
            .iter()
            .filter(|m| m.kind != ModelKind::Llm)
            .flat_map(|m| &m.files)
    }

    /// The Whisper file the voice service loads: the first listed.
    pub fn whisper_file_name(&self) -> Option<&str> {
        self.of_kind(ModelKind::Whisper)
            .flat_map(|m| &m.files)
            .next()
            .and_then(|f| f.path.rsplit('/').next())
    }

    pub fn llm(&self) -> Option<&PlannedModel> {
        self.of_kind(ModelKind::Llm).next()
    }

    pub fn needs_voice_models(&self) -> bool {
        self.voice_files().next().is_some()
    }
}

/// The kinds of model a stack needs: the voice engines it runs (unless its
/// models come from its own PVC) and the LLM when Ollama is in the stack.
fn needed_kinds(stack: &VoiceChatStack) -> Vec<ModelKind> {
    let spec = &stack.spec;
    let mut kinds = Vec::new();
    if spec.voice.models_pvc.is_none() {
        let engines = spec.voice.engines.as_ref();
        let tts = engines.and_then(|e| e.tts.as_ref());
        let stt = engines.and_then(|e| e.stt.as_ref());
        if tts.is_none_or(|t| t.contains(&TtsEngine::Piper)) {
            kinds.push(ModelKind::Piper);
        }
        if stt.is_none_or(|s| s.contains(&SttEngine::Whisper)) {
            kinds.push(ModelKind::Whisper);
        }
    }
    if spec.ollama.enabled {
        kinds.push(ModelKind::Llm);
    }
    kinds
}

pub fn resolve(
    stack: &VoiceChatStack,
    settings: &OperatorSettings,
    profile: SttProfile,
) -> Result<StackModels, BuildError> {
    let mirror = settings.models.mirror.as_deref();
    let invalid = |e: &dyn std::fmt::Display| BuildError::InvalidModel(e.to_string());
    let mut models = Vec::new();
    for (i, source) in stack.spec.models.iter().enumerate() {
        let at = |e: &dyn std::fmt::Display| invalid(&format!("models[{i}]: {e}"));
        let image_only =
            source.file.is_some() || source.pull_secret.is_some() || source.plain_http.is_some();
        let planned = match (
            &source.name,
            &source.url,
            &source.image,
            &source.sha256,
            &source.path,
        ) {
            (Some(name), None, None, None, None) if !image_only => catalog()
                .get(name)
                .and_then(|m| m.plan(mirror))
                .map_err(|e| at(&e))?,
            (None, Some(url), None, Some(sha256), Some(path)) if !image_only => {
                PlannedModel::from_url(url, sha256, path).map_err(|e| at(&e))?
            }
            (None, None, Some(image), None, Some(path)) => PlannedModel::from_image(
                image,
                source.file.as_deref(),
                path,
                source.plain_http.unwrap_or(false),
                source.pull_secret.as_deref().map(pull_secret_auth_file),
            )
            .map_err(|e| at(&e))?,
            _ => {
                return Err(at(
                    &"give name, url with sha256 and path, or image with path",
                ));
            }
        };
        let voice_kind = planned.kind != ModelKind::Llm;
        if voice_kind && stack.spec.voice.models_pvc.is_some() {
            return Err(invalid(&format!(
                "models[{i}]: {} is a voice model, but voice.modelsPvc already gives the voice its models",
                planned.name
            )));
        }
        if planned.kind == ModelKind::Llm && !stack.spec.ollama.enabled {
            return Err(invalid(&format!(
                "models[{i}]: {} is an LLM, which only the stack's Ollama loads (ollama.enabled)",
                planned.name
            )));
        }
        if !models.iter().any(|m: &PlannedModel| m.name == planned.name) {
            models.push(planned);
        }
    }
    for kind in needed_kinds(stack) {
        if models.iter().any(|m| m.kind == kind) {
            continue;
        }
        let default = match (kind, &stack.spec.voice.whisper_model) {
            // `voice.whisperModel` names a file: the catalog model of that file.
            (ModelKind::Whisper, Some(file)) => catalog_model_of_file(kind, file).ok_or_else(|| {
                invalid(&format!(
                    "voice.whisperModel {file:?} is no catalog file (`voicechat-operator models`); \
                     list it in models with url, sha256 and path"
                ))
            })?,
            (ModelKind::Whisper, None) => catalog()
                .get(&settings.profile(profile).whisper_model)
                .map_err(|e| invalid(&e))?,
            _ => catalog().default_for(kind, profile).map_err(|e| invalid(&e))?,
        };
        models.push(default.plan(mirror).map_err(|e| invalid(&e))?);
    }
    let mut paths = std::collections::BTreeSet::new();
    for file in models.iter().flat_map(|m| &m.files) {
        if !paths.insert(file.path.as_str()) {
            return Err(invalid(&format!(
                "two models want the file {}: the pods would see only one",
                file.path
            )));
        }
    }
    // The Job's pod template cannot change once created: everything it is
    // made from names it (the plan, the loader image, this operator).
    let mut hash = Sha256::new();
    hash.update(serde_json::to_vec(&models).map_err(|e| invalid(&e))?);
    hash.update(settings.voice_image.as_bytes());
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    let hash = hex::encode(hash.finalize())[..10].to_owned();
    Ok(StackModels { models, hash })
}

fn catalog_model_of_file(
    kind: ModelKind,
    file: &str,
) -> Option<&'static voicechat_common::models::CatalogModel> {
    catalog().models.iter().find(|m| {
        m.kind() == Some(kind)
            && m.files
                .iter()
                .any(|f| f.path.rsplit('/').next() == Some(file))
    })
}

/// The file name of a catalog Whisper model (`ggml-base.en-q8_0.bin`):
/// what a voice service with its own models PVC is told to load.
pub fn catalog_whisper_file(name: &str) -> Option<String> {
    let model = catalog().get(name).ok()?;
    let path = &model.files.first()?.path;
    path.rsplit('/').next().map(str::to_owned)
}

/// The catalog as `voicechat-operator models` prints it: one line per
/// model with its size, the profiles it is the default for, and its files.
pub fn catalog_table() -> String {
    let mut out = format!(
        "{:<36} {:>9}  {:<9} DESCRIPTION\n",
        "NAME", "SIZE", "DEFAULT"
    );
    for model in &catalog().models {
        let defaults: Vec<&str> = model
            .default_for
            .iter()
            .map(|p| match p {
                voicechat_common::models::SttProfileLabel::Cpu => "CPU",
                voicechat_common::models::SttProfileLabel::Gpu => "GPU",
            })
            .collect();
        out.push_str(&format!(
            "{:<36} {:>6} MB  {:<9} {}\n",
            model.name,
            model.total_size().div_ceil(1_000_000),
            if defaults.is_empty() {
                "-".to_owned()
            } else {
                defaults.join(",")
            },
            model.description
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ModelSource, VoiceEngines};
    use crate::fixtures;

    fn resolve_cpu(stack: &VoiceChatStack) -> Result<StackModels, BuildError> {
        resolve(stack, &OperatorSettings::default(), SttProfile::Cpu)
    }

    #[test]
    fn an_empty_spec_gets_a_voice_and_a_whisper_model_and_the_llm_with_ollama() {
        let mut stack = fixtures::stack();
        let plan = resolve_cpu(&stack).unwrap();
        let names: Vec<&str> = plan.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["piper/en_US-joe-medium", "whisper/base.en-q8_0"]);
        assert_eq!(plan.whisper_file_name(), Some("ggml-base.en-q8_0.bin"));
        let gpu = resolve(&stack, &OperatorSettings::default(), SttProfile::Gpu).unwrap();
        assert_eq!(gpu.models[1].name, "whisper/large-v3-turbo");
        assert_ne!(gpu.hash, plan.hash, "another plan, another Job");
        stack.spec.ollama.enabled = true;
        let with_llm = resolve_cpu(&stack).unwrap();
        assert_eq!(
            with_llm.llm().map(|m| m.name.as_str()),
            Some("llm/smollm2-135m-instruct-q4_1")
        );
    }

    #[test]
    fn an_image_model_is_pulled_by_the_loader_with_its_pull_secret_and_the_voice_never_mounts_it() {
        let mut stack = fixtures::stack();
        let image = format!("reg.example:5000/m/whisper@sha256:{}", "c".repeat(64));
        stack.spec.models = vec![ModelSource {
            image: Some(image.clone()),
            file: Some("/models/ggml-x.bin".into()),
            pull_secret: Some("regcred".into()),
            plain_http: Some(true),
            path: Some("whisper/ggml-x.bin".into()),
            ..Default::default()
        }];
        let plan = resolve_cpu(&stack).unwrap();
        let file = plan.of_kind(ModelKind::Whisper).next().unwrap().files[0].clone();
        let oci = file.oci.clone().unwrap();
        assert_eq!(oci.image, image);
        assert_eq!(oci.file, "/models/ggml-x.bin");
        assert!(oci.plain_http);
        let auth_file = oci.auth_file.unwrap();
        assert!(auth_file.ends_with("/regcred/config.json"), "{auth_file}");
        assert_eq!(plan.whisper_file_name(), Some("ggml-x.bin"));

        let settings = OperatorSettings::default();
        let job = crate::build::workloads::loader_job(&stack, &settings, &plan);
        let pod = job.spec.unwrap().template.spec.unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.secret.is_some())
            .expect("the pull secret's volume");
        let secret = volume.secret.unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("regcred"));
        assert_eq!(secret.items.unwrap()[0].key, ".dockerconfigjson");
        let mount = pod.containers[0]
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.name == volume.name)
            .expect("the loader mounts the pull secret");
        assert_eq!(format!("{}/config.json", mount.mount_path), auth_file);
        assert_eq!(mount.read_only, Some(true));
        let voice_mounts: Vec<_> = plan.voice_files().map(|f| f.path.clone()).collect();
        assert_eq!(
            voice_mounts,
            [
                "whisper/ggml-x.bin",
                "piper/en_US-joe-medium.onnx",
                "piper/en_US-joe-medium.onnx.json"
            ]
        );

        stack.spec.models[0].pull_secret = None;
        let anonymous = resolve_cpu(&stack).unwrap();
        assert_ne!(anonymous.hash, plan.hash, "another source, another Job");
    }

    #[test]
    fn a_listed_kind_replaces_its_default_and_the_mirror_applies_to_the_catalog() {
        let mut stack = fixtures::stack();
        stack.spec.models = vec![
            ModelSource {
                name: Some("piper/en_GB-alan-medium".into()),
                ..Default::default()
            },
            ModelSource {
                url: Some("https://example.org/m/ggml-x.bin".into()),
                sha256: Some("ab".repeat(32)),
                path: Some("whisper/ggml-x.bin".into()),
                ..Default::default()
            },
        ];
        let mut settings = OperatorSettings::default();
        settings.models.mirror = Some("http://mirror:8080".into());
        let plan = resolve(&stack, &settings, SttProfile::Cpu).unwrap();
        assert_eq!(plan.models.len(), 2, "{plan:?}");
        assert!(
            plan.models[0].files[0]
                .url
                .starts_with("http://mirror:8080/rhasspy/")
        );
        assert_eq!(
            plan.models[1].files[0].url, "https://example.org/m/ggml-x.bin",
            "a URL the stack gives is its own, not the mirror's"
        );
        assert_eq!(plan.whisper_file_name(), Some("ggml-x.bin"));
    }

    #[test]
    fn a_whisper_file_name_picks_its_catalog_model() {
        let mut stack = fixtures::stack();
        stack.spec.voice.whisper_model = Some("ggml-small.bin".into());
        let plan = resolve_cpu(&stack).unwrap();
        assert_eq!(plan.models[1].name, "whisper/small");
        stack.spec.voice.whisper_model = Some("ggml-mine.bin".into());
        let err = resolve_cpu(&stack).unwrap_err().to_string();
        assert!(
            err.contains("voice.whisperModel \"ggml-mine.bin\""),
            "{err}"
        );
    }

    #[test]
    fn engines_left_out_need_no_model_and_a_pvc_gives_the_voice_its_own() {
        let mut stack = fixtures::stack();
        stack.spec.voice.engines = Some(VoiceEngines {
            tts: Some(vec![TtsEngine::EspeakNg]),
            stt: None,
        });
        let plan = resolve_cpu(&stack).unwrap();
        assert_eq!(plan.models.len(), 1);
        assert_eq!(plan.models[0].kind, ModelKind::Whisper);
        stack.spec.voice.models_pvc = Some("mine".into());
        assert!(resolve_cpu(&stack).unwrap().is_empty());
        stack.spec.models = vec![ModelSource {
            name: Some("piper/en_US-joe-medium".into()),
            ..Default::default()
        }];
        let err = resolve_cpu(&stack).unwrap_err().to_string();
        assert!(
            err.contains("models[0]") && err.contains("modelsPvc"),
            "{err}"
        );
    }

    #[test]
    fn the_catalog_table_lists_every_model_with_its_defaults() {
        let table = catalog_table();
        assert_eq!(table.lines().count(), catalog().models.len() + 1);
        let joe = table
            .lines()
            .find(|l| l.starts_with("piper/en_US-joe-medium "))
            .unwrap();
        assert!(joe.contains("64 MB") && joe.contains("CPU,GPU"), "{joe}");
    }

    #[test]
    fn another_loader_image_is_another_job_and_two_files_at_one_path_are_refused() {
        let stack = fixtures::stack();
        let mut settings = OperatorSettings::default();
        let before = resolve(&stack, &settings, SttProfile::Cpu).unwrap().hash;
        settings.voice_image = "registry.example/voice:next".into();
        assert_ne!(
            resolve(&stack, &settings, SttProfile::Cpu).unwrap().hash,
            before
        );
        let mut twice = fixtures::stack();
        twice.spec.models = vec![
            ModelSource {
                name: Some("piper/en_US-joe-medium".into()),
                ..Default::default()
            },
            ModelSource {
                url: Some("https://h/x.onnx".into()),
                sha256: Some("a".repeat(64)),
                path: Some("piper/en_US-joe-medium.onnx".into()),
                ..Default::default()
            },
        ];
        let err = resolve_cpu(&twice).unwrap_err().to_string();
        assert!(err.contains("piper/en_US-joe-medium.onnx"), "{err}");
    }

    #[test]
    fn bad_sources_are_refused_naming_the_entry() {
        let mut stack = fixtures::stack();
        for (source, want) in [
            (
                ModelSource {
                    name: Some("piper/nope".into()),
                    ..Default::default()
                },
                "unknown model",
            ),
            (
                ModelSource {
                    url: Some("https://h/x".into()),
                    ..Default::default()
                },
                "give name, url with sha256 and path, or image with path",
            ),
            (
                ModelSource {
                    image: Some(format!("reg.example/m@sha256:{}", "a".repeat(64))),
                    file: Some("../etc/passwd".into()),
                    path: Some("whisper/x.bin".into()),
                    ..Default::default()
                },
                "must be a path in the image",
            ),
            (
                ModelSource {
                    name: Some("piper/en_US-joe-medium".into()),
                    pull_secret: Some("regcred".into()),
                    ..Default::default()
                },
                "or image with path",
            ),
            (
                ModelSource {
                    url: Some("https://h/x.gguf".into()),
                    sha256: Some("a".repeat(64)),
                    path: Some("llm/x.gguf".into()),
                    ..Default::default()
                },
                "ollama.enabled",
            ),
        ] {
            stack.spec.models = vec![source];
            let err = resolve_cpu(&stack).unwrap_err().to_string();
            assert!(err.contains("models[0]") && err.contains(want), "{err}");
        }
    }
}
