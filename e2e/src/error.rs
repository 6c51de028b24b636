use std::path::PathBuf;

/// What can go wrong while starting or driving the control plane.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("KUBE_ASSETS is not set (run e2e/build-k8s.sh and export its folder)")]
    NoAssets,
    #[error("{binary} not found in {dir}")]
    MissingBinary { binary: &'static str, dir: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what} not ready after {seconds} s; last lines of its log:\n{log_tail}")]
    NotReady {
        what: String,
        seconds: u64,
        log_tail: String,
    },
    #[error("{what} exited early ({status}); last lines of its log:\n{log_tail}")]
    Exited {
        what: String,
        status: String,
        log_tail: String,
    },
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
