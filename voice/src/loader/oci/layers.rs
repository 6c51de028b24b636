//! What an image holds: its manifest (the platform's one, for an index),
//! and where a file is in it: an artifact layer of that title (`oras
//! push`), or an entry of a filesystem layer (a tar, gzipped or not),
//! looked for from the top layer down, as a container would see it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use serde::Deserialize;
use voicechat_common::models::{Digest, Hasher};

/// The annotation `oras push` (and the OCI image spec) gives a file layer.
const TITLE: &str = "org.opencontainers.image.title";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    /// An index's manifests, one per platform.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest, String> {
        let digest: Digest = self
            .digest
            .parse()
            .map_err(|e| format!("layer digest {:?}: {e}", self.digest))?;
        if digest.algorithm.as_str() != "sha256" {
            return Err(format!("layer digest {:?} is not sha256", self.digest));
        }
        Ok(digest)
    }

    fn is_filesystem(&self) -> bool {
        self.media_type.contains(".tar") || self.media_type.contains("rootfs")
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an image manifest: {e}"))
    }

    pub fn is_index(&self) -> bool {
        !self.manifests.is_empty()
            || self.media_type.as_deref().is_some_and(|t| {
                t.ends_with("image.index.v1+json") || t.ends_with("manifest.list.v2+json")
            })
    }

    /// An index's manifest for this machine's platform (model files are
    /// the same on every one): linux and this architecture, else the
    /// first without a platform or of linux.
    pub fn platform_manifest(&self) -> Option<&Descriptor> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let linux = |d: &&Descriptor| d.platform.as_ref().is_none_or(|p| p.os == "linux");
        self.manifests
            .iter()
            .filter(linux)
            .find(|d| d.platform.as_ref().is_some_and(|p| p.architecture == arch))
            .or_else(|| self.manifests.iter().find(linux))
    }
}

/// Where a file is in an image.
#[derive(Debug)]
pub enum Location<'m> {
    /// A layer that is the file itself.
    Artifact(&'m Descriptor),
    /// Filesystem layers to look in, the top one first.
    Filesystem(Vec<&'m Descriptor>),
}

/// Where `file` is in `manifest`; `Err` lists the artifact's titles.
pub fn locate<'m>(manifest: &'m Manifest, file: &str) -> Result<Location<'m>, Vec<String>> {
    let wanted = normalize(file);
    if let Some(layer) = manifest.layers.iter().find(|l| {
        l.annotations
            .get(TITLE)
            .is_some_and(|t| normalize(t) == wanted)
    }) {
        return Ok(Location::Artifact(layer));
    }
    let filesystem: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .rev()
        .filter(|l| l.is_filesystem() && !l.annotations.contains_key(TITLE))
        .collect();
    if filesystem.is_empty() {
        return Err(manifest
            .layers
            .iter()
            .filter_map(|l| l.annotations.get(TITLE).cloned())
            .collect());
    }
    Ok(Location::Filesystem(filesystem))
}

/// What one filesystem layer says of the file.
#[derive(Debug, PartialEq, Eq)]
pub enum LayerSearch {
    /// The file, copied out: its size and SHA-256.
    Found {
        bytes: u64,
        digest: Digest,
    },
    /// A whiteout: the layers below no longer have it.
    Deleted,
    Absent,
}

/// Looks for `file` in the layer archive at `layer` (tar, or gzipped tar)
/// and copies it to `out` when there. Blocking.
pub fn search_layer(layer: &Path, file: &str, out: &Path) -> Result<LayerSearch, String> {
    let wanted = normalize(file);
    let mut reader = BufReader::new(File::open(layer).map_err(|e| e.to_string())?);
    let mut magic = [0u8; 4];
    let read = peek(&mut reader, &mut magic).map_err(|e| e.to_string())?;
    let input: Box<dyn Read> = match &magic[..read] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            return Err(
                "zstd-compressed layers are not supported; push the image with gzip".into(),
            );
        }
        _ => Box::new(reader),
    };
    let mut archive = tar::Archive::new(input);
    let mut deleted = false;
    for entry in archive
        .entries()
        .map_err(|e| format!("not a tar layer: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("a broken tar layer: {e}"))?;
        let name = normalize(&entry.path().map_err(|e| e.to_string())?.to_string_lossy());
        if name == wanted {
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                return Err(format!(
                    "{file} is not a regular file in the image ({kind:?}); name the file itself"
                ));
            }
            return copy_out(&mut entry, out).map_err(|e| e.to_string());
        }
        deleted |= whites_out(&name, &wanted);
    }
    Ok(if deleted {
        LayerSearch::Deleted
    } else {
        LayerSearch::Absent
    })
}

