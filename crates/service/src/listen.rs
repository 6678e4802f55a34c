//! The accept loop both planes serve HTTP/1.1 with.
//!
//! Each connection gets a deadline for its request head and a bounded read buffer, so a client
//! that opens connections and dribbles header bytes (slowloris) cannot hold them open. When
//! `shutdown` changes the loop stops accepting and open connections finish their current request
//! and close.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Per-connection bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a client may take to send a complete request head.
    pub header_read_timeout: Duration,
    /// The largest request head (and read buffer) accepted, in bytes.
    pub max_head_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_head_bytes: 64 * 1024,
        }
    }
}

/// Accepts connections on `listener` until `shutdown` changes, serving each with the service
/// `service_for(peer)` returns. `plane` names the listener in logs.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnectionLimits,
    plane: &'static str,
    service_for: F,
) where
    F: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, plane, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service_for(peer);
        let mut connection_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_head_bytes)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = connection_shutdown.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%error, plane, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(limits: ConnectionLimits) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(listener, stopped, limits, "test", |peer| {
            service_fn(move |_request: Request<Incoming>| async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(peer.to_string()))))
            })
        }));
        (addr, stop)
    }

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn serves_a_request_and_tells_the_service_its_peer() {
        let (addr, _stop) = start(ConnectionLimits::default()).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let local = stream.local_addr().expect("local");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with(&local.to_string()), "{reply}");
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_head_is_cut_off() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            ..ConnectionLimits::default()
        };
        let (addr, _stop) = start(limits).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        // The server closes the connection, without a response, instead of waiting forever.
        let reply = read_all(&mut stream).await;
        assert!(reply.is_empty(), "{reply}");
    }

    #[tokio::test]
    async fn an_oversize_head_is_refused() {
        let (addr, _stop) = start(ConnectionLimits {
            max_head_bytes: 8 * 1024,
            ..ConnectionLimits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(32 * 1024)
        );
        let _ = stream.write_all(big.as_bytes()).await;
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let (addr, stop) = start(ConnectionLimits::default()).await;
        stop.send(true).expect("stop");
        // The loop drops the listener once it sees the signal; wait for that, boundedly.
        let mut still_accepting = true;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                still_accepting = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !still_accepting,
            "the listener still accepts after shutdown"
        );
    }
}
