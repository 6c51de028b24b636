//! Kept-alive connections to one server, newest last.

use std::io;
use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

pub struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    max_idle: usize,
    /// Idle connections older than this are not reused.
    lifetime: Duration,
}

/// Whether the server has not closed `stream`: a closed connection reads
/// as end of file, a reset one as an error, and an idle HTTP/1.1
/// connection may carry no stray bytes. Asked of the socket itself
/// (`MSG_PEEK`): tokio's cached readiness is cleared by a short read and
/// may not show a close that came after it.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    matches!(
        socket2::SockRef::from(stream).peek(&mut byte),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock
    )
}

impl Pool {
    pub fn new(max_idle: usize, lifetime: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
            lifetime,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(TcpStream, Instant)>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest idle connection the server has not closed; the closed
    /// and the old ones met on the way are dropped (outside the lock).
    pub fn take(&self) -> Option<TcpStream> {
        loop {
            let (stream, since) = self.lock().pop()?;
            if since.elapsed() < self.lifetime && still_open(&stream) {
                return Some(stream);
            }
        }
    }

    /// Keeps `stream` for the next request. Connections past their
    /// lifetime are let go (closed outside the lock), and the oldest when
    /// the pool is full. Idle connections are only let go here and in
    /// `take`, not on a timer: with no traffic, up to `max_idle` stay open.
    pub fn put(&self, stream: TcpStream) {
        let let_go: Vec<(TcpStream, Instant)> = {
            let mut idle = self.lock();
            let expired = idle.partition_point(|(_, since)| since.elapsed() >= self.lifetime);
            let over = (idle.len() - expired + 1).saturating_sub(self.max_idle);
            let let_go = idle.drain(..expired + over).collect();
            if self.max_idle > 0 {
                idle.push((stream, Instant::now()));
            }
            let_go
        };
        drop(let_go);
    }

    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: the client's end and the server's.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_connection_closed_or_written_to_while_idle_is_not_reused() {
        let pool = Pool::new(4, Duration::from_secs(90));
        let (open, _server_open) = pair().await;
        let (closed, server_closed) = pair().await;
        let (chatty, mut server_chatty) = pair().await;
        pool.put(open);
        pool.put(closed);
        pool.put(chatty);
        drop(server_closed);
        server_chatty.write_all(b"x").await.unwrap();
        // Let the FIN and the byte arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            pool.take().is_some(),
            "the open one is found under the others"
        );
        assert!(pool.take().is_none());
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn the_pool_keeps_the_newest_up_to_its_bound_and_lets_old_ones_go() {
        let pool = Pool::new(2, Duration::from_secs(90));
        let mut servers = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..3 {
            let (client, server) = pair().await;
            ports.push(client.local_addr().unwrap().port());
            servers.push(server);
            pool.put(client);
        }
        assert_eq!(pool.idle(), 2);
        let newest = pool.take().unwrap().local_addr().unwrap().port();
        let next = pool.take().unwrap().local_addr().unwrap().port();
        assert_eq!(
            [newest, next],
            [ports[2], ports[1]],
            "the oldest was let go"
        );

        let pool = Pool::new(2, Duration::from_millis(50));
        let (client, _server) = pair().await;
        pool.put(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(pool.take().is_none(), "past its lifetime");
        let (old, _old_server) = pair().await;
        pool.put(old);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (new, _new_server) = pair().await;
        pool.put(new);
        assert_eq!(pool.idle(), 1, "the expired one was let go");
    }
}
