//! The Wyoming protocol (Home Assistant's speech protocol) on its own TCP
//! port, over the same engines as HTTP: `describe` → `info`, `transcribe`
//! with audio events → `transcript`, `synthesize` and streaming synthesis
//! → audio events. Wyoming has no authentication: whoever reaches the port
//! can use it, so it is off the loopback only where the network allows
//! (the operator's NetworkPolicy; docs/voice.md#wyoming).

mod audio;
pub mod frame;
mod info;
mod session;
mod voice;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{BufReader, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use frame::FrameLimits;
pub use session::Closed;
use session::{Session, SessionSettings};

use crate::state::AppState;

/// `WYOMING_*` settings.
#[derive(Debug, Clone)]
pub struct WyomingSettings {
    /// Where to listen (`WYOMING_PORT` on `VOICE_BIND`); `None` when the
    /// port is 0: no Wyoming.
    pub listen: Option<SocketAddr>,
    /// Seconds a client may stay silent between events, or not read what
    /// it is sent (`WYOMING_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Connections served at once (`WYOMING_MAX_CONNECTIONS`); more are
    /// answered with an error and closed.
    pub max_connections: usize,
    pub limits: FrameLimits,
}

impl WyomingSettings {
    pub const DEFAULT_PORT: u16 = 10300;

    /// Wyoming on `listen` with the default limits.
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen: Some(listen),
            idle_timeout: Duration::from_secs(60),
            max_connections: 32,
            limits: FrameLimits::default(),
        }
    }

    pub fn off() -> Self {
        Self {
            listen: None,
            ..Self::on(SocketAddr::from(([127, 0, 0, 1], 0)))
        }
    }
}

/// Serves Wyoming connections from `listener` until `stop` is cancelled;
/// then waits for the connections to finish what they are doing.
pub async fn serve(listener: TcpListener, state: AppState, stop: CancellationToken) {
    let settings = &state.config.wyoming;
    let session = SessionSettings {
        limits: settings.limits,
        idle_timeout: settings.idle_timeout,
    };
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "wyoming: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Audio chunks are small events; Nagle would hold each back.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
        let metrics = state.metrics.clone();
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics
                .wyoming_closed
                .with_label_values(&["too_many_connections"])
                .inc();
            tracing::warn!(%peer, "wyoming: too many connections, refusing one");
            connections.spawn(refuse_busy(stream, session.idle_timeout));
            continue;
        };
        let (state, stop) = (state.clone(), stop.clone());
        connections.spawn(async move {
            let _slot = slot;
            metrics.wyoming_connections.inc();
            let (read, write) = stream.into_split();
            let closed = Session::new(&state, BufWriter::new(write), session)
                .run(BufReader::new(read), &stop)
                .await;
            metrics.wyoming_connections.dec();
            metrics
                .wyoming_closed
                .with_label_values(&[closed.reason()])
                .inc();
            tracing::debug!(%peer, reason = closed.reason(), "wyoming: connection closed");
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

async fn refuse_busy(mut stream: tokio::net::TcpStream, timeout: Duration) {
    use tokio::io::AsyncWriteExt;
    let event = frame::Event::new(
        "error",
        serde_json::json!({"code": "too_many_connections", "text": "the server is busy: try again"}),
    );
    let _ = tokio::time::timeout(timeout, stream.write_all(&frame::encode(&event))).await;
}
