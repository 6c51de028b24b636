//! The models loader (`voicechat-voice models fetch`) against a local HTTP
//! server that can cut a body short, stall it, or not have the file:
//! resume, digest mismatch, 404, a slow body, a second run that downloads
//! nothing, an archive unpacked whole, and the report the operator reads.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use voicechat_common::models::{Digest, Hasher, LoaderReport, PlannedFile, PlannedModel, Unpack};
use voicechat_voice::loader::{FetchError, FetchOptions, Fetched, fetch_file};

const BODY_LEN: usize = 300_000;

#[derive(Clone)]
struct Server {
    body: Arc<Vec<u8>>,
    zip: Arc<Vec<u8>>,
    requests: Arc<AtomicUsize>,
    /// The first full-body answer stops after this many bytes (a cut connection).
    cut_first_at: Arc<AtomicUsize>,
}

fn body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

fn sha256(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(voicechat_common::models::DigestAlgorithm::Sha256);
    h.update(bytes);
    h.finish()
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        zip.start_file(*name, options).unwrap();
        std::io::Write::write_all(&mut zip, data).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

async fn serve_file(State(s): State<Server>, headers: HeaderMap) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let from = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok());
    let body = s.body.clone();
    match from {
        Some(start) if start < body.len() => (
            StatusCode::PARTIAL_CONTENT,
            [(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
            )],
            body[start..].to_vec(),
        )
            .into_response(),
        Some(_) => StatusCode::RANGE_NOT_SATISFIABLE.into_response(),
        None => {
            let cut = s.cut_first_at.swap(0, Ordering::SeqCst);
            if cut == 0 {
                return body.to_vec().into_response();
            }
            // Half the body, then the connection fails.
            // (after a pause, so that the first half reaches the client).
            let first = Bytes::copy_from_slice(&body[..cut]);
            let stream = futures_util::stream::unfold(0, move |step| {
                let first = first.clone();
                async move {
                    match step {
                        0 => Some((Ok::<Bytes, std::io::Error>(first), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            Some((Err(std::io::Error::other("cut")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Response::builder()
                .header(header::CONTENT_LENGTH, body.len())
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

async fn serve_slow(State(s): State<Server>) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let first = Bytes::copy_from_slice(&s.body[..1000]);
    let stream = futures_util::stream::unfold(0, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(first), 1)),
                _ => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    None
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_LENGTH, BODY_LEN)
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn start() -> (Server, SocketAddr) {
    let server = Server {
        body: Arc::new(body()),
        zip: Arc::new(zip_of(&[
            ("model-1.0/am/final.mdl", b"acoustic model"),
            ("model-1.0/conf/model.conf", b"--sample-frequency=16000"),
        ])),
        requests: Arc::new(AtomicUsize::new(0)),
        cut_first_at: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/m/file.bin", get(serve_file))
        .route("/m/slow.bin", get(serve_slow))
        .route("/m/forbidden.bin", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/m/model.zip",
            get(|State(s): State<Server>| async move {
                s.requests.fetch_add(1, Ordering::SeqCst);
                s.zip.to_vec()
            }),
        )
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (server, addr)
}

fn file(addr: SocketAddr, url_path: &str, digest: Digest) -> PlannedFile {
    PlannedFile {
        path: "whisper/ggml-test.bin".into(),
        url: format!("http://{addr}{url_path}"),
        size: Some(BODY_LEN as u64),
        digest,
        unpack: None,
        oci: None,
    }
}

fn options(dest: &Path) -> FetchOptions {
    let mut o = FetchOptions::new(dest.to_owned());
    o.attempts = 1;
    o.read_timeout = Duration::from_secs(1);
    o.backoff = Duration::from_millis(10);
    o
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .read_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Every file under the cache, relative, except the partial downloads.
fn final_files(dest: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel.starts_with(".partial") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dest, dest, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn a_cut_download_resumes_where_it_stopped_and_a_second_run_fetches_nothing() {
    let (server, addr) = start().await;
    let dir = tempdir();
    let planned = file(addr, "/m/file.bin", sha256(&server.body));
    server.cut_first_at.store(BODY_LEN / 2, Ordering::SeqCst);
    let err = fetch_file(&client(), &planned, &options(&dir))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "a cut connection may pass: {err}");
    assert!(
        final_files(&dir).is_empty(),
        "no half file under the final name"
    );

    let got = fetch_file(&client(), &planned, &options(&dir))
        .await
        .unwrap();
    assert_eq!(
        got,
        Fetched::Downloaded {
            bytes: BODY_LEN as u64,
            resumed_from: (BODY_LEN / 2) as u64
        }
    );
    let target = dir.join(planned.cache_path());
    assert_eq!(std::fs::read(&target).unwrap(), *server.body);
    assert_eq!(final_files(&dir), [planned.cache_path()]);

    let requests = server.requests.load(Ordering::SeqCst);
    let again = fetch_file(&client(), &planned, &options(&dir))
        .await
        .unwrap();
    assert_eq!(again, Fetched::AlreadyPresent);
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        requests,
        "no request for a cached file"
    );
}

#[tokio::test]
async fn a_resumed_download_that_fails_its_check_is_downloaded_again_from_the_start() {
    let (server, addr) = start().await;
    let dir = tempdir();
    let planned = file(addr, "/m/file.bin", sha256(&server.body));
    // What an earlier try left, but of other bytes (the file changed
    // upstream between the tries).
    let partial_dir = dir.join(".partial");
    std::fs::create_dir_all(&partial_dir).unwrap();
    let stem = planned.cache_path().replace('/', "__");
    std::fs::write(
        partial_dir.join(format!("{stem}.part")),
        vec![0u8; BODY_LEN / 3],
    )
    .unwrap();
    let got = fetch_file(&client(), &planned, &options(&dir))
        .await
        .unwrap();
    assert_eq!(
        got,
        Fetched::Downloaded {
            bytes: BODY_LEN as u64,
            resumed_from: 0
        }
    );
    assert_eq!(
        std::fs::read(dir.join(planned.cache_path())).unwrap(),
        *server.body
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        2,
        "a resume, then one download from zero"
    );
}

#[tokio::test]
async fn two_loaders_wanting_one_file_download_it_once() {
    let (server, addr) = start().await;
    let dir = tempdir();
    let planned = file(addr, "/m/file.bin", sha256(&server.body));
    let (c1, c2, o) = (client(), client(), options(&dir));
    let (a, b) = tokio::join!(fetch_file(&c1, &planned, &o), fetch_file(&c2, &planned, &o));
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Fetched::AlreadyPresent));
    assert!(
        matches!(outcomes[0], Fetched::Downloaded { .. }),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], Fetched::AlreadyPresent);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_digest_mismatch_reports_both_digests_and_keeps_nothing() {
    let (_server, addr) = start().await;
    let dir = tempdir();
    let wrong = Digest::sha256(&"0".repeat(64)).unwrap();
    let err = fetch_file(
        &client(),
        &file(addr, "/m/file.bin", wrong.clone()),
        &options(&dir),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::DigestMismatch { .. }),
        "{message}"
    );
    assert!(err.is_permanent());
    assert!(message.contains(&wrong.to_string()), "{message}");
    assert!(message.contains(&sha256(&body()).to_string()), "{message}");
    assert!(final_files(&dir).is_empty());
    let partials: Vec<_> = std::fs::read_dir(dir.join(".partial"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .collect();
    assert!(
        partials.is_empty(),
        "the bad download is deleted: {partials:?}"
    );
}

#[tokio::test]
async fn a_missing_file_is_a_permanent_not_found() {
    let (_server, addr) = start().await;
    let dir = tempdir();
    let err = fetch_file(
        &client(),
        &file(addr, "/m/absent.bin", sha256(b"x")),
        &options(&dir),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    assert!(err.is_permanent());
    assert_eq!(err.reason(), "NotFound");
}

#[tokio::test]
async fn a_stalled_body_times_out_and_leaves_its_bytes_for_a_resume() {
    let (_server, addr) = start().await;
    let dir = tempdir();
    let planned = file(addr, "/m/slow.bin", sha256(&body()));
    let started = std::time::Instant::now();
    let err = fetch_file(&client(), &planned, &options(&dir))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    assert!(!err.is_permanent());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up after the read timeout"
    );
    assert!(final_files(&dir).is_empty());
    let partial = dir
        .join(".partial")
        .join(format!("{}.part", planned.cache_path().replace('/', "__")));
    assert_eq!(std::fs::metadata(partial).unwrap().len(), 1000);
}

#[tokio::test]
async fn an_archive_is_unpacked_whole_under_its_path() {
    let (server, addr) = start().await;
    let dir = tempdir();
    let planned = PlannedFile {
        path: "vosk/xx".into(),
        url: format!("http://{addr}/m/model.zip"),
        size: Some(server.zip.len() as u64),
        digest: sha256(&server.zip),
        unpack: Some(Unpack::Zip),
        oci: None,
    };
    fetch_file(&client(), &planned, &options(&dir))
        .await
        .unwrap();
    let root = dir.join(planned.cache_path());
    assert_eq!(
        std::fs::read(root.join("am/final.mdl")).unwrap(),
        b"acoustic model"
    );
    assert!(root.join("conf/model.conf").is_file());
    let requests = server.requests.load(Ordering::SeqCst);
    assert_eq!(
        fetch_file(&client(), &planned, &options(&dir))
            .await
            .unwrap(),
        Fetched::AlreadyPresent
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), requests);
}

#[tokio::test]
async fn the_command_reports_each_model_and_exits_3_on_a_permanent_failure() {
    let (server, addr) = start().await;
    let dir = tempdir();
    let good = PlannedModel {
        name: "whisper/good".into(),
        kind: voicechat_common::models::ModelKind::Whisper,
        ollama_name: None,
        ollama_parameters: Default::default(),
        files: vec![file(addr, "/m/file.bin", sha256(&server.body))],
    };
    let mut bad = good.clone();
    bad.name = "whisper/bad".into();
    bad.files[0].path = "whisper/other.bin".into();
    bad.files[0].digest = Digest::sha256(&"1".repeat(64)).unwrap();
    let result_file = dir.join("report.json");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_voicechat-voice"))
        .args(["models", "fetch", "--dest"])
        .arg(dir.join("cache"))
        .env("MODELS_PLAN", serde_json::to_string(&[good, bad]).unwrap())
        .env("MODELS_RESULT_FILE", &result_file)
        .env("MODELS_ATTEMPTS", "1")
        .env("LOG_FORMAT", "text")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("progress whisper/ggml-test.bin 300000 300000"),
        "{stderr}"
    );
    assert!(stderr.contains("ready whisper/good"), "{stderr}");
    let report: LoaderReport =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_eq!(report.models.len(), 2);
    assert_eq!(report.models[0].downloaded, BODY_LEN as u64);
    assert_eq!(report.models[1].reason.as_deref(), Some("DigestMismatch"));

    // A 403 is as permanent as a 404 (FetchError::is_permanent decides both).
    let mut forbidden = file(addr, "/m/forbidden.bin", sha256(b"x"));
    forbidden.path = "whisper/forbidden.bin".into();
    let plan = PlannedModel {
        name: "whisper/forbidden".into(),
        kind: voicechat_common::models::ModelKind::Whisper,
        ollama_name: None,
        ollama_parameters: Default::default(),
        files: vec![forbidden],
    };
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_voicechat-voice"))
        .args(["models", "fetch", "--dest"])
        .arg(dir.join("cache"))
        .env("MODELS_PLAN", serde_json::to_string(&[plan]).unwrap())
        .env("MODELS_ATTEMPTS", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stdout).contains("HttpError"));

    let usage = tokio::process::Command::new(env!("CARGO_BIN_EXE_voicechat-voice"))
        .args(["models", "fetch", "piper/nope", "--dest"])
        .arg(dir.join("cache"))
        .env_remove("MODELS_PLAN")
        .output()
        .await
        .unwrap();
    assert_eq!(
        usage.status.code(),
        Some(3),
        "an unknown name is a permanent failure"
    );
    assert!(String::from_utf8_lossy(&usage.stdout).contains("unknown model \\\"piper/nope\\\""));
}

/// A folder removed when the test ends, passed or not.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("vcs-fetch-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
