//! The models a stack wants, resolved to files: what the operator hands
//! the loader (as JSON) and what the loader fetches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalog::ModelKind;
use super::digest::{Digest, DigestError};
use super::image_ref::{ImageRef, ImageRefError};

/// How a download becomes its cache path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unpack {
    /// A zip archive with one top folder, whose contents become the path
    /// (Vosk's model archives).
    Zip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFile {
    pub path: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<Unpack>,
    /// Set for a file taken from an OCI image; then `url` is
    /// `oci://<image>` (for status and logs) and `digest` the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciSource>,
}

/// Where the loader Job mounts a model's pull secret (its
/// `.dockerconfigjson` as `config.json`).
pub fn pull_secret_auth_file(secret: &str) -> String {
    format!("/var/run/secrets/voicechat.dev/pull/{secret}/config.json")
}

/// A file in an OCI image or artifact, which the loader pulls from the
/// registry itself (the distribution API), so any container runtime and
/// any Kubernetes version will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// `<registry>/<repository>@sha256:<hex>`.
    pub image: String,
    /// The file: an artifact layer's title (`oras push`), or a path in the
    /// image's filesystem (`COPY ggml-small.bin /models/` in a Dockerfile).
    pub file: String,
    /// The registry speaks plain HTTP (an in-cluster or lab registry).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
    /// A Docker config JSON with the registry's credentials (a mounted
    /// `kubernetes.io/dockerconfigjson` Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<String>,
}

impl PlannedFile {
    /// Where the file lives in the shared cache: its kind's folder, then a
    /// folder named by its digest, then the rest of `path`
    /// (`piper/md5-74fd6a4dc39e0aa9/en_US-joe-medium.onnx`). Two stacks that
    /// want different files under one name never overwrite each other;
    /// pods see the file at `path` (a subPath mount).
    pub fn cache_path(&self) -> String {
        let (kind, rest) = self.path.split_once('/').unwrap_or(("", &self.path));
        let short = &self.digest.hex[..16.min(self.digest.hex.len())];
        format!("{kind}/{}-{short}/{rest}", self.digest.algorithm.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedModel {
    /// The catalog name, or the cache path for a model given by URL.
    pub name: String,
    pub kind: ModelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama_name: Option<String>,
    /// Modelfile `PARAMETER`s (the catalog's; none for a model by URL).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ollama_parameters: BTreeMap<String, String>,
    pub files: Vec<PlannedFile>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(
        "path {0:?} must be <piper|whisper|vosk|llm>/<file name> (letters, digits, '.', '_', '-')"
    )]
    BadPath(String),
    #[error("url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Image(#[from] ImageRefError),
    #[error("file {0:?} must be a path in the image (no '..', no empty components)")]
    BadImageFile(String),
}

impl PlannedModel {
    /// A model outside the catalog: one file from `url`, checked against
    /// `sha256`, stored at `path` (which says its kind).
    pub fn from_url(url: &str, sha256: &str, path: &str) -> Result<Self, PlanError> {
        let kind = ModelKind::of_path(path)
            .filter(|_| valid_cache_path(path))
            .ok_or_else(|| PlanError::BadPath(path.to_owned()))?;
        check_http_url(url).map_err(|reason| PlanError::BadUrl {
            url: url.to_owned(),
            reason,
        })?;
        let ollama_name = (kind == ModelKind::Llm).then(|| ollama_name_of(path));
        Ok(Self {
            name: path.to_owned(),
            kind,
            ollama_name,
            ollama_parameters: BTreeMap::new(),
            files: vec![PlannedFile {
                path: path.to_owned(),
                url: url.to_owned(),
                size: None,
                digest: Digest::sha256(sha256)?,
                unpack: None,
                oci: None,
            }],
        })
    }

    /// A model from an OCI image: `file` in `image` (pinned by digest),
    /// stored at `path`. The image digest keys the cache; each layer the
    /// loader pulls is checked against the digest its manifest gives.
    pub fn from_image(
        image: &str,
        file: Option<&str>,
        path: &str,
        plain_http: bool,
        auth_file: Option<String>,
    ) -> Result<Self, PlanError> {
        let kind = ModelKind::of_path(path)
            .filter(|_| valid_cache_path(path))
            .ok_or_else(|| PlanError::BadPath(path.to_owned()))?;
        let reference: ImageRef = image.parse()?;
        let file = file
            .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path))
            .to_owned();
        let plain = file.trim_start_matches('/');
        if plain.is_empty()
            || file.len() > 1024
            || plain
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(PlanError::BadImageFile(file));
        }
        let ollama_name = (kind == ModelKind::Llm).then(|| ollama_name_of(path));
        Ok(Self {
            name: path.to_owned(),
            kind,
            ollama_name,
            ollama_parameters: BTreeMap::new(),
            files: vec![PlannedFile {
                path: path.to_owned(),
                url: format!("oci://{reference}"),
                size: None,
                digest: reference.digest.clone(),
                unpack: None,
                oci: Some(OciSource {
                    image: reference.to_string(),
                    file,
                    plain_http,
                    auth_file,
                }),
            }],
        })
    }
}

/// The Ollama model name of a GGUF given by URL: its file name without
/// the extension, lower case (Ollama's names are).
fn ollama_name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".gguf")
        .unwrap_or(file)
        .to_ascii_lowercase()
}

