//! Where a service listens: `{PREFIX}_BIND` (default `0.0.0.0`) and
//! `{PREFIX}_PORT`.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::StartError;
use crate::config::{self, ConfigError};

/// The address from `{bind_var}` and `{port_var}`; an address that does not
/// parse names `{bind_var}`.
pub fn listen_addr(
    bind_var: &str,
    port_var: &str,
    default_port: u16,
) -> Result<SocketAddr, ConfigError> {
    let port: u16 = config::env_parse(port_var, default_port)?;
    let bind = config::env_string(bind_var).unwrap_or_else(|| "0.0.0.0".into());
    format!("{bind}:{port}")
        .parse()
        .map_err(|e| ConfigError::Invalid {
            name: bind_var.into(),
            message: format!("{bind}:{port} is not a socket address: {e}"),
        })
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}
