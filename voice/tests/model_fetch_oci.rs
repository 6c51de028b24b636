//! The models loader against a real OCI registry (CNCF distribution, with
//! htpasswd auth), filled by clients nobody here wrote: an artifact pushed
//! with `oras` (the file is a layer) and an image of filesystem layers
//! built with `crane append` (the file is in a tar layer, and a whiteout in
//! an upper layer deletes another). Run by scripts/test.sh; by hand:
//! `eval "$(e2e/build-oci-tools.sh)"; cargo test -p voicechat-voice --test model_fetch_oci`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voicechat_common::models::{PlannedFile, PlannedModel};
use voicechat_testkit::oci_registry::{OciRegistry, PASSWORD, USER};
use voicechat_voice::loader::{FetchError, FetchOptions, Fetched, fetch_file};

fn registry(test: &str) -> Option<OciRegistry> {
    let tools = OciRegistry::tools();
    voicechat_testkit::have_or_skip(
        tools.is_some(),
        test,
        "oci",
        "the OCI registry and clients (VOICECHAT_OCI_TOOLS from e2e/build-oci-tools.sh)",
    )
    .then(|| OciRegistry::start(&tools.unwrap_or_default()))
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vcs-oci-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        Self(dir)
    }

    fn cache(&self) -> PathBuf {
        self.0.join("cache")
    }

    /// A pull secret's content, where the loader Job would mount it.
    fn auth_file(&self, config: &str) -> String {
        let path = self.0.join(format!("auth-{}.json", config.len()));
        std::fs::write(&path, config).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn model_bytes(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

fn options(dest: &Path) -> FetchOptions {
    let mut o = FetchOptions::new(dest.to_owned());
    o.attempts = 2;
    o.backoff = Duration::from_millis(10);
    o
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn image_file(
    image: &str,
    file: Option<&str>,
    path: &str,
    auth_file: Option<String>,
) -> PlannedFile {
    PlannedModel::from_image(image, file, path, true, auth_file)
        .unwrap()
        .files
        .remove(0)
}

/// Pushes `ggml-test.bin` as an artifact; returns the pinned reference.
fn push_artifact(registry: &OciRegistry, dir: &Path, bytes: &[u8]) -> String {
    std::fs::write(dir.join("ggml-test.bin"), bytes).unwrap();
    let tag = format!("{}/models/whisper:v1", registry.host());
    registry.client(
        "oras",
        &[
            "push",
            "--plain-http",
            &tag,
            "ggml-test.bin:application/octet-stream",
        ],
        dir,
    );
    format!(
        "{}/models/whisper@{}",
        registry.host(),
        registry.digest(&tag)
    )
}

fn gzipped_tar(path: &Path, entries: &[(&str, &[u8])]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder
        .into_inner()
        .unwrap()
        .finish()
        .unwrap()
        .flush()
        .unwrap();
}

#[tokio::test]
async fn an_artifact_file_is_pulled_verified_and_found_cached_on_the_next_run() {
    let Some(registry) =
        registry("an_artifact_file_is_pulled_verified_and_found_cached_on_the_next_run")
    else {
        return;
    };
    let scratch = Scratch::new("artifact");
    let bytes = model_bytes(600_000, 1);
    let image = push_artifact(&registry, &scratch.0, &bytes);
    let auth = scratch.auth_file(&registry.docker_config(USER, PASSWORD));
    let file = image_file(&image, None, "whisper/ggml-test.bin", Some(auth));
    let fetched = fetch_file(&client(), &file, &options(&scratch.cache()))
        .await
        .unwrap();
    assert_eq!(
        fetched,
        Fetched::Downloaded {
            bytes: bytes.len() as u64,
            resumed_from: 0
        }
    );
    let target = scratch.cache().join(file.cache_path());
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert_eq!(
        std::fs::read_dir(scratch.cache().join(".partial"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .count(),
        0,
        "a partial download was left"
    );
    assert_eq!(
        fetch_file(&client(), &file, &options(&scratch.cache()))
            .await
            .unwrap(),
        Fetched::AlreadyPresent
    );
    // A file changed in the cache is pulled again, not served.
    std::fs::write(&target, b"tampered").unwrap();
    assert!(matches!(
        fetch_file(&client(), &file, &options(&scratch.cache()))
            .await
            .unwrap(),
        Fetched::Downloaded { .. }
    ));
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
}

#[tokio::test]
async fn a_file_in_an_images_layers_is_the_top_layers_and_a_whiteout_deletes_one() {
    let Some(registry) =
        registry("a_file_in_an_images_layers_is_the_top_layers_and_a_whiteout_deletes_one")
    else {
        return;
    };
    let scratch = Scratch::new("image");
    let (old, new) = (model_bytes(200_000, 2), model_bytes(250_000, 3));
    gzipped_tar(
        &scratch.0.join("lower.tar.gz"),
        &[
            ("models/voice.onnx", &old),
            ("models/gone.onnx", b"deleted above"),
        ],
    );
    gzipped_tar(
        &scratch.0.join("upper.tar.gz"),
        &[("models/voice.onnx", &new), ("models/.wh.gone.onnx", b"")],
    );
    let tag = format!("{}/models/piper:v1", registry.host());
    registry.client(
        "crane",
        &[
            "append",
            "--insecure",
            "-f",
            "lower.tar.gz",
            "-f",
            "upper.tar.gz",
            "-t",
            &tag,
        ],
        &scratch.0,
    );
    let image = format!("{}/models/piper@{}", registry.host(), registry.digest(&tag));
    let auth = scratch.auth_file(&registry.docker_config(USER, PASSWORD));
    let file = image_file(
        &image,
        Some("/models/voice.onnx"),
        "piper/voice.onnx",
        Some(auth.clone()),
    );
    fetch_file(&client(), &file, &options(&scratch.cache()))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(scratch.cache().join(file.cache_path())).unwrap(),
        new,
        "not the top layer's file"
    );
    let gone = image_file(
        &image,
        Some("models/gone.onnx"),
        "piper/gone.onnx",
        Some(auth),
    );
    let err = fetch_file(&client(), &gone, &options(&scratch.cache()))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::NotInImage { .. }), "{err}");
    assert!(err.is_permanent());
    assert!(!scratch.cache().join(gone.cache_path()).exists());
}

#[tokio::test]
async fn wrong_or_missing_credentials_a_missing_file_and_an_unknown_digest_fail_permanently() {
    let Some(registry) = registry(
        "wrong_or_missing_credentials_a_missing_file_and_an_unknown_digest_fail_permanently",
    ) else {
        return;
    };
    let scratch = Scratch::new("refusals");
    let image = push_artifact(&registry, &scratch.0, &model_bytes(10_000, 4));
    let fetch = |file: PlannedFile| {
        let cache = scratch.cache();
        async move {
            fetch_file(&client(), &file, &options(&cache))
                .await
                .unwrap_err()
        }
    };

    let wrong = scratch.auth_file(&registry.docker_config(USER, "not-the-password"));
    let err = fetch(image_file(
        &image,
        None,
        "whisper/ggml-test.bin",
        Some(wrong),
    ))
    .await;
    assert!(matches!(err, FetchError::Unauthorized { .. }), "{err}");
    assert!(
        !err.to_string().contains("not-the-password"),
        "the password is in the error: {err}"
    );

    let err = fetch(image_file(&image, None, "whisper/ggml-test.bin", None)).await;
    assert!(matches!(err, FetchError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("pullSecret"), "{err}");

    let auth = scratch.auth_file(&registry.docker_config(USER, PASSWORD));
    let err = fetch(image_file(
        &image,
        Some("other.bin"),
        "whisper/other.bin",
        Some(auth.clone()),
    ))
    .await;
    assert!(matches!(err, FetchError::NotInImage { .. }), "{err}");
    assert!(
        err.to_string().contains("ggml-test.bin"),
        "the error lists the artifact's files: {err}"
    );

    let unknown = format!(
        "{}/models/whisper@sha256:{}",
        registry.host(),
        "0".repeat(64)
    );
    let err = fetch(image_file(
        &unknown,
        None,
        "whisper/ggml-test.bin",
        Some(auth),
    ))
    .await;
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    assert!(err.is_permanent());
    assert!(
        !scratch.cache().join("whisper").exists(),
        "a failed pull left files in the cache"
    );
}
