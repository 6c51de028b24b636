//! The voice service: text-to-speech (Piper, espeak-ng) and speech-to-text
//! (Whisper, Vosk) with routing, fallback, a Redis cache and an
//! OpenAI-compatible API, and the Wyoming protocol for Home Assistant.

pub mod app;
pub mod audio;
pub mod cache;
pub mod config;
pub mod encode;
pub mod engine_name;
pub mod engines;
pub mod google;
pub mod loader;
pub mod metrics;
pub mod openmp;
pub mod queue;
pub mod routes;
pub mod speech;
pub mod state;
pub mod stt;
pub mod tts;
pub mod wyoming;
