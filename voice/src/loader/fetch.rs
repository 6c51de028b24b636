//! One file of a plan into the cache: skip it when it is there with the
//! right digest, else download into `.partial/` (resuming what an earlier
//! try left), check size and digest, and rename it into place. A file
//! under its final name is always whole and verified.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voicechat_common::models::{Digest, PlannedFile};

use super::{oci, unpack};

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The cache root: files land at `<dest>/<path>`.
    pub dest: PathBuf,
    pub connect_timeout: Duration,
    /// A body that sends nothing for this long is given up (and resumed
    /// on the next try).
    pub read_timeout: Duration,
    /// Tries per file for errors that may pass (network, timeouts, 5xx).
    pub attempts: u32,
    /// The wait before the second try; doubled after each.
    pub backoff: Duration,
    pub progress_every: Duration,
}

impl FetchOptions {
    pub fn new(dest: PathBuf) -> Self {
        Self {
            dest,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            attempts: 5,
            backoff: Duration::from_secs(2),
            progress_every: Duration::from_secs(5),
        }
    }

    fn partial_dir(&self) -> PathBuf {
        self.dest.join(".partial")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("{url}: no data for {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: {reason}")]
    Network { url: String, reason: String },
    #[error(
        "{path}: digest mismatch: expected {expected}, got {actual} (the download was deleted)"
    )]
    DigestMismatch {
        path: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "{path}: size mismatch: expected {expected} bytes, got {actual} (the download was deleted)"
    )]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: no space left on the models volume")]
    NoSpace { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot unpack: {reason}")]
    Unpack { path: String, reason: String },
    #[error("{image}: the registry refused the credentials: {reason}")]
    Unauthorized { image: String, reason: String },
    #[error("{image}: no file {file:?} in the image{}", found_text(found))]
    NotInImage {
        image: String,
        file: String,
        /// The artifact's file titles, when it has some.
        found: Vec<String>,
    },
    #[error("{image}: {reason}")]
    BadManifest { image: String, reason: String },
}

fn found_text(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!(" (its files: {})", found.join(", "))
    }
}

impl FetchError {
    /// Stable name: the status's reason and a log field.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NotFound",
            Self::Http { .. } => "HttpError",
            Self::Timeout { .. } => "Timeout",
            Self::Network { .. } => "NetworkError",
            Self::DigestMismatch { .. } => "DigestMismatch",
            Self::SizeMismatch { .. } => "SizeMismatch",
            Self::NoSpace { .. } => "NoSpace",
            Self::Io { .. } => "IoError",
            Self::Unpack { .. } => "UnpackFailed",
            Self::Unauthorized { .. } => "Unauthorized",
            Self::NotInImage { .. } => "NotInImage",
            Self::BadManifest { .. } => "BadManifest",
        }
    }

    /// Whether trying again cannot help (same bytes, same answer).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::NotFound { .. }
            | Self::DigestMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::Unpack { .. }
            | Self::Unauthorized { .. }
            | Self::NotInImage { .. }
            | Self::BadManifest { .. } => true,
            Self::Http { status, .. } => (400..500).contains(status) && *status != 429,
            Self::Timeout { .. }
            | Self::Network { .. }
            | Self::NoSpace { .. }
            | Self::Io { .. } => false,
        }
    }

    pub(super) fn io(path: &Path, source: std::io::Error) -> Self {
        // ENOSPC: the volume is full.
        if source.raw_os_error() == Some(28) || source.kind() == ErrorKind::StorageFull {
            return Self::NoSpace {
                path: path.display().to_string(),
            };
        }
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// What fetching a file came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// It was there, whole, with the right digest.
    AlreadyPresent,
    /// Downloaded `bytes` (of which `resumed_from` came from an earlier try).
    Downloaded { bytes: u64, resumed_from: u64 },
}

/// Fetches `file` into the cache, trying again with backoff while the
/// error may pass.
pub async fn fetch_file(
    client: &reqwest::Client,
    file: &PlannedFile,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let target = options.dest.join(file.cache_path());
    if is_present(file, &target).await? {
        tracing::info!(path = %file.path, "already in the cache, digest verified");
        return Ok(Fetched::AlreadyPresent);
    }
    let partial_dir = options.partial_dir();
    tokio::fs::create_dir_all(&partial_dir)
        .await
        .map_err(|e| FetchError::io(&partial_dir, e))?;
    let stem = file.cache_path().replace('/', "__");
    let partial = partial_dir.join(format!("{stem}.part"));
    // Two stacks' loaders may want one file at once: the second waits for
    // the first, then finds the file cached.
    let _lock = lock(partial_dir.join(format!("{stem}.lock"))).await?;
    if is_present(file, &target).await? {
        return Ok(Fetched::AlreadyPresent);
    }
    if let Some(source) = &file.oci {
        return oci::fetch_into_place(client, file, source, options, &target, &partial_dir, &stem)
            .await;
    }
    let (bytes, resumed_from) = download_verified(client, file, &partial, options, None).await?;
    match file.unpack {
        Some(kind) => unpack::into_place(kind, file, &partial, &target, &partial_dir).await?,
        None => rename_into_place(&partial, &target).await?,
    }
    tracing::info!(path = %file.path, bytes, resumed_from, "downloaded and verified");
    Ok(Fetched::Downloaded {
        bytes,
        resumed_from,
    })
}