/// A relative path of two or more plain components (no `..`, no empty or
/// hidden ones), under a kind's folder: safe to join to the cache root.
pub fn valid_cache_path(path: &str) -> bool {
    let components: Vec<&str> = path.split('/').collect();
    components.len() >= 2
        && ModelKind::of_path(path).is_some()
        && components.iter().all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && !c.starts_with('-')
                && c.len() <= 200
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("only http:// and https:// URLs can be fetched")?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    if url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return Err("the URL is over 2048 characters or holds whitespace".into());
    }
    Ok(())
}

/// `url` with its scheme and host replaced by `mirror` (which may have a
/// path of its own): the mirror holds the upstream's paths. `file://`
/// mirrors are folders (an import).
pub fn mirrored_url(url: &str, mirror: &str) -> Result<String, String> {
    check_http_url(url)?;
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    if !(mirror.starts_with("http://")
        || mirror.starts_with("https://")
        || mirror.starts_with("file:///"))
    {
        return Err(format!(
            "mirror {mirror:?} must be an http://, https:// or file:/// URL"
        ));
    }
    Ok(format!("{}/{path}", mirror.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_paths_are_plain_and_under_a_kind() {
        for good in [
            "piper/a.onnx",
            "whisper/ggml-tiny.en-q8_0.bin",
            "vosk/en",
            "llm/x_1.gguf",
        ] {
            assert!(valid_cache_path(good), "{good}");
        }
        for bad in [
            "piper",
            "other/a.bin",
            "piper/../x",
            "piper/.hidden",
            "/piper/a",
            "piper//a",
            "piper/a b",
            "piper/a\\b",
            "llm/-f.gguf",
        ] {
            assert!(!valid_cache_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_url_model_needs_an_http_url_a_sha256_and_a_kind_path() {
        let sha = "a".repeat(64);
        let model =
            PlannedModel::from_url("https://h/x/SmolLM.Q4.gguf", &sha, "llm/SmolLM.Q4.gguf")
                .unwrap();
        assert_eq!(model.kind, ModelKind::Llm);
        assert_eq!(model.ollama_name.as_deref(), Some("smollm.q4"));
        assert_eq!(model.files[0].digest.to_string(), format!("sha256:{sha}"));
        assert!(matches!(
            PlannedModel::from_url("ftp://h/x", &sha, "llm/x.gguf"),
            Err(PlanError::BadUrl { .. })
        ));
        assert!(matches!(
            PlannedModel::from_url("https://h/x", "abc", "llm/x.gguf"),
            Err(PlanError::Digest(_))
        ));
        assert!(matches!(
            PlannedModel::from_url("https://h/x", &sha, "models/x.gguf"),
            Err(PlanError::BadPath(_))
        ));
    }

    #[test]
    fn files_of_one_name_and_two_digests_have_two_cache_paths() {
        let a = PlannedModel::from_url("https://h/a", &"a".repeat(64), "whisper/m.bin").unwrap();
        let b = PlannedModel::from_url("https://h/b", &"b".repeat(64), "whisper/m.bin").unwrap();
        assert_eq!(
            a.files[0].cache_path(),
            "whisper/sha256-aaaaaaaaaaaaaaaa/m.bin"
        );
        assert_ne!(a.files[0].cache_path(), b.files[0].cache_path());
        assert!(valid_cache_path(&a.files[0].cache_path()));
    }

    #[test]
    fn an_image_model_is_keyed_by_the_image_digest_and_names_its_file() {
        let d = "c".repeat(64);
        let image = format!("reg.local:5000/m/whisper@sha256:{d}");
        let model =
            PlannedModel::from_image(&image, None, "whisper/ggml-tiny.bin", true, None).unwrap();
        let file = &model.files[0];
        assert_eq!(
            file.cache_path(),
            "whisper/sha256-cccccccccccccccc/ggml-tiny.bin"
        );
        assert_eq!(file.url, format!("oci://{image}"));
        let oci = file.oci.as_ref().unwrap();
        assert_eq!((oci.file.as_str(), oci.plain_http), ("ggml-tiny.bin", true));
        let json = serde_json::to_string(file).unwrap();
        assert_eq!(serde_json::from_str::<PlannedFile>(&json).unwrap(), *file);
        let in_fs =
            PlannedModel::from_image(&image, Some("/models/x.bin"), "whisper/x.bin", false, None)
                .unwrap();
        assert_eq!(in_fs.files[0].oci.as_ref().unwrap().file, "/models/x.bin");
        for bad in ["/models/../etc/passwd", "/", "a//b"] {
            assert!(
                matches!(
                    PlannedModel::from_image(&image, Some(bad), "whisper/x.bin", false, None),
                    Err(PlanError::BadImageFile(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            PlannedModel::from_image("reg.local/m:latest", None, "whisper/x.bin", false, None),
            Err(PlanError::Image(_))
        ));
    }

    #[test]
    fn mirrors_keep_the_upstream_path() {
        assert_eq!(
            mirrored_url("https://huggingface.co/a/b/c.bin", "http://m:8080/").unwrap(),
            "http://m:8080/a/b/c.bin"
        );
        assert_eq!(
            mirrored_url("https://h/a", "file:///import").unwrap(),
            "file:///import/a"
        );
        assert!(mirrored_url("https://h/a", "m:8080").is_err());
    }
}
