//! A service process from `main` to its exit code.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Sets up logging, runs `serve` on a multi-threaded runtime, and turns
/// its result into the exit code: 0 after a clean stop, 1 with the error
/// logged and printed (`{program}: {error}` on stderr, for a terminal or
/// a pod's last state) when it fails.
pub fn run_process<F, E>(program: &'static str, serve: impl FnOnce() -> F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    crate::telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "{program} failed");
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}
