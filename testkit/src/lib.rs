//! Integration-test harness shared by the services: a real `redis-server`
//! on a free port, a real OCI registry, a slow-loris client, a scripted LLM
//! server for faults a real model cannot be made to show, and the rule for
//! tests whose real part is missing.

pub mod child;
pub mod llm_double;
pub mod oci_registry;
pub mod redis_server;
pub mod slow_client;

pub use llm_double::{LlmDouble, Script};
pub use oci_registry::OciRegistry;
pub use redis_server::{RedisServer, free_port};

/// Whether a test needing the part `dep` (described by `what`) can run.
/// When `REQUIRE_REAL_DEPS` (a comma-separated list, or `all`) names `dep`,
/// as the test script does for what it installs, a missing part fails the
/// test instead of skipping it. A skip is printed and, because cargo hides
/// a passing test's output, appended to `VOICECHAT_SKIP_LOG` for the test
/// script to list.
pub fn have_or_skip(available: bool, test: &str, dep: &str, what: &str) -> bool {
    if available {
        return true;
    }
    let required = std::env::var("REQUIRE_REAL_DEPS").unwrap_or_default();
    if required
        .split(',')
        .any(|d| d.trim() == dep || d.trim() == "all")
    {
        panic!("{test}: {what} is required (REQUIRE_REAL_DEPS={required}) but not available");
    }
    let line = format!("SKIPPED {test}: {what} not available");
    eprintln!("{line}");
    if let Ok(path) = std::env::var("VOICECHAT_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    false
}