/// Reads up to `buf.len()` bytes without consuming them.
fn peek(reader: &mut BufReader<File>, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::BufRead;
    let available = reader.fill_buf()?;
    let n = available.len().min(buf.len());
    buf[..n].copy_from_slice(&available[..n]);
    Ok(n)
}

fn copy_out(entry: &mut impl Read, out: &Path) -> io::Result<LayerSearch> {
    let mut file = File::create(out)?;
    let mut hasher = Hasher::new(voicechat_common::models::DigestAlgorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    file.sync_all()?;
    Ok(LayerSearch::Found {
        bytes,
        digest: hasher.finish(),
    })
}

/// Whether the layer entry `name` deletes `wanted` from the layers below:
/// `.wh.<name>` beside it or beside a folder above it, or an opaque
/// folder (`.wh..wh..opq`) above it.
fn whites_out(name: &str, wanted: &str) -> bool {
    let (dir, base) = name.rsplit_once('/').unwrap_or(("", name));
    let under = |folder: &str| folder.is_empty() || wanted.starts_with(&format!("{folder}/"));
    if base == ".wh..wh..opq" {
        return under(dir);
    }
    let Some(hidden) = base.strip_prefix(".wh.") else {
        return false;
    };
    let target = if dir.is_empty() {
        hidden.to_owned()
    } else {
        format!("{dir}/{hidden}")
    };
    wanted == target || wanted.starts_with(&format!("{target}/"))
}

/// `./models/x.bin`, `/models/x.bin` and `models/x.bin/` are one path.
fn normalize(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str, title: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 1,
            annotations: title
                .map(|t| BTreeMap::from([(TITLE.to_owned(), t.to_owned())]))
                .unwrap_or_default(),
            platform: None,
        }
    }

    #[test]
    fn an_artifact_file_is_its_titled_layer_and_an_image_file_is_in_its_layers_top_first() {
        let artifact = Manifest {
            media_type: None,
            manifests: vec![],
            layers: vec![
                layer("application/vnd.oci.image.layer.v1.tar", Some("a.bin")),
                layer("application/octet-stream", Some("ggml-tiny.bin")),
            ],
        };
        assert!(matches!(
            locate(&artifact, "ggml-tiny.bin"),
            Ok(Location::Artifact(l)) if l.media_type == "application/octet-stream"
        ));
        assert_eq!(
            locate(&artifact, "missing.bin").map(|_| ()).unwrap_err(),
            vec!["a.bin".to_owned(), "ggml-tiny.bin".to_owned()]
        );
        let image = Manifest {
            media_type: None,
            manifests: vec![],
            layers: vec![
                layer("application/vnd.oci.image.layer.v1.tar+gzip", None),
                layer("application/vnd.docker.image.rootfs.diff.tar.gzip", None),
            ],
        };
        let Ok(Location::Filesystem(layers)) = locate(&image, "/models/x.bin") else {
            panic!("not looked for in the layers");
        };
        assert_eq!(
            layers[0].media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }

    #[test]
    fn whiteouts_hide_the_file_and_its_folders() {
        assert!(whites_out("models/.wh.x.bin", "models/x.bin"));
        assert!(whites_out(".wh.models", "models/x.bin"));
        assert!(whites_out("models/.wh..wh..opq", "models/x.bin"));
        assert!(!whites_out("models/.wh.y.bin", "models/x.bin"));
        assert!(!whites_out("other/.wh..wh..opq", "models/x.bin"));
        assert!(!whites_out("models/x.bin", "models/x.bin"));
    }

    #[test]
    fn a_file_is_copied_out_of_a_gzipped_layer_with_its_digest() {
        let dir = std::env::temp_dir().join(format!("voicechat-layer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let layer_path = dir.join("layer.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&layer_path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut builder = tar::Builder::new(gz);
        for (name, data) in [("models/.wh.old.bin", &b""[..]), ("models/x.bin", b"abc")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
        let out = dir.join("out");
        assert_eq!(
            search_layer(&layer_path, "/models/x.bin", &out).unwrap(),
            LayerSearch::Found {
                bytes: 3,
                digest: Digest::sha256(
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                )
                .unwrap()
            }
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"abc");
        assert_eq!(
            search_layer(&layer_path, "models/old.bin", &out).unwrap(),
            LayerSearch::Deleted
        );
        assert_eq!(
            search_layer(&layer_path, "models/y.bin", &out).unwrap(),
            LayerSearch::Absent
        );
        std::fs::write(
            &layer_path,
            b"not a tar at all, and longer than a block? no",
        )
        .unwrap();
        assert!(search_layer(&layer_path, "models/y.bin", &out).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
