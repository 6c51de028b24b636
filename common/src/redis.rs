//! The one way both services connect to Redis: lazily (a Redis that is
//! down at start-up is not an error; the service starts degraded and
//! connects when Redis appears), every call bounded by `timeout`.

use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;

/// `REDIS_URL` does not name a Redis.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL: {0}")]
pub struct RedisUrlError(String);

pub fn connect_lazy(url: &str, timeout: Duration) -> Result<ConnectionManager, RedisUrlError> {
    // The URL itself never reaches the message: it may hold a password.
    let info = url
        .into_connection_info()
        .map_err(|e| RedisUrlError(e.to_string()))?
        // Commands are small writes answered at once; Nagle would hold
        // the second of two pipelined writes for the server's delayed ACK.
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    let client = redis::Client::open(info).map_err(|e| RedisUrlError(e.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| RedisUrlError(e.to_string()))
}
