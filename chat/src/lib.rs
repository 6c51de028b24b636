//! The chat service: real-time chat over WebSocket and REST/SSE, history in
//! Redis, answers streamed from an LLM (Ollama or OpenAI-compatible).

pub mod app;
pub mod config;
pub mod conversation;
pub mod health;
pub mod history;
pub mod llm;
pub mod metrics;
pub mod protocol;
pub mod rate_limit;
pub mod realtime;
pub mod rest;
pub mod state;
pub mod voice_client;
pub mod ws;
