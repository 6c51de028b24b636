//! ONNX Runtime (Piper's inference engine) is loaded at run time, so that a
//! build needs no copy of it and a service without it says so instead of
//! failing to start.

use std::sync::OnceLock;

/// Where to look: `ORT_DYLIB_PATH` when set, else the library's names for
/// the dynamic loader (`LD_LIBRARY_PATH`, the `ldconfig` cache).
fn candidates() -> Vec<String> {
    match std::env::var("ORT_DYLIB_PATH") {
        Ok(path) if !path.trim().is_empty() => vec![path],
        _ => vec!["libonnxruntime.so.1".into(), "libonnxruntime.so".into()],
    }
}

/// Loads ONNX Runtime once per process; the error names what was tried.
pub fn ensure_loaded() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let mut failures = Vec::new();
            for candidate in candidates() {
                match ort::init_from(&candidate) {
                    Ok(environment) => {
                        environment.commit();
                        return Ok(());
                    }
                    Err(e) => failures.push(format!("{candidate}: {e}")),
                }
            }
            Err(format!(
                "ONNX Runtime could not be loaded (set ORT_DYLIB_PATH or LD_LIBRARY_PATH): {}",
                failures.join("; ")
            ))
        })
        .clone()
}
