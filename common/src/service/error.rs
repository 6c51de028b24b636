//! Why a service could not start.

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::redis::RedisUrlError;

/// Each variant names the part that failed; the message is what the
/// process prints before it exits.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Redis(#[from] RedisUrlError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A part of one service only (the chat service's LLM client, ...).
    #[error("{part}: {source}")]
    Part {
        part: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
}

impl StartError {
    pub fn part(
        part: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Part {
            part,
            source: Box::new(source),
        }
    }
}
