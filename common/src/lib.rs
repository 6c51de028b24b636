//! Pieces both services need and must behave identically in: token checks,
//! configuration from the environment, the `/health` shape, HTTP metrics,
//! the JSON error shape, serving with request deadlines, shutdown signals
//! and log setup.

pub mod api_error;
pub mod auth;
pub mod config;
pub mod cors;
pub mod health;
pub mod http_metrics;
pub mod serve;
pub mod shutdown;
pub mod stt_profile;
pub mod telemetry;
pub mod ws_close;
