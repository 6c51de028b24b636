//! Pieces both services need and must behave identically in: the service
//! shell (process, listener, router, start errors), token checks,
//! configuration from the environment, the `/health` shape, HTTP metrics,
//! the JSON error shape, serving with request deadlines, shutdown signals,
//! log setup, the Redis connection, WebSocket authentication and close
//! codes, the speech-to-text profiles, and text cut into sentences (speech
//! is made sentence by sentence).

pub mod api_error;
pub mod auth;
pub mod config;
pub mod cors;
pub mod error_text;
pub mod health;
pub mod http_metrics;
pub mod models;
pub mod openai_voices;
pub mod realtime;
pub mod redis;
pub mod sentences;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod stt_profile;
pub mod telemetry;
pub mod ws;
