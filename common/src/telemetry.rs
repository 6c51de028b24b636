//! Log setup: JSON lines by default (containers), plain text with
//! `LOG_FORMAT=text`; level from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text = crate::config::env_string("LOG_FORMAT").is_some_and(|f| f == "text");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // try_init: tests may initialise more than once in one process.
    let _ = if text {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}
