//! Archives in the cache: a verified zip (Vosk's models) is unpacked
//! beside the cache, and its one top folder renamed into place, marked
//! with the digest it came from. So the folder under its final name is
//! always whole, and a later run knows it is.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use voicechat_common::models::{Digest, PlannedFile, Unpack};

use super::fetch::FetchError;

/// In an unpacked folder: the digest of the archive it came from.
const MARKER: &str = ".voicechat-digest";

/// The digest the folder at `target` was unpacked from, if it is whole.
pub async fn unpacked_from(target: &Path) -> Option<Digest> {
    let text = tokio::fs::read_to_string(target.join(MARKER)).await.ok()?;
    text.trim().parse().ok()
}

pub async fn into_place(
    kind: Unpack,
    file: &PlannedFile,
    archive: &Path,
    target: &Path,
    work_dir: &Path,
) -> Result<(), FetchError> {
    let Unpack::Zip = kind;
    let archive = archive.to_owned();
    let target = target.to_owned();
    let scratch = work_dir.join(format!("{}.unpack", file.cache_path().replace('/', "__")));
    let digest = file.digest.clone();
    let path = file.path.clone();
    tokio::task::spawn_blocking(move || unzip_into_place(&archive, &scratch, &target, &digest))
        .await
        .map_err(|e| FetchError::Unpack {
            path: path.clone(),
            reason: e.to_string(),
        })?
        .map_err(|reason| FetchError::Unpack { path, reason })
}

fn unzip_into_place(
    archive: &Path,
    scratch: &Path,
    target: &Path,
    digest: &Digest,
) -> Result<(), String> {
    let _ = fs::remove_dir_all(scratch);
    fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    let reader = fs::File::open(archive).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| format!("not a zip archive: {e}"))?;
    // `extract` refuses entries that would land outside `scratch`.
    zip.extract(scratch).map_err(|e| e.to_string())?;
    let top = single_top_folder(scratch).map_err(|e| e.to_string())?;
    fs::write(top.join(MARKER), digest.to_string()).map_err(|e| e.to_string())?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    if target.exists() {
        let old = scratch.with_extension("old");
        let _ = fs::remove_dir_all(&old);
        fs::rename(target, &old).map_err(|e| e.to_string())?;
        let _ = fs::remove_dir_all(&old);
    }
    fs::rename(&top, target).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(scratch);
    let _ = fs::remove_file(archive);
    Ok(())
}

/// The folder the archive's files are in: its one top-level folder, or
/// `scratch` itself when the files are at the top.
fn single_top_folder(scratch: &Path) -> io::Result<PathBuf> {
    let entries: Vec<_> = fs::read_dir(scratch)?.collect::<Result<_, _>>()?;
    match entries.as_slice() {
        [only] if only.file_type()?.is_dir() => Ok(only.path()),
        _ => {
            // Files at the top: move them into a folder of their own, so
            // the rename into place is still one step.
            let folder = scratch.join("contents");
            fs::create_dir(&folder)?;
            for entry in entries {
                fs::rename(entry.path(), folder.join(entry.file_name()))?;
            }
            Ok(folder)
        }
    }
}
