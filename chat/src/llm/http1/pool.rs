//! Kept-alive connections to one server, newest last.

use std::io;
use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Idle connections older than this are not reused (reqwest's default).
const IDLE_LIFETIME: Duration = Duration::from_secs(90);

pub struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    max_idle: usize,
}

/// Whether the server has not closed `stream`: a closed connection reads
/// as end of file, a reset one as an error, and an idle HTTP/1.1
/// connection may carry no stray bytes. Asked of the socket itself
/// (`MSG_PEEK`), since tokio's cached readiness may not have seen the close.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    matches!(
        socket2::SockRef::from(stream).peek(&mut byte),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock
    )
}

impl Pool {
    pub fn new(max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
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
            if since.elapsed() < IDLE_LIFETIME && still_open(&stream) {
                return Some(stream);
            }
        }
    }

    /// Keeps `stream` for the next request, if there is room; connections
    /// past their lifetime are let go first.
    pub fn put(&self, stream: TcpStream) {
        let expired: Vec<(TcpStream, Instant)> = {
            let mut idle = self.lock();
            let fresh = idle.partition_point(|(_, since)| since.elapsed() >= IDLE_LIFETIME);
            let expired = idle.drain(..fresh).collect();
            if idle.len() < self.max_idle {
                idle.push((stream, Instant::now()));
            }
            expired
        };
        drop(expired);
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
        let pool = Pool::new(4);
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
    async fn the_pool_keeps_at_most_its_bound() {
        let pool = Pool::new(2);
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (client, server) = pair().await;
            servers.push(server);
            pool.put(client);
        }
        assert_eq!(pool.idle(), 2);
    }
}
