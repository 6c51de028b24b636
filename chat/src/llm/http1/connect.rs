//! Connecting to the LLM server: each of its addresses in turn, within one
//! deadline, and the socket set up for small streamed writes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::super::LlmError;

/// TCP keepalive on LLM connections, as reqwest sets it (15 s idle, 15 s
/// apart, 3 probes): a pooled connection whose peer vanished (a node
/// gone, a NAT entry dropped) is found out instead of taking a request
/// into silence.
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_PROBES: u32 = 3;

/// Where the server is.
#[derive(Debug, Clone)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

/// A connection to `host`, all within `timeout`: the name's lookup, then
/// each address with an equal share of what time is left, so one that
/// goes nowhere (an IPv6 route into a black hole) leaves time for the next.
pub async fn connect(host: &Host, port: u16, timeout: Duration) -> Result<TcpStream, LlmError> {
    let deadline = Instant::now() + timeout;
    let addresses: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => {
            tokio::time::timeout_at(deadline, tokio::net::lookup_host((name.as_str(), port)))
                .await
                .map_err(|_| LlmError::Timeout("connect"))?
                .map_err(|e| {
                    LlmError::Unreachable(format!("cannot resolve the LLM server's name: {e}"))
                })?
                .collect()
        }
    };
    connect_any(addresses, deadline).await
}

/// The first of `addresses` that connects before `deadline`.
async fn connect_any(addresses: Vec<SocketAddr>, deadline: Instant) -> Result<TcpStream, LlmError> {
    let mut last = LlmError::Unreachable("the LLM server's name has no address".into());
    let mut left = addresses.len();
    for address in addresses {
        let share = deadline.saturating_duration_since(Instant::now())
            / u32::try_from(left).unwrap_or(u32::MAX);
        left -= 1;
        // The address stays out of the message: it reaches the user.
        last = match tokio::time::timeout(share, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(configure(stream)),
            Ok(Err(e)) => LlmError::Unreachable(format!("cannot connect to the LLM server: {e}")),
            Err(_) => LlmError::Timeout("connect"),
        };
    }
    Err(last)
}

fn configure(stream: TcpStream) -> TcpStream {
    // Ollama and llama.cpp's server turn Nagle off too; a request is one
    // write, so this only keeps it from waiting on an ACK.
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE)
        .with_interval(KEEPALIVE)
        .with_retries(KEEPALIVE_PROBES);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address nothing listens on, held so no other test takes it.
    fn refusing() -> (socket2::Socket, SocketAddr) {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let address = socket.local_addr().unwrap().as_socket().unwrap();
        (socket, address)
    }

    #[tokio::test]
    async fn the_next_address_is_tried_and_the_socket_is_set_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_held, refused) = refusing();
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = connect_any(vec![refused, listener.local_addr().unwrap()], deadline)
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
        assert!(stream.nodelay().unwrap());
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE);
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);

        let err = connect_any(vec![refused], deadline).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Unreachable(m) if m.contains("refused")),
            "{err}"
        );
        assert!(!err.to_string().contains("127.0.0.1"), "{err}");
        let err = connect_any(vec![], deadline).await.unwrap_err();
        assert!(err.to_string().contains("no address"), "{err}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_unreachable() {
        let err = connect(
            &Host::Name("no-such-host.invalid".into()),
            80,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, LlmError::Unreachable(m) if m.contains("resolve")),
            "{err}"
        );
    }
}
