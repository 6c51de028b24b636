//! A model file from an OCI image or artifact, pulled by the loader from
//! the registry (not by the kubelet: image volumes need a recent runtime,
//! and a model image need not be runnable). The manifest is checked
//! against the pinned digest, every layer against the manifest's digest
//! for it; the file reaches its final name only whole, with a marker of
//! its own digest beside it, which later runs check it against.

mod layers;
mod registry;

use std::path::{Path, PathBuf};

use voicechat_common::models::{Digest, OciSource, PlannedFile};

use super::fetch::{
    FetchError, FetchOptions, Fetched, digest_of, download_verified, rename_into_place,
};
use layers::{LayerSearch, Location, Manifest};
use registry::Registry;

/// Whether the file at `target` is whole: its marker's digest is its own.
/// A file that differs is removed, to be fetched again.
pub async fn cached(target: &Path) -> Result<bool, FetchError> {
    let Ok(text) = tokio::fs::read_to_string(marker_of(target)).await else {
        return Ok(false);
    };
    let Ok(expected) = text.trim().parse::<Digest>() else {
        return Ok(false);
    };
    match tokio::fs::metadata(target).await {
        Ok(meta) if meta.is_file() => {}
        _ => return Ok(false),
    }
    if digest_of(target, &expected).await? == expected {
        return Ok(true);
    }
    tracing::warn!(path = %target.display(), "the cached file differs from the digest it was pulled with; pulling it again");
    tokio::fs::remove_file(target)
        .await
        .map_err(|e| FetchError::io(target, e))?;
    Ok(false)
}

pub async fn fetch_into_place(
    client: &reqwest::Client,
    file: &PlannedFile,
    source: &OciSource,
    options: &FetchOptions,
    target: &Path,
    partial_dir: &Path,
    stem: &str,
) -> Result<Fetched, FetchError> {
    let mut registry = Registry::new(client, source, options.read_timeout.as_secs())?;
    let image = registry.image();
    let bad = |reason: String| FetchError::BadManifest {
        image: image.clone(),
        reason,
    };
    let pinned = registry.pinned_digest().clone();
    let mut manifest =
        Manifest::parse(&manifest_with_retries(&mut registry, &pinned, options).await?)
            .map_err(bad)?;
    if manifest.is_index() {
        let chosen = manifest
            .platform_manifest()
            .ok_or_else(|| bad("the index has no linux manifest".into()))?
            .digest()
            .map_err(bad)?;
        manifest = Manifest::parse(&manifest_with_retries(&mut registry, &chosen, options).await?)
            .map_err(bad)?;
        if manifest.is_index() {
            return Err(bad("an index inside an index".into()));
        }
    }
    let location =
        layers::locate(&manifest, &source.file).map_err(|found| FetchError::NotInImage {
            image: image.clone(),
            file: source.file.clone(),
            found,
        })?;
    let partial = partial_dir.join(format!("{stem}.part"));
    match location {
        Location::Artifact(layer) => {
            let digest = layer.digest().map_err(bad)?;
            let blob = blob_file(file, &registry, &digest, layer.size);
            let (bytes, resumed_from) =
                download_blob(&mut registry, &blob, &partial, options).await?;
            place(&partial, target, &digest).await?;
            tracing::info!(path = %file.path, %image, bytes, resumed_from, "pulled from the image's artifact layer and verified");
            Ok(Fetched::Downloaded {
                bytes,
                resumed_from,
            })
        }
        Location::Filesystem(layers) => {
            let mut downloaded = 0;
            for layer in layers {
                let digest = layer.digest().map_err(bad)?;
                let blob = blob_file(file, &registry, &digest, layer.size);
                let layer_partial =
                    partial_dir.join(format!("{stem}.layer-{}.part", &digest.hex[..16]));
                let (bytes, resumed_from) =
                    download_blob(&mut registry, &blob, &layer_partial, options).await?;
                downloaded += bytes - resumed_from;
                let search = search_in(&layer_partial, &source.file, &partial)
                    .await
                    .map_err(|reason| FetchError::Unpack {
                        path: file.path.clone(),
                        reason: format!("layer {digest}: {reason}"),
                    });
                let _ = tokio::fs::remove_file(&layer_partial).await;
                match search? {
                    LayerSearch::Found { bytes, digest } => {
                        place(&partial, target, &digest).await?;
                        tracing::info!(path = %file.path, %image, bytes, "copied out of the image's layer and verified");
                        return Ok(Fetched::Downloaded {
                            bytes: downloaded,
                            resumed_from: 0,
                        });
                    }
                    LayerSearch::Deleted => break,
                    LayerSearch::Absent => {}
                }
            }
            Err(FetchError::NotInImage {
                image,
                file: source.file.clone(),
                found: Vec::new(),
            })
        }
    }
}

/// A layer as a file to download: the blob's URL, size and digest.
fn blob_file(
    file: &PlannedFile,
    registry: &Registry<'_>,
    digest: &Digest,
    size: u64,
) -> PlannedFile {
    PlannedFile {
        path: file.path.clone(),
        url: registry.blob_url(digest),
        size: Some(size),
        digest: digest.clone(),
        unpack: None,
        oci: None,
    }
}

/// A blob download; a token that expired on the way is renewed once.
async fn download_blob(
    registry: &mut Registry<'_>,
    blob: &PlannedFile,
    partial: &Path,
    options: &FetchOptions,
) -> Result<(u64, u64), FetchError> {
    match download_verified(
        registry.client(),
        blob,
        partial,
        options,
        registry.authorization(),
    )
    .await
    {
        Err(FetchError::Http { status: 401, .. }) => {
            registry.reauthorize().await?;
            download_verified(
                registry.client(),
                blob,
                partial,
                options,
                registry.authorization(),
            )
            .await
        }
        other => other,
    }
}

/// The manifest, tried again with backoff while the error may pass (a
/// registry that is down at first).
async fn manifest_with_retries(
    registry: &mut Registry<'_>,
    digest: &Digest,
    options: &FetchOptions,
) -> Result<Vec<u8>, FetchError> {
    let mut wait = options.backoff;
    let mut attempt = 1;
    loop {
        match registry.manifest(digest).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) if e.is_permanent() || attempt >= options.attempts => return Err(e),
            Err(e) => {
                tracing::warn!(image = %registry.image(), attempt, error = %e, retry_in_s = wait.as_secs_f32(), "the manifest could not be read; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

async fn search_in(layer: &Path, file: &str, out: &Path) -> Result<LayerSearch, String> {
    let (layer, file, out) = (layer.to_owned(), file.to_owned(), out.to_owned());
    tokio::task::spawn_blocking(move || layers::search_layer(&layer, &file, &out))
        .await
        .map_err(|e| e.to_string())?
}

/// The marker first, then the file: a file under its final name always
/// has the digest it is checked against.
async fn place(partial: &Path, target: &Path, digest: &Digest) -> Result<(), FetchError> {
    let marker = marker_of(target);
    if let Some(parent) = marker.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| FetchError::io(parent, e))?;
    }
    tokio::fs::write(&marker, digest.to_string())
        .await
        .map_err(|e| FetchError::io(&marker, e))?;
    rename_into_place(partial, target).await
}

/// `<folder>/.<name>.voicechat-digest`, beside the file.
fn marker_of(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.voicechat-digest"))
}