/// Downloads `file` into `partial` (trying again with backoff while the
/// error may pass, resuming what the last try left) and checks its size
/// and digest. Returns the bytes and those that came from an earlier try.
pub(super) async fn download_verified(
    client: &reqwest::Client,
    file: &PlannedFile,
    partial: &Path,
    options: &FetchOptions,
    authorization: Option<&HeaderValue>,
) -> Result<(u64, u64), FetchError> {
    let mut wait = options.backoff;
    let mut attempt = 1;
    let resumed_from = loop {
        match download(client, file, partial, options, authorization).await {
            Ok(resumed_from) => break resumed_from,
            Err(e) if e.is_permanent() || attempt >= options.attempts => return Err(e),
            Err(e) => {
                tracing::warn!(path = %file.path, attempt, error = %e, retry_in_s = wait.as_secs_f32(), "download failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
        }
    };
    match verify(file, partial).await {
        Ok(bytes) => Ok((bytes, resumed_from)),
        // The bytes an earlier try left may be what is wrong (the file
        // changed upstream between the tries): once more, from zero.
        Err(FetchError::DigestMismatch { .. } | FetchError::SizeMismatch { .. })
            if resumed_from > 0 =>
        {
            tracing::warn!(path = %file.path, resumed_from, "a resumed download failed its check; downloading it again from the start");
            let _ = tokio::fs::remove_file(partial).await;
            download(client, file, partial, options, authorization).await?;
            Ok((verify(file, partial).await?, 0))
        }
        Err(e) => Err(e),
    }
}

/// `partial` under its final name (one rename: never a half file there).
pub(super) async fn rename_into_place(partial: &Path, target: &Path) -> Result<(), FetchError> {
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| FetchError::io(parent, e))?;
    }
    tokio::fs::rename(partial, target)
        .await
        .map_err(|e| FetchError::io(target, e))
}

/// An exclusive lock (flock) on `path`, held while the file lives.
async fn lock(path: PathBuf) -> Result<std::fs::File, FetchError> {
    let shown = path.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        // SAFETY: flock on a descriptor this function owns; it blocks until
        // the other holder's descriptor closes (its process may have died).
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(file)
    })
    .await
    .map_err(|e| FetchError::io(&shown, std::io::Error::other(e)))?
    .map_err(|e| FetchError::io(&shown, e))
}

/// Whether the cache holds the file whole: for a plain file its size and
/// digest; for an unpacked archive the digest it was unpacked from. A file
/// that differs is removed, to be fetched again.
async fn is_present(file: &PlannedFile, target: &Path) -> Result<bool, FetchError> {
    if file.unpack.is_some() {
        return Ok(unpack::unpacked_from(target).await.as_ref() == Some(&file.digest));
    }
    if file.oci.is_some() {
        return oci::cached(target).await;
    }
    let Ok(meta) = tokio::fs::metadata(target).await else {
        return Ok(false);
    };
    if meta.is_file()
        && file.size.is_none_or(|s| s == meta.len())
        && digest_of(target, &file.digest).await? == file.digest
    {
        return Ok(true);
    }
    tracing::warn!(path = %file.path, "the cached file differs from the plan's digest; fetching it again");
    if meta.is_file() {
        tokio::fs::remove_file(target)
            .await
            .map_err(|e| FetchError::io(target, e))?;
    }
    Ok(false)
}

pub(super) async fn digest_of(path: &Path, like: &Digest) -> Result<Digest, FetchError> {
    let mut hasher = like.hasher();
    let mut reader = tokio::fs::File::open(path)
        .await
        .map_err(|e| FetchError::io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| FetchError::io(path, e))?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Size and digest of a finished download; a file that fails either is
/// deleted (a resume could only keep the bad bytes).
async fn verify(file: &PlannedFile, partial: &Path) -> Result<u64, FetchError> {
    let len = tokio::fs::metadata(partial)
        .await
        .map_err(|e| FetchError::io(partial, e))?
        .len();
    let failure = if let Some(expected) = file.size.filter(|&s| s != len) {
        Some(FetchError::SizeMismatch {
            path: file.path.clone(),
            expected,
            actual: len,
        })
    } else {
        let actual = digest_of(partial, &file.digest).await?;
        (actual != file.digest).then(|| FetchError::DigestMismatch {
            path: file.path.clone(),
            expected: file.digest.clone(),
            actual,
        })
    };
    match failure {
        Some(e) => {
            let _ = tokio::fs::remove_file(partial).await;
            Err(e)
        }
        None => Ok(len),
    }
}

/// One try: appends to `partial` from where it ends (an HTTP range
/// request), or starts it again when the server ignores ranges. Returns
/// the bytes that were already there.
async fn download(
    client: &reqwest::Client,
    file: &PlannedFile,
    partial: &Path,
    options: &FetchOptions,
    authorization: Option<&HeaderValue>,
) -> Result<u64, FetchError> {
    if let Some(source) = file.url.strip_prefix("file://") {
        return copy_local(Path::new(source), partial).await.map(|()| 0);
    }
    let mut have = tokio::fs::metadata(partial).await.map_or(0, |m| m.len());
    if file.size.is_some_and(|s| have >= s) {
        if file.size == Some(have) {
            return Ok(have);
        }
        have = 0;
    }
    let mut request = client.get(&file.url);
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value.clone());
    }
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let url = file.url.clone();
    let network = |e: reqwest::Error| {
        if e.is_timeout() {
            FetchError::Timeout {
                url: url.clone(),
                secs: options.read_timeout.as_secs(),
            }
        } else {
            FetchError::Network {
                url: url.clone(),
                reason: voicechat_common::error_text::with_causes(&e),
            }
        }
    };
    let response = request.send().await.map_err(network)?;
    let status = response.status().as_u16();
    let resumed_from = match status {
        // A range that starts elsewhere than asked: start again.
        206 if content_range_start(&response) != Some(have) => {
            let _ = tokio::fs::remove_file(partial).await;
            return Err(FetchError::Network {
                url,
                reason: format!("asked for bytes from {have}, the server sent another range"),
            });
        }
        206 => have,
        200 => 0,
        404 => return Err(FetchError::NotFound { url }),
        // The range starts at the end: the earlier try got it all.
        416 if have > 0 && file.size.is_none() => return Ok(have),
        _ => return Err(FetchError::Http { url, status }),
    };
    let total = file
        .size
        .or_else(|| response.content_length().map(|l| l + resumed_from));
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed_from > 0)
        .truncate(resumed_from == 0)
        .open(partial)
        .await
        .map_err(|e| FetchError::io(partial, e))?;
    if resumed_from > 0 {
        tracing::info!(path = %file.path, resumed_from, "resuming an earlier download");
    }
    let mut body = response.bytes_stream();
    let mut written = resumed_from;
    let mut last_report = Instant::now();
    loop {
        let chunk = match tokio::time::timeout(options.read_timeout, body.next()).await {
            Err(_) => {
                return Err(FetchError::Timeout {
                    url,
                    secs: options.read_timeout.as_secs(),
                });
            }
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(network)?,
        };
        out.write_all(&chunk)
            .await
            .map_err(|e| FetchError::io(partial, e))?;
        written += chunk.len() as u64;
        if last_report.elapsed() >= options.progress_every {
            last_report = Instant::now();
            log_progress(&file.path, written, total);
        }
    }
    out.flush().await.map_err(|e| FetchError::io(partial, e))?;
    out.sync_all()
        .await
        .map_err(|e| FetchError::io(partial, e))?;
    log_progress(&file.path, written, total);
    // A body that ended early (a proxy closing): kept, and resumed.
    if let Some(total) = total.filter(|&t| written < t) {
        return Err(FetchError::Network {
            url,
            reason: format!("the body ended after {written} of {total} bytes"),
        });
    }
    Ok(resumed_from)
}

/// Where a 206 answer's `Content-Range: bytes <start>-<end>/<size>` starts.
fn content_range_start(response: &reqwest::Response) -> Option<u64> {
    let value = response
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A progress line: `progress <path> <bytes> <total or ->`, what the
/// operator reads from a running loader's log for the stack's status.
fn log_progress(path: &str, bytes: u64, total: Option<u64>) {
    let total_text = total.map_or_else(|| "-".to_owned(), |t| t.to_string());
    let percent = total
        .filter(|&t| t > 0)
        .map(|t| format!(" ({}%)", bytes * 100 / t))
        .unwrap_or_default();
    eprintln!("progress {path} {bytes} {total_text}{percent}");
}

async fn copy_local(source: &Path, partial: &Path) -> Result<(), FetchError> {
    match tokio::fs::copy(source, partial).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(FetchError::NotFound {
            url: format!("file://{}", source.display()),
        }),
        Err(e) => Err(FetchError::io(source, e)),
    }
}
